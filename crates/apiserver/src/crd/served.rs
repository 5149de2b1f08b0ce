//! The resources one CustomResourceDefinition makes the server serve: one
//! table entry per served version, carrying that version's definition.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;
use skiff_crd::{PrinterColumn, ScalePaths, Structural};

use crate::resources::{ALL_VERBS, ResourceInfo};

/// What a custom resource's table entry knows of its definition.
#[derive(Debug, Clone)]
pub struct CustomInfo {
    /// The definition's name (`<plural>.<group>`).
    pub crd: String,
    /// The version's entry of `spec.versions` (schema, subresources,
    /// printer columns).
    pub version: Value,
    /// The definition is being deleted: its objects are still served (to
    /// be read and deleted) but no new ones are accepted.
    pub terminating: bool,
    /// The version's schema compiled for pruning, defaulting and
    /// validation (`None`: no schema, or one that does not compile; objects
    /// are then kept as sent).
    pub structural: Option<Arc<Structural>>,
    /// `additionalPrinterColumns` of the version.
    pub columns: Vec<PrinterColumn>,
    /// Where the scale subresource reads and writes replicas.
    pub scale: Option<ScalePaths>,
}

impl PartialEq for CustomInfo {
    fn eq(&self, other: &Self) -> bool {
        // The compiled schema follows from the version entry.
        self.crd == other.crd
            && self.version == other.version
            && self.terminating == other.terminating
    }
}

impl CustomInfo {
    /// The version's `openAPIV3Schema`.
    pub fn schema(&self) -> Option<&Value> {
        self.version.pointer("/schema/openAPIV3Schema")
    }
}

fn strs(value: Option<&Value>) -> Vec<Cow<'static, str>> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(|s| Cow::Owned(s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One entry per served version of an established definition; none for
/// anything else.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let established = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    if !established {
        return Vec::new();
    }
    let Some(spec) = crd.get("spec") else {
        return Vec::new();
    };
    let (Some(name), Some(group), Some(plural), Some(kind)) = (
        text(crd.pointer("/metadata/name")),
        text(spec.get("group")),
        text(spec.pointer("/names/plural")),
        text(spec.pointer("/names/kind")),
    ) else {
        return Vec::new();
    };
    let list_kind = text(spec.pointer("/names/listKind")).unwrap_or_else(|| format!("{kind}List"));
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let versions = spec.get("versions").and_then(Value::as_array);
    versions
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .filter_map(|v| {
            let version = text(v.get("name"))?;
            let status = v.pointer("/subresources/status").is_some();
            let scale = v.pointer("/subresources/scale").is_some();
            let subresources: &'static [&'static str] = match (scale, status) {
                (true, true) => &["scale", "status"],
                (true, false) => &["scale"],
                (false, true) => &["status"],
                (false, false) => &[],
            };
            Some(ResourceInfo {
                group: group.clone().into(),
                version: version.clone().into(),
                kind: kind.clone().into(),
                list_kind: list_kind.clone().into(),
                plural: plural.clone().into(),
                namespaced,
                verbs: ALL_VERBS,
                short_names: strs(spec.pointer("/names/shortNames")),
                categories: strs(spec.pointer("/names/categories")),
                subresources,
                ttl: None,
                custom: Some(Arc::new(CustomInfo {
                    crd: name.clone(),
                    version: v.clone(),
                    terminating,
                    structural: v
                        .pointer("/schema/openAPIV3Schema")
                        .and_then(|schema| Structural::from_schema(schema).ok())
                        .map(Arc::new),
                    columns: skiff_crd::printer_columns(crd, &version),
                    scale: skiff_crd::scale_paths(crd, &version),
                })),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(established: bool) -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                          "shortNames": ["ct"], "categories": ["all"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]
            },
            "status": {"conditions": [{"type": "Established", "status": if established {"True"} else {"False"}}]}
        })
    }

    #[test]
    fn served_versions_of_established_definitions_become_resources() {
        let served = resources(&crd(true));
        assert_eq!(served.len(), 1);
        let r = &served[0];
        assert_eq!(
            (r.group.as_ref(), r.version.as_ref(), r.plural.as_ref()),
            ("stable.example.com", "v1", "crontabs")
        );
        assert_eq!(r.list_kind, "CronTabList");
        assert!(r.namespaced);
        assert_eq!(r.subresources, &["scale", "status"]);
        assert_eq!(r.short_names, vec!["ct"]);
        assert_eq!(r.key(Some("ns"), "a"), "/stable.example.com/crontabs/ns/a");
        assert!(resources(&crd(false)).is_empty());
    }
}
