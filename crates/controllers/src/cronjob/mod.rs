//! The CronJob controller (`cronjob-controller`), as upstream's v2
//! controller: creates a Job `<cronjob>-<minutes since epoch>` at each
//! time of `spec.schedule` ([`schedule`]) in `spec.timeZone`.
//!
//! * One Job watch feeds a cache and the triggers (a Job maps to its
//!   controlling CronJob); each sync requeues itself just after the next
//!   schedule time, read from a [`Clock`] that tests can drive.
//! * Status: `active` (finished and vanished Jobs leave it),
//!   `lastScheduleTime`, `lastSuccessfulTime`.
//! * Missed times ([`missed`]): only the most recent runs, and only within
//!   `startingDeadlineSeconds`; more than 100 missed warns.
//! * `concurrencyPolicy` Allow, Forbid (skip while a Job is active) or
//!   Replace (delete the active Jobs first); `suspend`; finished Jobs
//!   beyond `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` are
//!   deleted oldest first ([`history`]).

pub mod history;
pub mod missed;
pub mod schedule;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::job::newest::Newest;
use crate::replicaset::pods::controller_of;

/// Where the controller reads the time (tests move it forward by hand).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Tuning of the controller.
#[derive(Clone)]
pub struct Settings {
    /// CronJobs synced in parallel (`--concurrent-cron-job-syncs`).
    pub concurrency: u16,
    /// The current time.
    pub clock: Clock,
    /// The longest a CronJob waits between syncs (its next schedule time
    /// is usually sooner); keeps a moved clock from going unnoticed.
    pub max_requeue: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 5,
            clock: Arc::new(Timestamp::now),
            max_requeue: Duration::from_secs(60 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the job cache stopped")]
    CacheStopped,
    #[error("could not replace job {0}")]
    Replace(String),
}

struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    recorder: Recorder,
    settings: Settings,
    written: Newest<CronJob>,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (job_cache, writer) = reflector::store::<Job>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs: job_cache,
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        settings: settings.clone(),
        written: Newest::default(),
    });
    let job_events = watcher(Api::<Job>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    Controller::new(Api::<CronJob>::all(client), watcher::Config::default())
        .watches_stream(job_events, |job: Job| cronjob_of(&job))
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "cronjob sync");
            }
        })
        .await;
    Ok(())
}

/// The CronJob controlling `job`, if any.
fn cronjob_of(job: &Job) -> Option<ObjectRef<CronJob>> {
    let owner = controller_of(&job.metadata)?;
    (owner.kind == "CronJob" && owner.api_version == "batch/v1")
        .then(|| ObjectRef::new(&owner.name).within(&job.namespace().unwrap_or_default()))
}

fn error_policy(_cj: Arc<CronJob>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    match error {
        Error::Kube(e) if crate::api_code(e) == Some(409) => {
            Action::requeue(Duration::from_millis(100))
        }
        _ => {
            tracing::warn!(error = %error, "cronjob sync failed; retrying");
            Action::requeue(Duration::from_secs(1))
        }
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.jobs
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let cj = ctx.written.get(cj);
    let next = sync::sync(&ctx, &cj).await?;
    let wait = next.map_or(ctx.settings.max_requeue, |n| {
        n.min(ctx.settings.max_requeue)
    });
    Ok(Action::requeue(wait))
}
