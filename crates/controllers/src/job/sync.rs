//! One sync of one Job (upstream's syncJob): count finished pods through
//! the tracking finalizer, decide success or failure, create or delete
//! pods, write the status.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{self as cond, ensure, true_condition};
use super::failure_policy::{self, Verdict};
use super::pods::{self as jp, has_tracking_finalizer};
use super::{Ctx, Error, backoff, claim, indexes, remove_finalizer};
use crate::events::EventType;
use crate::replicaset::pods::{controller_of, is_active, is_ready, pods_to_delete};

/// Most pods created or deleted in one sync (upstream's
/// MaxPodCreateDeletePerSync).
const MAX_PER_SYNC: usize = 500;

fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job.name_any(),
        uid: job.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The decision that ends the Job, if any: `(reason, message)`.
type Verdict2 = Option<(String, String)>;

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

    let mut status = job.status.clone().unwrap_or_default();
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut uncounted_ok: Vec<String> = uncounted.succeeded.unwrap_or_default();
    let mut uncounted_failed: Vec<String> = uncounted.failed.unwrap_or_default();
    let mut completed: BTreeSet<i32> = match (indexed, completions) {
        (true, Some(c)) => indexes::parse(status.completed_indexes.as_deref().unwrap_or(""), c),
        _ => BTreeSet::new(),
    };
    let target = true_condition(&status, cond::FAILURE_TARGET).map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let mut failing: Verdict2 = target.clone();
    let mut new_failure_target = false;

    // 1. Record newly finished pods before touching their finalizers.
    let mut to_unfinalize: Vec<&Arc<Pod>> = Vec::new();
    let mut flush = false;
    for pod in owned.iter().filter(|p| has_tracking_finalizer(p)) {
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        if unfinalized.contains(&pod_uid) {
            continue;
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
                    Verdict::Count => {
                        uncounted_failed.push(pod_uid);
                        flush = true;
                    }
                }
            }
            to_unfinalize.push(pod);
        }
    }
    let mut job: Job = (**job).clone();
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
        job = write_status(ctx, &job, status.clone()).await?;
    }

    // 2. Remove their finalizers; 3. move what is safe into the counters.
    let mut removed: HashSet<String> = HashSet::new();
    let mut unfinalize_error = None;
    let results = futures::future::join_all(to_unfinalize.iter().map(|pod| {
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        ctx.expectations.expect_unfinalized(&pod_uid);
        let api = &pod_api;
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
    if failing.is_none() {
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
    let success = match (indexed, completions) {
        (true, Some(c)) => completed.len() >= usize::try_from(c).unwrap_or(0),
        (_, None) => succeeded_total > 0 && active.is_empty(),
        (false, Some(c)) => succeeded_total >= c,
    };
    if let Some((reason, message)) = &failing {
        // Fail: every active pod goes (and counts as failed once deleted).
        let n = active.len();
        if let Err(e) = delete_pods(ctx, &job, &pod_api, &key, &active, false).await {
            manage_error = Some(e);
        }
        active.clear();
        if n == 0 && terminating == 0 && uncounted_failed.is_empty() && uncounted_ok.is_empty() {
            ensure(&mut status, cond::FAILED, true, reason, message, now);
            events.push((EventType::Warning, reason.as_str(), message.clone()));
        }
    } else if success {
        let n = active.len();
        if n > 0 {
            if let Err(e) = delete_pods(ctx, &job, &pod_api, &key, &active, true).await {
                manage_error = Some(e);
            }
            active.clear();
        }
        if n == 0 && terminating == 0 && uncounted_ok.is_empty() && uncounted_failed.is_empty() {
            let message = "Reached expected number of succeeded pods";
            ensure(
                &mut status,
                cond::SUCCESS_CRITERIA_MET,
                true,
                "CompletionsReached",
                message,
                now,
            );
            ensure(
                &mut status,
                cond::COMPLETE,
                true,
                "CompletionsReached",
                message,
                now,
            );
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

/// What the Job wants running now.
struct Plan<'a> {
    indexed: bool,
    completions: Option<i32>,
    parallelism: i32,
    succeeded: i32,
    completed: &'a BTreeSet<i32>,
    /// Pods still terminating that replacements must wait for.
    terminating: usize,
}

impl Plan<'_> {
    /// Upstream's wantActive.
    fn want_active(&self, active: usize) -> usize {
        let want = match self.completions {
            None if self.succeeded > 0 => count(active),
            None => self.parallelism,
            Some(c) => (c - self.succeeded).clamp(0, self.parallelism),
        };
        usize::try_from(want).unwrap_or(0)
    }
}

/// Deletes surplus pods and creates missing ones (after the backoff
/// delay); returns when to look again.
#[allow(clippy::too_many_arguments)]
async fn manage(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    owned: &[Arc<Pod>],
    active: &mut Vec<&Arc<Pod>>,
    plan: &Plan<'_>,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    // Indexed: pods of completed indexes, and duplicates, go first.
    let mut surplus: Vec<&Arc<Pod>> = Vec::new();
    if plan.indexed {
        let mut seen = HashSet::new();
        active.retain(|p| {
            let keep = jp::completion_index(p).is_some_and(|i| {
                !plan.completed.contains(&i)
                    && plan.completions.is_some_and(|c| i < c)
                    && seen.insert(i)
            });
            if !keep {
                surplus.push(p);
            }
            keep
        });
    }
    let want = plan.want_active(active.len());
    if active.len() > want {
        let candidates: Vec<&Pod> = active.iter().map(|p| p.as_ref()).collect();
        let victims: HashSet<String> =
            pods_to_delete(&candidates, &candidates, active.len() - want)
                .into_iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
        active.retain(|p| {
            let go = victims.contains(p.metadata.uid.as_deref().unwrap_or_default());
            if go {
                surplus.push(p);
            }
            !go
        });
    }
    if !surplus.is_empty() {
        // Deletions take precedence: creations wait for the next sync.
        surplus.truncate(MAX_PER_SYNC);
        delete_pods(ctx, job, pod_api, key, &surplus, true).await?;
        return Ok(None);
    }
    let missing = want
        .saturating_sub(active.len())
        .saturating_sub(plan.terminating)
        .min(MAX_PER_SYNC);
    if missing == 0 {
        return Ok(None);
    }
    let finished: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).collect();
    let wait = backoff::remaining(
        &finished,
        ctx.settings.backoff_base,
        ctx.settings.backoff_max,
        now,
    );
    if !wait.is_zero() {
        return Ok(Some(wait));
    }
    let slots: Vec<Option<i32>> = if plan.indexed {
        let running: HashSet<i32> = active
            .iter()
            .filter_map(|p| jp::completion_index(p))
            .collect();
        (0..plan.completions.unwrap_or(0))
            .filter(|i| !plan.completed.contains(i) && !running.contains(i))
            .take(missing)
            .map(Some)
            .collect()
    } else {
        vec![None; missing]
    };
    create_pods(ctx, job, pod_api, key, &slots).await?;
    Ok(None)
}

/// Creates one pod per slot in slow-start batches (1, 2, 4, …), stopping
/// at the first error, as upstream.
async fn create_pods(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    slots: &[Option<i32>],
) -> Result<(), Error> {
    let post = &PostParams::default();
    let owner = controller_ref(job);
    let mut rest = slots;
    let mut batch = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        batch *= 2;
        let results = futures::future::join_all(now.iter().map(|index| {
            let pod = jp::pod_for(job, owner.clone(), *index);
            async move {
                match pod {
                    Some(p) => pod_api.create(post, &p).await.map(Some),
                    None => Ok(None),
                }
            }
        }))
        .await;
        let mut failed = None;
        let mut names = Vec::new();
        for r in results {
            match r {
                Ok(Some(p)) => names.push(p.name_any()),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        for name in &names {
            ctx.recorder.record(
                job,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            );
        }
        ctx.expectations.expect_creates(key, names);
        if let Some(e) = failed {
            ctx.recorder.record(
                job,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating: {e}"),
            );
            return Err(e.into());
        }
    }
    Ok(())
}

/// Deletes `victims`; with `uncounted` their tracking finalizer goes first
/// so they do not count as failures (suspension, surplus, success).
async fn delete_pods(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    victims: &[&Arc<Pod>],
    uncounted: bool,
) -> Result<(), Error> {
    ctx.expectations
        .expect_deletes(key, victims.iter().filter_map(|p| p.metadata.uid.clone()));
    let results = futures::future::join_all(victims.iter().map(|p| async move {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        if uncounted && has_tracking_finalizer(p) {
            ctx.expectations.expect_unfinalized(&uid);
            if let Err(e) = remove_finalizer(pod_api, p).await {
                ctx.expectations.unfinalize_failed(&uid);
                return (uid, p.name_any(), Err(e));
            }
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let r = pod_api.delete(&p.name_any(), &params).await.map(|_| ());
        (uid, p.name_any(), r)
    }))
    .await;
    let mut failed = None;
    for (uid, name, r) in results {
        match r {
            Ok(()) => ctx.recorder.record(
                job,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(e) => {
                ctx.expectations.delete_failed(key, &uid);
                if crate::api_code(&e) != Some(404) {
                    failed = Some(e);
                }
            }
        }
    }
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// Whether `new` says something `old` does not (empty lists and strings
/// count as absent, so a server that drops them cannot cause a write loop).
fn differs(old: Option<&JobStatus>, new: &JobStatus) -> bool {
    fn canonical(s: &JobStatus) -> serde_json::Value {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        prune(&mut v);
        v
    }
    fn prune(v: &mut serde_json::Value) {
        if let serde_json::Value::Object(map) = v {
            map.values_mut().for_each(prune);
            map.retain(|_, x| match x {
                serde_json::Value::Null => false,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Object(o) => !o.is_empty(),
                _ => true,
            });
        }
    }
    canonical(old.unwrap_or(&JobStatus::default())) != canonical(new)
}

/// Replaces the Job's status (with its resourceVersion, so a sync working
/// from a stale Job gets a conflict instead of overwriting newer counts).
async fn write_status(ctx: &Ctx, job: &Job, status: JobStatus) -> Result<Job, Error> {
    let mut next = job.clone();
    next.status = Some(status);
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let written = api
        .replace_status(&job.name_any(), &PostParams::default(), &next)
        .await?;
    ctx.written.wrote(written.clone());
    Ok(written)
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

    #[test]
    fn want_active_as_upstream() {
        let none = BTreeSet::new();
        let plan = |completions, parallelism, succeeded| Plan {
            indexed: false,
            completions,
            parallelism,
            succeeded,
            completed: &none,
            terminating: 0,
        };
        assert_eq!(plan(Some(3), 2, 0).want_active(0), 2);
        assert_eq!(plan(Some(3), 2, 2).want_active(2), 1);
        assert_eq!(plan(Some(3), 2, 5).want_active(0), 0);
        assert_eq!(plan(None, 4, 0).want_active(1), 4);
        // Without completions, once one succeeded nothing new starts.
        assert_eq!(plan(None, 4, 1).want_active(2), 2);
    }
}
