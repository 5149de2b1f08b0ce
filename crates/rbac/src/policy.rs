//! The in-memory RBAC policy: roles, bindings indexed by subject, and the
//! authorizer and rule resolver on top of them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attributes::Attributes;
use crate::error::PolicyError;
use crate::objects::{BindingObject, RoleObject, RoleRef, Subject, meta, parse};
use crate::quote::go_quote;
use crate::rule::PolicyRule;
use crate::user::UserInfo;

/// The four RBAC kinds a [`Policy`] is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// Parses an object's `kind`.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Role" => Some(Self::Role),
            "ClusterRole" => Some(Self::ClusterRole),
            "RoleBinding" => Some(Self::RoleBinding),
            "ClusterRoleBinding" => Some(Self::ClusterRoleBinding),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Role => "Role",
            Self::ClusterRole => "ClusterRole",
            Self::RoleBinding => "RoleBinding",
            Self::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    fn namespaced(self) -> bool {
        matches!(self, Self::Role | Self::RoleBinding)
    }
}

/// RBAC never denies: it allows, or leaves the decision to the next
/// authorizer (upstream's DecisionAllow / DecisionNoOpinion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `reason` names the binding, role and subject that granted access.
    Allow { reason: String },
    /// `reason` is empty, or lists roles that could not be resolved.
    NoOpinion { reason: String },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Allow { reason } | Self::NoOpinion { reason } => reason,
        }
    }
}

/// A resource rule as SelfSubjectRulesReview reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// A non-resource rule as SelfSubjectRulesReview reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NonResourceRule {
    pub verbs: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// Everything a user may do in a namespace (SelfSubjectRulesReview status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRules {
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
    /// Always false for RBAC, as upstream: RBAC can list every rule it
    /// would apply. Kept so the API server can OR in other authorizers.
    pub incomplete: bool,
    /// Unresolvable role references (upstream's `evaluationError`).
    pub evaluation_error: Option<String>,
}

#[derive(Debug)]
struct Binding {
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// Binding names by scope (binding namespace, "" for ClusterRoleBindings)
/// and then by user or group name: lets a lookup touch only the bindings
/// that can apply to the requesting user.
type SubjectIndex = HashMap<String, HashMap<String, BTreeSet<String>>>;

/// The RBAC objects of a cluster, kept up to date from watch events with
/// [`Policy::upsert`] and [`Policy::remove`]. Lookups take `&self`, so the
/// API server can share it behind an `RwLock` (rules are `Arc`-shared on clone).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    bindings: HashMap<String, HashMap<String, Arc<Binding>>>,
    users: SubjectIndex,
    groups: SubjectIndex,
}

/// Where a rule came from, for allow reasons.
struct Source<'a> {
    scope: &'a str,
    binding_name: &'a str,
    binding: &'a Binding,
    subject: &'a Subject,
}

impl Source<'_> {
    /// Upstream's binding describers, e.g. `ClusterRoleBinding "x" of
    /// ClusterRole "y" to Group "z"`.
    fn describe(&self) -> String {
        let (kind, name) = if self.scope.is_empty() {
            ("ClusterRoleBinding", self.binding_name.to_string())
        } else {
            (
                "RoleBinding",
                format!("{}/{}", self.binding_name, self.scope),
            )
        };
        format!(
            "{kind} {} of {} {} to {}",
            go_quote(&name),
            self.binding.role_ref.kind,
            go_quote(&self.binding.role_ref.name),
            self.subject.describe(self.scope)
        )
    }
}

