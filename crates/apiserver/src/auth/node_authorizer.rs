//! The Node authorizer (upstream's, in short): a kubelet — user
//! `system:node:<name>` in group `system:nodes` — may do what upstream's
//! `system:node` role allows, but it may read a Secret, ConfigMap,
//! PersistentVolumeClaim or PersistentVolume, and ask for a service account
//! token, only when a pod bound to its node uses it, and touch only its
//! own Lease. What one node's credential can reach is thereby limited to
//! its own pods' needs. Writes to Nodes and pods are narrowed further by
//! the NodeRestriction admission.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use skiff_rbac::{Attributes, Decision, Policy, RbacKind};

use crate::registry::Registry;

/// The group of every kubelet credential.
pub const NODES_GROUP: &str = "system:nodes";
const NODE_USER_PREFIX: &str = "system:node:";
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is a kubelet for, if it is one.
pub fn node_of<'a>(name: &'a str, groups: &[String]) -> Option<&'a str> {
    let node = name.strip_prefix(NODE_USER_PREFIX)?;
    (!node.is_empty() && groups.iter().any(|g| g == NODES_GROUP)).then_some(node)
}

/// What the authorizer says of a node's request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused by the graph, whatever RBAC says (as upstream: a kubelet
    /// never gets another node's secrets through a stray binding).
    Deny(String),
    /// Not a node, or not a request the node rules cover: RBAC decides.
    NoOpinion,
}

/// Upstream's `system:node` rules, granted to every node.
fn node_rules() -> &'static Policy {
    static RULES: OnceLock<Policy> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut policy = Policy::default();
        for role in skiff_rbac::bootstrap_cluster_roles() {
            if role.pointer("/metadata/name").and_then(Value::as_str) == Some("system:node") {
                let _ = policy.upsert(RbacKind::ClusterRole, &role);
            }
        }
        let binding = serde_json::json!({
            "metadata": {"name": "skiff:node-authorizer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": NODES_GROUP}],
        });
        let _ = policy.upsert(RbacKind::ClusterRoleBinding, &binding);
        policy
    })
}

/// The pods bound to `node` in `namespace`.
fn pods_on(registry: &Registry, node: &str, namespace: &str) -> Vec<Arc<Value>> {
    let Some(r) = registry.resources.find("", "v1", "pods") else {
        return Vec::new();
    };
    let Some(cache) = registry.cache.resource(&r) else {
        return Vec::new();
    };
    let (items, _) = registry
        .cache
        .consistent_snapshot(&cache, &format!("{}{namespace}/", r.key_prefix()));
    items
        .into_iter()
        .map(|(_, pod)| pod)
        .filter(|pod| pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .collect()
}

fn names_at<'a>(v: &'a Value, path: &str) -> impl Iterator<Item = &'a str> {
    v.pointer(path).and_then(Value::as_str).into_iter()
}

/// Every object of `kind` ("Secret", "ConfigMap", "PersistentVolumeClaim",
/// "ServiceAccount") a pod refers to by name.
pub fn references<'a>(pod: &'a Value, kind: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let spec = &pod["spec"];
    fn list(v: &Value) -> std::slice::Iter<'_, Value> {
        v.as_array().map(|a| a.iter()).unwrap_or_default()
    }
    if kind == "ServiceAccount" {
        out.push(
            spec.get("serviceAccountName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default"),
        );
        return out;
    }
    let (volume_field, name_field, env_ref, env_from) = match kind {
        "Secret" => ("secret", "secretName", "secretKeyRef", "secretRef"),
        "ConfigMap" => ("configMap", "name", "configMapKeyRef", "configMapRef"),
        "PersistentVolumeClaim" => ("persistentVolumeClaim", "claimName", "", ""),
        _ => return out,
    };
    for volume in list(&spec["volumes"]) {
        out.extend(names_at(volume, &format!("/{volume_field}/{name_field}")));
        for source in list(&volume["projected"]["sources"]) {
            out.extend(names_at(source, &format!("/{volume_field}/name")));
        }
        if kind == "Secret" {
            for path in [
                "/csi/nodePublishSecretRef/name",
                "/cephfs/secretRef/name",
                "/rbd/secretRef/name",
                "/iscsi/secretRef/name",
                "/flexVolume/secretRef/name",
                "/azureFile/secretName",
                "/scaleIO/secretRef/name",
                "/storageos/secretRef/name",
            ] {
                out.extend(names_at(volume, path));
            }
        }
    }
    if kind == "Secret" {
        for s in list(&spec["imagePullSecrets"]) {
            out.extend(names_at(s, "/name"));
        }
    }
    if !env_ref.is_empty() {
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            for c in list(&spec[field]) {
                for e in list(&c["env"]) {
                    out.extend(names_at(e, &format!("/valueFrom/{env_ref}/name")));
                }
                for e in list(&c["envFrom"]) {
                    out.extend(names_at(e, &format!("/{env_from}/name")));
                }
            }
        }
    }
    out
}

