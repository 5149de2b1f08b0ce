//! Static pods: manifests in a directory (`--pod-manifest-path`) that the
//! kubelet runs on its own, without the API server, each reflected into
//! the API as a mirror pod (`<name>-<node>`), as upstream.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";

/// Every static pod defined in `dir`; unreadable or invalid files are
/// logged and skipped (one bad file must not stop the others).
pub fn read_dir(dir: &Path, node_name: &str) -> Vec<Pod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut pods = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "reading a static pod manifest");
                continue;
            }
        };
        match from_manifest(&text, node_name) {
            Ok(pod) => pods.push(pod),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "invalid static pod manifest");
            }
        }
    }
    pods
}

/// The pod a manifest (YAML or JSON) defines, named and annotated as
/// upstream names static pods; its uid is the hash of its content.
pub fn from_manifest(text: &str, node_name: &str) -> Result<Pod, String> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
        return Err("the manifest is not a Pod".to_owned());
    }
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|e| format!("not a valid Pod: {e}"))?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("the Pod has no metadata.name")?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    node_name.hash(&mut hasher);
    let hash = format!("{:016x}", hasher.finish());
    pod.metadata.name = Some(format!("{name}-{node_name}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    pod.metadata.uid = Some(hash.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(SOURCE_ANNOTATION.to_owned(), "file".to_owned());
    annotations.insert(HASH_ANNOTATION.to_owned(), hash);
    annotations.insert(SEEN_ANNOTATION.to_owned(), Timestamp::now().to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_owned());
    Ok(pod)
}

pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, SOURCE_ANNOTATION) == Some("file")
}

pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR_ANNOTATION).is_some()
}

pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The mirror pod of a static pod: the same spec, owned by the Node, with
/// the hash it mirrors.
pub fn mirror_of(pod: &Pod, node_uid: Option<&str>, node_name: &str) -> Pod {
    let mut mirror = pod.clone();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.status = None;
    let hash = annotation(pod, HASH_ANNOTATION)
        .unwrap_or_default()
        .to_owned();
    mirror
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MIRROR_ANNOTATION.to_owned(), hash);
    if let Some(uid) = node_uid {
        mirror.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.to_owned(),
            uid: uid.to_owned(),
            controller: Some(true),
            ..Default::default()
        }]);
    }
    mirror
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: skiff.local/busybox\n";

    #[test]
    fn manifests_become_node_named_pods_with_a_content_hash_uid() {
        let pod = from_manifest(MANIFEST, "node-a").unwrap_or_default();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-a"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert!(is_static(&pod));
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("node-a")
        );
        let again = from_manifest(MANIFEST, "node-a").unwrap_or_default();
        assert_eq!(pod.metadata.uid, again.metadata.uid);
        let changed =
            from_manifest(&MANIFEST.replace("busybox", "pause"), "node-a").unwrap_or_default();
        assert_ne!(pod.metadata.uid, changed.metadata.uid);
        let mirror = mirror_of(&pod, Some("n-uid"), "node-a");
        assert!(is_mirror(&mirror));
        assert!(mirror.metadata.uid.is_none());
    }

    #[test]
    fn non_pods_are_refused() {
        assert!(from_manifest("kind: Service\nmetadata: {name: x}\n", "n").is_err());
        assert!(from_manifest("kind: Pod\nmetadata: {}\n", "n").is_err());
    }
}
