#![allow(clippy::unwrap_used)]
//! Property tests: after any sequence of writes, lists at every past revision
//! and watches from every past revision agree with a simple in-memory model.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::next_event;
use proptest::prelude::*;
use skiff_store::{
    EtcdConfig, EtcdStore, EventKind, ListOptions, Revision, SqliteConfig, SqliteStore, Store,
    StoreError,
};
use skiff_testkit::EtcdServer;

const KEYS: [&str; 5] = ["/m/a", "/m/b", "/m/c", "/m/d", "/n/a"];

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u8),
    /// Update with the right expected revision, or a stale one.
    Update(usize, u8, bool),
    /// Delete unconditionally, or with the right/stale expected revision.
    Delete(usize, Option<bool>),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        (key.clone(), any::<u8>(), any::<bool>()).prop_map(|(k, v, ok)| Op::Update(k, v, ok)),
        (key, proptest::option::of(any::<bool>())).prop_map(|(k, ok)| Op::Delete(k, ok)),
    ]
}

/// key → (value, create revision, mod revision)
type State = BTreeMap<String, (Bytes, Revision, Revision)>;

#[derive(Debug, PartialEq)]
struct ModelEvent {
    kind: EventKind,
    key: String,
    value: Bytes,
    revision: Revision,
    prev_value: Option<Bytes>,
}

#[derive(Default)]
struct Model {
    state: State,
    /// The state after each revision.
    snapshots: Vec<(Revision, State)>,
    events: Vec<ModelEvent>,
}

fn outcome_name<T>(r: &Result<T, StoreError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(StoreError::AlreadyExists { .. }) => "exists",
        Err(StoreError::Conflict { .. }) => "conflict",
        Err(StoreError::NotFound { .. }) => "notfound",
        Err(_) => "other",
    }
}

