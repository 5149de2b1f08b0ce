//! Test helper for the crash test (`tests/crash.rs`), not a user tool.
//!
//! Writes keys to a SQLite store from several concurrent writers forever and
//! prints each key on stdout once its write is acknowledged; the test kills
//! it with SIGKILL and checks that every printed key survived.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use skiff_store::{SqliteConfig, SqliteStore, Store};

/// The value written for `key`: recognisable and of varying size.
pub fn value_for(key: &str) -> Bytes {
    let repeat = 1 + key.len() % 7 * 100;
    Bytes::from(format!("value-of-{key}-").repeat(repeat))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(prefix)) = (args.next(), args.next()) else {
        return Err("usage: crash_writer <db-path> <key-prefix> [writers]".into());
    };
    let writers: usize = args.next().map_or(Ok(8), |w| w.parse())?;
    let store = SqliteStore::open(SqliteConfig::at(PathBuf::from(db))).await?;
    let (acked, mut acks) = tokio::sync::mpsc::unbounded_channel::<String>();
    for w in 0..writers {
        let (store, prefix, acked) = (store.clone(), prefix.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("{prefix}{w}-{i:08}");
                if store.create(&key, value_for(&key), None).await.is_err() {
                    return;
                }
                // Updates too, so the log holds superseded rows.
                if i % 3 == 0
                    && let Ok(Some(kv)) = store.get(&key).await
                {
                    let _ = store
                        .update(&key, value_for(&key), kv.mod_revision, None)
                        .await;
                }
                if acked.send(key).is_err() {
                    return;
                }
            }
        });
    }
    drop(acked);
    let mut stdout = std::io::stdout().lock();
    while let Some(key) = acks.recv().await {
        writeln!(stdout, "{key}")?;
        stdout.flush()?;
    }
    Ok(())
}
