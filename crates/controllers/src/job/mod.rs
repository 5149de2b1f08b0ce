//! The Job controller (`job-controller`), as upstream's: runs pods from a
//! Job's template until enough of them succeed, or the Job fails.
//!
//! * One pod watch feeds a cache and the triggers (a pod maps to its
//!   controlling Job, an orphan to the Jobs whose selector matches it:
//!   [`claim`] adopts and releases as upstream). Pods are created with the
//!   `batch.kubernetes.io/job-tracking` finalizer; a finished pod is first
//!   recorded in `status.uncountedTerminatedPods` (or, Indexed, in
//!   `completedIndexes`), then its finalizer is removed, then it moves to
//!   the `succeeded`/`failed` counters — so a restart at any point neither
//!   loses nor double-counts a pod (`tracking.rs`).
//! * Non-indexed: `min(parallelism, completions - succeeded)` active pods;
//!   Indexed: one pod per pending index (annotation and label
//!   `batch.kubernetes.io/job-completion-index`, hostname `<job>-<index>`).
//! * Failure: `backoffLimit` failed pods (exponential delay before
//!   replacements, [`backoff`]), `activeDeadlineSeconds`, or a
//!   `podFailurePolicy` FailJob rule ([`failure_policy`]) set
//!   `FailureTarget`, then the active pods are deleted and `Failed` follows.
//!   Success (enough completions, or an Indexed Job's `successPolicy`,
//!   [`success_policy`]) sets `SuccessCriteriaMet`, deletes pods still
//!   running, then sets `Complete` and `completionTime`.
//! * `backoffLimitPerIndex` ([`per_index`]): Indexed Jobs retry each
//!   index on its own and list the ones that gave up in `failedIndexes`.
//! * `suspend` deletes the active pods (not counted as failures) and sets
//!   `Suspended`; resuming resets `startTime`.

pub mod backoff;
pub mod claim;
pub mod conditions;
pub mod expectations;
pub mod failure_policy;
pub mod indexes;
mod manage;
pub mod newest;
pub mod per_index;
pub mod pods;
mod status;
pub mod success_policy;
mod sync;
mod tracking;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::replicaset::pods::{controller_of, selector_matches};

/// The `spec.managedBy` value that names this controller.
pub const CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// Tuning of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Jobs synced in parallel (`--concurrent-job-syncs`).
    pub concurrency: u16,
    /// First delay before replacing a failed pod (upstream: 10 s); doubles
    /// with each further failure.
    pub backoff_base: Duration,
    /// The longest such delay (six minutes upstream).
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 5,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(6 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the pod cache stopped")]
    CacheStopped,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    jobs: Store<Job>,
    recorder: Recorder,
    settings: Settings,
    expectations: expectations::Expectations,
    /// The Jobs this controller wrote: a sync never acts on counters older
    /// than its own last write.
    written: newest::Newest<Job>,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (pod_cache, writer) = reflector::store::<Pod>();
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_cache,
        jobs: controller.store(),
        recorder: Recorder::new(client.clone(), "job-controller"),
        settings: settings.clone(),
        expectations: expectations::Expectations::default(),
        written: newest::Newest::default(),
    });
    let jobs = ctx.jobs.clone();
    let observer = ctx.clone();
    let pod_events = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        // Pod caches: managedFields are never read and take much memory.
        .modify(|p| p.metadata.managed_fields = None)
        .map_ok(move |event| {
            observer.observe(&event);
            event
        })
        .reflect(writer)
        .touched_objects();
    controller
        .watches_stream(pod_events, move |pod: Pod| jobs_for(&pod, &jobs))
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "job sync");
            }
        })
        .await;
    Ok(())
}

/// The Job controlling `pod`, if any.
fn job_of(pod: &Pod) -> Option<ObjectRef<Job>> {
    let owner = controller_of(&pod.metadata)?;
    (owner.kind == "Job" && owner.api_version == "batch/v1")
        .then(|| ObjectRef::new(&owner.name).within(&pod.namespace().unwrap_or_default()))
}

