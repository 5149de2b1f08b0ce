//! Upstream's wording for refused requests; clients and e2e tests match on
//! these strings.

use crate::attributes::Attributes;
use crate::quote::go_quote;

/// Why a request is forbidden, e.g. `User "bob" cannot delete resource
/// "pods" in API group "" in the namespace "default"` (upstream's
/// `forbiddenMessage`).
pub fn forbidden_message(attrs: &Attributes) -> String {
    let user = go_quote(&attrs.user.name);
    let verb = &attrs.verb;
    if !attrs.resource_request {
        return format!("User {user} cannot {verb} path {}", go_quote(&attrs.path));
    }
    let resource = go_quote(&attrs.combined_resource());
    let group = go_quote(&attrs.api_group);
    if attrs.namespace.is_empty() {
        format!(
            "User {user} cannot {verb} resource {resource} in API group {group} at the cluster scope"
        )
    } else {
        format!(
            "User {user} cannot {verb} resource {resource} in API group {group} in the namespace {}",
            go_quote(&attrs.namespace)
        )
    }
}

/// The full message of the 403 Status, as upstream's `NewForbidden` builds
/// it: `pods "web" is forbidden: User ...`, `deployments.apps is forbidden:
/// ...` without a name, `forbidden: User ... path ...` for non-resource
/// requests. A non-empty authorizer `reason` is appended after `: `.
pub fn forbidden_status_message(attrs: &Attributes, reason: &str) -> String {
    let mut err = forbidden_message(attrs);
    if !reason.is_empty() {
        err.push_str(": ");
        err.push_str(reason);
    }
    if !attrs.resource_request || attrs.resource.is_empty() {
        return format!("forbidden: {err}");
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {} is forbidden: {err}", go_quote(&attrs.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserInfo;

    fn bob() -> UserInfo {
        UserInfo::new("bob", &["system:authenticated"])
    }

    #[test]
    fn resource_messages() {
        let a = Attributes::resource(bob(), "delete", "", "pods")
            .in_namespace("default")
            .named("web");
        assert_eq!(
            forbidden_message(&a),
            r#"User "bob" cannot delete resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            forbidden_status_message(&a, ""),
            r#"pods "web" is forbidden: User "bob" cannot delete resource "pods" in API group "" in the namespace "default""#
        );
        let exec = Attributes::resource(bob(), "create", "", "pods")
            .in_namespace("default")
            .named("web")
            .with_subresource("exec");
        assert_eq!(
            forbidden_message(&exec),
            r#"User "bob" cannot create resource "pods/exec" in API group "" in the namespace "default""#
        );
        let nodes = Attributes::resource(bob(), "list", "", "nodes");
        assert_eq!(
            forbidden_message(&nodes),
            r#"User "bob" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let deploys = Attributes::resource(bob(), "list", "apps", "deployments").in_namespace("ns");
        assert_eq!(
            forbidden_status_message(
                &deploys,
                "RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
            ),
            "deployments.apps is forbidden: User \"bob\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"ns\": RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
        );
    }

    #[test]
    fn non_resource_messages() {
        let a = Attributes::non_resource(UserInfo::new("x", &[]), "get", "/metrics");
        assert_eq!(
            forbidden_message(&a),
            r#"User "x" cannot get path "/metrics""#
        );
        assert_eq!(
            forbidden_status_message(&a, ""),
            r#"forbidden: User "x" cannot get path "/metrics""#
        );
    }
}