/// Whether a pod on `node` in `namespace` refers to the `kind` named `name`
/// (a generic ephemeral volume's claim `<pod>-<volume>` included).
fn related(registry: &Registry, node: &str, namespace: &str, kind: &str, name: &str) -> bool {
    pods_on(registry, node, namespace).iter().any(|pod| {
        references(pod, kind).contains(&name)
            || (kind == "PersistentVolumeClaim" && ephemeral_claims(pod).iter().any(|c| c == name))
    })
}

fn ephemeral_claims(pod: &Value) -> Vec<String> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("ephemeral").is_some())
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .map(|v| format!("{pod_name}-{v}"))
        .collect()
}

/// Whether the PersistentVolume `name` backs a claim a pod on `node` uses.
fn volume_related(registry: &Registry, node: &str, name: &str) -> bool {
    let Some(r) = registry.resources.find("", "v1", "persistentvolumeclaims") else {
        return false;
    };
    let Some(cache) = registry.cache.resource(&r) else {
        return false;
    };
    let (claims, _) = registry.cache.consistent_snapshot(&cache, &r.key_prefix());
    claims.iter().any(|(_, claim)| {
        claim.pointer("/spec/volumeName").and_then(Value::as_str) == Some(name)
            && match (
                claim.pointer("/metadata/namespace").and_then(Value::as_str),
                claim.pointer("/metadata/name").and_then(Value::as_str),
            ) {
                (Some(ns), Some(claim_name)) => {
                    related(registry, node, ns, "PersistentVolumeClaim", claim_name)
                }
                _ => false,
            }
    })
}

fn no_relationship(node: &str, a: &Attributes) -> Verdict {
    Verdict::Deny(format!(
        "no relationship found between node '{node}' and this object ({} {}/{})",
        a.resource, a.namespace, a.name
    ))
}

/// Upstream's node authorization of one request.
pub fn authorize(registry: &Registry, a: &Attributes) -> Verdict {
    let Some(node) = node_of(&a.user.name, &a.user.groups) else {
        return Verdict::NoOpinion;
    };
    if !a.resource_request {
        return Verdict::NoOpinion;
    }
    let graph_kind = match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "secrets", "") => Some("Secret"),
        ("", "configmaps", "") => Some("ConfigMap"),
        ("", "persistentvolumeclaims", "") | ("", "persistentvolumeclaims", "status") => {
            Some("PersistentVolumeClaim")
        }
        ("", "serviceaccounts", "token") => Some("ServiceAccount"),
        _ => None,
    };
    if let Some(kind) = graph_kind {
        let allowed_verbs: &[&str] = match (kind, a.subresource.as_str()) {
            ("ServiceAccount", _) => &["create"],
            ("PersistentVolumeClaim", "status") => &["get", "update", "patch"],
            _ => &["get"],
        };
        if !allowed_verbs.contains(&a.verb.as_str()) || a.name.is_empty() {
            return Verdict::Deny(format!(
                "can only {} individual {} resources related to node '{node}'",
                allowed_verbs.join("/"),
                a.resource
            ));
        }
        return if related(registry, node, &a.namespace, kind, &a.name) {
            Verdict::Allow
        } else {
            no_relationship(node, a)
        };
    }
    if a.api_group.is_empty() && a.resource == "persistentvolumes" {
        if a.verb != "get" || a.name.is_empty() {
            return Verdict::Deny(format!(
                "can only get individual persistentvolumes related to node '{node}'"
            ));
        }
        return if volume_related(registry, node, &a.name) {
            Verdict::Allow
        } else {
            no_relationship(node, a)
        };
    }
    if a.api_group == "coordination.k8s.io" && a.resource == "leases" {
        let own = a.namespace == LEASE_NAMESPACE && (a.name == node || a.verb == "create");
        return if own && ["get", "create", "update", "patch", "delete"].contains(&a.verb.as_str()) {
            Verdict::Allow
        } else {
            Verdict::Deny(format!(
                "can only access node lease with the same name as the requesting node '{node}'"
            ))
        };
    }
    match node_rules().authorize(a) {
        Decision::Allow { .. } => Verdict::Allow,
        Decision::NoOpinion { .. } => Verdict::NoOpinion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_identities() {
        let nodes = vec![NODES_GROUP.to_owned()];
        assert_eq!(node_of("system:node:a", &nodes), Some("a"));
        assert_eq!(node_of("system:node:a", &[]), None);
        assert_eq!(node_of("system:node:", &nodes), None);
        assert_eq!(node_of("alice", &nodes), None);
    }

    #[test]
    fn a_pod_refers_to_what_it_mounts_and_reads() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "serviceAccountName": "robot",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "envcm"}}]}],
        }});
        let mut secrets = references(&pod, "Secret");
        secrets.sort();
        assert_eq!(secrets, ["env", "proj", "pull", "vol"]);
        let mut maps = references(&pod, "ConfigMap");
        maps.sort();
        assert_eq!(maps, ["cm", "envcm", "kube-root-ca.crt"]);
        assert_eq!(references(&pod, "PersistentVolumeClaim"), ["data"]);
        assert_eq!(references(&pod, "ServiceAccount"), ["robot"]);
    }
}
