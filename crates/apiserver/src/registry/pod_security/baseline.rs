//! The `baseline` Pod Security Standard (current upstream version): no
//! known privilege escalations — host namespaces, privileged containers,
//! extra capabilities, hostPath volumes, host ports, unconfined AppArmor,
//! custom SELinux types, unmasked /proc, unconfined seccomp, unsafe sysctls
//! and Windows host processes are refused. In upstream's check order.

use serde_json::Value;

use super::spec::{
    Violation, container_sc, containers, containers_where, join_quoted, name, pluralize, pod_sc,
};

/// Capabilities a baseline container may add (the container runtime's
/// defaults).
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Namespaced sysctls known to be safe.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

pub fn app_armor(pod: &Value, spec: &Value) -> Option<Violation> {
    let mut bad: Vec<String> = Vec::new();
    let forbidden_type = |p: Option<&Value>| {
        p.and_then(|p| p.get("type")).and_then(Value::as_str) == Some("Unconfined")
    };
    if forbidden_type(pod_sc(spec, "appArmorProfile")) {
        bad.push("Unconfined".into());
    }
    for c in containers(spec) {
        if forbidden_type(container_sc(c, "appArmorProfile"))
            && !bad.iter().any(|b| b == "Unconfined")
        {
            bad.push("Unconfined".into());
        }
    }
    if let Some(annotations) = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (key, value) in annotations {
            let value = value.as_str().unwrap_or_default();
            let profile_ok =
                value.is_empty() || value == "runtime/default" || value.starts_with("localhost/");
            if key.starts_with("container.apparmor.security.beta.kubernetes.io/") && !profile_ok {
                bad.push(value.to_owned());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    bad.sort();
    bad.dedup();
    let reason = if bad.len() == 1 {
        "forbidden AppArmor profile"
    } else {
        "forbidden AppArmor profiles"
    };
    Some(Violation::new(reason, join_quoted(&bad)))
}

pub fn capabilities(spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut caps: Vec<String> = Vec::new();
    for c in containers(spec) {
        let added = strings(c.pointer("/securityContext/capabilities/add"));
        let extra: Vec<String> = added
            .into_iter()
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(&cap.as_str()))
            .collect();
        if !extra.is_empty() {
            names.push(name(c).to_owned());
            caps.extend(extra);
        }
    }
    if names.is_empty() {
        return None;
    }
    caps.sort();
    caps.dedup();
    Some(Violation::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", &names),
            join_quoted(&caps)
        ),
    ))
}

pub fn host_namespaces(spec: &Value) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| is_true(spec.get(**f)))
        .map(|f| format!("{f}=true"))
        .collect();
    (!set.is_empty()).then(|| Violation::new("host namespaces", set.join(", ")))
}

pub fn host_path_volumes(spec: &Value) -> Option<Violation> {
    let names: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| name(v).to_owned())
        .collect();
    (!names.is_empty())
        .then(|| Violation::new("hostPath volumes", pluralize("volume", "volumes", &names)))
}

pub fn host_ports(spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut ports: Vec<String> = Vec::new();
    for c in containers(spec) {
        let used: Vec<i64> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            names.push(name(c).to_owned());
            ports.extend(used.iter().map(i64::to_string));
        }
    }
    if names.is_empty() {
        return None;
    }
    let (verb, noun) = if names.len() == 1 {
        ("uses", "hostPort")
    } else {
        ("use", "hostPorts")
    };
    let noun = if ports.len() > 1 { "hostPorts" } else { noun };
    Some(Violation::new(
        "hostPort",
        format!(
            "{} {verb} {noun} {}",
            pluralize("container", "containers", &names),
            ports.join(", ")
        ),
    ))
}

pub fn privileged(spec: &Value) -> Option<Violation> {
    let names = containers_where(spec, |c| is_true(container_sc(c, "privileged")));
    (!names.is_empty()).then(|| {
        Violation::new(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                pluralize("container", "containers", &names)
            ),
        )
    })
}

