use std::collections::BTreeSet;

use super::*;
use crate::attributes::Attributes;
use crate::objects::{BindingObject, RoleObject};
use crate::policy::{Policy, RbacKind};
use crate::user::UserInfo;

fn bootstrap() -> Policy {
    let mut p = Policy::new();
    for obj in bootstrap_policy() {
        p.upsert_object(&obj).unwrap();
    }
    p
}

/// Binds a bootstrap ClusterRole to `user` in namespace `ns`.
fn bind_in(p: &mut Policy, role: &str, user: &str, ns: &str) {
    p.upsert(
        RbacKind::RoleBinding,
        &json!({
            "metadata": {"name": format!("{role}-{user}"), "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": user}]
        }),
    )
    .unwrap();
}

fn can(p: &Policy, user: &str, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let u = UserInfo::new(user, &["system:authenticated"]);
    p.authorize(&Attributes::resource(u, verb, group, resource).in_namespace(ns))
        .is_allowed()
}

#[test]
fn objects_are_well_formed() {
    let objects = bootstrap_policy();
    let mut names = BTreeSet::new();
    for obj in &objects {
        assert_eq!(obj["apiVersion"], RBAC_API_VERSION);
        let kind = obj["kind"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(
            names.insert((kind.to_string(), name.to_string())),
            "duplicate {kind} {name}"
        );
        assert_eq!(
            obj["metadata"]["annotations"][AUTOUPDATE_ANNOTATION],
            "true"
        );
        assert_eq!(
            obj["metadata"]["labels"][BOOTSTRAP_LABEL.0],
            BOOTSTRAP_LABEL.1
        );
        match kind {
            "ClusterRole" => {
                let role: RoleObject = serde_json::from_value(obj.clone()).unwrap();
                assert!(!role.rules.is_empty(), "{name} has no rules");
            }
            "ClusterRoleBinding" => {
                let b: BindingObject = serde_json::from_value(obj.clone()).unwrap();
                assert!(!b.subjects.is_empty());
                assert!(names.contains(&("ClusterRole".to_string(), b.role_ref.name.clone())));
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    for required in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:node",
        "system:node-proxier",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:auth-delegator",
        "system:monitoring",
    ] {
        assert!(
            names.contains(&("ClusterRole".into(), required.into())),
            "{required}"
        );
    }
    assert!(!names.contains(&("ClusterRoleBinding".into(), "system:node".into())));
    // aggregated rules are pre-filled, so the controller has nothing to do
    let roles: Vec<Value> = objects
        .into_iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .collect();
    assert!(aggregate(&roles).is_empty());
}

#[test]
fn cluster_admin_is_bound_to_system_masters() {
    let p = bootstrap();
    let root = UserInfo::new("root", &["system:masters"]);
    let d = p.authorize(&Attributes::resource(root.clone(), "delete", "", "nodes").named("n1"));
    assert_eq!(
        d.reason(),
        r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
    );
    assert!(
        p.authorize(&Attributes::non_resource(root, "post", "/anything"))
            .is_allowed()
    );
    assert!(!can(&p, "bob", "list", "", "nodes", ""));
}

#[test]
fn view_edit_admin() {
    let mut p = bootstrap();
    bind_in(&mut p, "view", "viewer", "dev");
    bind_in(&mut p, "edit", "editor", "dev");
    bind_in(&mut p, "admin", "owner", "dev");

    assert!(can(&p, "viewer", "list", "", "pods", "dev"));
    assert!(can(&p, "viewer", "watch", "apps", "deployments", "dev"));
    assert!(!can(&p, "viewer", "delete", "", "pods", "dev"));
    assert!(!can(&p, "viewer", "get", "", "secrets", "dev"));
    assert!(!can(&p, "viewer", "list", "", "pods", "prod"));

    assert!(can(&p, "editor", "get", "", "secrets", "dev"));
    assert!(can(&p, "editor", "delete", "", "pods", "dev"));
    assert!(can(&p, "editor", "create", "batch", "jobs", "dev"));
    assert!(can(&p, "editor", "list", "", "pods", "dev"));
    assert!(!can(
        &p,
        "editor",
        "create",
        RBAC_GROUP,
        "rolebindings",
        "dev"
    ));

    assert!(can(
        &p,
        "owner",
        "create",
        RBAC_GROUP,
        "rolebindings",
        "dev"
    ));
    assert!(can(&p, "owner", "get", "", "secrets", "dev"));
    assert!(!can(&p, "owner", "list", "", "nodes", ""));

    let exec = Attributes::resource(UserInfo::new("editor", &[]), "create", "", "pods")
        .in_namespace("dev")
        .named("web")
        .with_subresource("exec");
    assert!(p.authorize(&exec).is_allowed());
}

#[test]
fn everyone_can_discover_and_review_themselves() {
    let p = bootstrap();
    let bob = UserInfo::new("bob", &["system:authenticated"]);
    for path in [
        "/api",
        "/apis/apps/v1",
        "/version",
        "/healthz",
        "/openapi/v3",
    ] {
        assert!(
            p.authorize(&Attributes::non_resource(bob.clone(), "get", path))
                .is_allowed(),
            "{path}"
        );
    }
    assert!(
        !p.authorize(&Attributes::non_resource(bob.clone(), "get", "/metrics"))
            .is_allowed()
    );
    let anon = UserInfo::new("system:anonymous", &["system:unauthenticated"]);
    assert!(
        p.authorize(&Attributes::non_resource(anon.clone(), "get", "/livez"))
            .is_allowed()
    );
    assert!(
        !p.authorize(&Attributes::non_resource(anon, "get", "/api"))
            .is_allowed()
    );
    assert!(can(
        &p,
        "bob",
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        ""
    ));
    assert!(can(
        &p,
        "bob",
        "create",
        "authentication.k8s.io",
        "selfsubjectreviews",
        ""
    ));
}

#[test]
fn system_components() {
    let p = bootstrap();
    let as_user = |name: &str| UserInfo::new(name, &["system:authenticated"]);
    let allowed = |u: &str, verb: &str, group: &str, res: &str, ns: &str| {
        p.authorize(&Attributes::resource(as_user(u), verb, group, res).in_namespace(ns))
            .is_allowed()
    };
    assert!(allowed(
        "system:kube-proxy",
        "watch",
        DISCOVERY,
        "endpointslices",
        ""
    ));
    assert!(!allowed("system:kube-proxy", "update", "", "services", ""));
    assert!(allowed(
        "system:kube-scheduler",
        "create",
        "",
        "bindings",
        "x"
    ));
    let bind = Attributes::resource(as_user("system:kube-scheduler"), "create", "", "pods")
        .in_namespace("x")
        .named("p")
        .with_subresource("binding");
    assert!(p.authorize(&bind).is_allowed());
    assert!(allowed(
        "system:kube-controller-manager",
        "delete",
        "apps",
        "replicasets",
        "x"
    ));
    assert!(!allowed(
        "system:kube-controller-manager",
        "escalate",
        RBAC_GROUP,
        "clusterroles",
        ""
    ));
    let mon = UserInfo::new("m", &["system:monitoring"]);
    assert!(
        p.authorize(&Attributes::non_resource(mon, "get", "/metrics"))
            .is_allowed()
    );
}
