//! The parts of Role/Binding objects RBAC evaluation reads, deserialized
//! from the JSON the API server stores.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PolicyError;
use crate::rule::{PolicyRule, null_as_empty};
use crate::user::{UserInfo, service_account_username};

/// A binding's reference to the Role or ClusterRole it grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    pub kind: String,
    pub name: String,
}

/// Who a binding grants its role to: a User, Group or ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Subject {
    /// The user name a ServiceAccount subject stands for; a subject in a
    /// RoleBinding without a namespace means the binding's namespace, one in
    /// a ClusterRoleBinding without a namespace matches nobody (upstream).
    pub(crate) fn service_account_user(&self, binding_namespace: &str) -> Option<String> {
        let ns = if self.namespace.is_empty() {
            binding_namespace
        } else {
            &self.namespace
        };
        (!ns.is_empty()).then(|| service_account_username(ns, &self.name))
    }

    /// Upstream's `appliesToUser`.
    pub(crate) fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.in_group(&self.name),
            "ServiceAccount" => self
                .service_account_user(binding_namespace)
                .is_some_and(|u| u == user.name),
            _ => false,
        }
    }

    /// Upstream's `describeSubject`, used in allow reasons.
    pub(crate) fn describe(&self, binding_namespace: &str) -> String {
        use crate::quote::go_quote;
        if self.kind == "ServiceAccount" {
            let ns = if self.namespace.is_empty() {
                binding_namespace
            } else {
                &self.namespace
            };
            format!(
                "{} {}",
                self.kind,
                go_quote(&format!("{}/{}", self.name, ns))
            )
        } else {
            format!("{} {}", self.kind, go_quote(&self.name))
        }
    }
}

/// A Role or ClusterRole's rules (and aggregation inputs) as stored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoleObject {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub rules: Vec<PolicyRule>,
}

/// A RoleBinding or ClusterRoleBinding as stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BindingObject {
    pub role_ref: RoleRef,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subjects: Vec<Subject>,
}

/// `metadata.name` and `metadata.namespace` (empty when absent).
pub(crate) fn meta(obj: &Value) -> (&str, &str) {
    let m = &obj["metadata"];
    (
        m["name"].as_str().unwrap_or_default(),
        m["namespace"].as_str().unwrap_or_default(),
    )
}

/// Deserializes `obj` into `T`, naming the object in the error.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    kind: &'static str,
    obj: &Value,
) -> Result<T, PolicyError> {
    T::deserialize(obj).map_err(|source| PolicyError::Malformed {
        kind,
        name: meta(obj).0.to_string(),
        source,
    })
}
