//! Kind-specific behaviour, the way upstream's registry strategies add it to
//! the generic code paths: what a create resets, what an update keeps, which
//! kinds have a status or a generation, how a Pod is deleted.

use serde_json::{Value, json};

use crate::object::meta_mut;
use crate::resources::ResourceInfo;

/// Kinds whose spec changes bump `metadata.generation`.
pub fn tracks_generation(r: &ResourceInfo, obj: &Value) -> bool {
    r.custom.is_some()
        || obj.get("spec").is_some() && !matches!(r.kind.as_ref(), "Namespace" | "Node" | "Service")
        || matches!(
            r.kind.as_ref(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        )
}

/// Whether `status` belongs to the status subresource (and is ignored on
/// the main resource).
pub fn has_status(r: &ResourceInfo) -> bool {
    r.has_subresource("status")
}

/// A Pod's QoS class from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// What a create resets before storing (upstream's PrepareForCreate).
pub fn prepare_for_create(r: &ResourceInfo, obj: &mut Value) {
    if tracks_generation(r, obj) {
        meta_mut(obj).insert("generation".into(), json!(1));
    }
    match (r.group.as_ref(), r.kind.as_ref()) {
        ("", "Pod") => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            // A gated pod says why it is not scheduled (upstream's
            // applySchedulingGatedCondition).
            let gated = obj
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty());
            if gated {
                obj["status"]["conditions"] = json!([{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                    "lastProbeTime": null,
                    "lastTransitionTime": crate::object::now_rfc3339(),
                }]);
            }
        }
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        // Nodes report their own status when they register.
        ("", "Node" | "PersistentVolume") => {}
        _ if has_status(r) => {
            if let Value::Object(map) = obj {
                map.remove("status");
            }
        }
        _ => {}
    }
}

/// Whether `obj` is a Namespace whose `spec.finalizers` still hold its
/// deletion (upstream's ShouldDeleteNamespaceDuringUpdate).
pub fn namespace_finalizers_pending(r: &ResourceInfo, obj: &Value) -> bool {
    r.kind == "Namespace"
        && r.group.is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// What an update of the main resource keeps from the stored object.
pub fn prepare_for_update(r: &ResourceInfo, new: &mut Value, old: &Value) {
    if has_status(r) && !matches!(r.kind.as_ref(), "Node") {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Value::Object(map) = new {
                    map.remove("status");
                }
            }
        }
    }
    if r.kind == "Namespace"
        && let Some(spec) = old.get("spec")
    {
        new["spec"] = spec.clone();
    }
    if r.kind == "Namespace" && r.group.is_empty() && crate::object::is_deleting(new) {
        // Deletion marks a namespace Terminating (upstream's namespace REST Delete).
        new["status"]["phase"] = json!("Terminating");
    }
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if generation > 0 || tracks_generation(r, new) {
        let bumped = if generation_changes(r, new, old) {
            generation + 1
        } else {
            generation.max(1)
        };
        meta_mut(new).insert("generation".into(), json!(bumped));
    }
}

/// Whether an update changes what `generation` counts: the spec, or for a
/// custom resource everything but metadata (and status when it has its
/// own subresource), as upstream.
fn generation_changes(r: &ResourceInfo, new: &Value, old: &Value) -> bool {
    if r.custom.is_none() {
        return new.get("spec") != old.get("spec");
    }
    let ignored = |key: &str| key == "metadata" || (key == "status" && has_status(r));
    let fields = |obj: &Value| -> Vec<(String, Value)> {
        obj.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !ignored(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (mut a, mut b) = (fields(new), fields(old));
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    // apiVersion differs between served versions of the same object.
    a.retain(|(k, _)| k != "apiVersion");
    b.retain(|(k, _)| k != "apiVersion");
    a != b
}

/// A status update: everything but `status` stays as stored.
pub fn prepare_for_status_update(new: &mut Value, old: &Value) {
    let status = new.get("status").cloned();
    *new = old.clone();
    match status {
        Some(status) => new["status"] = status,
        None => {
            if let Value::Object(map) = new {
                map.remove("status");
            }
        }
    }
}

/// The metadata a client may not change on update. A deletion mark (set
/// by delete itself) may set `deletionTimestamp` and
/// `deletionGracePeriodSeconds`; every other update keeps them as stored.
pub fn keep_system_metadata(new: &mut Value, old: &Value, marking: bool) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = meta_mut(new);
    let deletion: &[&str] = if marking {
        &[]
    } else {
        &["deletionTimestamp", "deletionGracePeriodSeconds"]
    };
    for field in ["uid", "creationTimestamp", "selfLink"]
        .iter()
        .chain(deletion)
    {
        match old_meta.get(*field) {
            Some(v) => {
                meta.insert((*field).into(), v.clone());
            }
            None => {
                meta.remove(*field);
            }
        }
    }
}

/// How long a deleted Pod may take to stop: `None` means remove at once
/// (not scheduled, or a grace period of 0).
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> Option<i64> {
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if !scheduled || matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let default = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    match requested.unwrap_or(default) {
        g if g <= 0 => None,
        g => Some(g),
    }
}
