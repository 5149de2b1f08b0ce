//! PolicyRule and how a single rule matches a request.

use serde::{Deserialize, Deserializer, Serialize};

use crate::attributes::Attributes;

/// Matches every verb, group, resource or non-resource URL.
pub(crate) const ALL: &str = "*";

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1`
/// PolicyRule). Empty lists are omitted on output, as upstream's `omitempty`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub verbs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// Clients send `null` for empty lists as often as they omit them.
pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

impl PolicyRule {
    /// Starts a rule with the given verbs (builder used by the bootstrap
    /// policy and tests, like upstream's `NewRule`).
    pub fn new(verbs: &[&str]) -> Self {
        Self {
            verbs: strings(verbs),
            ..Self::default()
        }
    }

    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.api_groups = strings(groups);
        self
    }

    pub fn resources(mut self, resources: &[&str]) -> Self {
        self.resources = strings(resources);
        self
    }

    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = strings(names);
        self
    }

    pub fn urls(mut self, urls: &[&str]) -> Self {
        self.non_resource_urls = strings(urls);
        self
    }

    /// Whether this rule allows the request (upstream's `RuleAllows`).
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.verb_matches(&attrs.verb) {
            return false;
        }
        if attrs.resource_request {
            self.group_matches(&attrs.api_group)
                && self.resource_matches(&attrs.combined_resource(), &attrs.subresource)
                && self.name_matches(&attrs.name)
        } else {
            self.url_matches(&attrs.path)
        }
    }

    pub fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    pub fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// `combined` is `resource` or `resource/subresource`. A rule matches
    /// with `*`, the exact combined name, or `*/subresource`. As upstream,
    /// `pods/*` is NOT a wildcard over subresources: it only matches itself.
    pub fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == ALL
                || r == combined
                || (!subresource.is_empty()
                    && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
        })
    }

    /// An empty `resourceNames` allows every name. A non-empty one never
    /// matches requests without a name (list, create, deletecollection),
    /// because the name is unknown when they are authorized.
    pub fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// Exact URL, `*`, or a prefix given as a trailing `*` (`/apis/*`).
    pub fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
        })
    }

    /// Upstream's `CompactString`, used in escalation messages:
    /// `{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`.
    pub fn compact_string(&self) -> String {
        use crate::quote::go_quote_list;
        let fields = [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ];
        let parts: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}:{}", go_quote_list(v)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserInfo;

    fn req(verb: &str, group: &str, resource: &str) -> Attributes {
        Attributes::resource(UserInfo::new("u", &[]), verb, group, resource).in_namespace("ns")
    }

    #[test]
    fn verbs_and_groups() {
        let rule = PolicyRule::new(&["get"]).groups(&[""]).resources(&["pods"]);
        assert!(rule.allows(&req("get", "", "pods")));
        assert!(!rule.allows(&req("list", "", "pods")));
        assert!(!rule.allows(&req("get", "apps", "pods")));
        let any = PolicyRule::new(&["*"]).groups(&["*"]).resources(&["pods"]);
        assert!(any.allows(&req("escalate", "whatever.io", "pods")));
    }

    #[test]
    fn resources_and_subresources() {
        let exact = PolicyRule::new(&["*"])
            .groups(&[""])
            .resources(&["pods/exec"]);
        assert!(exact.allows(&req("create", "", "pods").with_subresource("exec")));
        assert!(!exact.allows(&req("create", "", "pods")));
        assert!(!exact.allows(&req("create", "", "pods").with_subresource("log")));

        let star_sub = PolicyRule::new(&["*"])
            .groups(&[""])
            .resources(&["*/status"]);
        assert!(star_sub.allows(&req("update", "", "pods").with_subresource("status")));
        assert!(star_sub.allows(&req("update", "", "nodes").with_subresource("status")));
        assert!(!star_sub.allows(&req("update", "", "nodes")));
        assert!(!star_sub.allows(&req("update", "", "pods").with_subresource("exec")));

        let plain = PolicyRule::new(&["*"]).groups(&[""]).resources(&["pods"]);
        assert!(!plain.allows(&req("get", "", "pods").with_subresource("log")));

        let all = PolicyRule::new(&["*"]).groups(&[""]).resources(&["*"]);
        assert!(all.allows(&req("get", "", "pods").with_subresource("log")));

        // upstream has no `resource/*` wildcard: it only matches literally.
        let res_star = PolicyRule::new(&["*"]).groups(&[""]).resources(&["pods/*"]);
        assert!(!res_star.allows(&req("get", "", "pods").with_subresource("log")));
    }

    #[test]
    fn resource_names_never_match_unnamed_requests() {
        let rule = PolicyRule::new(&["get", "list", "delete", "create"])
            .groups(&[""])
            .resources(&["configmaps"])
            .names(&["cfg"]);
        assert!(rule.allows(&req("get", "", "configmaps").named("cfg")));
        assert!(!rule.allows(&req("get", "", "configmaps").named("other")));
        assert!(!rule.allows(&req("list", "", "configmaps")));
        assert!(!rule.allows(&req("create", "", "configmaps")));
    }

    #[test]
    fn non_resource_urls() {
        let user = UserInfo::new("u", &[]);
        let rule = PolicyRule::new(&["get"]).urls(&["/apis/*", "/healthz"]);
        let get = |p: &str| Attributes::non_resource(user.clone(), "get", p);
        assert!(rule.allows(&get("/healthz")));
        assert!(!rule.allows(&get("/healthz/etcd")));
        assert!(rule.allows(&get("/apis/apps/v1")));
        assert!(rule.allows(&get("/apis/")));
        assert!(!rule.allows(&get("/apis")));
        assert!(!rule.allows(&Attributes::non_resource(user.clone(), "post", "/healthz")));
        let all = PolicyRule::new(&["*"]).urls(&["*"]);
        assert!(all.allows(&get("/anything")));
        // resource rules never match non-resource requests and vice versa
        let res = PolicyRule::new(&["*"]).groups(&["*"]).resources(&["*"]);
        assert!(!res.allows(&get("/healthz")));
        assert!(!all.allows(&req("get", "", "pods")));
    }

    #[test]
    fn deserializes_nulls_and_url_casing() {
        let rule: PolicyRule = serde_json::from_value(serde_json::json!({
            "verbs": ["get"], "apiGroups": null, "nonResourceURLs": ["/x"]
        }))
        .unwrap();
        assert_eq!(rule, PolicyRule::new(&["get"]).urls(&["/x"]));
        let back = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"verbs": ["get"], "nonResourceURLs": ["/x"]})
        );
    }

    #[test]
    fn compact_string_like_upstream() {
        let rule = PolicyRule::new(&["delete"])
            .groups(&[""])
            .resources(&["pods"]);
        assert_eq!(
            rule.compact_string(),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#
        );
    }
}
