//! Which pods a Job manages (upstream's ClaimPods): its own pods that
//! still match its selector, plus orphans that match, adopted with the
//! tracking finalizer; its pods that stopped matching are released.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::pods::TRACKING_FINALIZER;
use crate::replicaset::pods::{controller_of, selector_matches};

/// Whether `pod` matches the Job's selector (`None`: the Job has none,
/// which the API server never allows; then nothing is adopted or
/// released).
fn matches(job: &Job, pod: &Pod) -> Option<bool> {
    let selector = job.spec.as_ref()?.selector.as_ref()?;
    Some(selector_matches(selector, pod.metadata.labels.as_ref()))
}

/// Claims the pods of `job` among `pods` (its namespace's pods in the
/// cache); `owner` is the reference adopted pods get.
pub async fn claim(
    client: &kube::Client,
    api: &Api<Pod>,
    job: &Job,
    owner: &OwnerReference,
    pods: Vec<Arc<Pod>>,
) -> Result<Vec<Arc<Pod>>, kube::Error> {
    let uid = job.uid().unwrap_or_default();
    let deleting = job.metadata.deletion_timestamp.is_some();
    let mut can_adopt: Option<bool> = None;
    let mut owned = Vec::new();
    for pod in pods {
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches(job, &pod) != Some(false) || deleting {
                    owned.push(pod);
                } else {
                    release(api, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None if !deleting
                && pod.metadata.deletion_timestamp.is_none()
                && matches(job, &pod) == Some(true) =>
            {
                if can_adopt.is_none() {
                    let jobs: Api<Job> =
                        Api::namespaced(client.clone(), &job.namespace().unwrap_or_default());
                    let fresh = jobs.get_opt(&job.name_any()).await?;
                    can_adopt = Some(fresh.is_some_and(|f| {
                        f.uid() == job.uid() && f.metadata.deletion_timestamp.is_none()
                    }));
                }
                if can_adopt == Some(true)
                    && let Some(adopted) = adopt(api, &pod, owner).await?
                {
                    owned.push(Arc::new(adopted));
                }
            }
            None => {}
        }
    }
    Ok(owned)
}

/// Makes `owner` the controller of the orphan `pod` and adds the tracking
/// finalizer (uid precondition, as upstream). `None`: gone or changed.
async fn adopt(
    api: &Api<Pod>,
    pod: &Pod,
    owner: &OwnerReference,
) -> Result<Option<Pod>, kube::Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [owner],
        "uid": pod.metadata.uid,
        "finalizers": [TRACKING_FINALIZER],
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(p) => Ok(controller_of(&p.metadata)
            .is_some_and(|r| r.uid == owner.uid)
            .then_some(p)),
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409 | 422)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drops the Job's reference from a pod that stopped matching (its
/// tracking finalizer goes with it: no Job counts the pod any more).
async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": uid}],
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
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
        Ok(_) => Ok(()),
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409 | 422)) => Ok(()),
        Err(e) => Err(e),
    }
}
