//! Counting finished pods through the tracking finalizer (upstream's
//! trackJobStatusAndRemoveFinalizers): record them in
//! `uncountedTerminatedPods` (Indexed: `completedIndexes`) and write that,
//! then remove their finalizers, then move them into the counters. A
//! restart between any two steps neither loses nor double-counts a pod.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;

use super::conditions::{self as cond, ensure, true_condition};
use super::failure_policy::{self, Verdict};
use super::pods::{self as jp, has_tracking_finalizer};
use super::status::{count, write_status};
use super::{Ctx, Error, indexes, per_index, remove_finalizer};

/// Most finished pods recorded per sync (upstream's MaxUncountedPods).
const MAX_UNCOUNTED: usize = 500;

/// Where counting left the Job.
pub(super) struct Tracked {
    /// The Job as last written.
    pub job: Job,
    /// Its status with the counters moved forward.
    pub status: JobStatus,
    /// Indexed: the completed indexes.
    pub completed: BTreeSet<i32>,
    /// With `backoffLimitPerIndex`: the failed indexes.
    pub failed_indexes: BTreeSet<i32>,
    /// What fails the Job, if anything does already: `(reason, message)`.
    pub failing: Option<(String, String)>,
    /// Succeeded pods, counted or not.
    pub succeeded: i32,
    /// Failed pods (that count), counted or not.
    pub failed: i32,
    /// Pods recorded but whose finalizer is not off yet.
    pub uncounted: usize,
    /// A finalizer removal that failed (retried on the next sync).
    pub error: Option<kube::Error>,
}

/// Counts the finished pods among `owned`; `unfinalized` are pods whose
/// finalizer removal the cache does not show yet.
pub(super) async fn track(
    ctx: &Ctx,
    pod_api: &Api<Pod>,
    job: &Job,
    owned: &[Arc<Pod>],
    unfinalized: &HashSet<String>,
    now: Timestamp,
) -> Result<Tracked, Error> {
    let default = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let only_replace_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    let mut status = job.status.clone().unwrap_or_default();
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut uncounted_ok: Vec<String> = uncounted.succeeded.unwrap_or_default();
    let mut uncounted_failed: Vec<String> = uncounted.failed.unwrap_or_default();
    let mut completed: BTreeSet<i32> = match (indexed, completions) {
        (true, Some(c)) => indexes::parse(status.completed_indexes.as_deref().unwrap_or(""), c),
        _ => BTreeSet::new(),
    };
    let per_index = indexed && spec.backoff_limit_per_index.is_some();
    let mut failed_indexes: BTreeSet<i32> = match (per_index, completions) {
        (true, Some(c)) => indexes::parse(status.failed_indexes.as_deref().unwrap_or(""), c),
        _ => BTreeSet::new(),
    };
    let target = true_condition(&status, cond::FAILURE_TARGET).map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let mut failing = target.clone();
    let mut new_failure_target = false;

    // 1. Record newly finished pods before touching their finalizers.
    let mut to_unfinalize: Vec<&Arc<Pod>> = Vec::new();
    let mut flush = false;
    for pod in owned.iter().filter(|p| has_tracking_finalizer(p)) {
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        if unfinalized.contains(&pod_uid) {
            continue;
        }
        if to_unfinalize.len() >= MAX_UNCOUNTED {
            // The rest wait for the next sync, which this one's writes
            // trigger: the status stays small and other Jobs get a turn.
            break;
        }
        let index = jp::completion_index(pod);
        let valid_index = !indexed || index.zip(completions).is_some_and(|(i, c)| i < c);
        if jp::phase(pod) == Some("Succeeded") && !uncounted_failed.contains(&pod_uid) {
            if indexed {
                if let Some(i) = index.filter(|_| valid_index)
                    && completed.insert(i)
                {
                    flush = true;
                }
            } else if !uncounted_ok.contains(&pod_uid) {
                uncounted_ok.push(pod_uid);
                flush = true;
            }
            to_unfinalize.push(pod);
        } else if jp::is_failed(pod, only_replace_failed)
            || target.is_some() && jp::is_terminating(pod)
        {
            if per_index
                && valid_index
                && let Some(i) = index
                && jp::phase(pod) != Some("Succeeded")
                && per_index::fails_index(job, pod)
                && failed_indexes.insert(i)
            {
                flush = true;
            }
            if !uncounted_failed.contains(&pod_uid) && valid_index {
                let verdict = match (&spec.pod_failure_policy, jp::phase(pod)) {
                    (Some(policy), Some("Failed")) => failure_policy::evaluate(policy, pod),
                    _ => Verdict::Count,
                };
                match verdict {
                    Verdict::Ignore => {}
                    Verdict::FailJob(message) => {
                        if failing.is_none() {
                            failing = Some(("PodFailurePolicy".to_owned(), message));
                            new_failure_target = true;
                        }
                        uncounted_failed.push(pod_uid);
                        flush = true;
                    }
                    Verdict::Count | Verdict::FailIndex => {
                        uncounted_failed.push(pod_uid);
                        flush = true;
                    }
                }
            }
            to_unfinalize.push(pod);
        }
    }
    let mut job: Job = job.clone();
    if new_failure_target && let Some((reason, message)) = &failing {
        ensure(
            &mut status,
            cond::FAILURE_TARGET,
            true,
            reason,
            message,
            now,
        );
    }
    if flush || new_failure_target {
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(uncounted_ok.clone()),
            failed: Some(uncounted_failed.clone()),
        });
        if indexed {
            status.completed_indexes = Some(indexes::format(&completed));
            status.succeeded = Some(count(completed.len()));
        }
        if per_index {
            status.failed_indexes = Some(indexes::format(&failed_indexes));
        }
        job = write_status(ctx, &job, status.clone()).await?;
    }

    // 2. Remove their finalizers; 3. move what is safe into the counters.
    let mut removed: HashSet<String> = HashSet::new();
    let mut unfinalize_error = None;
    let results = futures::future::join_all(to_unfinalize.iter().map(|pod| {
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        ctx.expectations.expect_unfinalized(&pod_uid);
        let api = pod_api;
        async move { (pod_uid, remove_finalizer(api, pod).await) }
    }))
    .await;
    for (pod_uid, r) in results {
        match r {
            Ok(()) => {
                removed.insert(pod_uid);
            }
            Err(e) => {
                ctx.expectations.unfinalize_failed(&pod_uid);
                unfinalize_error = Some(e);
            }
        }
    }
    let released = |pod_uid: &String| {
        removed.contains(pod_uid)
            || unfinalized.contains(pod_uid)
            || !owned
                .iter()
                .any(|p| p.metadata.uid.as_ref() == Some(pod_uid) && has_tracking_finalizer(p))
    };
    let mut succeeded = status.succeeded.unwrap_or(0);
    let mut failed = status.failed.unwrap_or(0);
    uncounted_ok.retain(|u| {
        let done = released(u);
        if done && !indexed {
            succeeded += 1;
        }
        !done
    });
    uncounted_failed.retain(|u| {
        let done = released(u);
        if done {
            failed += 1;
        }
        !done
    });
    if indexed {
        succeeded = count(completed.len());
    }
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(uncounted_ok.clone()),
        failed: Some(uncounted_failed.clone()),
    });
    let succeeded_total = succeeded + count(uncounted_ok.len());
    let failed_total = failed + count(uncounted_failed.len());

    Ok(Tracked {
        job,
        status,
        completed,
        failed_indexes,
        failing,
        succeeded: succeeded_total,
        failed: failed_total,
        uncounted: uncounted_ok.len() + uncounted_failed.len(),
        error: unfinalize_error,
    })
}
