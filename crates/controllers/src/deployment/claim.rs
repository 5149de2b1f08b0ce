//! Which ReplicaSets a Deployment owns: it adopts matching orphans and
//! releases owned ones whose labels stopped matching its selector, as
//! upstream's ControllerRefManager.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Error;
use crate::replicaset::pods::{controller_of, selector_matches};

/// The controller reference a Deployment puts on its ReplicaSets.
pub fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: d.name_any(),
        uid: d.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The ReplicaSets `d` owns after claiming, oldest first.
pub async fn claim(
    d: &Deployment,
    spec: &DeploymentSpec,
    cache: &Store<ReplicaSet>,
    api: &Api<ReplicaSet>,
) -> Result<Vec<ReplicaSet>, Error> {
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in cache
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
    {
        let matches = selector_matches(&spec.selector, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(rs.as_ref().clone());
                } else {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": rs.metadata.uid,
                    }});
                    tolerate(
                        api.patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await,
                        &[404, 422],
                    )?;
                }
            }
            Some(_) => {}
            None if matches && d.metadata.deletion_timestamp.is_none() => {
                let patch = json!({"metadata": {
                    "ownerReferences": [controller_ref(d)],
                    "uid": rs.metadata.uid,
                }});
                let adopted = tolerate(
                    api.patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    )
                    .await,
                    &[404, 409, 422],
                )?;
                owned.extend(adopted);
            }
            None => {}
        }
    }
    owned.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(owned)
}

/// The result, with the given API error codes (the object went away or
/// changed under us) turned into `None`.
pub fn tolerate<T>(result: Result<T, kube::Error>, codes: &[u16]) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if crate::api_code(&e).is_some_and(|c| codes.contains(&c)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
