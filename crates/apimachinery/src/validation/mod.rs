//! Create and update validation per kind, returning upstream-style field
//! errors (the server answers 422 Invalid when the list is non-empty).
//!
//! Call after [`defaults::apply`](crate::defaults::apply): like upstream,
//! validation expects defaulted objects (it does not require fields that
//! defaulting fills in). Kinds without specific rules get metadata checks
//! only. The server sets `metadata.namespace` from the URL and `name` from
//! `generateName` (see [`names::generate_name`](crate::names::generate_name))
//! before calling in.

mod config;
mod meta;
mod pod;
mod quantity;
mod service;
mod shape;
mod workloads;

pub use config::MAX_DATA_SIZE;
pub use meta::{
    Scope, validate_generic_object_meta, validate_labels, validate_object_meta,
    validate_object_meta_update,
};
pub use workloads::check_schedule;

use serde_json::Value;

use crate::field_error::FieldError;
use crate::names::NameRule;
use crate::path::Path;

/// Whether a built-in kind is namespaced; `None` for kinds this crate does
/// not know (custom resources: the server knows their scope and can call
/// [`validate_object_meta`] itself).
pub fn scope_of(group: &str, kind: &str) -> Option<Scope> {
    let cluster = matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | (
            "rbac.authorization.k8s.io",
            "ClusterRole" | "ClusterRoleBinding"
        ) | (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
        ) | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
            | ("scheduling.k8s.io", "PriorityClass")
            | ("node.k8s.io", "RuntimeClass")
            | (
                "networking.k8s.io",
                "IngressClass" | "IPAddress" | "ServiceCIDR"
            )
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
    );
    if cluster {
        return Some(Scope::Cluster);
    }
    let namespaced = matches!(
        (group, kind),
        (
            "",
            "Pod"
                | "Service"
                | "ConfigMap"
                | "Secret"
                | "Event"
                | "ServiceAccount"
                | "Endpoints"
                | "PersistentVolumeClaim"
                | "ReplicationController"
                | "LimitRange"
                | "ResourceQuota"
                | "PodTemplate"
        ) | (
            "apps",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ControllerRevision"
        ) | ("batch", "Job" | "CronJob")
            | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
            | ("coordination.k8s.io", "Lease")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("events.k8s.io", "Event")
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
            | ("autoscaling", "HorizontalPodAutoscaler")
    );
    namespaced.then_some(Scope::Namespaced)
}

/// Which rule a kind's `metadata.name` follows upstream.
pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Dns1123Label,
        ("", "Service") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

fn not_object(obj: &Value) -> Option<Vec<FieldError>> {
    (!obj.is_object()).then(|| vec![FieldError::type_invalid(&Path::new(""), obj, "object")])
}

/// Validates an object about to be created: metadata (with the kind's
/// scope and name rule) and the kind's own rules.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    if let Some(errs) = not_object(obj) {
        return errs;
    }
    let (scope, rule) = (scope_of(group, kind), name_rule(group, kind));
    let mut errs = if group == "apiextensions.k8s.io" {
        meta::validate_generic_object_meta(obj, scope, rule)
    } else {
        validate_object_meta(obj, scope, rule)
    };
    validate_kind(group, kind, obj, &mut errs);
    errs
}

fn validate_kind(group: &str, kind: &str, obj: &Value, errs: &mut Vec<FieldError>) {
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(obj, errs),
        ("", "Service") => service::validate_service(obj, errs),
        ("", "ConfigMap") => config::validate_config_map(obj, errs),
        ("", "Secret") => config::validate_secret(obj, errs),
        ("", "ReplicationController") => workloads::validate_replication_controller(obj, errs),
        ("", "Namespace") => validate_namespace(obj, errs),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            workloads::validate_apps(kind, obj, errs)
        }
        ("batch", "Job") => workloads::validate_job(obj, errs),
        ("batch", "CronJob") => workloads::validate_cron_job(obj, errs),
        _ => {}
    }
}

fn validate_namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    let Some(spec) = shape::get(obj, "spec") else {
        return;
    };
    if !spec.is_object() {
        errs.push(FieldError::type_invalid(&at, spec, "object"));
        return;
    }
    if let Some(items) = shape::array(spec, "finalizers", &at, errs) {
        for (i, f) in items.iter().enumerate() {
            let fp = at.child("finalizers").index(i);
            match f.as_str() {
                Some(s) => {
                    for m in crate::names::qualified_name(s) {
                        errs.push(FieldError::invalid(&fp, s, m));
                    }
                }
                None => errs.push(FieldError::type_invalid(&fp, f, "string")),
            }
        }
    }
}

/// Validates an update: the new object as a whole, identity fields of
/// metadata, and each kind's immutability rules against the old object.
pub fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    if let Some(errs) = not_object(new) {
        return errs;
    }
    let mut errs = validate_create(group, kind, new);
    if !old.is_object() {
        return errs;
    }
    errs.extend(validate_object_meta_update(new, old));
    match (group, kind) {
        ("", "Pod") => pod::validate_pod_update(new, old, &mut errs),
        ("", "Service") => service::validate_service_update(new, old, &mut errs),
        ("", "ConfigMap" | "Secret") => config::validate_config_update(kind, new, old, &mut errs),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            workloads::validate_workload_update(kind, new, old, &mut errs)
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn create_checks_meta_scope_and_kind() {
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Web"}, "spec": {}});
        assert_eq!(
            msgs(&validate_create("", "Pod", &pod))
                .iter()
                .map(|m| m.split(':').next().unwrap_or("").to_string())
                .collect::<Vec<_>>(),
            vec!["metadata.name", "metadata.namespace", "spec.containers"]
        );
        let ns = json!({"metadata": {"name": "a.b"}});
        let e = msgs(&validate_create("", "Namespace", &ns));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label")
        );
        let svc = json!({"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}});
        assert!(msgs(&validate_create("", "Service", &svc))[0].contains("DNS-1035"));
        let node = json!({"metadata": {"name": "n", "namespace": "d"}});
        assert_eq!(
            msgs(&validate_create("", "Node", &node)),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let role = json!({"metadata": {"name": "system:foo", "namespace": "d"}});
        assert!(validate_create("rbac.authorization.k8s.io", "Role", &role).is_empty());
        let cr = json!({"metadata": {"name": "x"}});
        assert!(validate_create("example.com", "Widget", &cr).is_empty());
    }

    #[test]
    fn namespace_finalizers() {
        let ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes", "-x"]}});
        let e = msgs(&validate_create("", "Namespace", &ns));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec.finalizers[1]: Invalid value: \"-x\""));
    }

    #[test]
    fn update_checks_identity_and_kind_rules() {
        let old = json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "c2", "namespace": "d"}, "immutable": true, "data": {"a": "2"}});
        assert_eq!(
            msgs(&validate_update("", "ConfigMap", &new, &old)),
            vec![
                "metadata.name: Invalid value: \"c2\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
    }

    #[test]
    fn non_objects_are_errors() {
        assert_eq!(
            msgs(&validate_create("", "Pod", &json!([1]))),
            vec![": Invalid value: [1]: expected object"]
        );
        assert_eq!(
            validate_update("", "Pod", &json!(null), &json!({})).len(),
            1
        );
    }
}
