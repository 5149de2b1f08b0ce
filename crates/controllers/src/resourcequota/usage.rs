//! What a namespace uses of each quota resource (upstream's quota
//! evaluators): object counts (`pods`, `services`, `count/<resource>`,
//! ...), and the requests and limits of its non-terminal pods (summed over
//! containers, at least the largest init container, plus overhead).

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_apimachinery::quantity::parse_milli;

/// Pods that still hold resources (not Succeeded or Failed).
pub fn counts_against_quota(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn container_value(c: &Container, kind: &str, resource: &str) -> i128 {
    let Some(r) = c.resources.as_ref() else {
        return 0;
    };
    let map = if kind == "limits" {
        &r.limits
    } else {
        &r.requests
    };
    // Requests default to limits when only limits are given.
    let value = map.as_ref().and_then(|m| m.get(resource)).or_else(|| {
        (kind == "requests")
            .then(|| r.limits.as_ref().and_then(|m| m.get(resource)))
            .flatten()
    });
    value.and_then(|q| parse_milli(&q.0)).unwrap_or(0)
}

/// A pod's `requests`/`limits` of `resource` (cpu, memory, ...) in
/// milli-units.
pub fn pod_value(pod: &Pod, kind: &str, resource: &str) -> i128 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let containers: i128 = spec
        .containers
        .iter()
        .map(|c| container_value(c, kind, resource))
        .sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_value(c, kind, resource))
        .max()
        .unwrap_or(0);
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| parse_milli(&q.0))
        .unwrap_or(0);
    containers.max(init) + overhead
}

/// The quota resource name a compute resource is charged under:
/// `requests.cpu` and plain `cpu` → ("requests", "cpu").
pub fn compute(name: &str) -> Option<(&'static str, &str)> {
    if let Some(r) = name.strip_prefix("requests.") {
        return Some(("requests", r));
    }
    if let Some(r) = name.strip_prefix("limits.") {
        return Some(("limits", r));
    }
    matches!(name, "cpu" | "memory" | "ephemeral-storage").then_some(("requests", name))
}

/// A milli-unit amount written as upstream would show it: whole numbers
/// plainly, fractions of a core in `m`, byte amounts in the largest exact
/// binary unit.
pub fn format(milli: i128, resource: &str) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let value = milli / 1000;
    let bytes = resource.contains("memory") || resource.contains("storage");
    if bytes && value != 0 {
        for (suffix, size) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            let unit = 1i128 << size;
            if value % unit == 0 {
                return format!("{}{suffix}", value / unit);
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_charge_requests_limits_and_overhead() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                "overhead": {"memory": "10Mi"},
            },
        }))
        .unwrap_or_default();
        assert_eq!(pod_value(&pod, "requests", "cpu"), 2000);
        assert_eq!(
            pod_value(&pod, "requests", "memory"),
            (202i128 << 20) * 1000
        );
        assert_eq!(pod_value(&pod, "limits", "cpu"), 500);
        assert_eq!(format(750, "cpu"), "750m");
        assert_eq!(format(2000, "requests.cpu"), "2");
        assert_eq!(format(1000 * (256 << 20), "requests.memory"), "256Mi");
        assert_eq!(format(0, "memory"), "0");
        assert_eq!(compute("requests.cpu"), Some(("requests", "cpu")));
        assert_eq!(compute("memory"), Some(("requests", "memory")));
        assert_eq!(compute("pods"), None);
    }
}
