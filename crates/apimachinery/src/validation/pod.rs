//! Pod and pod-template validation: containers, ports, volumes, policies,
//! and the narrow set of pod spec fields an update may change.

use std::collections::BTreeSet;

use serde_json::Value;

use super::meta;
use super::quantity;
use super::shape;
use crate::field_error::FieldError;
use crate::names;
use crate::path::Path;

const RESTART_POLICIES: &[&str] = &["Always", "Never", "OnFailure"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];

/// Upstream's list of pod spec fields an update may change, as printed in
/// the Forbidden message.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates a Pod object's spec (metadata is checked by the caller).
pub(crate) fn validate_pod(obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    match shape::get(obj, "spec") {
        None => errs.push(FieldError::required(&at, "")),
        Some(spec) if spec.is_object() => validate_pod_spec(spec, &at, errs),
        Some(spec) => errs.push(FieldError::type_invalid(&at, spec, "object")),
    }
}

/// Validates a pod template (`spec.template` of workloads): labels in its
/// metadata and its pod spec. Returns the template's labels.
pub(crate) fn validate_template(
    parent: &Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<(String, String)>> {
    let path = at.child(key);
    let Some(template) = shape::get(parent, key) else {
        errs.push(FieldError::required(&path, ""));
        return None;
    };
    if !template.is_object() {
        errs.push(FieldError::type_invalid(&path, template, "object"));
        return None;
    }
    let meta_path = path.child("metadata");
    let labels: Vec<(String, String)> = match shape::get(template, "metadata") {
        Some(m) if m.is_object() => {
            let pairs = shape::string_map(m, "labels", &meta_path, errs);
            meta::validate_labels(&pairs, &meta_path.child("labels"), errs);
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }
        Some(m) => {
            errs.push(FieldError::type_invalid(&meta_path, m, "object"));
            Vec::new()
        }
        None => Vec::new(),
    };
    let spec_path = path.child("spec");
    match shape::get(template, "spec") {
        None => errs.push(FieldError::required(&spec_path, "")),
        Some(spec) if spec.is_object() => validate_pod_spec(spec, &spec_path, errs),
        Some(spec) => errs.push(FieldError::type_invalid(&spec_path, spec, "object")),
    }
    Some(labels)
}

/// The `restartPolicy` of a template's pod spec, if it is a string.
pub(crate) fn template_restart_policy(template: Option<&Value>) -> Option<&str> {
    template?.get("spec")?.get("restartPolicy")?.as_str()
}

/// Validates a pod spec at `at`.
pub(crate) fn validate_pod_spec(spec: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(spec, at, errs);
    let mut names_seen = BTreeSet::new();
    let containers = shape::objects(spec, "containers", at, errs);
    if containers.is_empty()
        && !errs
            .iter()
            .any(|e| e.field == at.child("containers").as_str())
    {
        errs.push(FieldError::required(&at.child("containers"), ""));
    }
    for (_, c, p) in &containers {
        validate_container(c, p, &volumes, &mut names_seen, errs);
    }
    for (_, c, p) in shape::objects(spec, "initContainers", at, errs) {
        validate_container(c, &p, &volumes, &mut names_seen, errs);
    }
    shape::one_of(spec, "restartPolicy", at, RESTART_POLICIES, errs);
    shape::one_of(spec, "dnsPolicy", at, DNS_POLICIES, errs);
    shape::non_negative(spec, "terminationGracePeriodSeconds", at, errs);
    if let Some(v) = shape::int(spec, "activeDeadlineSeconds", at, errs)
        && !(1..=i64::from(i32::MAX)).contains(&v)
    {
        errs.push(FieldError::invalid(
            &at.child("activeDeadlineSeconds"),
            v,
            names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for key in ["nodeName", "serviceAccountName"] {
        if let Some(v) = shape::string(spec, key, at, errs)
            && !v.is_empty()
        {
            for m in names::dns1123_subdomain(v) {
                errs.push(FieldError::invalid(&at.child(key), v, m));
            }
        }
    }
    for key in ["hostname", "subdomain"] {
        if let Some(v) = shape::string(spec, key, at, errs)
            && !v.is_empty()
        {
            for m in names::dns1123_label(v) {
                errs.push(FieldError::invalid(&at.child(key), v, m));
            }
        }
    }
    for key in ["hostNetwork", "hostPID", "hostIPC", "enableServiceLinks"] {
        shape::boolean(spec, key, at, errs);
    }
    let node_selector = shape::string_map(spec, "nodeSelector", at, errs);
    meta::validate_labels(&node_selector, &at.child("nodeSelector"), errs);
    validate_tolerations(spec, at, errs);
}

fn validate_volumes(spec: &Value, at: &Path, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, v, p) in shape::objects(spec, "volumes", at, errs) {
        let name = shape::string(v, "name", &p, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
            continue;
        }
        for m in names::dns1123_label(name) {
            errs.push(FieldError::invalid(&p.child("name"), name, m));
        }
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&p.child("name"), name));
        }
    }
    seen
}

