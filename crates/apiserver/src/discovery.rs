//! Discovery documents: which groups, versions and resources exist.
//! Legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated
//! (`apidiscovery.k8s.io` v2 / v2beta1), chosen by the client's Accept.

use serde_json::{Value, json};
use std::sync::Arc;

use crate::resources::{ResourceInfo, group_versions};

/// Which aggregated discovery variant a client asked for, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregated {
    V2,
    V2Beta1,
}

impl Aggregated {
    /// Reads the Accept header: the first acceptable aggregated variant.
    pub fn from_accept(accept: &str) -> Option<Self> {
        for media in accept.split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
                if has("v=v2") {
                    return Some(Aggregated::V2);
                }
                if has("v=v2beta1") {
                    return Some(Aggregated::V2Beta1);
                }
            }
        }
        None
    }

    fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// Verbs of a subresource, as upstream lists them.
fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "status" | "scale" | "ephemeralcontainers" | "resize" => &["get", "patch", "update"],
        "binding" | "eviction" | "token" => &["create"],
        "log" => &["get"],
        "exec" | "attach" | "portforward" => &["create", "get"],
        "proxy" => &["create", "delete", "get", "patch", "update"],
        "finalize" | "approval" => &["update"],
        _ => &["get"],
    }
}

/// The kind a subresource answers with.
fn subresource_kind<'a>(r: &'a ResourceInfo, sub: &str) -> (&'a str, &'a str, &'a str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
        "exec" | "attach" => ("", "v1", "PodExecOptions"),
        "portforward" => ("", "v1", "PodPortForwardOptions"),
        "log" | "proxy" => ("", "v1", "Pod"),
        _ => (&r.group, &r.version, &r.kind),
    }
}

/// A stable hash of a resource's storage identity (`storageVersionHash`).
fn storage_version_hash(r: &ResourceInfo) -> String {
    use base64::Engine;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&r.group, &r.version, &r.kind).hash(&mut h);
    base64::engine::general_purpose::STANDARD.encode(h.finish().to_be_bytes())[..11].to_owned()
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

pub fn api_group_list(resources: &[Arc<ResourceInfo>]) -> Value {
    let groups: Vec<Value> = group_versions(resources.iter().map(|r| &**r))
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_json(g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions.first().copied().unwrap_or("v1")),
    })
}

/// `/apis/<group>`, if the group exists.
pub fn api_group(resources: &[Arc<ResourceInfo>], group: &str) -> Option<Value> {
    let (g, versions) = group_versions(resources.iter().map(|r| &**r))
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())?;
    let mut doc = group_json(g, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`, if that group-version exists.
pub fn api_resource_list(
    resources: &[Arc<ResourceInfo>],
    group: &str,
    version: &str,
) -> Option<Value> {
    let matching: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| &**r)
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in matching {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "storageVersionHash": storage_version_hash(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = subresource_kind(r, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": subresource_verbs(sub),
            });
            if g != r.group || v != r.version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// Aggregated discovery for `/api` (core only) or `/apis` (every group).
pub fn aggregated(resources: &[Arc<ResourceInfo>], core: bool, variant: Aggregated) -> Value {
    let items: Vec<Value> = group_versions(resources.iter().map(|r| &**r))
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let entries: Vec<Value> = resources
                        .iter()
                        .filter(|r| r.group == group && r.version == *version)
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": version, "resources": entries, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", variant.version()),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, kind) = subresource_kind(r, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": kind},
                "verbs": subresource_verbs(sub),
            })
        })
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    fn builtin() -> Vec<Arc<ResourceInfo>> {
        crate::resources::builtin()
            .into_iter()
            .map(Arc::new)
            .collect()
    }

    #[test]
    fn accept_header_selects_the_variant() {
        let v133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(Aggregated::from_accept(v133), Some(Aggregated::V2));
        let v127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(Aggregated::from_accept(v127), Some(Aggregated::V2Beta1));
        assert_eq!(Aggregated::from_accept("application/json, */*"), None);
    }

    #[test]
    fn resource_lists_carry_short_names_and_subresources() {
        let all = builtin();
        let core = api_resource_list(&all, "", "v1").unwrap();
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
        assert!(api_resource_list(&all, "apps", "v9").is_none());
        let groups = api_group_list(&all);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "apps")
        );
    }
}
