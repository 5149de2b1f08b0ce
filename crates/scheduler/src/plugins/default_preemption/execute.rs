//! Carrying out a preemption against the API (upstream's
//! `prepareCandidateAsync` and `PreemptPod`). The runtime calls
//! [`carry_out`] in the background after the scheduling cycle, so the
//! next pod is scheduled while the API server answers; the cycle already
//! nominated the pod in the scheduler's cache, so the room being made is
//! kept for it meanwhile.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::DEFAULT_SCHEDULER_NAME;
use crate::framework::PostFilterResult;
use crate::framework::node_info::pod_priority;

/// The pod condition that tells a victim (and its controller) why it is
/// going away.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
pub const PREEMPTION_BY_SCHEDULER: &str = "PreemptionByScheduler";

/// Nominates `preemptor` to the chosen node, clears the nomination of
/// lower-priority pods nominated there (they may no longer fit, and
/// clearing it lets them look elsewhere), then evicts every victim not
/// already being deleted. The nomination comes first so that it is
/// recorded before the room appears (upstream's asynchronous preemption
/// writes it concurrently with the evictions).
pub async fn carry_out(
    client: kube::Client,
    preemptor: &Pod,
    result: &PostFilterResult,
) -> Result<(), kube::Error> {
    let Some(node) = result.nominated_node.as_deref() else {
        return Ok(());
    };
    match set_nominated_node_name(&client, preemptor, Some(node)).await {
        // The preemptor is gone: nothing to make room for.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        r => r?,
    }
    clear_lower_priority_nominations(&client, preemptor, node).await;
    let evictions = result
        .victims
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none())
        .map(|v| preempt_pod(&client, preemptor, v, node));
    let mut first_error = None;
    for r in futures::future::join_all(evictions).await {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The scheduler the preemptor asked for, named in messages and Events.
fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
}

/// `status.nominatedNodeName` (null clears it), unless already so.
async fn set_nominated_node_name(
    client: &kube::Client,
    pod: &Pod,
    node: Option<&str>,
) -> Result<(), kube::Error> {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    if current == node {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"nominatedNodeName": node}})),
    )
    .await?;
    Ok(())
}

/// Upstream's `getLowerPriorityNominatedPods` + `clearNominatedNodeName`,
/// read from the API (the field selector) rather than the scheduler's
/// cache, which this background task does not hold. Failures are only
/// logged: a stale nomination is corrected by the next attempt.
async fn clear_lower_priority_nominations(client: &kube::Client, preemptor: &Pod, node: &str) {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("status.nominatedNodeName={node}"));
    let pods = match api.list(&params).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(node, error = %e, "listing pods nominated to the node failed");
            return;
        }
    };
    let priority = pod_priority(preemptor);
    for p in pods
        .iter()
        .filter(|p| p.uid() != preemptor.uid() && pod_priority(p) < priority)
    {
        if let Err(e) = set_nominated_node_name(client, p, None).await {
            tracing::warn!(pod = %p.name_any(), error = %e, "clearing nominatedNodeName failed");
        }
    }
}

/// Upstream's `PreemptPod`: the `DisruptionTarget` condition, the
/// deletion (only of this very pod: a uid precondition), a `Preempted`
/// Event. A victim already gone is not an error.
async fn preempt_pod(
    client: &kube::Client,
    preemptor: &Pod,
    victim: &Pod,
    node: &str,
) -> Result<(), kube::Error> {
    let name = victim.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &victim.namespace().unwrap_or_default());
    let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
    let scheduler = scheduler_name(preemptor);
    if let Some(patch) = disruption_condition(victim, scheduler) {
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: victim.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        // 409: the uid precondition failed, the victim is gone and a
        // namesake took its place.
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    tracing::info!(preemptor = %preemptor.name_any(), victim = %name, node, "preempted");
    let message = format!(
        "Preempted by pod {} on node {node}",
        preemptor.uid().unwrap_or_default()
    );
    record_preempted(client, scheduler, victim, preemptor, message).await;
    Ok(())
}

/// The strategic patch adding `DisruptionTarget=True`, or `None` when
/// the victim has it already (upstream's `UpdatePodCondition`).
fn disruption_condition(victim: &Pod, scheduler: &str) -> Option<serde_json::Value> {
    let message = format!("{scheduler}: preempting to accommodate a higher priority pod");
    let current = victim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == DISRUPTION_TARGET));
    if current.is_some_and(|c| {
        c.status == "True"
            && c.reason.as_deref() == Some(PREEMPTION_BY_SCHEDULER)
            && c.message.as_deref() == Some(message.as_str())
    }) {
        return None;
    }
    let transition = current
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or_else(now, |t| json!(t));
    Some(json!({"status": {"conditions": [{
        "type": DISRUPTION_TARGET,
        "status": "True",
        "reason": PREEMPTION_BY_SCHEDULER,
        "message": message,
        "lastTransitionTime": transition,
    }]}}))
}

/// The `Preempted` Event on the victim, naming the preemptor as the
/// related object (upstream's `Eventf(victim, preemptor, ...)`).
async fn record_preempted(
    client: &kube::Client,
    scheduler: &str,
    victim: &Pod,
    preemptor: &Pod,
    message: String,
) {
    let ns = victim.namespace().unwrap_or_default();
    let name = victim.name_any();
    let reference = |p: &Pod| {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": p.name_any(),
            "namespace": p.namespace(),
            "uid": p.metadata.uid,
            "resourceVersion": p.metadata.resource_version,
        })
    };
    let value = json!({
        "metadata": {
            "name": format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            "namespace": ns,
        },
        "involvedObject": reference(victim),
        "related": reference(preemptor),
        "reason": "Preempted",
        "message": message,
        "type": "Normal",
        "action": "Preempting",
        "source": {"component": scheduler},
        "reportingComponent": scheduler,
        "reportingInstance": scheduler,
        "firstTimestamp": now(),
        "lastTimestamp": now(),
        "count": 1,
    });
    let event: Event = match serde_json::from_value(value) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "building the Preempted event");
            return;
        }
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "recording the Preempted event failed");
    }
}

fn now() -> serde_json::Value {
    json!(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    )
}
