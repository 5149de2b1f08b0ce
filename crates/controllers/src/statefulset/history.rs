//! Revision history as ControllerRevisions (upstream's `controller/history`),
//! shared by the StatefulSet and DaemonSet controllers: each distinct pod
//! template is stored once, as the patch `{"spec":{"template":…}}`, named
//! `<owner>-<hash>` and numbered; `kubectl rollout history/undo` read them.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::deployment::rollout::template_hash;
use crate::replicaset::pods::controller_of;

/// Label on revisions (and on pods) naming the revision's hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Most hash collisions tried before giving up on a sync.
const MAX_COLLISIONS: i32 = 100;

/// What a revision stores: a strategic merge patch that restores `template`
/// (the form upstream stores, so `kubectl rollout undo` can apply it).
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".to_owned(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision stores.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The hash of `template` with `collision_count` (upstream's ComputeHash).
pub fn hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    template_hash(template, collision_count)
}

fn same_data(rev: &ControllerRevision, data: &Value) -> bool {
    rev.data.as_ref().is_some_and(|d| &d.0 == data)
}

/// The revisions `owner_uid` controls in `namespace`, oldest first, from
/// a cache of ControllerRevisions (a stale cache only makes `sync` meet
/// its own revision again as a 409, and `truncate` delete one twice).
pub fn owned(
    cache: &Store<ControllerRevision>,
    namespace: &str,
    owner_uid: &str,
) -> Vec<ControllerRevision> {
    let mut revs: Vec<ControllerRevision> = cache
        .state()
        .iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == owner_uid))
        .map(|r| (**r).clone())
        .collect();
    revs.sort_by_key(|r| (r.revision, r.name_any()));
    revs
}

/// The owner (of `kind`) a revision event concerns, to re-sync it when
/// someone changes or deletes its history.
pub fn owner_of<K>(rev: &ControllerRevision, kind: &str) -> Option<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()>,
{
    let owner = controller_of(&rev.metadata)?;
    (owner.kind == kind && owner.api_version.starts_with("apps/"))
        .then(|| ObjectRef::new(&owner.name).within(&rev.namespace().unwrap_or_default()))
}

/// The revision for `template` (created, or an equal one rolled forward
/// to the newest number) and the collision count it took.
pub struct Synced {
    pub update: ControllerRevision,
    pub collision_count: i32,
}

/// Finds or creates the revision of `template` among `revs` (upstream's
/// getStatefulSetRevisions / constructHistory): an equal revision that is
/// not the newest gets the next number; a name taken by different data is
/// a hash collision, which bumps `collision_count`.
pub async fn sync(
    api: &Api<ControllerRevision>,
    owner: OwnerReference,
    template: &PodTemplateSpec,
    revs: &mut Vec<ControllerRevision>,
    collision_count: i32,
) -> Result<Synced, kube::Error> {
    let data = revision_data(template);
    let max = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(eq) = revs.iter_mut().rev().find(|r| same_data(r, &data)) {
        if eq.revision != max {
            let patched = api
                .patch(
                    &eq.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": max + 1})),
                )
                .await?;
            *eq = patched;
        }
        let update = eq.clone();
        revs.sort_by_key(|r| (r.revision, r.name_any()));
        return Ok(Synced {
            update,
            collision_count,
        });
    }
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut collisions = collision_count;
    loop {
        let h = hash(template, (collisions > 0).then_some(collisions));
        labels.insert(HASH_LABEL.to_owned(), h.clone());
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{}-{h}", owner.name)),
                labels: Some(labels.clone()),
                owner_references: Some(vec![owner.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: max + 1,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(created) => {
                revs.push(created.clone());
                return Ok(Synced {
                    update: created,
                    collision_count: collisions,
                });
            }
            Err(kube::Error::Api(s)) if s.code == 409 && collisions < MAX_COLLISIONS => {
                let name = rev.name_any();
                if let Some(existing) = api.get_opt(&name).await?
                    && same_data(&existing, &data)
                    && controller_of(&existing.metadata).is_some_and(|o| o.uid == owner.uid)
                {
                    revs.push(existing.clone());
                    return Ok(Synced {
                        update: existing,
                        collision_count: collisions,
                    });
                }
                collisions += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the oldest revisions that are not `live` beyond `limit`
/// (`revisionHistoryLimit`, default 10).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Result<(), kube::Error> {
    let history: Vec<&ControllerRevision> = revs
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let limit = usize::try_from(limit).unwrap_or(0);
    let excess = history.len().saturating_sub(limit);
    for r in history.into_iter().take(excess) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_the_template() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap_or_default();
        let data = revision_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..ControllerRevision::default()
        };
        assert_eq!(template_of(&rev), Some(t.clone()));
        assert_ne!(hash(&t, None), hash(&t, Some(1)));
    }
}
