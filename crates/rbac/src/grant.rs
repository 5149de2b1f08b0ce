//! Whether a user may write a role or binding: the checks upstream's RBAC
//! registry runs before storing one, so RBAC cannot be used to escalate.

use crate::attributes::Attributes;
use crate::escalation::{EscalationError, escalation_allowed};
use crate::objects::RoleRef;
use crate::policy::{Policy, RbacKind};
use crate::rule::PolicyRule;
use crate::user::UserInfo;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The `escalate` request that lets a user write a role granting more than
/// they hold (upstream's `RoleEscalationAuthorized`).
pub fn escalate_attributes(
    user: &UserInfo,
    kind: RbacKind,
    namespace: &str,
    name: &str,
) -> Attributes {
    let resource = match kind {
        RbacKind::Role | RbacKind::RoleBinding => "roles",
        RbacKind::ClusterRole | RbacKind::ClusterRoleBinding => "clusterroles",
    };
    Attributes::resource(user.clone(), "escalate", RBAC_GROUP, resource)
        .with_version("v1")
        .in_namespace(namespace)
        .named(name)
}

/// The `bind` request that lets a user bind a role they do not fully hold,
/// checked in the binding's namespace ("" for ClusterRoleBindings), as
/// upstream's `BindingAuthorized`. `None` for an unknown roleRef kind.
pub fn bind_attributes(
    user: &UserInfo,
    binding_namespace: &str,
    role_ref: &RoleRef,
) -> Option<Attributes> {
    let resource = match role_ref.kind.as_str() {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        _ => return None,
    };
    Some(
        Attributes::resource(user.clone(), "bind", &role_ref.api_group, resource)
            .in_namespace(binding_namespace)
            .named(&role_ref.name),
    )
}

impl Policy {
    /// May `user` create or update the Role/ClusterRole `name` (in
    /// `namespace`, "" for ClusterRoles) with `rules`? Allowed for
    /// `system:masters`, for holders of `escalate` on it, and otherwise only
    /// if the user already holds every rule. Setting an `aggregationRule`
    /// requires cluster-admin-level permissions, as upstream.
    ///
    /// On refusal the API server answers 403 with
    /// `<roles|clusterroles>.rbac.authorization.k8s.io "<name>" is forbidden: <error>`.
    pub fn check_role_write(
        &self,
        user: &UserInfo,
        kind: RbacKind,
        namespace: &str,
        name: &str,
        rules: &[PolicyRule],
        has_aggregation_rule: bool,
    ) -> Result<(), EscalationError> {
        if escalation_allowed(user)
            || self
                .authorize(&escalate_attributes(user, kind, namespace, name))
                .is_allowed()
        {
            return Ok(());
        }
        if has_aggregation_rule {
            let full_authority = [
                PolicyRule::new(&["*"]).groups(&["*"]).resources(&["*"]),
                PolicyRule::new(&["*"]).urls(&["*"]),
            ];
            if self
                .confirm_no_escalation(user, namespace, &full_authority)
                .is_err()
            {
                return Err(EscalationError {
                    missing: Vec::new(),
                    message: "must have cluster-admin privileges to use the aggregationRule".into(),
                });
            }
        }
        self.confirm_no_escalation(user, namespace, rules)
    }

    /// May `user` create or update a binding in `binding_namespace` ("" for
    /// ClusterRoleBindings) to `role_ref`? Allowed for `system:masters`,
    /// holders of `bind` on the role, and users who hold all its rules. A
    /// missing role is refused with its NotFound message, as upstream.
    pub fn check_binding_write(
        &self,
        user: &UserInfo,
        binding_namespace: &str,
        role_ref: &RoleRef,
    ) -> Result<(), EscalationError> {
        if escalation_allowed(user) {
            return Ok(());
        }
        if let Some(attrs) = bind_attributes(user, binding_namespace, role_ref)
            && self.authorize(&attrs).is_allowed()
        {
            return Ok(());
        }
        let rules = self
            .role_ref_rules(role_ref, binding_namespace)
            .map_err(|message| EscalationError {
                missing: Vec::new(),
                message,
            })?;
        self.confirm_no_escalation(user, binding_namespace, rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        let mut p = Policy::new();
        for obj in crate::bootstrap::bootstrap_policy() {
            p.upsert_object(&obj).unwrap();
        }
        let bind = |name: &str, role: &str, user: &str| {
            json!({
                "kind": "RoleBinding", "metadata": {"name": name, "namespace": "dev"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": user}]
            })
        };
        p.upsert_object(&bind("owner", "admin", "owner")).unwrap();
        p.upsert_object(&bind("viewer", "view", "viewer")).unwrap();
        p.upsert_object(&json!({
            "kind": "ClusterRole", "metadata": {"name": "binder"},
            "rules": [{"verbs": ["bind"], "apiGroups": [RBAC_GROUP],
                       "resources": ["clusterroles"], "resourceNames": ["edit"]}]
        }))
        .unwrap();
        p.upsert_object(&bind("binder", "binder", "viewer"))
            .unwrap();
        p
    }

    fn cluster_role_ref(name: &str) -> RoleRef {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        }
    }

    #[test]
    fn role_writes() {
        let p = policy();
        let owner = UserInfo::new("owner", &[]);
        let pods = [PolicyRule::new(&["get", "delete"])
            .groups(&[""])
            .resources(&["pods"])];
        let nodes = [PolicyRule::new(&["get"])
            .groups(&[""])
            .resources(&["nodes"])];
        let write = |user: &UserInfo, kind, ns: &str, rules: &[PolicyRule], agg| {
            p.check_role_write(user, kind, ns, "r", rules, agg)
        };
        assert!(write(&owner, RbacKind::Role, "dev", &pods, false).is_ok());
        assert!(write(&owner, RbacKind::Role, "prod", &pods, false).is_err());
        assert!(write(&owner, RbacKind::Role, "dev", &nodes, false).is_err());
        let err = write(&owner, RbacKind::ClusterRole, "", &[], true).unwrap_err();
        assert_eq!(
            err.message,
            "must have cluster-admin privileges to use the aggregationRule"
        );
        let root = UserInfo::new("root", &["system:masters"]);
        assert!(write(&root, RbacKind::ClusterRole, "", &nodes, true).is_ok());
    }

    #[test]
    fn binding_writes() {
        let p = policy();
        let owner = UserInfo::new("owner", &[]);
        let viewer = UserInfo::new("viewer", &[]);
        let check = |u: &UserInfo, ns: &str, role: &str| {
            p.check_binding_write(u, ns, &cluster_role_ref(role))
        };
        // admin holds everything edit grants in dev, but not cluster-wide
        assert!(check(&owner, "dev", "edit").is_ok());
        assert!(check(&owner, "", "edit").is_err());
        assert!(check(&owner, "dev", "cluster-admin").is_err());
        // viewer lacks edit's rules but holds `bind` on it in dev
        assert!(check(&viewer, "dev", "edit").is_ok());
        assert!(check(&viewer, "dev", "admin").is_err());
        let err = check(&owner, "dev", "nope").unwrap_err();
        assert_eq!(
            err.message,
            r#"clusterrole.rbac.authorization.k8s.io "nope" not found"#
        );
    }
}
