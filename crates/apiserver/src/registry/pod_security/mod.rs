//! Upstream's PodSecurity admission: a namespace's labels
//! `pod-security.kubernetes.io/<mode>[-version]` pick a Pod Security
//! Standard level (`privileged`, `baseline`, `restricted`) per mode.
//! `enforce` refuses new pods that violate it (403), `warn` admits them
//! with a `Warning` header kubectl prints, `audit` would annotate audit
//! events (skiff keeps no audit log, so it is accepted and ignored).
//! Workload resources with a pod template (Deployments, Jobs, ...) are
//! only warned about, as upstream: their pods meet `enforce` when created.
//!
//! Every version label is evaluated with the current checks (upstream
//! keeps older variants for pinned versions); the version shows in the
//! messages as given.

mod baseline;
mod restricted;
mod spec;

use serde_json::Value;

pub use spec::Violation;

use super::forbidden::forbidden;
use super::{Registry, Target};
use crate::status::ApiError;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version, as one mode's labels set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: String,
}

impl Policy {
    /// `restricted:latest`, as messages name a policy.
    pub fn label(&self) -> String {
        format!("{}:{}", self.level.as_str(), self.version)
    }
}

fn valid_version(v: &str) -> bool {
    v == "latest"
        || v.strip_prefix("v1.")
            .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

/// The policy of `mode` (`enforce`, `warn`, `audit`) from a namespace's
/// labels; `None` when the mode is not set (privileged). An invalid level
/// or version fails closed to `restricted:latest`, as upstream.
pub fn policy(namespace: &Value, mode: &str) -> Option<Policy> {
    let labels = namespace.pointer("/metadata/labels")?;
    let get = |key: &str| labels.get(key).and_then(Value::as_str);
    let level = get(&format!("{LABEL_PREFIX}{mode}"))?;
    let version = get(&format!("{LABEL_PREFIX}{mode}-version")).unwrap_or("latest");
    match Level::parse(level) {
        Some(level) if valid_version(version) => Some(Policy {
            level,
            version: version.to_owned(),
        }),
        _ => Some(Policy {
            level: Level::Restricted,
            version: "latest".to_owned(),
        }),
    }
}

/// Every check of `level` a pod (its metadata and spec) fails, in
/// upstream's order.
pub fn evaluate(level: Level, metadata: &Value, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let restricted = level == Level::Restricted;
    let pod = serde_json::json!({"metadata": metadata});
    let mut checks = vec![baseline::app_armor(&pod, spec)];
    if !restricted {
        checks.push(baseline::capabilities(spec));
    }
    checks.push(baseline::host_namespaces(spec));
    if !restricted {
        checks.push(baseline::host_path_volumes(spec));
    }
    checks.push(baseline::host_ports(spec));
    checks.push(baseline::privileged(spec));
    checks.push(baseline::proc_mount(spec));
    checks.push(baseline::selinux(spec));
    if !restricted {
        checks.push(baseline::seccomp(spec));
    }
    checks.push(baseline::sysctls(spec));
    checks.push(baseline::host_process(spec));
    if restricted {
        checks.extend([
            restricted::allow_privilege_escalation(spec),
            restricted::capabilities(spec),
            restricted::volumes(spec),
            restricted::run_as_non_root(spec),
            restricted::run_as_user(spec),
            restricted::seccomp(spec),
        ]);
    }
    checks.into_iter().flatten().collect()
}

/// `reason (detail), reason (detail)`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a resource keeps its pod template (metadata and spec), if it has
/// one PodSecurity looks at.
fn template_path(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        ("", "PodTemplate") => Some("/template"),
        _ => None,
    }
}

impl Registry {
    /// PodSecurity on a new object: refuses pods violating the namespace's
    /// `enforce` level; returns the warning texts for `warn`.
    pub(super) async fn admit_pod_security(
        &self,
        t: &Target<'_>,
        obj: &Value,
    ) -> Result<Vec<String>, ApiError> {
        let is_pod = t.r.group.is_empty() && t.r.kind == "Pod";
        let template = if is_pod {
            Some(obj)
        } else {
            template_path(&t.r.group, &t.r.kind).and_then(|p| obj.pointer(p))
        };
        let (Some(template), Some(ns)) = (template, t.namespace.as_deref()) else {
            return Ok(Vec::new());
        };
        let Some(namespace) = self.lookup("namespaces", None, ns).await else {
            return Ok(Vec::new());
        };
        let null = Value::Null;
        let metadata = template.get("metadata").unwrap_or(&null);
        let spec = template.get("spec").unwrap_or(&null);
        let enforce = policy(&namespace, "enforce");
        if is_pod && let Some(p) = &enforce {
            let violations = evaluate(p.level, metadata, spec);
            if !violations.is_empty() {
                return Err(forbidden(
                    "pods",
                    "",
                    t.name.as_deref().unwrap_or_default(),
                    &format!(
                        "violates PodSecurity {:?}: {}",
                        p.label(),
                        describe(&violations)
                    ),
                ));
            }
        }
        let mut warnings = Vec::new();
        let warn = policy(&namespace, "warn");
        // Workloads are warned about their enforce level too.
        let mut levels: Vec<Policy> = warn.into_iter().collect();
        if !is_pod
            && let Some(p) = enforce
            && !levels.contains(&p)
        {
            levels.push(p);
        }
        for p in levels {
            let violations = evaluate(p.level, metadata, spec);
            if !violations.is_empty() {
                warnings.push(format!(
                    "would violate PodSecurity {:?}: {}",
                    p.label(),
                    describe(&violations)
                ));
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(level: Level, spec: &Value) -> String {
        describe(&evaluate(level, &json!({}), spec))
    }

    #[test]
    fn a_plain_pod_is_baseline_but_not_restricted() {
        let spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        assert_eq!(message(Level::Baseline, &spec), "");
        assert_eq!(
            message(Level::Restricted, &spec),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let good = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        });
        assert_eq!(message(Level::Restricted, &good), "");
    }

    #[test]
    fn baseline_checks_in_upstream_order_and_words() {
        let spec = json!({
            "hostPID": true,
            "hostNetwork": true,
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}],
                 "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}},
                {"name": "b", "securityContext": {"procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}},
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        });
        assert_eq!(
            message(Level::Baseline, &spec),
            "non-default capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true, hostPID=true), \
             hostPath volumes (volume \"root\"), \
             hostPort (container \"a\" uses hostPort 8080), \
             privileged (container \"a\" must not set securityContext.privileged=true), \
             procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), \
             seccompProfile (container \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\"), \
             forbidden sysctls (kernel.msgmax)"
        );
        let restricted = message(Level::Restricted, &spec);
        assert!(restricted.contains(
            "restricted volume types (volume \"root\" uses restricted volume type \"hostPath\")"
        ));
        assert!(!restricted.contains("hostPath volumes"));
    }

    #[test]
    fn labels_pick_the_policy() {
        let ns = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.30",
            "pod-security.kubernetes.io/warn": "bogus",
        }}});
        assert_eq!(
            policy(&ns, "enforce").map(|p| p.label()),
            Some("baseline:v1.30".into())
        );
        assert_eq!(
            policy(&ns, "warn").map(|p| p.label()),
            Some("restricted:latest".into())
        );
        assert_eq!(policy(&ns, "audit"), None);
    }
}
