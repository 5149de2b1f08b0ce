//! A PodDisruptionBudget's numbers (upstream's disruption controller): how
//! many pods should be healthy, how many are, and so how many may be
//! disrupted now.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long a pod the eviction API let go counts as disrupted (upstream's
/// DeletionTimeout): if it is not deleted by then, it counts again.
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// Whether the budget needs the pods' controllers' sizes (percentages and
/// maxUnavailable are relative to the size the controllers want).
pub fn needs_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

fn percent(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let prod = pct * i64::from(total);
            let v = if round_up {
                (prod + 99) / 100
            } else {
                prod / 100
            };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

/// (expectedPods, desiredHealthy) for `pods` selected pods whose
/// controllers want `scale` pods in all.
pub fn expected_and_desired(spec: &PodDisruptionBudgetSpec, pods: i32, scale: i32) -> (i32, i32) {
    if let Some(max) = &spec.max_unavailable {
        let unavailable = percent(max, scale, true);
        return (scale, (scale - unavailable).max(0));
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => (pods, *min),
        Some(pct @ IntOrString::String(_)) => (scale, percent(pct, scale, true)),
        None => (pods, 0),
    }
}

/// Ready pods not being deleted and not recently let go by the eviction
/// API (those are on their way out).
pub fn healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Timestamp>, now: Timestamp) -> i32 {
    let count = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted
                .get(name)
                .is_none_or(|at| *at + DELETION_TIMEOUT <= now)
        })
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudgetSpec {
        PodDisruptionBudgetSpec {
            min_available: min,
            max_unavailable: max,
            ..PodDisruptionBudgetSpec::default()
        }
    }

    #[test]
    fn desired_as_upstream() {
        assert_eq!(
            expected_and_desired(&spec(Some(IntOrString::Int(2)), None), 3, 5),
            (3, 2)
        );
        let pct = IntOrString::String("50%".into());
        assert_eq!(
            expected_and_desired(&spec(Some(pct.clone()), None), 3, 5),
            (5, 3)
        );
        assert_eq!(
            expected_and_desired(&spec(None, Some(IntOrString::Int(1))), 3, 4),
            (4, 3)
        );
        assert_eq!(expected_and_desired(&spec(None, Some(pct)), 3, 5), (5, 2));
        assert!(!needs_scale(&spec(Some(IntOrString::Int(2)), None)));
    }
}
