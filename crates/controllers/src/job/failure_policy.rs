//! `spec.podFailurePolicy`: the first rule matching a failed pod (by a
//! container's non-zero exit code or by a pod condition) decides whether
//! the failure fails the Job, is ignored, or counts toward the backoff
//! limit (upstream's matchPodFailurePolicy).

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

/// What a matching rule does with a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `FailJob`: the Job fails with this message.
    FailJob(String),
    /// `FailIndex`: the pod's index fails (with `backoffLimitPerIndex`).
    FailIndex,
    /// `Ignore`: the failure does not count.
    Ignore,
    /// `Count` or no rule matched: counts toward `backoffLimit`.
    Count,
}

/// Applies `policy` to the failed `pod`.
pub fn evaluate(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let status = pod.status.as_ref();
    let containers: Vec<&ContainerStatus> = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
        .collect();
    let who = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    for (i, rule) in policy.rules.iter().enumerate() {
        let message = if let Some(req) = &rule.on_exit_codes {
            matching_container(&containers, req).map(|(name, code)| {
                format!(
                    "Container {name} for pod {who} failed with exit code {code} matching {} rule at index {i}",
                    rule.action
                )
            })
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|pattern| {
                let has = status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == pattern.type_ && c.status == pattern.status);
                has.then(|| {
                    format!(
                        "Pod {who} has condition {} matching {} rule at index {i}",
                        pattern.type_, rule.action
                    )
                })
            })
        };
        let Some(message) = message else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(message),
            "FailIndex" => Verdict::FailIndex,
            "Ignore" => Verdict::Ignore,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// The first terminated container (optionally the named one) whose
/// non-zero exit code satisfies `req`.
fn matching_container(
    containers: &[&ContainerStatus],
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    containers.iter().find_map(|c| {
        let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
        if code == 0 || req.container_name.as_ref().is_some_and(|n| *n != c.name) {
            return None;
        }
        let listed = req.values.contains(&code);
        let ok = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        ok.then(|| (c.name.clone(), code))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]}))
        .unwrap()
    }

    fn failed(name: &str, code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": code}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = policy();
        assert_eq!(
            evaluate(&p, &failed("main", 42, json!([]))),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        assert_eq!(evaluate(&p, &failed("side", 42, json!([]))), Verdict::Count);
        assert_eq!(
            evaluate(
                &p,
                &failed(
                    "main",
                    42,
                    json!([{"type": "DisruptionTarget", "status": "True"}])
                )
            ),
            Verdict::Ignore
        );
        assert_eq!(evaluate(&p, &failed("main", 1, json!([]))), Verdict::Count);
    }
}
