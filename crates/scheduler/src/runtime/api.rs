//! The scheduler's writes: the binding, `PodScheduled=False`, Events.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// `POST pods/<name>/binding` (upstream's DefaultBinder).
pub async fn bind(client: kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let _: serde_json::Value = api
        .create_subresource("binding", &name, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// `PodScheduled=False`, reason `Unschedulable`, unless already so.
pub async fn mark_unschedulable(
    client: kube::Client,
    pod: &Pod,
    message: &str,
) -> Result<(), kube::Error> {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    }) {
        return Ok(());
    }
    let transition = match current {
        Some(c) if c.status == "False" => c
            .last_transition_time
            .as_ref()
            .map_or_else(now, |t| json!(t)),
        _ => now(),
    };
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    }]}});
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await?;
    Ok(())
}

/// Records a core/v1 Event about `pod`.
pub async fn event(
    client: kube::Client,
    component: &str,
    pod: &Pod,
    type_: &str,
    reason: &str,
    action: &str,
    message: String,
) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let value = json!({
        "metadata": {
            "name": format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            "namespace": ns,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": name,
            "namespace": ns,
            "uid": pod.metadata.uid,
            "resourceVersion": pod.metadata.resource_version,
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "action": action,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": now(),
        "lastTimestamp": now(),
        "count": 1,
    });
    let api: Api<Event> = Api::namespaced(client, &ns);
    let event: Event = match serde_json::from_value(value) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "building an event");
            return;
        }
    };
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "recording an event failed");
    }
}

fn now() -> serde_json::Value {
    json!(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    )
}
