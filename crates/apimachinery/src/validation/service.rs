//! Service validation: types, ports, cluster IPs, policies, and the
//! cluster IP that may not change once allocated.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::meta;
use super::shape;
use crate::field_error::FieldError;
use crate::names;
use crate::path::Path;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Validates a Service spec.
pub(crate) fn validate_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    let spec = match shape::get(obj, "spec") {
        None => {
            errs.push(FieldError::required(&at, ""));
            return;
        }
        Some(s) if s.is_object() => s,
        Some(s) => {
            errs.push(FieldError::type_invalid(&at, s, "object"));
            return;
        }
    };
    let ty = shape::one_of(spec, "type", &at, TYPES, errs).unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = shape::string(spec, "clusterIP", &at, errs).unwrap_or("");
    let headless = cluster_ip == "None";

    if ty == "ExternalName" {
        match shape::string(spec, "externalName", &at, errs) {
            None | Some("") => errs.push(FieldError::required(&at.child("externalName"), "")),
            Some(name) => {
                for m in names::dns1123_subdomain(name.strip_suffix('.').unwrap_or(name)) {
                    errs.push(FieldError::invalid(&at.child("externalName"), name, m));
                }
            }
        }
        if !cluster_ip.is_empty() {
            errs.push(FieldError::invalid(
                &at.child("clusterIPs"),
                Value::Array(vec![cluster_ip.into()]),
                "may not be set for ExternalName services",
            ));
        }
    } else if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            &at.child("clusterIPs").index(0),
            cluster_ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if headless && (ty == "NodePort" || ty == "LoadBalancer") {
        errs.push(FieldError::invalid(
            &at.child("clusterIPs").index(0),
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }

    let ports = shape::objects(spec, "ports", &at, errs);
    if ports.is_empty()
        && ty != "ExternalName"
        && !headless
        && !errs.iter().any(|e| e.field == at.child("ports").as_str())
    {
        errs.push(FieldError::required(&at.child("ports"), ""));
    }
    let many = ports.len() > 1;
    let mut port_names = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (_, p, pp) in &ports {
        let name = shape::string(p, "name", pp, errs).unwrap_or("");
        if name.is_empty() {
            if many {
                errs.push(FieldError::required(&pp.child("name"), ""));
            }
        } else {
            for m in names::dns1123_label(name) {
                errs.push(FieldError::invalid(&pp.child("name"), name, m));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        let port = shape::int(p, "port", pp, errs).unwrap_or(0);
        for m in names::port_number(port) {
            errs.push(FieldError::invalid(&pp.child("port"), port, m));
        }
        let proto =
            shape::one_of(p, "protocol", pp, PROTOCOLS, errs).unwrap_or_else(|| "TCP".into());
        if !port_keys.insert((port, proto)) {
            errs.push(FieldError::duplicate(pp, (*p).clone()));
        }
        match shape::get(p, "targetPort") {
            None => {}
            Some(Value::String(s)) => {
                for m in names::port_name(s) {
                    errs.push(FieldError::invalid(&pp.child("targetPort"), s.as_str(), m));
                }
            }
            Some(v) => match v.as_i64() {
                Some(n) => {
                    for m in names::port_number(n) {
                        errs.push(FieldError::invalid(&pp.child("targetPort"), n, m));
                    }
                }
                None => errs.push(FieldError::type_invalid(
                    &pp.child("targetPort"),
                    v,
                    "integer or string",
                )),
            },
        }
        if let Some(np) = shape::int(p, "nodePort", pp, errs)
            && np != 0
        {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(
                    &pp.child("nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            } else {
                for m in names::port_number(np) {
                    errs.push(FieldError::invalid(&pp.child("nodePort"), np, m));
                }
            }
        }
    }

    shape::one_of(spec, "sessionAffinity", &at, &["ClientIP", "None"], errs);
    let selector = shape::string_map(spec, "selector", &at, errs);
    meta::validate_labels(&selector, &at.child("selector"), errs);
    let external_ips = shape::array(spec, "externalIPs", &at, errs).map_or(0, Vec::len);
    if let Some(etp) = shape::one_of(
        spec,
        "externalTrafficPolicy",
        &at,
        &["Cluster", "Local"],
        errs,
    ) && !etp.is_empty()
        && ty != "NodePort"
        && ty != "LoadBalancer"
        && external_ips == 0
    {
        errs.push(FieldError::invalid(
            &at.child("externalTrafficPolicy"),
            etp,
            "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        ));
    }
    shape::one_of(
        spec,
        "internalTrafficPolicy",
        &at,
        &["Cluster", "Local"],
        errs,
    );
    shape::one_of(
        spec,
        "ipFamilyPolicy",
        &at,
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        errs,
    );
    if let Some(families) = shape::array(spec, "ipFamilies", &at, errs) {
        for (i, f) in families.iter().enumerate() {
            let fp = at.child("ipFamilies").index(i);
            match f.as_str() {
                Some("IPv4" | "IPv6") => {}
                Some(s) => errs.push(FieldError::not_supported(&fp, s, &["IPv4", "IPv6"])),
                None => errs.push(FieldError::type_invalid(&fp, f, "string")),
            }
        }
    }
}

fn primary_cluster_ip(svc: &Value) -> Option<&str> {
    let spec = svc.get("spec")?;
    spec.get("clusterIPs")
        .and_then(|v| v.get(0))
        .and_then(Value::as_str)
        .or_else(|| spec.get("clusterIP").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The cluster IP may not change once set, unless the service becomes or
/// stops being an ExternalName. An update that omits it keeps the old one
/// (the server copies it over), so only a different value is an error.
pub(crate) fn validate_service_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let ty = |s: &Value| {
        s.get("spec")
            .and_then(|sp| sp.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    if ty(new) == "ExternalName" || ty(old) == "ExternalName" {
        return;
    }
    if let (Some(o), Some(n)) = (primary_cluster_ip(old), primary_cluster_ip(new))
        && o != n
    {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("clusterIPs").index(0),
            Value::Array(vec![n.into()]),
            "may not change once set",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_service(&json!({"spec": spec}), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn valid_services() {
        assert!(
            run(json!({"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "web"}}))
                .is_empty()
        );
        assert!(run(json!({"clusterIP": "None", "selector": {"app": "web"}})).is_empty());
        assert!(run(json!({"type": "ExternalName", "externalName": "example.com."})).is_empty());
        assert!(run(json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080, "targetPort": "http"}, {"name": "b", "port": 81, "protocol": "UDP"}],
            "externalTrafficPolicy": "Local"})).is_empty());
    }

    #[test]
    fn ports_required_and_checked() {
        assert_eq!(run(json!({})), vec!["spec.ports: Required value"]);
        let e = run(
            json!({"ports": [{"port": 0, "protocol": "HTTP"}, {"port": 80, "name": "Bad"}, {"port": 80, "name": "Bad", "targetPort": 70000, "nodePort": 30000}]}),
        );
        assert_eq!(
            e,
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.ports[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.ports[2].name: Duplicate value: \"Bad\"",
                "spec.ports[2]: Duplicate value: {\"name\":\"Bad\",\"nodePort\":30000,\"port\":80,\"targetPort\":70000}",
                "spec.ports[2].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[2].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
    }

    #[test]
    fn types_and_policies() {
        assert_eq!(
            run(json!({"type": "Magic", "ports": [{"port": 1}]})),
            vec![
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ]
        );
        assert_eq!(
            run(json!({"type": "ExternalName"})),
            vec!["spec.externalName: Required value"]
        );
        assert_eq!(
            run(
                json!({"ports": [{"port": 1}], "sessionAffinity": "Sticky", "externalTrafficPolicy": "Local"})
            ),
            vec![
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ]
        );
        assert_eq!(
            run(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 1}]})),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
            ]
        );
        assert_eq!(
            run(json!({"clusterIP": "10.1", "ports": [{"port": 1}]})),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.1\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
        assert_eq!(
            run(json!({"ports": [{"port": 1}], "selector": {"a": "b c"}})).len(),
            1
        );
    }

    #[test]
    fn cluster_ip_immutable() {
        let old = json!({"spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"]}});
        let mut errs = Vec::new();
        validate_service_update(
            &json!({"spec": {"clusterIP": "10.43.0.6"}}),
            &old,
            &mut errs,
        );
        assert_eq!(
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.6\"}: may not change once set"
            ]
        );
        let mut errs = Vec::new();
        validate_service_update(&json!({"spec": {}}), &old, &mut errs);
        validate_service_update(&old, &old, &mut errs);
        validate_service_update(
            &json!({"spec": {"type": "ExternalName", "externalName": "x"}}),
            &old,
            &mut errs,
        );
        assert!(errs.is_empty());
    }
}
