//! Pod QoS class and the cgroup settings that follow from requests and
//! limits, with upstream's formulas (cpu shares, CFS quota, OOM score).

use k8s_cri::v1::LinuxContainerResources;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_apimachinery::quantity::parse_milli;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

fn quantity(container: &Container, kind: &str, name: &str) -> Option<i128> {
    let resources = container.resources.as_ref()?;
    let map = if kind == "limits" {
        resources.limits.as_ref()?
    } else {
        resources.requests.as_ref()?
    };
    parse_milli(&map.get(name)?.0)
}

/// Requests default to limits when only limits are given (apiserver
/// defaulting does the same; the kubelet must not depend on it).
fn request(container: &Container, name: &str) -> Option<i128> {
    quantity(container, "requests", name).or_else(|| quantity(container, "limits", name))
}

/// Upstream's `GetPodQOS`.
pub fn pod_qos(pod: &Pod) -> QosClass {
    let Some(spec) = &pod.spec else {
        return QosClass::BestEffort;
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        for name in ["cpu", "memory"] {
            let req = request(c, name).filter(|v| *v != 0);
            let lim = quantity(c, "limits", name).filter(|v| *v != 0);
            if req.is_some() || lim.is_some() {
                any = true;
            }
            if lim.is_none() || req != lim {
                guaranteed = false;
            }
        }
    }
    if !any {
        QosClass::BestEffort
    } else if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

const CPU_PERIOD: i64 = 100_000;
const MIN_SHARES: i64 = 2;
const MIN_QUOTA: i64 = 1_000;

/// The CRI resources of one container; `node_memory` (bytes) scales the
/// OOM score of burstable containers.
pub fn linux_resources(
    pod: &Pod,
    container: &Container,
    node_memory: u64,
) -> LinuxContainerResources {
    let cpu_request = request(container, "cpu").unwrap_or(0) as i64;
    let cpu_limit = quantity(container, "limits", "cpu").map(|v| v as i64);
    let memory_limit = quantity(container, "limits", "memory").map(|v| (v / 1000) as i64);
    let memory_request = request(container, "memory").map_or(0, |v| (v / 1000) as i64);
    let cpu_shares = if cpu_request == 0 {
        MIN_SHARES
    } else {
        (cpu_request * 1024 / 1000).max(MIN_SHARES)
    };
    let cpu_quota = cpu_limit.map_or(0, |milli| (milli * CPU_PERIOD / 1000).max(MIN_QUOTA));
    let oom_score_adj = match pod_qos(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let capacity = node_memory.max(1) as i64;
            (1000 - 1000 * memory_request / capacity).clamp(2, 999)
        }
    };
    LinuxContainerResources {
        cpu_period: if cpu_quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory_limit.unwrap_or(0),
        oom_score_adj,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"spec": {"containers": containers}}))
            .unwrap_or_default()
    }

    #[test]
    fn qos_classes_follow_upstream() {
        assert_eq!(
            pod_qos(&pod(serde_json::json!([{"name": "a"}]))),
            QosClass::BestEffort
        );
        let g = pod(serde_json::json!([{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(pod_qos(&g), QosClass::Guaranteed);
        let b = pod(serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "100m"}}}]));
        assert_eq!(pod_qos(&b), QosClass::Burstable);
    }

    #[test]
    fn cgroup_settings_use_upstream_formulas() {
        let p = pod(serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}}]));
        let spec = p.spec.clone().unwrap_or_default();
        let r = linux_resources(&p, &spec.containers[0], 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - 1000 * (64 << 20) / (1 << 30));
    }
}
