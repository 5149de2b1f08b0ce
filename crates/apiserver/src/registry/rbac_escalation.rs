//! Upstream's RBAC escalation prevention on Role, ClusterRole, RoleBinding
//! and ClusterRoleBinding writes: a user may only grant what they already
//! hold, unless they may `escalate` the role (or `bind` the bound role),
//! or are in `system:masters`. The rules are `skiff_rbac`'s
//! (`check_role_write`, `check_binding_write`); this module feeds them the
//! requesting user and the current policy.
//!
//! Writes the server makes itself (outside any request, see
//! [`super::requester`]) are not checked, like upstream's loopback client
//! in `system:masters`.

use serde_json::Value;
use skiff_rbac::{Policy, RbacKind, RoleRef};

use super::forbidden::forbidden;
use super::{Query, Registry, Target};
use crate::status::ApiError;

fn rbac_kind(t: &Target<'_>) -> Option<RbacKind> {
    if t.r.group != "rbac.authorization.k8s.io" {
        return None;
    }
    RbacKind::from_kind(&t.r.kind)
}

fn rules(obj: &Value) -> Vec<skiff_rbac::PolicyRule> {
    obj.get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

impl Registry {
    /// The policy as the stored roles and bindings make it now.
    async fn current_policy(&self) -> Result<Policy, ApiError> {
        let mut lists: Vec<Vec<Value>> = Vec::with_capacity(4);
        for plural in [
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ] {
            let Some(r) = self
                .resources
                .find("rbac.authorization.k8s.io", "v1", plural)
            else {
                lists.push(Vec::new());
                continue;
            };
            let all = Target {
                r: &r,
                namespace: None,
                name: None,
            };
            lists.push(self.list_page(&all, &Query::new()).await?.items);
        }
        Policy::from_objects(&lists[0], &lists[1], &lists[2], &lists[3])
            .map_err(|e| ApiError::internal(format!("building the RBAC policy: {e}")))
    }

    /// Refuses (403) a role or binding the requesting user may not write.
    pub(super) async fn check_rbac_escalation(
        &self,
        t: &Target<'_>,
        obj: &Value,
    ) -> Result<(), ApiError> {
        let Some(kind) = rbac_kind(t) else {
            return Ok(());
        };
        let Some(user) = super::requester::current() else {
            return Ok(());
        };
        if skiff_rbac::escalation_allowed(&user) {
            return Ok(());
        }
        let policy = self.current_policy().await?;
        let namespace = t.namespace.as_deref().unwrap_or_default();
        let name = t.name.as_deref().unwrap_or_default();
        let result = match kind {
            RbacKind::Role | RbacKind::ClusterRole => policy.check_role_write(
                &user,
                kind,
                namespace,
                name,
                &rules(obj),
                obj.get("aggregationRule").is_some_and(|a| !a.is_null()),
            ),
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                let Some(role_ref) = obj
                    .get("roleRef")
                    .cloned()
                    .and_then(|r| serde_json::from_value::<RoleRef>(r).ok())
                else {
                    return Ok(());
                };
                policy.check_binding_write(&user, namespace, &role_ref)
            }
        };
        result.map_err(|e| forbidden(&t.r.plural, &t.r.group, name, &e.message))
    }
}
