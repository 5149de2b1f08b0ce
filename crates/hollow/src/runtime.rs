//! The fake runtime: what a container runtime would report for a hollow
//! pod (init containers exited 0, app containers running since the pod
//! started), turned into a pod status by the kubelet's own
//! [`pod_status`], so phases, conditions and container statuses follow
//! the real agent's rules.

use std::collections::HashMap;

use k8s_cri::v1::ContainerState;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use skiff_kubelet::pods::instance::Instance;
use skiff_kubelet::pods::status::{View, pod_status};

use crate::node::RUNTIME_NAME;

/// The status of a pod accepted by its node whose sandbox is still being
/// created: Pending, containers waiting in `ContainerCreating`.
pub fn pending(pod: &Pod, host_ip: &str) -> PodStatus {
    status(pod, host_ip, &[], false, None)
}

/// The status of a pod whose containers all started at `started_ns`
/// (nanoseconds since the epoch) and run: Running and Ready, with `pod_ip`.
pub fn running(pod: &Pod, host_ip: &str, pod_ip: &str, started_ns: i64) -> PodStatus {
    status(
        pod,
        host_ip,
        &instances(pod, started_ns),
        true,
        Some(pod_ip),
    )
}

fn status(
    pod: &Pod,
    host_ip: &str,
    instances: &[Instance],
    sandbox_ready: bool,
    pod_ip: Option<&str>,
) -> PodStatus {
    let none = HashMap::new();
    pod_status(&View {
        pod,
        instances,
        waiting: &HashMap::new(),
        ready: &none,
        started: &none,
        sandbox_ready,
        pod_ip,
        host_ip,
        runtime_name: RUNTIME_NAME,
    })
}

/// One runtime instance per container: init containers ran and exited 0,
/// app containers are running.
fn instances(pod: &Pod, started_ns: i64) -> Vec<Instance> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let apps = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let instance = |c: &Container, init: bool| {
        let image = c.image.clone().unwrap_or_default();
        Instance {
            id: format!("{uid}-{}", c.name),
            name: c.name.clone(),
            attempt: 0,
            state: if init {
                ContainerState::ContainerExited
            } else {
                ContainerState::ContainerRunning
            },
            created_at: started_ns,
            started_at: started_ns,
            finished_at: if init { started_ns } else { 0 },
            exit_code: 0,
            reason: if init {
                "Completed".into()
            } else {
                String::new()
            },
            message: String::new(),
            image_ref: image.clone(),
            image,
            hash: String::new(),
            init,
            sandbox_id: uid.to_owned(),
        }
    };
    inits
        .iter()
        .map(|c| instance(c, true))
        .chain(apps.iter().map(|c| instance(c, false)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "nodeName": "hollow-node-0",
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}],
            },
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn condition(s: &PodStatus, kind: &str) -> Option<String> {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .map(|c| c.status.clone())
    }

    #[test]
    fn accepted_pods_are_pending_with_containers_creating() {
        let s = pending(&pod(), "127.100.0.1");
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.host_ip.as_deref(), Some("127.100.0.1"));
        assert_eq!(s.pod_ip, None);
        assert_eq!(condition(&s, "Ready").as_deref(), Some("False"));
        assert_eq!(condition(&s, "PodScheduled").as_deref(), Some("True"));
    }

    #[test]
    fn started_pods_are_running_and_ready_with_their_ip() {
        let s = running(
            &pod(),
            "127.100.0.1",
            "10.42.0.2",
            1_700_000_000_000_000_000,
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.2"));
        assert_eq!(condition(&s, "Ready").as_deref(), Some("True"));
        assert_eq!(condition(&s, "Initialized").as_deref(), Some("True"));
        let apps = s.container_statuses.unwrap_or_default();
        assert_eq!(apps.len(), 2);
        assert!(
            apps.iter()
                .all(|c| c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        );
        assert_eq!(apps[0].container_id.as_deref(), Some("hollow://u1-app"));
        let inits = s.init_container_statuses.unwrap_or_default();
        assert_eq!(inits.len(), 1);
        assert!(
            inits[0]
                .state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
        );
    }
}