fn validate_container(
    c: &Value,
    at: &Path,
    volumes: &BTreeSet<String>,
    names_seen: &mut BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = shape::string(c, "name", at, errs).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(&at.child("name"), ""));
    } else {
        for m in names::dns1123_label(name) {
            errs.push(FieldError::invalid(&at.child("name"), name, m));
        }
        if !names_seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&at.child("name"), name));
        }
    }
    match shape::string(c, "image", at, errs) {
        None | Some("") => errs.push(FieldError::required(&at.child("image"), "")),
        Some(image) if image.trim() != image => errs.push(FieldError::invalid(
            &at.child("image"),
            image,
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    shape::one_of(c, "imagePullPolicy", at, PULL_POLICIES, errs);
    shape::one_of(
        c,
        "terminationMessagePolicy",
        at,
        TERMINATION_MESSAGE_POLICIES,
        errs,
    );
    validate_ports(c, at, errs);
    validate_env(c, at, errs);
    for (_, m, p) in shape::objects(c, "volumeMounts", at, errs) {
        let vname = shape::string(m, "name", &p, errs).unwrap_or("");
        if vname.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if !volumes.contains(vname) {
            errs.push(FieldError::not_found(&p.child("name"), vname));
        }
        if shape::string(m, "mountPath", &p, errs)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
    }
    if let Some(res) = shape::get(c, "resources") {
        let rp = at.child("resources");
        if res.is_object() {
            validate_resources(res, &rp, errs);
        } else {
            errs.push(FieldError::type_invalid(&rp, res, "object"));
        }
    }
}

/// Quantities must parse, be non-negative, and requests may not exceed
/// limits.
fn validate_resources(res: &Value, rp: &Path, errs: &mut Vec<FieldError>) {
    let parsed = |key: &str, errs: &mut Vec<FieldError>| {
        let mut out = Vec::new();
        if let Some(m) = shape::object(res, key, rp, errs) {
            for (k, v) in m {
                let path = rp.child(key).key(k);
                match quantity::parse(v) {
                    Some(q) if q < 0.0 => errs.push(FieldError::invalid(
                        &path,
                        v.clone(),
                        "must be greater than or equal to 0",
                    )),
                    Some(q) => out.push((k.clone(), v.clone(), q)),
                    None => errs.push(FieldError::invalid(
                        &path,
                        v.clone(),
                        quantity::QUANTITY_SYNTAX,
                    )),
                }
            }
        }
        out
    };
    let limits = parsed("limits", errs);
    let requests = parsed("requests", errs);
    for (name, shown, q) in &requests {
        if let Some((_, limit_shown, limit)) = limits.iter().find(|(n, _, _)| n == name)
            && q > limit
        {
            let limit_text = match limit_shown {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            errs.push(FieldError::invalid(
                &rp.child("requests"),
                shown.clone(),
                format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
}

fn validate_ports(c: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let mut port_names = BTreeSet::new();
    for (_, p, pp) in shape::objects(c, "ports", at, errs) {
        if let Some(name) = shape::string(p, "name", &pp, errs)
            && !name.is_empty()
        {
            for m in names::port_name(name) {
                errs.push(FieldError::invalid(&pp.child("name"), name, m));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        match shape::int(p, "containerPort", &pp, errs) {
            None | Some(0) => {
                if !errs
                    .iter()
                    .any(|e| e.field == pp.child("containerPort").as_str())
                {
                    errs.push(FieldError::required(&pp.child("containerPort"), ""));
                }
            }
            Some(n) => {
                for m in names::port_number(n) {
                    errs.push(FieldError::invalid(&pp.child("containerPort"), n, m));
                }
            }
        }
        if let Some(n) = shape::int(p, "hostPort", &pp, errs)
            && n != 0
        {
            for m in names::port_number(n) {
                errs.push(FieldError::invalid(&pp.child("hostPort"), n, m));
            }
        }
        shape::one_of(p, "protocol", &pp, PROTOCOLS, errs);
    }
}

fn validate_env(c: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    for (_, e, ep) in shape::objects(c, "env", at, errs) {
        let name = shape::string(e, "name", &ep, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(&ep.child("name"), ""));
            continue;
        }
        let first_ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
        let all_ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !(first_ok && all_ok) {
            errs.push(FieldError::invalid(
                &ep.child("name"),
                name,
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            ));
        }
        shape::string(e, "value", &ep, errs);
    }
}

fn validate_tolerations(spec: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    for (_, t, tp) in shape::objects(spec, "tolerations", at, errs) {
        let key = shape::string(t, "key", &tp, errs).unwrap_or("");
        let op = shape::one_of(t, "operator", &tp, TOLERATION_OPERATORS, errs);
        let value = shape::string(t, "value", &tp, errs).unwrap_or("");
        if !key.is_empty() {
            for m in names::qualified_name(key) {
                errs.push(FieldError::invalid(&tp.child("key"), key, m));
            }
        }
        if key.is_empty() && op.as_deref() != Some("Exists") {
            errs.push(FieldError::invalid(
                &tp.child("operator"),
                op.clone().unwrap_or_default(),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if op.as_deref() == Some("Exists") && !value.is_empty() {
            errs.push(FieldError::invalid(
                &tp.child("operator"),
                value,
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        shape::one_of(t, "effect", &tp, TAINT_EFFECTS, errs);
        shape::int(t, "tolerationSeconds", &tp, errs);
    }
}

/// Checks that a pod update changes only what upstream allows.
pub(crate) fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    if !new_spec.is_object() || !old_spec.is_object() {
        return;
    }
    // activeDeadlineSeconds may be set or lowered, never raised or removed
    let new_ads = new_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let old_ads = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    match (old_ads, new_ads) {
        (Some(_), None) => errs.push(FieldError::invalid(
            &at.child("activeDeadlineSeconds"),
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => errs.push(FieldError::invalid(
            &at.child("activeDeadlineSeconds"),
            n,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    // tolerations: existing ones stay (tolerationSeconds may change)
    let new_tols: Vec<Value> = tolerations_without_seconds(new_spec);
    for (i, t) in tolerations_without_seconds(old_spec).iter().enumerate() {
        if !new_tols.contains(t) {
            errs.push(FieldError::forbidden(
                &at.child("tolerations").index(i),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    // schedulingGates: gates may only be removed (upstream's rule for
    // releasing a gated pod).
    let gate_names = |spec: &Value| -> Vec<String> {
        spec.get("schedulingGates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let old_gates = gate_names(old_spec);
    for name in gate_names(new_spec) {
        if !old_gates.contains(&name) {
            errs.push(FieldError::forbidden(
                &at.child("schedulingGates"),
                format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }

    let mut munged = new_spec.clone();
    for key in ["containers", "initContainers"] {
        let old_list = old_spec.get(key).and_then(Value::as_array);
        if let (Some(list), Some(old_list)) =
            (munged.get_mut(key).and_then(Value::as_array_mut), old_list)
        {
            for (c, o) in list.iter_mut().zip(old_list) {
                if let (Some(c), Some(img)) = (c.as_object_mut(), o.get("image")) {
                    c.insert("image".into(), img.clone());
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for key in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = old_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = m
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && new_grace == Some(1)
            && let Some(g) = old_spec.get("terminationGracePeriodSeconds")
        {
            m.insert("terminationGracePeriodSeconds".into(), g.clone());
        }
    }
    if &munged != old_spec {
        let mut changed = Vec::new();
        diff_paths(old_spec, &munged, "spec", &mut changed);
        errs.push(FieldError::forbidden(
            &at,
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n  changed: {}",
                changed.join(", ")
            ),
        ));
    }
}

fn tolerations_without_seconds(spec: &Value) -> Vec<Value> {
    spec.get("tolerations")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut t = t.clone();
                    if let Some(m) = t.as_object_mut() {
                        m.remove("tolerationSeconds");
                    }
                    t
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lists the paths where two JSON values differ (for the Forbidden message,
/// in place of upstream's Go struct diff).
pub(crate) fn diff_paths(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    if old == new || out.len() >= 10 {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let x = a.get(k).unwrap_or(&Value::Null);
                let y = b.get(k).unwrap_or(&Value::Null);
                diff_paths(x, y, &format!("{at}.{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_paths(x, y, &format!("{at}[{i}]"), out);
            }
        }
        _ => out.push(at.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(pod: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_pod(&pod, &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn pod_with(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn valid_pod_passes() {
        let e = run(pod_with(json!({
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                            "env": [{"name": "A_B", "value": "1"}], "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, {"operator": "Exists"}]
        })));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn containers_required() {
        assert_eq!(
            run(pod_with(json!({}))),
            vec!["spec.containers: Required value"]
        );
        assert_eq!(
            run(pod_with(json!({"containers": []}))),
            vec!["spec.containers: Required value"]
        );
        assert_eq!(
            run(json!({"metadata": {"name": "p"}})),
            vec!["spec: Required value"]
        );
    }

    #[test]
    fn container_name_and_image() {
        let e = run(pod_with(
            json!({"containers": [{"image": "x"}, {"name": "a", "image": ""}, {"name": "a", "image": " x"}, {"name": "B_", "image": "x"}]}),
        ));
        assert_eq!(e[0], "spec.containers[0].name: Required value");
        assert_eq!(e[1], "spec.containers[1].image: Required value");
        assert_eq!(e[2], "spec.containers[2].name: Duplicate value: \"a\"");
        assert_eq!(
            e[3],
            "spec.containers[2].image: Invalid value: \" x\": must not have leading or trailing whitespace"
        );
        assert!(e[4].starts_with(
            "spec.containers[3].name: Invalid value: \"B_\": a lowercase RFC 1123 label"
        ));
        assert_eq!(e.len(), 5);
        // init and app containers share one namespace of names
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x"}], "initContainers": [{"name": "a", "image": "x"}]}),
        ));
        assert_eq!(
            e,
            vec!["spec.initContainers[0].name: Duplicate value: \"a\""]
        );
    }

    #[test]
    fn ports() {
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x", "ports": [
                {"containerPort": 0}, {"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"}, {"containerPort": 81, "hostPort": -1}
            ]}]}),
        ));
        assert_eq!(
            e,
            vec![
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[3].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
            ]
        );
    }

    #[test]
    fn policies() {
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes"}],
            "restartPolicy": "Sometimes", "dnsPolicy": "X", "terminationGracePeriodSeconds": -1, "activeDeadlineSeconds": 0}),
        ));
        assert_eq!(
            e,
            vec![
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"",
                "spec.dnsPolicy: Unsupported value: \"X\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
                "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ]
        );
    }

    #[test]
    fn volumes_and_mounts() {
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}, {"name": "v"}]}],
            "volumes": [{"name": "v"}, {"name": "v"}]}),
        ));
        assert_eq!(
            e,
            vec![
                "spec.volumes[1].name: Duplicate value: \"v\"",
                "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
                "spec.containers[0].volumeMounts[1].mountPath: Required value",
            ]
        );
    }

    #[test]
    fn env_and_tolerations() {
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "1A"}, {"value": "x"}]}],
            "tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}]}),
        ));
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("spec.containers[0].env[0].name: Invalid value: \"1A\": a valid environment variable name"));
        assert_eq!(e[1], "spec.containers[0].env[1].name: Required value");
        assert!(e[2].starts_with("spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty"));
        assert_eq!(
            e[3],
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"
        );
    }

    #[test]
    fn resources() {
        let e = run(pod_with(
            json!({"containers": [{"name": "a", "image": "x", "resources": {
            "limits": {"cpu": "1", "memory": "abc"}, "requests": {"cpu": "1500m", "memory": "1Gi", "x/y": "-1"}}}]}),
        ));
        assert_eq!(
            e,
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.containers[0].resources.requests[x/y]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1",
            ]
        );
    }

    #[test]
    fn wrong_types() {
        let e = run(pod_with(json!({"containers": "nginx"})));
        assert_eq!(
            e,
            vec!["spec.containers: Invalid value: \"nginx\": expected array"]
        );
        let e = run(pod_with(
            json!({"containers": [5, {"name": "a", "image": 3, "ports": {"x": 1}}]}),
        ));
        assert_eq!(e.len(), 4, "{e:?}");
    }

    fn update(old: Value, new: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_pod_update(&pod_with(new), &pod_with(old), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn pod_update_allows_image_deadline_tolerations() {
        let old = json!({"containers": [{"name": "a", "image": "x:1"}], "activeDeadlineSeconds": 100, "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]});
        let new = json!({"containers": [{"name": "a", "image": "x:2"}], "activeDeadlineSeconds": 50,
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 3}, {"key": "j", "operator": "Exists"}]});
        assert!(update(old, new).is_empty());
    }

    #[test]
    fn pod_update_forbids_other_changes() {
        let old = json!({"containers": [{"name": "a", "image": "x"}], "restartPolicy": "Always"});
        let new = json!({"containers": [{"name": "a", "image": "x"}], "restartPolicy": "Never"});
        let e = update(old, new);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
        assert!(e[0].contains("spec.restartPolicy"));
    }

    #[test]
    fn scheduling_gates_may_only_be_removed() {
        let old = json!({"containers": [{"name": "a", "image": "x"}],
            "schedulingGates": [{"name": "a"}, {"name": "b"}]});
        let fewer = json!({"containers": [{"name": "a", "image": "x"}],
            "schedulingGates": [{"name": "b"}]});
        assert!(update(old.clone(), fewer).is_empty());
        let none = json!({"containers": [{"name": "a", "image": "x"}]});
        assert!(update(old.clone(), none).is_empty());
        let more = json!({"containers": [{"name": "a", "image": "x"}],
            "schedulingGates": [{"name": "a"}, {"name": "c"}]});
        assert_eq!(
            update(old, more),
            vec![
                "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate 'c'"
            ]
        );
    }

    #[test]
    fn pod_update_deadline_and_toleration_rules() {
        let old = json!({"containers": [{"name": "a", "image": "x"}], "activeDeadlineSeconds": 10, "tolerations": [{"key": "k", "operator": "Exists"}]});
        let new = json!({"containers": [{"name": "a", "image": "x"}], "activeDeadlineSeconds": 20, "tolerations": []});
        let e = update(old, new);
        assert_eq!(
            e,
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value",
                "spec.tolerations[0]: Forbidden: existing toleration can not be modified except its tolerationSeconds",
            ]
        );
    }
}
