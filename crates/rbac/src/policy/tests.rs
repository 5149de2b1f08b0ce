use serde_json::{Value, json};

use super::*;
use crate::user::service_account_username;

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({
        "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects
    })
}

fn cluster_binding(name: &str, role: &str, subjects: Value) -> Value {
    json!({
        "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects
    })
}

fn policy(objects: &[Value]) -> Policy {
    let mut p = Policy::new();
    for o in objects {
        p.upsert_object(o).unwrap();
    }
    p
}

fn bob() -> UserInfo {
    UserInfo::new("bob", &["system:authenticated"])
}

fn pods(user: UserInfo, verb: &str, ns: &str) -> Attributes {
    Attributes::resource(user, verb, "", "pods").in_namespace(ns)
}

const READ_PODS: &str = r#"[{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]"#;

fn read_pods() -> Value {
    serde_json::from_str(READ_PODS).unwrap()
}

#[test]
fn role_binding_grants_only_in_its_namespace() {
    let p = policy(&[
        role("dev", "reader", read_pods()),
        role_binding(
            "dev",
            "rb",
            "Role",
            "reader",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    let d = p.authorize(&pods(bob(), "get", "dev"));
    assert_eq!(
        d,
        Decision::Allow {
            reason: r#"RBAC: allowed by RoleBinding "rb/dev" of Role "reader" to User "bob""#
                .into()
        }
    );
    assert!(!p.authorize(&pods(bob(), "delete", "dev")).is_allowed());
    assert!(!p.authorize(&pods(bob(), "get", "prod")).is_allowed());
    assert!(!p.authorize(&pods(bob(), "list", "")).is_allowed());
    let alice = UserInfo::new("alice", &[]);
    assert!(!p.authorize(&pods(alice, "get", "dev")).is_allowed());
}

#[test]
fn role_binding_to_cluster_role_is_scoped_to_namespace() {
    let p = policy(&[
        cluster_role("pod-reader", read_pods()),
        role_binding(
            "dev",
            "rb",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    assert!(p.authorize(&pods(bob(), "list", "dev")).is_allowed());
    assert!(!p.authorize(&pods(bob(), "list", "prod")).is_allowed());
    assert!(!p.authorize(&pods(bob(), "list", "")).is_allowed());
}

#[test]
fn cluster_role_binding_applies_everywhere_and_to_groups() {
    let p = policy(&[
        cluster_role("pod-reader", read_pods()),
        cluster_binding(
            "crb",
            "pod-reader",
            json!([{"kind": "Group", "name": "readers"}]),
        ),
    ]);
    let carol = UserInfo::new("carol", &["readers"]);
    assert!(
        p.authorize(&pods(carol.clone(), "list", "any"))
            .is_allowed()
    );
    assert!(p.authorize(&pods(carol, "list", "")).is_allowed());
    assert!(!p.authorize(&pods(bob(), "list", "any")).is_allowed());
}

#[test]
fn service_account_subjects() {
    let p = policy(&[
        role("dev", "reader", read_pods()),
        // namespace defaults to the binding's namespace
        role_binding(
            "dev",
            "rb",
            "Role",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
        cluster_role("pod-reader", read_pods()),
        cluster_binding(
            "crb",
            "pod-reader",
            json!([
                {"kind": "ServiceAccount", "name": "mon", "namespace": "monitoring"},
                // no namespace in a ClusterRoleBinding: matches nobody
                {"kind": "ServiceAccount", "name": "ghost"}
            ]),
        ),
    ]);
    let sa = |ns: &str, name: &str| {
        UserInfo::new(
            service_account_username(ns, name),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{ns}"),
            ],
        )
    };
    assert!(
        p.authorize(&pods(sa("dev", "builder"), "get", "dev"))
            .is_allowed()
    );
    assert!(
        !p.authorize(&pods(sa("other", "builder"), "get", "dev"))
            .is_allowed()
    );
    let d = p.authorize(&pods(sa("monitoring", "mon"), "get", "x"));
    assert_eq!(
        d.reason(),
        r#"RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "pod-reader" to ServiceAccount "mon/monitoring""#
    );
    assert!(
        !p.authorize(&pods(
            UserInfo::new("system:serviceaccount::ghost", &[]),
            "get",
            "x"
        ))
        .is_allowed()
    );
}

#[test]
fn service_account_groups_are_plain_groups() {
    let p = policy(&[
        cluster_role("pod-reader", read_pods()),
        role_binding(
            "dev",
            "all-sas",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "Group", "name": "system:serviceaccounts:dev"}]),
        ),
    ]);
    let sa = UserInfo::new(
        "system:serviceaccount:dev:x",
        &["system:serviceaccounts:dev"],
    );
    assert!(p.authorize(&pods(sa, "get", "dev")).is_allowed());
}

#[test]
fn resource_names_with_list() {
    let p = policy(&[
        role(
            "dev",
            "one",
            json!([{"verbs": ["get", "list", "watch"], "apiGroups": [""],
            "resources": ["configmaps"], "resourceNames": ["app"]}]),
        ),
        role_binding(
            "dev",
            "rb",
            "Role",
            "one",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    let cm = |verb: &str| Attributes::resource(bob(), verb, "", "configmaps").in_namespace("dev");
    assert!(p.authorize(&cm("get").named("app")).is_allowed());
    assert!(p.authorize(&cm("watch").named("app")).is_allowed());
    assert!(!p.authorize(&cm("get").named("other")).is_allowed());
    assert!(!p.authorize(&cm("list")).is_allowed());
}

#[test]
fn non_resource_urls_only_via_cluster_role_bindings() {
    let rules = json!([{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/logs/*"]}]);
    let p = policy(&[
        cluster_role("metrics", rules),
        cluster_binding("crb", "metrics", json!([{"kind": "User", "name": "prom"}])),
        role_binding(
            "dev",
            "rb",
            "ClusterRole",
            "metrics",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    let get = |u: &str, path: &str| Attributes::non_resource(UserInfo::new(u, &[]), "get", path);
    assert!(p.authorize(&get("prom", "/metrics")).is_allowed());
    assert!(p.authorize(&get("prom", "/logs/kubelet.log")).is_allowed());
    assert!(!p.authorize(&get("prom", "/metrics/extra")).is_allowed());
    assert!(!p.authorize(&get("bob", "/metrics")).is_allowed());
}

#[test]
fn missing_role_grants_nothing_and_is_reported() {
    let p = policy(&[
        role_binding(
            "dev",
            "rb",
            "Role",
            "nope",
            json!([{"kind": "User", "name": "bob"}]),
        ),
        cluster_binding("crb", "gone", json!([{"kind": "User", "name": "bob"}])),
    ]);
    let d = p.authorize(&pods(bob(), "get", "dev"));
    assert_eq!(
        d,
        Decision::NoOpinion {
            reason: r#"RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "nope" not found]"#.into()
        }
    );
    assert_eq!(
        p.authorize(&pods(UserInfo::new("x", &[]), "get", "dev"))
            .reason(),
        ""
    );
}

#[test]
fn incremental_updates_and_removal() {
    let mut p = policy(&[
        cluster_role("pod-reader", read_pods()),
        cluster_binding(
            "crb",
            "pod-reader",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    assert!(p.authorize(&pods(bob(), "get", "x")).is_allowed());
    // re-point the binding at another subject: old index entries must go
    p.upsert_object(&cluster_binding(
        "crb",
        "pod-reader",
        json!([{"kind": "User", "name": "eve"}]),
    ))
    .unwrap();
    assert!(!p.authorize(&pods(bob(), "get", "x")).is_allowed());
    assert!(
        p.authorize(&pods(UserInfo::new("eve", &[]), "get", "x"))
            .is_allowed()
    );
    // a later-created role takes effect for an existing binding
    p.remove(RbacKind::ClusterRole, "", "pod-reader");
    assert!(
        !p.authorize(&pods(UserInfo::new("eve", &[]), "get", "x"))
            .is_allowed()
    );
    p.upsert(
        RbacKind::ClusterRole,
        &cluster_role("pod-reader", read_pods()),
    )
    .unwrap();
    assert!(
        p.authorize(&pods(UserInfo::new("eve", &[]), "get", "x"))
            .is_allowed()
    );
    p.remove(RbacKind::ClusterRoleBinding, "", "crb");
    assert!(
        !p.authorize(&pods(UserInfo::new("eve", &[]), "get", "x"))
            .is_allowed()
    );
    assert!(p.users.is_empty() && p.groups.is_empty() && p.bindings.is_empty());
}

#[test]
fn rejects_malformed_objects() {
    let mut p = Policy::new();
    assert!(matches!(
        p.upsert_object(&json!({"kind": "Pod", "metadata": {"name": "x"}})),
        Err(PolicyError::UnsupportedKind(_))
    ));
    assert!(matches!(
        p.upsert(RbacKind::Role, &json!({"metadata": {"name": "x"}})),
        Err(PolicyError::MissingNamespace { .. })
    ));
    assert!(matches!(
        p.upsert(
            RbacKind::ClusterRoleBinding,
            &json!({"metadata": {"name": "x"}})
        ),
        Err(PolicyError::Malformed { .. })
    ));
}

#[test]
fn from_objects_and_rules_for() {
    let p = Policy::from_objects(
        &[role("dev", "reader", read_pods())],
        &[cluster_role(
            "health",
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
        )],
        &[role_binding(
            "dev",
            "rb",
            "Role",
            "reader",
            json!([{"kind": "User", "name": "bob"}]),
        )],
        &[
            cluster_binding(
                "crb",
                "health",
                json!([{"kind": "Group", "name": "system:authenticated"}]),
            ),
            cluster_binding(
                "broken",
                "missing",
                json!([{"kind": "User", "name": "bob"}]),
            ),
        ],
    )
    .unwrap();
    let rules = p.rules_for(&bob(), "dev");
    assert_eq!(
        rules.resource_rules,
        vec![ResourceRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            resource_names: vec![],
        }]
    );
    assert_eq!(
        rules.non_resource_rules,
        vec![NonResourceRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz".into()]
        }]
    );
    assert!(!rules.incomplete);
    assert_eq!(
        rules.evaluation_error.as_deref(),
        Some(r#"clusterrole.rbac.authorization.k8s.io "missing" not found"#)
    );
    assert!(p.rules_for(&bob(), "prod").resource_rules.is_empty());
}
