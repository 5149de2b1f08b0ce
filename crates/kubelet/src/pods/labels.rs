//! The labels and annotations upstream's kubelet puts on CRI sandboxes and
//! containers: they are how a restarted kubelet (or `crictl`) finds which
//! pod and container a runtime object belongs to.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Annotation: hash of the container's spec, to restart it when it changes.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// Annotation: the pod's termination grace period, for stopping orphans.
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Label: `init` for init containers.
pub const CONTAINER_TYPE: &str = "io.skiff.container.type";

/// The identity labels of a pod's runtime objects.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let meta = &pod.metadata;
    HashMap::from([
        (POD_NAME.to_owned(), meta.name.clone().unwrap_or_default()),
        (
            POD_NAMESPACE.to_owned(),
            meta.namespace.clone().unwrap_or_default(),
        ),
        (POD_UID.to_owned(), meta.uid.clone().unwrap_or_default()),
    ])
}

/// `<namespace>_<name>_<uid>`: the pod's log directory name under
/// `/var/log/pods`, as upstream.
pub fn log_dir_name(pod: &Pod) -> String {
    format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}