pub fn proc_mount(spec: &Value) -> Option<Violation> {
    let mut values: Vec<String> = Vec::new();
    let names = containers_where(spec, |c| {
        let mount = container_sc(c, "procMount").and_then(Value::as_str);
        matches!(mount, Some(m) if m != "Default")
    });
    for c in containers(spec) {
        if let Some(m) = container_sc(c, "procMount").and_then(Value::as_str)
            && m != "Default"
            && !values.iter().any(|v| v == m)
        {
            values.push(m.to_owned());
        }
    }
    (!names.is_empty()).then(|| {
        Violation::new(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                pluralize("container", "containers", &names),
                join_quoted(&values)
            ),
        )
    })
}

pub fn selinux(spec: &Value) -> Option<Violation> {
    let mut types: Vec<String> = Vec::new();
    let mut users = false;
    let mut roles = false;
    let mut check = |opts: Option<&Value>| -> bool {
        let Some(opts) = opts else { return false };
        let field = |k: &str| {
            opts.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut bad = false;
        let t = field("type");
        if !SELINUX_TYPES.contains(&t.as_str()) {
            if !types.contains(&t) {
                types.push(t);
            }
            bad = true;
        }
        if !field("user").is_empty() {
            users = true;
            bad = true;
        }
        if !field("role").is_empty() {
            roles = true;
            bad = true;
        }
        bad
    };
    let pod_bad = check(pod_sc(spec, "seLinuxOptions"));
    let names: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| check(container_sc(c, "seLinuxOptions")))
        .map(|c| name(c).to_owned())
        .collect();
    if !pod_bad && names.is_empty() {
        return None;
    }
    let who = match (pod_bad, names.is_empty()) {
        (true, true) => "pod".to_owned(),
        (true, false) => format!("pod and {}", pluralize("container", "containers", &names)),
        _ => pluralize("container", "containers", &names),
    };
    let mut what = Vec::new();
    if !types.is_empty() {
        what.push(format!(
            "{} {}",
            if types.len() == 1 { "type" } else { "types" },
            join_quoted(&types)
        ));
    }
    if users {
        what.push("user may not be set".to_owned());
    }
    if roles {
        what.push("role may not be set".to_owned());
    }
    Some(Violation::new(
        "seLinuxOptions",
        format!(
            "{who} set forbidden securityContext.seLinuxOptions: {}",
            what.join("; ")
        ),
    ))
}

fn unconfined(profile: Option<&Value>) -> bool {
    profile.and_then(|p| p.get("type")).and_then(Value::as_str) == Some("Unconfined")
}

pub fn seccomp(spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    if unconfined(pod_sc(spec, "seccompProfile")) {
        setters.push("pod".to_owned());
    }
    let names = containers_where(spec, |c| unconfined(container_sc(c, "seccompProfile")));
    if !names.is_empty() {
        setters.push(pluralize("container", "containers", &names));
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                setters.join(" and ")
            ),
        )
    })
}

pub fn sysctls(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = pod_sc(spec, "sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_owned)
        .collect();
    (!bad.is_empty()).then(|| Violation::new("forbidden sysctls", bad.join(", ")))
}

pub fn host_process(spec: &Value) -> Option<Violation> {
    let host_process = |v: Option<&Value>| is_true(v.and_then(|w| w.get("hostProcess")));
    let pod = host_process(pod_sc(spec, "windowsOptions"));
    let names = containers_where(spec, |c| host_process(container_sc(c, "windowsOptions")));
    if !pod && names.is_empty() {
        return None;
    }
    let who = match (pod, names.is_empty()) {
        (true, true) => "pod".to_owned(),
        (true, false) => format!("pod and {}", pluralize("container", "containers", &names)),
        _ => pluralize("container", "containers", &names),
    };
    Some(Violation::new(
        "hostProcess",
        format!("{who} must not set securityContext.windowsOptions.hostProcess=true"),
    ))
}
