//! Carrying out a sync's plan (upstream's syncNodes): deletes, then
//! creates in slow-start batches, each recorded as an expectation and an
//! Event.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use super::manage::Plan;
use super::{BURST, Ctx, Error, TEMPLATE_GENERATION_LABEL, controller_ref, placement};
use crate::events::EventType;
use crate::replicaset::pods::pod_from_template;
use crate::statefulset::history::HASH_LABEL;

/// Deletes then creates what `plan` says (upstream's syncNodes), with
/// expectations, events and slow-start creation batches.
pub(super) async fn execute(
    ctx: &Ctx,
    ds: &DaemonSet,
    key: &str,
    template: &PodTemplateSpec,
    hash: &str,
    plan: &mut Plan,
) -> Result<(), Error> {
    let ns = ds.namespace().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut seen = HashSet::new();
    plan.delete.retain(|p| seen.insert(p.uid()));
    plan.delete.truncate(BURST);
    let mut failed: Option<kube::Error> = None;
    let deletes = plan.delete.iter().map(|pod| {
        let pod_api = pod_api.clone();
        async move {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            (pod, pod_api.delete(&pod.name_any(), &params).await)
        }
    });
    for (pod, result) in futures::future::join_all(deletes).await {
        match result {
            Ok(_) => {
                if let Some(uid) = pod.uid() {
                    ctx.expectations.deleted(key, uid);
                }
                ctx.recorder.record(
                    ds,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pod.name_any()),
                );
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                ctx.recorder.record(
                    ds,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {e}"),
                );
                failed = Some(e);
            }
        }
    }

    let mut seen = HashSet::new();
    plan.create_on.retain(|n| seen.insert(n.clone()));
    plan.create_on.truncate(BURST);
    let generation = template_generation(ds);
    let mut base = pod_from_template(template, &ns, &ds.name_any(), controller_ref(ds));
    let labels = base.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH_LABEL.to_owned(), hash.to_owned());
    labels.insert(TEMPLATE_GENERATION_LABEL.to_owned(), generation);
    let post = PostParams::default();
    let mut batch = 1;
    let mut remaining: &[String] = &plan.create_on;
    while !remaining.is_empty() && failed.is_none() {
        let (now, rest) = remaining.split_at(batch.min(remaining.len()));
        remaining = rest;
        batch *= 2;
        let creates = now.iter().map(|node| {
            let mut pod = base.clone();
            if let Some(spec) = pod.spec.as_mut() {
                placement::pin_to_node(spec, node);
            }
            let pod_api = pod_api.clone();
            let post = &post;
            async move { pod_api.create(post, &pod).await }
        });
        for result in futures::future::join_all(creates).await {
            match result {
                Ok(p) => {
                    ctx.expectations.created(key, p.name_any());
                    ctx.recorder.record(
                        ds,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    );
                }
                Err(e) => {
                    ctx.recorder.record(
                        ds,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    failed = Some(e);
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The template generation: upstream's apiserver keeps it in the
/// `deprecated.daemonset.template.generation` annotation (bumped only by
/// template changes); without it, the object's generation.
fn template_generation(ds: &DaemonSet) -> String {
    ds.annotations()
        .get("deprecated.daemonset.template.generation")
        .cloned()
        .unwrap_or_else(|| ds.metadata.generation.unwrap_or(0).to_string())
}
