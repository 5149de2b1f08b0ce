//! One sync of one Job (upstream's syncJob): count finished pods through
//! the tracking finalizer, decide success or failure, create or delete
//! pods, write the status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{self as cond, ensure, true_condition};
use super::manage::{Plan, controller_ref, delete_pods, manage};
use super::pods::{self as jp, has_tracking_finalizer};
use super::status::{count, differs, write_status};
use super::{Ctx, Error, claim, indexes, per_index, remove_finalizer, success_policy, tracking};
use crate::events::EventType;
use crate::replicaset::pods::{controller_of, is_active, is_ready};

pub(super) async fn sync(ctx: &Ctx, job: &Arc<Job>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let in_namespace: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| controller_of(&p.metadata).is_none_or(|o| o.uid == uid))
        .collect();
    let owned = claim::claim(
        &ctx.client,
        &pod_api,
        job,
        &controller_ref(job),
        in_namespace,
    )
    .await?;
    let unfinalized = ctx.expectations.unfinalized(&ctx.pods);

    // A finished or deleted Job no longer counts anything: let its pods go.
    if job.metadata.deletion_timestamp.is_some() || cond::finished(job).is_some() {
        let holding: Vec<&Arc<Pod>> = owned
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter(|p| !unfinalized.contains(p.metadata.uid.as_deref().unwrap_or_default()))
            .collect();
        for pod in holding {
            ctx.expectations
                .expect_unfinalized(pod.metadata.uid.as_deref().unwrap_or_default());
            if let Err(e) = remove_finalizer(&pod_api, pod).await {
                ctx.expectations
                    .unfinalize_failed(pod.metadata.uid.as_deref().unwrap_or_default());
                return Err(e.into());
            }
        }
        return Ok(Action::await_change());
    }
    let Some(spec) = job.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let now = Timestamp::now();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let only_replace_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    let suspended = spec.suspend == Some(true);

    let tracked = tracking::track(ctx, &pod_api, job, &owned, &unfinalized, now).await?;
    let mut job = tracked.job;
    let mut status = tracked.status;
    let completed = tracked.completed;
    let failed_indexes = tracked.failed_indexes;
    let per_index = indexed && spec.backoff_limit_per_index.is_some();
    let mut failing = tracked.failing;
    let (succeeded_total, failed_total) = (tracked.succeeded, tracked.failed);
    let unfinalize_error = tracked.error;
    let all_counted = tracked.uncounted == 0;

    let mut active: Vec<&Arc<Pod>> = owned.iter().filter(|p| is_active(p)).collect();
    let terminating = owned.iter().filter(|p| jp::is_terminating(p)).count();

    // Suspension and start time.
    let mut events: Vec<(EventType, &str, String)> = Vec::new();
    if suspended && failing.is_none() {
        if ensure(
            &mut status,
            cond::SUSPENDED,
            true,
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            events.push((EventType::Normal, "Suspended", "Job suspended".into()));
        }
    } else if true_condition(&status, cond::SUSPENDED).is_some()
        && ensure(
            &mut status,
            cond::SUSPENDED,
            false,
            "JobResumed",
            "Job resumed",
            now,
        )
    {
        events.push((EventType::Normal, "Resumed", "Job resumed".into()));
        status.start_time = Some(Time(now));
    }
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    // Failure decisions.
    let mut requeue: Option<Duration> = None;
    let deadline_left = match (spec.active_deadline_seconds, &status.start_time) {
        (Some(secs), Some(start)) if !suspended => {
            let end = start.0.as_second().saturating_add(secs);
            Some(end - now.as_second())
        }
        _ => None,
    };
    // Success already established stays (and rules out failure).
    let criteria_met = true_condition(&status, cond::SUCCESS_CRITERIA_MET).map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    if failing.is_none() && criteria_met.is_none() {
        if failed_total > backoff_limit || past_backoff_limit_on_failure(&job, &owned) {
            failing = Some((
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ));
        } else if deadline_left.is_some_and(|left| left <= 0) {
            failing = Some((
                "DeadlineExceeded".into(),
                "Job was active longer than specified deadline".into(),
            ));
        } else if per_index {
            failing = per_index::job_failure(&job, &failed_indexes, &completed);
        }
        if let Some((reason, message)) = &failing {
            ensure(
                &mut status,
                cond::FAILURE_TARGET,
                true,
                reason,
                message,
                now,
            );
        }
    }

    let key = uid.clone();
    let mut manage_error: Option<Error> = unfinalize_error.map(Error::from);
    let by_policy = match (&spec.success_policy, completions) {
        (Some(policy), Some(c)) if indexed => success_policy::matched(policy, c, &completed),
        _ => None,
    };
    let reached = match (indexed, completions) {
        (true, Some(c)) => completed.len() >= usize::try_from(c).unwrap_or(0),
        (_, None) => succeeded_total > 0 && active.is_empty(),
        (false, Some(c)) => succeeded_total >= c,
    };
    let success = criteria_met
        .or_else(|| by_policy.map(|m| ("SuccessPolicy".to_owned(), m)))
        .or_else(|| {
            reached.then(|| {
                (
                    "CompletionsReached".to_owned(),
                    "Reached expected number of succeeded pods".to_owned(),
                )
            })
        });
    if let Some((reason, message)) = &failing {
        // Fail: every active pod goes (and counts as failed once deleted).
        let n = active.len();
        if let Err(e) = delete_pods(ctx, &job, &pod_api, &key, &active, false).await {
            manage_error = Some(e);
        }
        active.clear();
        if n == 0 && terminating == 0 && all_counted {
            ensure(&mut status, cond::FAILED, true, reason, message, now);
            events.push((EventType::Warning, reason.as_str(), message.clone()));
        }
    } else if let Some((reason, message)) = &success {
        // Succeed: pods still running go, uncounted.
        ensure(
            &mut status,
            cond::SUCCESS_CRITERIA_MET,
            true,
            reason,
            message,
            now,
        );
        let n = active.len();
        if n > 0 {
            if let Err(e) = delete_pods(ctx, &job, &pod_api, &key, &active, true).await {
                manage_error = Some(e);
            }
            active.clear();
        }
        if n == 0 && terminating == 0 && all_counted {
            ensure(&mut status, cond::COMPLETE, true, reason, message, now);
            status.completion_time = Some(Time(now));
            events.push((EventType::Normal, "Completed", "Job completed".into()));
        }
    } else if suspended {
        if let Err(e) = delete_pods(ctx, &job, &pod_api, &key, &active, true).await {
            manage_error = Some(e);
        }
        active.clear();
    } else {
        match ctx.expectations.satisfied(&key, &ns, &ctx.pods) {
            Err(left) => requeue = Some(left),
            Ok(()) => {
                let plan = Plan {
                    indexed,
                    completions,
                    parallelism,
                    succeeded: succeeded_total,
                    completed: &completed,
                    failed_indexes: &failed_indexes,
                    per_index,
                    only_replace_failed,
                    terminating: if only_replace_failed { terminating } else { 0 },
                };
                match manage(ctx, &job, &pod_api, &key, &owned, &mut active, &plan, now).await {
                    Ok(wait) => requeue = wait,
                    Err(e) => manage_error = Some(e),
                }
            }
        }
    }

    let finished = true_condition(&status, cond::COMPLETE).is_some()
        || true_condition(&status, cond::FAILED).is_some();
    status.active = Some(count(active.len()));
    status.ready = Some(count(active.iter().filter(|p| is_ready(p)).count()));
    status.terminating = Some(count(terminating));
    if indexed {
        status.completed_indexes = Some(indexes::format(&completed));
    }
    if per_index {
        status.failed_indexes = Some(indexes::format(&failed_indexes));
    }
    if differs(job.status.as_ref(), &status) {
        job = write_status(ctx, &job, status).await?;
    }
    for (type_, reason, message) in events {
        ctx.recorder.record(&job, type_, reason, message);
    }
    if let Some(e) = manage_error {
        return Err(e);
    }
    if !finished && let Some(left) = deadline_left.filter(|_| failing.is_none()) {
        let left = Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0) + 1);
        requeue = Some(requeue.map_or(left, |r| r.min(left)));
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// With `restartPolicy: OnFailure`, container restarts in pending and
/// running pods count as failures (upstream's pastBackoffLimitOnFailure:
/// at least `backoffLimit` restarts, any with a limit of 0).
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let spec = job.spec.as_ref();
    let policy = spec.and_then(|s| s.template.spec.as_ref()?.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(jp::phase(p), Some("Pending" | "Running")))
        .map(|p| jp::restarts(p))
        .sum();
    match spec.and_then(|s| s.backoff_limit).unwrap_or(6) {
        0 => restarts > 0,
        limit => restarts >= i64::from(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_count_with_restart_policy_on_failure() {
        let job = |policy: &str, limit: i32| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j"},
                "spec": {"backoffLimit": limit, "template": {"spec": {
                    "restartPolicy": policy, "containers": [{"name": "c"}]}}},
            }))
            .unwrap()
        };
        let pod = |phase: &str, restarts: i32| -> Arc<Pod> {
            Arc::new(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "p"},
                    "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i",
                        "imageID": "", "ready": false, "restartCount": restarts}]},
                }))
                .unwrap(),
            )
        };
        let pods = [pod("Running", 1), pod("Pending", 1), pod("Failed", 5)];
        assert!(past_backoff_limit_on_failure(&job("OnFailure", 2), &pods));
        assert!(!past_backoff_limit_on_failure(&job("OnFailure", 3), &pods));
        assert!(!past_backoff_limit_on_failure(&job("Never", 1), &pods));
        assert!(past_backoff_limit_on_failure(
            &job("OnFailure", 0),
            &pods[..1]
        ));
    }
}
