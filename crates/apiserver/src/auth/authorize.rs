//! Authorization: upstream's chain for skiff — `system:masters` may do
//! anything (the privileged-group authorizer), then RBAC over the stored
//! Roles, ClusterRoles and bindings ([`skiff_rbac::Policy`]), kept in step
//! with the watch cache by [`follow`]. Also the ClusterRole aggregation
//! (upstream's controller): aggregated roles' rules are rewritten when the
//! roles they select change.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_rbac::{Attributes, Policy};
use tokio_util::sync::CancellationToken;

use crate::http::App;
use crate::registry::Part;
use crate::request::{RequestInfo, Verb};
use crate::resources::ResourceInfo;
use crate::tls::UserInfo;
use crate::watch_cache::ResourceCache;

pub use skiff_rbac::Decision;

/// The group whose members are never refused.
const MASTERS: &str = "system:masters";

/// Longest wait between two rebuilds when nothing changes.
const RESYNC: Duration = Duration::from_secs(30);

/// The RBAC kinds, as (plural, kind) in the table.
const KINDS: [(&str, skiff_rbac::RbacKind); 4] = [
    ("roles", skiff_rbac::RbacKind::Role),
    ("clusterroles", skiff_rbac::RbacKind::ClusterRole),
    ("rolebindings", skiff_rbac::RbacKind::RoleBinding),
    (
        "clusterrolebindings",
        skiff_rbac::RbacKind::ClusterRoleBinding,
    ),
];

/// The current policy; requests read a snapshot.
#[derive(Default)]
pub struct Authorizer {
    policy: RwLock<Arc<Policy>>,
}

pub fn rbac_user(user: &UserInfo) -> skiff_rbac::UserInfo {
    skiff_rbac::UserInfo {
        name: user.name.clone(),
        uid: user.uid.clone(),
        groups: user.groups.clone(),
        extra: user.extra.clone(),
    }
}

impl Authorizer {
    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.groups.iter().any(|g| g == MASTERS) {
            return Decision::Allow {
                reason: format!("member of {MASTERS}"),
            };
        }
        self.policy().authorize(attrs)
    }

    pub fn allows(&self, attrs: &Attributes) -> bool {
        matches!(self.authorize(attrs), Decision::Allow { .. })
    }

    /// The whole chain, as upstream orders it: privileged group, the Node
    /// authorizer (whose refusals stand, with its reason), then RBAC.
    pub fn decide(&self, registry: &crate::registry::Registry, attrs: &Attributes) -> Decision {
        if attrs.user.groups.iter().any(|g| g == MASTERS) {
            return self.authorize(attrs);
        }
        match super::node_authorizer::authorize(registry, attrs) {
            super::node_authorizer::Verdict::Allow => Decision::Allow {
                reason: "allowed by the Node authorizer".into(),
            },
            super::node_authorizer::Verdict::Deny(reason) => Decision::NoOpinion { reason },
            super::node_authorizer::Verdict::NoOpinion => self.authorize(attrs),
        }
    }

    /// `SelfSubjectRulesReview.status`.
    pub fn rules_review(&self, user: &UserInfo, namespace: &str) -> Value {
        let user = rbac_user(user);
        if user.groups.iter().any(|g| g == MASTERS) {
            return json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
        let rules = self.policy().rules_for(&user, namespace);
        json!({
            "resourceRules": rules.resource_rules,
            "nonResourceRules": rules.non_resource_rules,
            "incomplete": rules.incomplete,
        })
    }
}

