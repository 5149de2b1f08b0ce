//! Automatic compaction: keep a bounded window of history for watches.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Store;

/// How long history is kept for watches before it is compacted (upstream's
/// default for the API server).
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Every `interval`, compacts history up to the revision that was current one
/// interval earlier, so at least `interval` of history is always kept.
pub struct AutoCompactor {
    pub store: Arc<dyn Store>,
    pub interval: Duration,
}

impl AutoCompactor {
    /// Runs until `shutdown` is cancelled. Failures are logged and retried at
    /// the next tick; they never stop the store.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous: Option<i64> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Some(revision) = previous.filter(|r| *r > 0) {
                match self.store.compact(revision).await {
                    Ok(()) => tracing::info!(revision, "compacted store history"),
                    Err(e) => tracing::warn!(revision, error = %e, "store compaction failed"),
                }
            }
            match self.store.current_revision().await {
                Ok(current) => previous = Some(current),
                Err(e) => tracing::warn!(error = %e, "reading the store revision failed"),
            }
        }
    }
}