impl Policy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a policy from full lists of objects.
    pub fn from_objects(
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) -> Result<Self, PolicyError> {
        let mut policy = Self::new();
        let lists = [
            (RbacKind::Role, roles),
            (RbacKind::ClusterRole, cluster_roles),
            (RbacKind::RoleBinding, role_bindings),
            (RbacKind::ClusterRoleBinding, cluster_role_bindings),
        ];
        for (kind, objects) in lists {
            for obj in objects {
                policy.upsert(kind, obj)?;
            }
        }
        Ok(policy)
    }

    /// Adds or replaces an object whose kind is read from its `kind` field.
    pub fn upsert_object(&mut self, obj: &Value) -> Result<(), PolicyError> {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let kind =
            RbacKind::from_kind(kind).ok_or_else(|| PolicyError::UnsupportedKind(kind.into()))?;
        self.upsert(kind, obj)
    }

    /// Adds or replaces an object (watch ADDED/MODIFIED).
    pub fn upsert(&mut self, kind: RbacKind, obj: &Value) -> Result<(), PolicyError> {
        let (name, namespace) = meta(obj);
        let kind_str = kind.as_str();
        if name.is_empty() {
            return Err(PolicyError::MissingName { kind: kind_str });
        }
        let scope = if kind.namespaced() {
            if namespace.is_empty() {
                return Err(PolicyError::MissingNamespace {
                    kind: kind_str,
                    name: name.to_string(),
                });
            }
            namespace
        } else {
            ""
        };
        match kind {
            RbacKind::Role | RbacKind::ClusterRole => {
                let role: RoleObject = parse(kind_str, obj)?;
                let rules: Arc<[PolicyRule]> = role.rules.into();
                if kind == RbacKind::Role {
                    self.roles
                        .entry(scope.to_string())
                        .or_default()
                        .insert(name.to_string(), rules);
                } else {
                    self.cluster_roles.insert(name.to_string(), rules);
                }
            }
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                let b: BindingObject = parse(kind_str, obj)?;
                self.remove_binding(scope, name);
                let binding = Binding {
                    role_ref: b.role_ref,
                    subjects: b.subjects,
                };
                self.index_binding(scope, name, &binding);
                self.bindings
                    .entry(scope.to_string())
                    .or_default()
                    .insert(name.to_string(), Arc::new(binding));
            }
        }
        Ok(())
    }

    /// Forgets an object (watch DELETED). `namespace` is ignored for
    /// cluster-scoped kinds.
    pub fn remove(&mut self, kind: RbacKind, namespace: &str, name: &str) {
        match kind {
            RbacKind::Role => {
                if let Some(roles) = self.roles.get_mut(namespace) {
                    roles.remove(name);
                    if roles.is_empty() {
                        self.roles.remove(namespace);
                    }
                }
            }
            RbacKind::ClusterRole => {
                self.cluster_roles.remove(name);
            }
            RbacKind::RoleBinding => self.remove_binding(namespace, name),
            RbacKind::ClusterRoleBinding => self.remove_binding("", name),
        }
    }

    /// Decides a request as upstream's RBAC authorizer: allowed when any
    /// rule reachable from a binding of the user (ClusterRoleBindings, and
    /// RoleBindings in the request's namespace) allows it.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut allowed = None;
        let errors = self.visit_rules(&attrs.user, &attrs.namespace, |source, rule| {
            if rule.allows(attrs) {
                allowed = Some(source.describe());
                false
            } else {
                true
            }
        });
        match allowed {
            Some(by) => Decision::Allow {
                reason: format!("RBAC: allowed by {by}"),
            },
            None => Decision::NoOpinion {
                reason: if errors.is_empty() {
                    String::new()
                } else {
                    format!("RBAC: {}", aggregate_errors(&errors))
                },
            },
        }
    }

    /// All rules that apply to `user` in `namespace` ("" for cluster scope
    /// only) plus the role references that could not be resolved. This is
    /// what escalation checks compare against.
    pub fn policy_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let errors = self.visit_rules(user, namespace, |_, rule| {
            rules.push(rule.clone());
            true
        });
        (rules, errors)
    }

    /// The rules of `user` in `namespace` in SelfSubjectRulesReview form.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> SubjectRules {
        let (rules, errors) = self.policy_rules_for(user, namespace);
        let mut out = SubjectRules {
            evaluation_error: (!errors.is_empty()).then(|| aggregate_errors(&errors)),
            ..SubjectRules::default()
        };
        for rule in rules {
            if !rule.resources.is_empty() {
                out.resource_rules.push(ResourceRule {
                    verbs: rule.verbs.clone(),
                    api_groups: rule.api_groups.clone(),
                    resources: rule.resources.clone(),
                    resource_names: rule.resource_names.clone(),
                });
            }
            if !rule.non_resource_urls.is_empty() {
                out.non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs,
                    non_resource_urls: rule.non_resource_urls,
                });
            }
        }
        out
    }

    /// Rules of a ClusterRole, if it exists.
    pub fn cluster_role_rules(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_roles.get(name).map(|r| &r[..])
    }

    /// Calls `visit` for every rule that applies to `user` in `namespace`,
    /// ClusterRoleBindings first, each scope in binding-name order, until
    /// `visit` returns false. Returns the resolution errors met on the way.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Source<'_>, &PolicyRule) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let scopes: &[&str] = if namespace.is_empty() {
            &[""]
        } else {
            &["", namespace]
        };
        for &scope in scopes {
            let Some(bindings) = self.bindings.get(scope) else {
                continue;
            };
            for binding_name in self.candidate_bindings(user, scope) {
                let Some(binding) = bindings.get(binding_name) else {
                    continue;
                };
                let Some(subject) = binding.subjects.iter().find(|s| s.applies_to(user, scope))
                else {
                    continue;
                };
                let rules = match self.resolve(&binding.role_ref, scope) {
                    Ok(rules) => rules,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let source = Source {
                    scope,
                    binding_name,
                    binding,
                    subject,
                };
                for rule in rules {
                    if !visit(&source, rule) {
                        return errors;
                    }
                }
            }
        }
        errors
    }

    /// Names of the bindings in `scope` that mention the user or one of its
    /// groups, sorted for deterministic reasons.
    fn candidate_bindings<'a>(&'a self, user: &UserInfo, scope: &str) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        if let Some(names) = self.users.get(scope).and_then(|m| m.get(&user.name)) {
            out.extend(names.iter().map(String::as_str));
        }
        if let Some(by_group) = self.groups.get(scope) {
            for group in &user.groups {
                if let Some(names) = by_group.get(group) {
                    out.extend(names.iter().map(String::as_str));
                }
            }
        }
        out
    }

    /// The rules a binding in `binding_namespace` ("" for a
    /// ClusterRoleBinding) grants through `role_ref`, or upstream's NotFound
    /// message when the role does not exist.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        self.resolve(role_ref, binding_namespace)
    }

    /// The rules a role reference grants; an unknown role grants nothing
    /// and is reported in upstream's NotFound wording.
    fn resolve(&self, role_ref: &RoleRef, scope: &str) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(scope)
                .and_then(|roles| roles.get(&role_ref.name))
                .map(|r| &r[..])
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {} not found",
                        go_quote(&role_ref.name)
                    )
                }),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| &r[..])
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {} not found",
                        go_quote(&role_ref.name)
                    )
                }),
            other => Err(format!(
                "unsupported role reference kind: {}",
                go_quote(other)
            )),
        }
    }

    fn index_binding(&mut self, scope: &str, name: &str, binding: &Binding) {
        for (is_group, key) in subject_keys(binding, scope) {
            let index = if is_group {
                &mut self.groups
            } else {
                &mut self.users
            };
            index
                .entry(scope.to_string())
                .or_default()
                .entry(key)
                .or_default()
                .insert(name.to_string());
        }
    }

    fn remove_binding(&mut self, scope: &str, name: &str) {
        let Some(bindings) = self.bindings.get_mut(scope) else {
            return;
        };
        let Some(old) = bindings.remove(name) else {
            return;
        };
        if bindings.is_empty() {
            self.bindings.remove(scope);
        }
        for (is_group, key) in subject_keys(&old, scope) {
            let index = if is_group {
                &mut self.groups
            } else {
                &mut self.users
            };
            let Some(by_key) = index.get_mut(scope) else {
                continue;
            };
            if let Some(names) = by_key.get_mut(&key) {
                names.remove(name);
                if names.is_empty() {
                    by_key.remove(&key);
                }
            }
            if by_key.is_empty() {
                index.remove(scope);
            }
        }
    }
}

/// Index keys of a binding: `(is_group, name)`; ServiceAccounts index
/// under their user name, unknown subject kinds match nobody.
fn subject_keys(binding: &Binding, scope: &str) -> Vec<(bool, String)> {
    binding
        .subjects
        .iter()
        .filter_map(|s| match s.kind.as_str() {
            "User" => Some((false, s.name.clone())),
            "Group" => Some((true, s.name.clone())),
            "ServiceAccount" => s.service_account_user(scope).map(|u| (false, u)),
            _ => None,
        })
        .collect()
}

/// Formats errors as upstream's `utilerrors.NewAggregate` does.
fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests;