/// The Jobs a pod event concerns: its controller if that is a Job, else
/// (an orphan) every Job in its namespace whose selector matches it.
fn jobs_for(pod: &Pod, jobs: &Store<Job>) -> Vec<ObjectRef<Job>> {
    if controller_of(&pod.metadata).is_some() {
        return job_of(pod).into_iter().collect();
    }
    let ns = pod.namespace().unwrap_or_default();
    jobs.state()
        .iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|j| {
            j.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref()))
        })
        .map(|j| ObjectRef::from_obj(j.as_ref()))
        .collect()
}

impl Ctx {
    /// A pod watch event: deletions meet expectations; a pod still holding
    /// the tracking finalizer whose Job is gone gets it removed (upstream's
    /// orphan pod cleanup), else it could never be deleted.
    fn observe(self: &Arc<Self>, event: &watcher::Event<Pod>) {
        let pod = match event {
            watcher::Event::Delete(pod) => {
                if let Some(owner) = controller_of(&pod.metadata) {
                    self.expectations.observe_deleted(&owner.uid, pod);
                }
                return;
            }
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
            _ => return,
        };
        if !pods::has_tracking_finalizer(pod) {
            return;
        }
        let Some(job) = job_of(pod) else {
            // Not (or no longer) a Job's pod: nothing will count it.
            self.spawn_orphan_cleanup(pod.clone(), None);
            return;
        };
        let owner_uid = controller_of(&pod.metadata).map(|o| o.uid.clone());
        let known = self
            .jobs
            .get(&job)
            .is_some_and(|j| j.metadata.uid == owner_uid);
        if !known {
            self.spawn_orphan_cleanup(pod.clone(), owner_uid);
        }
    }

    /// Removes the tracking finalizer from `pod` once a live read shows
    /// that its Job (uid `owner`) no longer exists.
    fn spawn_orphan_cleanup(self: &Arc<Self>, pod: Pod, owner: Option<String>) {
        let ctx = self.clone();
        tokio::spawn(async move {
            let ns = pod.namespace().unwrap_or_default();
            if let (Some(job), Some(uid)) = (job_of(&pod), owner) {
                // At startup the Job cache may not be filled yet: wait for
                // it before asking the API server.
                if ctx.jobs.wait_until_ready().await.is_err()
                    || ctx
                        .jobs
                        .get(&job)
                        .is_some_and(|j| j.uid().as_deref() == Some(uid.as_str()))
                {
                    return;
                }
                let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
                match api.get_opt(&job.name).await {
                    Ok(Some(j)) if j.uid().as_deref() == Some(uid.as_str()) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "job lookup for an orphan pod");
                        return;
                    }
                }
            }
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            if let Err(e) = remove_finalizer(&api, &pod).await {
                tracing::debug!(error = %e, pod = %pod.name_any(), "removing the job-tracking finalizer");
            }
        });
    }
}

/// Strips the tracking finalizer from `pod` (strategic merge patch with
/// the pod's uid as precondition, as upstream). A pod already gone is fine.
async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": [pods::TRACKING_FINALIZER],
        "uid": pod.metadata.uid,
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409 | 422)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn error_policy(_job: Arc<Job>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    match error {
        // Our cache was behind our own write: retry as soon as it catches up.
        Error::Kube(e) if crate::api_code(e) == Some(409) => {
            Action::requeue(Duration::from_millis(100))
        }
        _ => {
            tracing::warn!(error = %error, "job sync failed; retrying");
            Action::requeue(Duration::from_millis(500))
        }
    }
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let job = ctx.written.get(job);
    // Another controller owns this Job (`spec.managedBy`).
    let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
    if managed_by.is_some_and(|m| m != CONTROLLER_NAME) {
        return Ok(Action::await_change());
    }
    sync::sync(&ctx, &job).await
}