async fn check(store: Arc<dyn Store>, ops: Vec<Op>) {
    let mut model = Model::default();
    let start = store.current_revision().await.unwrap();
    model.snapshots.push((start, State::new()));
    for op in ops {
        let (key, expected, result_rev) = match op {
            Op::Create(k, v) => {
                let key = KEYS[k];
                let value = Bytes::from(vec![v]);
                let r = store.create(key, value.clone(), None).await;
                let expected = if model.state.contains_key(key) {
                    "exists"
                } else {
                    "ok"
                };
                assert_eq!(outcome_name(&r), expected, "create {key}");
                let rev = r.ok().map(|kv| kv.mod_revision);
                if let Some(rev) = rev {
                    model.state.insert(key.into(), (value.clone(), rev, rev));
                    model.events.push(ModelEvent {
                        kind: EventKind::Put,
                        key: key.into(),
                        value,
                        revision: rev,
                        prev_value: None,
                    });
                }
                (key, expected, rev)
            }
            Op::Update(k, v, right) => {
                let key = KEYS[k];
                let value = Bytes::from(vec![v]);
                let current = model.state.get(key).cloned();
                let expected_rev = match (&current, right) {
                    (Some((_, _, m)), true) => *m,
                    (Some((_, _, m)), false) => m - 1,
                    (None, _) => 1,
                };
                let r = store.update(key, value.clone(), expected_rev, None).await;
                let expected = match (&current, right) {
                    (None, _) => "notfound",
                    (Some(_), true) => "ok",
                    (Some(_), false) => "conflict",
                };
                assert_eq!(outcome_name(&r), expected, "update {key}");
                let rev = r.ok().map(|kv| kv.mod_revision);
                if let (Some(rev), Some((prev, create, _))) = (rev, current) {
                    model.state.insert(key.into(), (value.clone(), create, rev));
                    model.events.push(ModelEvent {
                        kind: EventKind::Put,
                        key: key.into(),
                        value,
                        revision: rev,
                        prev_value: Some(prev),
                    });
                }
                (key, expected, rev)
            }
            Op::Delete(k, right) => {
                let key = KEYS[k];
                let current = model.state.get(key).cloned();
                let expected_rev = match (&current, right) {
                    (_, None) => None,
                    (Some((_, _, m)), Some(true)) => Some(*m),
                    (Some((_, _, m)), Some(false)) => Some(m - 1),
                    (None, Some(_)) => Some(1),
                };
                let r = store.delete(key, expected_rev).await;
                let expected = match (&current, right) {
                    (None, _) => "notfound",
                    (Some(_), Some(false)) => "conflict",
                    (Some(_), _) => "ok",
                };
                assert_eq!(outcome_name(&r), expected, "delete {key}");
                let rev = r.ok().map(|d| d.revision);
                if let (Some(rev), Some((prev, _, _))) = (rev, current) {
                    model.state.remove(key);
                    model.events.push(ModelEvent {
                        kind: EventKind::Delete,
                        key: key.into(),
                        value: Bytes::new(),
                        revision: rev,
                        prev_value: Some(prev),
                    });
                }
                (key, expected, rev)
            }
        };
        if let Some(rev) = result_rev {
            let last = model.snapshots.last().unwrap().0;
            assert_eq!(
                rev,
                last + 1,
                "{key} ({expected}): revisions advance by one per write"
            );
            model.snapshots.push((rev, model.state.clone()));
        }
    }

    for (rev, state) in &model.snapshots {
        let expected: Vec<(String, Bytes, Revision, Revision)> = state
            .iter()
            .filter(|(k, _)| k.starts_with("/m/"))
            .map(|(k, (v, c, m))| (k.clone(), v.clone(), *c, *m))
            .collect();
        // Whole, and one key per page. (Revision 0 means "latest", so the
        // empty initial state of a fresh store cannot be listed by revision.)
        if *rev == 0 {
            assert!(expected.is_empty());
        }
        let at = Some(*rev)
            .filter(|r| *r > 0)
            .or(Some(model.snapshots.last().unwrap().0));
        let expected = if *rev == 0 {
            latest_expected(&model)
        } else {
            expected
        };
        let whole = store
            .list(
                "/m/",
                ListOptions {
                    revision: at,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = whole
            .items
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.clone(),
                    kv.create_revision,
                    kv.mod_revision,
                )
            })
            .collect();
        assert_eq!(got, expected, "list at {rev}");
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list(
                    "/m/",
                    ListOptions {
                        limit: Some(1),
                        continue_after: after.clone(),
                        revision: at,
                    },
                )
                .await
                .unwrap();
            paged.extend(page.items.iter().map(|kv| kv.key.clone()));
            assert_eq!(page.remaining as usize, expected.len() - paged.len());
            if !page.more() {
                break;
            }
            after = page.items.last().map(|kv| kv.key.clone());
        }
        assert_eq!(
            paged,
            expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>()
        );

        // A watch from this revision replays exactly the later events.
        let mut stream = store.watch("/m/", *rev).await.unwrap();
        for want in model
            .events
            .iter()
            .filter(|e| e.revision > *rev && e.key.starts_with("/m/"))
        {
            let got = next_event(&mut stream).await;
            let got = ModelEvent {
                kind: got.kind,
                key: got.kv.key,
                value: got.kv.value,
                revision: got.kv.mod_revision,
                prev_value: got.prev.map(|p| p.value),
            };
            assert_eq!(&got, want, "watch from {rev}");
        }
    }
    // Nothing beyond the model's events: the next event is a fresh write.
    let mut stream = store
        .watch("/m/", model.snapshots.last().unwrap().0)
        .await
        .unwrap();
    let sentinel = store
        .create("/m/zz-sentinel", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await.kv, sentinel);
}

fn latest_expected(model: &Model) -> Vec<(String, Bytes, Revision, Revision)> {
    model
        .state
        .iter()
        .filter(|(k, _)| k.starts_with("/m/"))
        .map(|(k, (v, c, m))| (k.clone(), v.clone(), *c, *m))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn sqlite_lists_and_watches_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).await.unwrap();
            check(Arc::new(store), ops).await;
        });
    }
}

/// One etcd for all cases (each case in its own key prefix), stopped when
/// the test ends (a static would outlive the test process's cleanup).
#[test]
fn etcd_lists_and_watches_match_the_model() {
    use proptest::test_runner::{Config, TestRunner};
    let server = EtcdServer::start().expect("start etcd (apt-get install etcd-server)");
    let url = server.client_url();
    let mut runner = TestRunner::new(Config::with_cases(16));
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rt = runtime();
        rt.block_on(async {
            let mut config = EtcdConfig::new(vec![url.clone()]);
            // Each case gets its own key space; revisions are shared, which the
            // model tolerates because it only compares revisions it saw.
            config.prefix = format!("/case-{case}");
            let store = EtcdStore::connect(config).await.unwrap();
            check(Arc::new(store), ops).await;
        });
        Ok(())
    });
    drop(server);
    if let Err(e) = result {
        panic!("{e}");
    }
}
