//! The NodeRestriction admission (upstream's): a kubelet may change only
//! its own Node (not its taints, not the `node-restriction.kubernetes.io/`
//! labels), its own Lease, the status of pods bound to it, mirror pods of
//! its static pods, deletions and evictions of its own pods, and tokens
//! bound to its own pods. Other users pass untouched.

use serde_json::Value;

use crate::auth::node_authorizer::node_of;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// Labels no kubelet may set or change on its Node.
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node the current request's user is a kubelet for.
pub fn requesting_node() -> Option<String> {
    let user = super::requester::current()?;
    node_of(&user.name, &user.groups).map(str::to_owned)
}

fn forbidden(message: String) -> ApiError {
    ApiError::forbidden(message)
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_default()
}

fn is_core(r: &ResourceInfo, kind: &str) -> bool {
    r.group.is_empty() && r.kind == kind
}

fn restricted_labels(obj: &Value) -> Vec<(String, Value)> {
    let mut labels: Vec<(String, Value)> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            k.split_once('/').is_some_and(|(prefix, _)| {
                format!("{prefix}/") == RESTRICTED_LABEL_PREFIX
                    || prefix.ends_with(".node-restriction.kubernetes.io")
            })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels
}

fn own_node(node: &str, name: &str, verb: &str) -> Result<(), ApiError> {
    if name == node {
        Ok(())
    } else {
        Err(forbidden(format!(
            "node \"{node}\" is not allowed to {verb} node \"{name}\""
        )))
    }
}

fn own_pod(node: &str, pod: &Value, verb: &str) -> Result<(), ApiError> {
    let bound = str_at(pod, "/spec/nodeName");
    if bound == node {
        Ok(())
    } else {
        Err(forbidden(format!(
            "node \"{node}\" can only {verb} pods with spec.nodeName set to itself"
        )))
    }
}

/// A create by a kubelet.
pub fn admit_create(r: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let Some(node) = requesting_node() else {
        return Ok(());
    };
    if is_core(r, "Node") {
        own_node(&node, str_at(obj, "/metadata/name"), "create")?;
        if let Some((label, _)) = restricted_labels(obj).first() {
            return Err(forbidden(format!(
                "node \"{node}\" is not allowed to set the following labels: {label}"
            )));
        }
    } else if is_core(r, "Pod") {
        if obj
            .pointer(&format!(
                "/metadata/annotations/{}",
                MIRROR_ANNOTATION.replace('/', "~1")
            ))
            .is_none()
        {
            return Err(forbidden(format!(
                "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            )));
        }
        own_pod(&node, obj, "create")?;
        let spec = &obj["spec"];
        if spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(forbidden(format!(
                "node \"{node}\" can not create pods that reference a service account"
            )));
        }
        for (kind, volume_field) in [
            ("secrets", "secret"),
            ("configmaps", "configMap"),
            ("persistentvolumeclaims", "persistentVolumeClaim"),
        ] {
            let refers = spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| v.get(volume_field).is_some());
            if refers {
                return Err(forbidden(format!(
                    "node \"{node}\" can not create pods that reference {kind}"
                )));
            }
        }
    } else if r.group == "coordination.k8s.io" && r.kind == "Lease" {
        let name = str_at(obj, "/metadata/name");
        if name != node {
            return Err(forbidden(
                "can only access node lease with the same name as the requesting node".into(),
            ));
        }
    }
    Ok(())
}

/// An update (main resource or status) by a kubelet.
pub fn admit_update(r: &ResourceInfo, new: &Value, old: &Value) -> Result<(), ApiError> {
    let Some(node) = requesting_node() else {
        return Ok(());
    };
    if is_core(r, "Node") {
        own_node(&node, str_at(old, "/metadata/name"), "modify")?;
        if new.pointer("/spec/taints") != old.pointer("/spec/taints") {
            return Err(forbidden(format!(
                "node \"{node}\" is not allowed to modify taints"
            )));
        }
        if restricted_labels(new) != restricted_labels(old) {
            return Err(forbidden(format!(
                "node \"{node}\" is not allowed to modify labels: {}",
                restricted_labels(new)
                    .iter()
                    .chain(restricted_labels(old).iter())
                    .map(|(k, _)| k.as_str())
                    .next()
                    .unwrap_or_default()
            )));
        }
    } else if is_core(r, "Pod") {
        own_pod(&node, old, "update")?;
    }
    Ok(())
}

/// A deletion (or eviction) by a kubelet.
pub fn admit_delete(r: &ResourceInfo, old: &Value) -> Result<(), ApiError> {
    let Some(node) = requesting_node() else {
        return Ok(());
    };
    if is_core(r, "Node") {
        own_node(&node, str_at(old, "/metadata/name"), "delete")?;
    } else if is_core(r, "Pod") {
        own_pod(&node, old, "delete")?;
    }
    Ok(())
}

/// A TokenRequest by a kubelet must be bound to a pod on its node.
pub fn admit_token(bound_pod: Option<&Value>) -> Result<(), ApiError> {
    let Some(node) = requesting_node() else {
        return Ok(());
    };
    match bound_pod {
        Some(pod) if str_at(pod, "/spec/nodeName") == node => Ok(()),
        Some(_) => Err(forbidden(
            "node requested token bound to a pod scheduled on a different node".into(),
        )),
        None => Err(forbidden(format!(
            "node \"{node}\" can only request tokens bound to pods"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_labels_are_found() {
        let node = json!({"metadata": {"labels": {
            "node-restriction.kubernetes.io/role": "db",
            "example.node-restriction.kubernetes.io/x": "y",
            "kubernetes.io/hostname": "a",
        }}});
        let found: Vec<String> = restricted_labels(&node)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            found,
            [
                "example.node-restriction.kubernetes.io/x",
                "node-restriction.kubernetes.io/role"
            ]
        );
    }
}