/// What a request asks, for the authorizer: resource attributes for API
/// paths, else the path with the lowercase HTTP verb. A WebSocket (GET)
/// exec, attach or port-forward also needs `create`, as upstream checks
/// since 1.31.
pub fn request_attributes(
    user: &UserInfo,
    method: &http::Method,
    path: &str,
    info: Option<&RequestInfo>,
) -> Vec<Attributes> {
    let user = rbac_user(user);
    let Some(info) = info else {
        let verb = match *method {
            http::Method::GET | http::Method::HEAD => "get",
            http::Method::POST => "post",
            http::Method::PUT => "put",
            http::Method::PATCH => "patch",
            http::Method::DELETE => "delete",
            _ => "get",
        };
        return vec![Attributes::non_resource(user, verb, path)];
    };
    let mut base = Attributes::resource(user, info.verb.as_str(), &info.group, &info.resource)
        .with_version(&info.version);
    if let Some(ns) = &info.namespace {
        base = base.in_namespace(ns);
    }
    if let Some(name) = &info.name {
        base = base.named(name);
    }
    if let Some(sub) = &info.subresource {
        base = base.with_subresource(sub);
    }
    let streaming = info.group.is_empty()
        && info.resource == "pods"
        && matches!(
            info.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        );
    if streaming && info.verb == Verb::Get {
        let mut create = base.clone();
        create.verb = "create".into();
        return vec![base, create];
    }
    vec![base]
}

/// One RBAC resource's table entry and cache.
fn rbac_resource(app: &App, plural: &str) -> Option<(Arc<ResourceInfo>, Arc<ResourceCache>)> {
    let r = app
        .registry
        .resources
        .find("rbac.authorization.k8s.io", "v1", plural)?;
    let cache = app.registry.cache.resource(&r)?;
    Some((r, cache))
}

/// The stored objects of one RBAC resource.
fn snapshot(app: &App, r: &ResourceInfo, cache: &ResourceCache) -> Vec<Value> {
    let (items, _) = app
        .registry
        .cache
        .consistent_snapshot(cache, &r.key_prefix());
    items.iter().map(|(_, o)| Value::clone(o)).collect()
}

/// A new policy from the four RBAC resources; also returns the
/// ClusterRoles read, for [`aggregate`].
fn rebuild(app: &App) -> Option<(Policy, Vec<Value>)> {
    let mut policy = Policy::default();
    let mut cluster_roles = Vec::new();
    for (plural, kind) in KINDS {
        let (r, cache) = rbac_resource(app, plural)?;
        let items = snapshot(app, &r, &cache);
        for o in &items {
            if let Err(e) = policy.upsert(kind, o) {
                tracing::debug!(error = %e, "skipping an RBAC object the policy cannot read");
            }
        }
        if kind == skiff_rbac::RbacKind::ClusterRole {
            cluster_roles = items;
        }
    }
    Some((policy, cluster_roles))
}

/// Rewrites aggregated ClusterRoles whose rules fell behind.
async fn aggregate(app: &App, roles: &[Value]) {
    let Some((r, _)) = rbac_resource(app, "clusterroles") else {
        return;
    };
    for (name, rules) in skiff_rbac::aggregate(roles) {
        let Some(current) = roles
            .iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str()))
        else {
            continue;
        };
        let rules = serde_json::to_value(&rules).unwrap_or_else(|_| json!([]));
        if current.get("rules") == Some(&rules) {
            continue;
        }
        let result = app
            .registry
            .modify(&r, &name, Part::Main, |current| {
                let mut updated = current.clone();
                updated["rules"] = rules.clone();
                Ok(updated)
            })
            .await;
        if let Err(e) = result {
            tracing::debug!(role = %name, error = %e.message, "aggregating a ClusterRole");
        }
    }
}

/// Keeps the authorizer's policy and the aggregated roles in step with the
/// stored objects until `shutdown`.
pub async fn follow(app: Arc<App>, shutdown: CancellationToken) {
    let caches: Vec<_> = KINDS
        .iter()
        .filter_map(|(plural, _)| rbac_resource(&app, plural).map(|(_, c)| c))
        .collect();
    loop {
        let revision = app.registry.cache.revision();
        let mut subscriptions: Vec<_> = caches
            .iter()
            .filter_map(|c| c.subscribe(revision).map(|s| s.live))
            .collect();
        if let Some((policy, cluster_roles)) = rebuild(&app) {
            app.authorizer.replace(policy);
            aggregate(&app, &cluster_roles).await;
        }
        let changed = async {
            if subscriptions.is_empty() {
                std::future::pending::<()>().await;
            }
            let waits = subscriptions
                .iter_mut()
                .map(|s| Box::pin(async move { s.recv().await.ok().map(drop) }));
            futures::future::select_all(waits).await;
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(RESYNC) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
