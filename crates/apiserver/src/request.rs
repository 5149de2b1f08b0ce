//! What a request is about: parsed from its path and method the way
//! upstream's RequestInfo is (group, version, namespace, resource, name,
//! subresource, verb).

use std::collections::HashMap;

use http::Method;

/// A resource request (`/api/v1/...` or `/apis/<group>/<version>/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub verb: Verb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// `true`, `1` and friends, as upstream reads boolean query parameters.
pub fn query_flag(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(
        query.get(name).map(String::as_str),
        Some("true" | "1" | "True" | "TRUE")
    )
}

/// Parses a resource path; `None` for anything that is not one (discovery
/// documents, health endpoints, unknown paths).
pub fn parse(method: &Method, path: &str, query: &HashMap<String, String>) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let mut watch = false;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_owned());
        // `namespaces/<ns>/status|finalize` are subresources of the namespace.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        } else {
            namespace = None;
        }
    }
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let verb = match *method {
        Method::GET | Method::HEAD => {
            if watch || (name.is_none() && query_flag(query, "watch")) {
                Verb::Watch
            } else if name.is_some() {
                Verb::Get
            } else {
                Verb::List
            }
        }
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if name.is_some() => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    };
    // A watch of one object is a list watch narrowed to its name.
    let (name, verb) = match (verb, name) {
        (Verb::Watch, Some(_)) if subresource.is_none() => (name, Verb::Watch),
        _ => (name, verb),
    };
    Some(RequestInfo {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        verb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &[(&str, &str)]) -> Option<RequestInfo> {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&method, path, &q)
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let i = info(Method::GET, "/api/v1/namespaces/default/pods/web", &[]).unwrap();
        assert_eq!(
            (
                i.namespace.as_deref(),
                i.resource.as_str(),
                i.name.as_deref(),
                i.verb
            ),
            (Some("default"), "pods", Some("web"), Verb::Get)
        );
        let i = info(Method::GET, "/api/v1/pods", &[]).unwrap();
        assert_eq!((i.namespace, i.verb), (None, Verb::List));
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments",
            &[("watch", "1")],
        )
        .unwrap();
        assert_eq!((i.group.as_str(), i.verb), ("apps", Verb::Watch));
        let i = info(Method::GET, "/api/v1/watch/namespaces/a/pods", &[]).unwrap();
        assert_eq!(i.verb, Verb::Watch);
        let i = info(Method::DELETE, "/api/v1/namespaces/a/configmaps", &[]).unwrap();
        assert_eq!(i.verb, Verb::DeleteCollection);
    }

    #[test]
    fn namespaces_themselves() {
        let i = info(Method::GET, "/api/v1/namespaces/kube-system", &[]).unwrap();
        assert_eq!(
            (i.namespace, i.resource.as_str(), i.name.as_deref()),
            (None, "namespaces", Some("kube-system"))
        );
        let i = info(Method::PUT, "/api/v1/namespaces/x/finalize", &[]).unwrap();
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_deref(),
                i.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let i = info(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            &[],
        )
        .unwrap();
        assert_eq!(i.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn non_resource_paths_are_not_parsed() {
        assert!(info(Method::GET, "/api", &[]).is_none());
        assert!(info(Method::GET, "/apis/apps", &[]).is_none());
        assert!(info(Method::GET, "/healthz", &[]).is_none());
        assert!(info(Method::GET, "/api/v1/a/b/c/d", &[]).is_none());
    }
}
