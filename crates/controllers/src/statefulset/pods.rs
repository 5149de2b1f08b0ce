//! A StatefulSet pod's state as the controller's ordering decisions see it
//! (upstream's isCreated/isFailed/isRunningAndReady/isHealthy).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::replicaset::pods::{is_available, is_ready};

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Succeeded or Failed: such a pod is deleted and recreated.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Failed" | "Succeeded"))
}

/// Has a deletionTimestamp.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running with its Ready condition true.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && is_ready(pod)
}

/// Running and ready for `min_ready_seconds`, and not terminating: the
/// next ordinal (or the next update) may proceed.
pub fn is_healthy(pod: &Pod, min_ready_seconds: i64, now: Timestamp) -> bool {
    !is_terminating(pod)
        && phase(pod) == Some("Running")
        && is_available(pod, min_ready_seconds, now)
}
