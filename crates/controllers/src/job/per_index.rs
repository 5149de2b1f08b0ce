//! `spec.backoffLimitPerIndex` of Indexed Jobs: each index retries on its
//! own, counting its failures in the annotation
//! `batch.kubernetes.io/job-index-failure-count` of each new pod; an index
//! that fails more than the limit (or whose pod hits a `FailIndex` rule)
//! goes to `status.failedIndexes` and is not retried.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::failure_policy::{self, Verdict};
use super::pods::{self as jp};

/// Failures of the index before this pod (ones that count).
pub const FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// Failures of the index before this pod that a policy ignored.
pub const IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

fn annotation(pod: &Pod, key: &str) -> i32 {
    pod.annotations()
        .get(key)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0)
}

/// Whether the pod's failure counts (not ignored by the failure policy).
fn counts(job: &Job, pod: &Pod) -> bool {
    match job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    {
        Some(policy) if jp::phase(pod) == Some("Failed") => {
            failure_policy::evaluate(policy, pod) != Verdict::Ignore
        }
        _ => true,
    }
}

/// Whether the failed `pod` fails its index (upstream's isIndexFailed): a
/// `FailIndex` rule, or a counted failure beyond `backoffLimitPerIndex`.
pub fn fails_index(job: &Job, pod: &Pod) -> bool {
    let Some(limit) = job.spec.as_ref().and_then(|s| s.backoff_limit_per_index) else {
        return false;
    };
    if let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
        && jp::phase(pod) == Some("Failed")
    {
        match failure_policy::evaluate(policy, pod) {
            Verdict::FailIndex => return true,
            Verdict::Ignore => return false,
            _ => {}
        }
    }
    annotation(pod, FAILURE_COUNT) >= limit
}

/// The annotations a replacement for `failed` carries: its counts plus
/// its own failure.
pub fn next_counts(job: &Job, failed: &Pod) -> (i32, i32) {
    let (mut counted, mut ignored) = (
        annotation(failed, FAILURE_COUNT),
        annotation(failed, IGNORED_FAILURE_COUNT),
    );
    if counts(job, failed) {
        counted += 1;
    } else {
        ignored += 1;
    }
    (counted, ignored)
}

/// The last failed pod of each index (most failures, then latest).
pub fn last_failed(pods: &[Arc<Pod>], only_replace_failed: bool) -> HashMap<i32, Arc<Pod>> {
    let mut last: HashMap<i32, Arc<Pod>> = HashMap::new();
    let total = |p: &Pod| annotation(p, FAILURE_COUNT) + annotation(p, IGNORED_FAILURE_COUNT);
    for pod in pods
        .iter()
        .filter(|p| jp::is_failed(p, only_replace_failed))
    {
        let Some(i) = jp::completion_index(pod) else {
            continue;
        };
        let newer = last.get(&i).is_none_or(|prev| {
            (total(pod), jp::finish_time(pod)) >= (total(prev), jp::finish_time(prev))
        });
        if newer {
            last.insert(i, pod.clone());
        }
    }
    last
}

/// How long index's replacement waits: `base · 2^failures` after the last
/// failure, capped at `max` (upstream's getRemainingTimePerIndex).
pub fn remaining(last: &Pod, base: Duration, max: Duration, now: Timestamp) -> Duration {
    let failures = annotation(last, FAILURE_COUNT) + annotation(last, IGNORED_FAILURE_COUNT);
    let exponent = u32::try_from(failures).unwrap_or(0).min(30);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let elapsed_ms = now.as_millisecond() - jp::finish_time(last).as_millisecond();
    delay.saturating_sub(Duration::from_millis(
        u64::try_from(elapsed_ms).unwrap_or(0),
    ))
}

/// Upstream's failure of a Job with failed indexes: more than
/// `maxFailedIndexes`, or every index finished and some failed.
pub fn job_failure(
    job: &Job,
    failed: &BTreeSet<i32>,
    completed: &BTreeSet<i32>,
) -> Option<(String, String)> {
    let spec = job.spec.as_ref()?;
    spec.backoff_limit_per_index?;
    let completions = usize::try_from(spec.completions?).unwrap_or(0);
    if spec
        .max_failed_indexes
        .is_some_and(|m| failed.len() > usize::try_from(m).unwrap_or(0))
    {
        return Some((
            "MaxFailedIndexesExceeded".into(),
            "Job has exceeded the specified maximal number of failed indexes".into(),
        ));
    }
    (!failed.is_empty() && failed.len() + completed.len() >= completions)
        .then(|| ("FailedIndexes".into(), "Job has failed indexes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(policy: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"completions": 4, "completionMode": "Indexed", "backoffLimitPerIndex": 1,
                "maxFailedIndexes": 1, "podFailurePolicy": policy, "template": {}},
        }))
        .unwrap()
    }

    fn failed(failures: &str, code: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {
                "batch.kubernetes.io/job-completion-index": "2", FAILURE_COUNT: failures}},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn index_failures_against_the_limit() {
        let j = job(json!({"rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [9]}},
        ]}));
        assert!(!fails_index(&j, &failed("0", 1)));
        assert!(fails_index(&j, &failed("1", 1)));
        assert!(fails_index(&j, &failed("0", 7)), "FailIndex");
        assert!(!fails_index(&j, &failed("5", 9)), "ignored");
        assert_eq!(next_counts(&j, &failed("1", 1)), (2, 0));
        assert_eq!(next_counts(&j, &failed("1", 9)), (1, 1));
    }

    #[test]
    fn job_fails_on_too_many_or_all_finished() {
        let j = job(serde_json::Value::Null);
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(job_failure(&j, &set(&[1]), &set(&[0])), None);
        assert_eq!(
            job_failure(&j, &set(&[1, 3]), &set(&[])).map(|f| f.0),
            Some("MaxFailedIndexesExceeded".to_owned())
        );
        assert_eq!(
            job_failure(&j, &set(&[1]), &set(&[0, 2, 3])).map(|f| f.0),
            Some("FailedIndexes".to_owned())
        );
    }
}
