//! Defaults for core kinds other than Pod: Service, Secret, Namespace,
//! PersistentVolumeClaim, Endpoints.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{child_object, each_object, set_default};

/// Service defaults (upstream `SetDefaults_Service` plus the IP family
/// fields the Service REST layer fills on a single-stack IPv4 cluster).
pub(crate) fn default_service(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let Some(spec) = child_object(root, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    each_object(spec, "ports", |p| {
        set_default(p, "protocol", json!("TCP"));
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(v) => v.as_i64() == Some(0),
        };
        if unset && let Some(port) = p.get("port").cloned() {
            p.insert("targetPort".into(), port);
        }
    });
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && has_external_ips) {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        let no_selector = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if headless && no_selector {
            set_default(spec, "ipFamilyPolicy", json!("RequireDualStack"));
            set_default(spec, "ipFamilies", json!(["IPv4", "IPv6"]));
        } else {
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
        }
    }
}

/// Secret defaults: `type: Opaque`, and `stringData` folded into `data`
/// (base64) the way upstream's conversion does, so it is never stored.
pub(crate) fn default_secret(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    set_default(root, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = root.get("stringData").cloned() else {
        return;
    };
    let Some(data) = child_object(root, "data") else {
        return;
    };
    for (k, v) in string_data {
        if let Some(s) = v.as_str() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
    root.remove("stringData");
}

/// Namespace defaults: the `kubernetes.io/metadata.name` label, the
/// `kubernetes` finalizer, and phase `Active`.
pub(crate) fn default_namespace(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let (Some(name), Some(meta)) = (name, child_object(root, "metadata"))
        && let Some(labels) = child_object(meta, "labels")
    {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    if let Some(spec) = child_object(root, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child_object(root, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

/// PersistentVolumeClaim defaults (`volumeMode: Filesystem`).
pub(crate) fn default_pvc(obj: &mut Value) {
    if let Some(spec) = obj.as_object_mut().and_then(|r| child_object(r, "spec")) {
        default_pvc_spec(spec);
    }
}

/// Defaults a PVC spec (also inside StatefulSet claim templates).
pub(crate) fn default_pvc_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "volumeMode", json!("Filesystem"));
}

/// Endpoints defaults (`ports[].protocol: TCP`).
pub(crate) fn default_endpoints(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    each_object(root, "subsets", |s| {
        each_object(s, "ports", |p| set_default(p, "protocol", json!("TCP")));
    });
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply;
    use serde_json::json;

    #[test]
    fn cluster_ip_service() {
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        apply("", "Service", &mut svc);
        assert_eq!(
            svc["spec"],
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
        );
    }

    #[test]
    fn node_port_load_balancer_external_name() {
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}], "sessionAffinity": "ClientIP"}});
        apply("", "Service", &mut svc);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(
            svc["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let mut svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply("", "Service", &mut svc);
        assert_eq!(svc["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        let mut svc = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply("", "Service", &mut svc);
        assert_eq!(
            svc["spec"],
            json!({"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"})
        );
        let mut svc = json!({"spec": {"clusterIP": "None"}});
        apply("", "Service", &mut svc);
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert!(svc["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn secret_type_and_string_data() {
        let mut s = json!({"stringData": {"user": "admin"}, "data": {"x": "eQ=="}});
        apply("", "Secret", &mut s);
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"x": "eQ==", "user": "YWRtaW4="}})
        );
    }

    #[test]
    fn namespace_label_finalizer_phase() {
        let mut ns = json!({"metadata": {"name": "dev"}});
        apply("", "Namespace", &mut ns);
        assert_eq!(
            ns,
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
    }

    #[test]
    fn pvc_and_endpoints() {
        let mut pvc = json!({"spec": {}});
        apply("", "PersistentVolumeClaim", &mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        let mut ep = json!({"subsets": [{"ports": [{"port": 80}]}]});
        apply("", "Endpoints", &mut ep);
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    }
}
