//! A StatefulSet pod's stable identity (upstream's stateful_set_utils):
//! the name `<set>-<ordinal>`, its identity labels, hostname and
//! subdomain, and the claims `<template>-<set>-<ordinal>` it mounts.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::history::HASH_LABEL;

/// Label naming the pod (so a Service can select one replica).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label carrying the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// `<set>-<ordinal>`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// The ordinal in a pod's name, if it is `<set>-<n>` (upstream's
/// getParentNameAndOrdinal).
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// `<template>-<set>-<ordinal>`: the claim a pod's volume uses.
pub fn claim_name(template: &PersistentVolumeClaim, set: &str, ordinal: i32) -> String {
    format!("{}-{}", template.name_any(), pod_name(set, ordinal))
}

/// The revision a pod was created from (its `controller-revision-hash`).
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// The claims of pod `ordinal`, as the set's volumeClaimTemplates
/// describe them (labels: the template's plus the set's matchLabels).
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let name = set.name_any();
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            if let Some(ml) = &spec.selector.match_labels {
                labels.extend(ml.clone());
            }
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(t, &name, ordinal)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// Pod `ordinal` of `set` from `template` at `revision`: identity labels,
/// hostname and subdomain, claims mounted in place of the template volumes
/// of the same name (upstream's newVersionedStatefulSetPod).
pub fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
    owner: OwnerReference,
) -> Pod {
    let set_name = set.name_any();
    let name = pod_name(&set_name, ordinal);
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.to_owned(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_owned(), ordinal.to_string());
    labels.insert(HASH_LABEL.to_owned(), revision.to_owned());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let templates = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    if !templates.is_empty() {
        let mut volumes: Vec<Volume> = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !templates.iter().any(|t| t.name_any() == v.name))
            .collect();
        for t in &templates {
            volumes.push(Volume {
                name: t.name_any(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(t, &set_name, ordinal),
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ordinals_parse_only_exact_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-1-2"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn pods_mount_their_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {
                "serviceName": "db-svc",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "containers": [{"name": "c", "image": "i"}],
                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    },
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
            },
        }))
        .unwrap_or_default();
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let pod = new_pod(&set, &template, "db-abc", 2, OwnerReference::default());
        assert_eq!(pod.metadata.name.as_deref(), Some("db-2"));
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("db-svc"));
        let volumes = spec.volumes.unwrap_or_default();
        assert_eq!(volumes.len(), 2);
        let data = volumes.iter().find(|v| v.name == "data");
        assert_eq!(
            data.and_then(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.as_str()),
            Some("data-db-2")
        );
        let claims = claims(&set, 2);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data-db-2"));
        let labels = pod.metadata.labels.unwrap_or_default();
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
        assert_eq!(labels.get(HASH_LABEL).map(String::as_str), Some("db-abc"));
    }
}
