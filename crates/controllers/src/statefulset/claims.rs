//! The PersistentVolumeClaims of a StatefulSet's pods: created from
//! `volumeClaimTemplates` before the pod, and owned per
//! `persistentVolumeClaimRetentionPolicy` as upstream, so the garbage
//! collector deletes them: `whenDeleted: Delete` makes the set an owner,
//! `whenScaled: Delete` makes a condemned pod (scaled away) an owner.
//! `Retain` (the default for both) leaves them alone.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::identity;

/// Whether the policy of `set` says Delete for `field`
/// (`whenDeleted` or `whenScaled`).
fn deletes(set: &StatefulSet, when_scaled: bool) -> bool {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let value = policy.and_then(|p| {
        if when_scaled {
            p.when_scaled.as_deref()
        } else {
            p.when_deleted.as_deref()
        }
    });
    value == Some("Delete")
}

fn plain_ref(api_version: &str, kind: &str, name: String, uid: String) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name,
        uid,
        controller: None,
        block_owner_deletion: Some(true),
    }
}

/// The claims in the set's namespace, by name (empty without templates).
pub async fn existing(
    api: &Api<PersistentVolumeClaim>,
    set: &StatefulSet,
) -> Result<HashMap<String, PersistentVolumeClaim>, kube::Error> {
    let has_templates = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .is_some_and(|t| !t.is_empty());
    if !has_templates {
        return Ok(HashMap::new());
    }
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|c| (c.name_any(), c))
        .collect())
}

/// Creates the missing claims of pod `ordinal` (with the set as owner when
/// `whenDeleted: Delete`); returns the names created.
pub async fn create_missing(
    api: &Api<PersistentVolumeClaim>,
    set: &StatefulSet,
    ordinal: i32,
    existing: &HashMap<String, PersistentVolumeClaim>,
) -> Result<Vec<String>, kube::Error> {
    let mut created = Vec::new();
    for mut claim in identity::claims(set, ordinal) {
        let name = claim.name_any();
        if existing.contains_key(&name) {
            continue;
        }
        if deletes(set, false) {
            claim.metadata.owner_references = Some(vec![plain_ref(
                "apps/v1",
                "StatefulSet",
                set.name_any(),
                set.uid().unwrap_or_default(),
            )]);
        }
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => created.push(name),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// Sets the ownerReferences the retention policy asks for on the claims of
/// `pod` (ordinal `ordinal`; `condemned`: it is being scaled away), and
/// removes the ones it no longer asks for (upstream's
/// updateClaimOwnerRefForSetAndPod).
pub async fn apply_retention(
    api: &Api<PersistentVolumeClaim>,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
    condemned: bool,
    existing: &HashMap<String, PersistentVolumeClaim>,
) -> Result<(), kube::Error> {
    let set_uid = set.uid().unwrap_or_default();
    let pod_uid = pod.uid().unwrap_or_default();
    for claim in identity::claims(set, ordinal) {
        let Some(live) = existing.get(&claim.name_any()) else {
            continue;
        };
        let refs = live.metadata.owner_references.clone().unwrap_or_default();
        let mut wanted: Vec<OwnerReference> = refs
            .iter()
            .filter(|r| r.uid != set_uid && !(r.kind == "Pod" && r.name == pod.name_any()))
            .cloned()
            .collect();
        if deletes(set, false) {
            wanted.push(plain_ref(
                "apps/v1",
                "StatefulSet",
                set.name_any(),
                set_uid.clone(),
            ));
        }
        if condemned && deletes(set, true) && !pod_uid.is_empty() {
            wanted.push(plain_ref("v1", "Pod", pod.name_any(), pod_uid.clone()));
        }
        let key = |r: &OwnerReference| r.uid.clone();
        let mut have: Vec<String> = refs.iter().map(key).collect();
        let mut want: Vec<String> = wanted.iter().map(key).collect();
        have.sort();
        want.sort();
        if have == want {
            continue;
        }
        let patch = json!({"metadata": {
            "ownerReferences": wanted,
            "resourceVersion": live.metadata.resource_version,
        }});
        match api
            .patch(
                &live.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
