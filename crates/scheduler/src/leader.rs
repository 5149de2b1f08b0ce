//! Running the scheduler only while it holds the `kube-system/kube-scheduler`
//! Lease, as upstream does so that several schedulers can run for
//! availability while exactly one binds pods.
//!
//! Unlike the controller manager (which stops its controllers and tries to
//! win the lease back), a scheduler that loses the lease ends with
//! [`LeaderError::Lost`], as upstream's kube-scheduler exits: its queue and
//! assume cache may disagree with what the new leader does, and starting
//! afresh from the API server is the simple way to be right.

use std::future::Future;
use std::time::Duration;

use skiff_leaderelection::LeaderElector;
use tokio_util::sync::CancellationToken;

use crate::config::LeaderElectionConfig;

/// How long a scheduler that lost the lease waits for its work to stop
/// before abandoning it.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LeaderError<E> {
    /// Renewals failed for the renew deadline (or another instance took
    /// the lease): the work was cancelled.
    #[error("leader election lost")]
    Lost,
    /// The work itself failed while leading.
    #[error(transparent)]
    Lead(E),
}

/// The lease holder identity, `<hostname>_<uuid>` as upstream.
pub fn identity() -> String {
    skiff_leaderelection::default_identity()
}

/// Runs `lead` while this instance holds the lease named by `config`.
///
/// Waits (every retry period) until the lease is won, then runs
/// `lead(token)`; `token` is cancelled on `shutdown` or when leadership is
/// lost. Returns `Ok` when `shutdown` comes first (before or while
/// leading; the lease is then released so a successor need not wait),
/// `lead`'s own result when it ends by itself, and
/// [`LeaderError::Lost`] when the lease is lost. With
/// `config.leader_elect` false, `lead` simply runs until `shutdown`.
pub async fn run_elected<F, Fut, E>(
    client: kube::Client,
    config: &LeaderElectionConfig,
    identity: String,
    shutdown: CancellationToken,
    lead: F,
) -> Result<(), LeaderError<E>>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    if !config.leader_elect {
        return lead(shutdown.child_token())
            .await
            .map_err(LeaderError::Lead);
    }
    let elector = LeaderElector::new(
        client,
        &config.resource_namespace,
        &config.resource_name,
        &identity,
        config.timing(),
    );
    tracing::info!(lease = %format!("{}/{}", config.resource_namespace, config.resource_name), %identity, "attempting to acquire the scheduler lease");
    if !elector.acquire(&shutdown).await {
        return Ok(());
    }
    tracing::info!(%identity, "became leader: scheduling");
    let term = shutdown.child_token();
    let work = lead(term.clone());
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => {
            term.cancel();
            elector.release().await;
            return result.map_err(LeaderError::Lead);
        }
        () = elector.keep(&term) => {}
    }
    term.cancel();
    if shutdown.is_cancelled() {
        let result = work.await;
        elector.release().await;
        return result.map_err(LeaderError::Lead);
    }
    tracing::error!(%identity, "leader election lost: stopping the scheduler");
    if tokio::time::timeout(STOP_GRACE, work).await.is_err() {
        tracing::warn!("the scheduler did not stop within {STOP_GRACE:?} of losing the lease");
    }
    Err(LeaderError::Lost)
}
