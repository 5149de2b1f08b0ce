//! Claiming pods (upstream's PodControllerRefManager.ClaimPods), shared by
//! the StatefulSet and DaemonSet controllers: orphans that match the
//! selector are adopted, owned pods that stopped matching are released,
//! so a set recreated after an orphaning delete takes its pods back.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::replicaset::pods::{controller_of, selector_matches};

fn gone_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409 || s.code == 422)
}

/// The pods among `candidates` (one namespace) that `owner` controls after
/// adopting matching orphans that are `member`s and releasing owned pods
/// that no longer match. `deleting`: the owner is going away, so it
/// neither adopts nor releases.
pub async fn claim(
    api: &Api<Pod>,
    candidates: Vec<Arc<Pod>>,
    selector: &LabelSelector,
    owner: &OwnerReference,
    deleting: bool,
    member: impl Fn(&Pod) -> bool,
) -> Result<Vec<Arc<Pod>>, kube::Error> {
    let mut claimed = Vec::new();
    for pod in candidates {
        let matches = selector_matches(selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == owner.uid => {
                if matches || deleting {
                    claimed.push(pod);
                } else {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": owner.uid}],
                        "uid": pod.metadata.uid,
                    }});
                    match api
                        .patch(
                            &pod.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if gone_or_conflict(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            None if matches
                && !deleting
                && pod.metadata.deletion_timestamp.is_none()
                && member(&pod) =>
            {
                let patch = json!({"metadata": {
                    "ownerReferences": [owner],
                    "uid": pod.metadata.uid,
                }});
                match api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    )
                    .await
                {
                    Ok(p) if controller_of(&p.metadata).is_some_and(|r| r.uid == owner.uid) => {
                        claimed.push(Arc::new(p));
                    }
                    Ok(_) => {}
                    Err(e) if gone_or_conflict(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    Ok(claimed)
}
