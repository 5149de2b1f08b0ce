//! What the endpoint controllers read from pods and services, as
//! upstream's helpers: selector matching, readiness, terminal phases,
//! `ShouldPodBeInEndpoints`, `FindPort` and the hostname rule.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The service's selector, if it selects pods (`None` or empty: the
/// service's endpoints are managed by someone else).
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether the controllers leave `service` alone: no selector, or type
/// ExternalName.
pub fn unmanaged(service: &Service) -> bool {
    selector(service).is_none()
        || service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

/// Whether `pod` is in `namespace` and carries every label of `selector`.
pub fn selected(pod: &Pod, namespace: &str, selector: &BTreeMap<String, String>) -> bool {
    pod.metadata.namespace.as_deref() == Some(namespace)
        && selector.iter().all(|(k, v)| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(k))
                .is_some_and(|x| x == v)
        })
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub fn ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .iter()
        .filter(|ip| !ip.is_empty())
        .cloned()
        .collect()
}

/// Upstream's ShouldPodBeInEndpoints: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !is_terminal(pod)
        && !ips(pod).is_empty()
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// Whether an address is of the family `IPv4` or `IPv6`.
pub fn of_family(ip: &str, family: &str) -> bool {
    ip.contains(':') == (family == "IPv6")
}

/// Upstream's FindPort: a numeric targetPort as is, a named one looked up
/// (name and protocol) in the containers, then the sidecar init
/// containers; `None` when the pod has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Upstream's ShouldSetHostname: the pod names a hostname and the service
/// as its subdomain.
pub fn hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn find_port_as_upstream() {
        let p = pod(json!({"spec": {
            "containers": [{"name": "a", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            ]}],
            "initContainers": [{"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]}],
        }}));
        let find = |v| find_port(&p, &port(v));
        assert_eq!(find(json!({"port": 80, "targetPort": "http"})), Some(8080));
        assert_eq!(find(json!({"port": 80, "targetPort": 81})), Some(81));
        assert_eq!(find(json!({"port": 80})), Some(80));
        assert_eq!(
            find(json!({"port": 80, "targetPort": "metrics"})),
            Some(9090)
        );
        assert_eq!(find(json!({"port": 53, "targetPort": "dns"})), None);
        assert_eq!(
            find(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"})),
            Some(53)
        );
        assert_eq!(find(json!({"port": 80, "targetPort": "nope"})), None);
    }

    #[test]
    fn pods_in_endpoints() {
        let running = pod(json!({"status": {"phase": "Running", "podIP": "10.0.0.1"}}));
        assert!(should_be_in_endpoints(&running, false));
        let no_ip = pod(json!({"status": {"phase": "Pending"}}));
        assert!(!should_be_in_endpoints(&no_ip, true));
        let done = pod(json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.1"}}));
        assert!(!should_be_in_endpoints(&done, true));
        let deleting = pod(json!({
            "metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }));
        assert!(should_be_in_endpoints(&deleting, true));
        assert!(!should_be_in_endpoints(&deleting, false));
        assert!(of_family("10.0.0.1", "IPv4") && of_family("fd00::1", "IPv6"));
        assert!(!of_family("fd00::1", "IPv4"));
    }
}
