//! The `restricted` Pod Security Standard (current upstream version), on
//! top of baseline: only ephemeral-style volume types, no privilege
//! escalation, non-root users, a confined seccomp profile, and all
//! capabilities dropped but `NET_BIND_SERVICE`. In upstream's check order.

use serde_json::Value;

use super::spec::{
    Violation, container_sc, containers, containers_where, join_quoted, name, pluralize, pod_sc,
};

/// Volume types a restricted pod may use.
const ALLOWED_VOLUMES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

pub fn allow_privilege_escalation(spec: &Value) -> Option<Violation> {
    let names = containers_where(spec, |c| {
        container_sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
    });
    (!names.is_empty()).then(|| {
        Violation::new(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                pluralize("container", "containers", &names)
            ),
        )
    })
}

pub fn capabilities(spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps: Vec<String> = Vec::new();
    for c in containers(spec) {
        let list = |field: &str| -> Vec<String> {
            c.pointer(&format!("/securityContext/capabilities/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        if !list("drop").iter().any(|d| d == "ALL") {
            missing_drop.push(name(c).to_owned());
        }
        let extra: Vec<String> = list("add")
            .into_iter()
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c).to_owned());
            caps.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            pluralize("container", "containers", &missing_drop)
        ));
    }
    if !adding.is_empty() {
        caps.sort();
        caps.dedup();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", &adding),
            join_quoted(&caps)
        ));
    }
    (!details.is_empty()).then(|| Violation::new("unrestricted capabilities", details.join("; ")))
}

/// The type of a volume source: its one field besides `name`.
fn volume_type(v: &Value) -> Option<&str> {
    v.as_object()?
        .keys()
        .map(String::as_str)
        .find(|k| *k != "name")
}

pub fn volumes(spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types: Vec<String> = Vec::new();
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = volume_type(v).unwrap_or("unknown");
        if !ALLOWED_VOLUMES.contains(&kind) {
            names.push(name(v).to_owned());
            types.push(kind.to_owned());
        }
    }
    if names.is_empty() {
        return None;
    }
    types.sort();
    types.dedup();
    let verb = if names.len() == 1 { "uses" } else { "use" };
    let noun = if types.len() == 1 { "type" } else { "types" };
    Some(Violation::new(
        "restricted volume types",
        format!(
            "{} {verb} restricted volume {noun} {}",
            pluralize("volume", "volumes", &names),
            join_quoted(&types)
        ),
    ))
}

pub fn run_as_non_root(spec: &Value) -> Option<Violation> {
    let mut bad_setters = Vec::new();
    let pod = pod_sc(spec, "runAsNonRoot").and_then(Value::as_bool);
    if pod == Some(false) {
        bad_setters.push("pod".to_owned());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match container_sc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(name(c).to_owned()),
            Some(true) => {}
            None if pod != Some(true) => implicit.push(name(c).to_owned()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(pluralize("container", "containers", &explicit));
    }
    if !bad_setters.is_empty() {
        return Some(Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        Violation::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                pluralize("container", "containers", &implicit)
            ),
        )
    })
}

pub fn run_as_user(spec: &Value) -> Option<Violation> {
    let mut bad_setters = Vec::new();
    if pod_sc(spec, "runAsUser").and_then(Value::as_i64) == Some(0) {
        bad_setters.push("pod".to_owned());
    }
    let names = containers_where(spec, |c| {
        container_sc(c, "runAsUser").and_then(Value::as_i64) == Some(0)
    });
    if !names.is_empty() {
        bad_setters.push(pluralize("container", "containers", &names));
    }
    (!bad_setters.is_empty()).then(|| {
        Violation::new(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", bad_setters.join(" and ")),
        )
    })
}

fn seccomp_type(profile: Option<&Value>) -> Option<&str> {
    profile.map(|p| p.get("type").and_then(Value::as_str).unwrap_or_default())
}

fn confined(kind: &str) -> bool {
    kind == "RuntimeDefault" || kind == "Localhost"
}

pub fn seccomp(spec: &Value) -> Option<Violation> {
    let mut bad_setters = Vec::new();
    let mut bad_values: Vec<String> = Vec::new();
    let pod = seccomp_type(pod_sc(spec, "seccompProfile"));
    let pod_set = pod.is_some_and(confined);
    if let Some(kind) = pod.filter(|k| !confined(k)) {
        bad_setters.push("pod".to_owned());
        bad_values.push(kind.to_owned());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match seccomp_type(container_sc(c, "seccompProfile")) {
            Some(kind) if !confined(kind) => {
                explicit.push(name(c).to_owned());
                bad_values.push(kind.to_owned());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(name(c).to_owned()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(pluralize("container", "containers", &explicit));
    }
    if !bad_setters.is_empty() {
        bad_values.sort();
        bad_values.dedup();
        return Some(Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad_setters.join(" and "),
                join_quoted(&bad_values)
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                pluralize("container", "containers", &implicit)
            ),
        )
    })
}
