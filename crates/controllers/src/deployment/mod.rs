//! The Deployment controller (`deployment-controller`), the basics of
//! upstream's: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, rolled out by Recreate or
//! RollingUpdate ([`rollout`]), with the `deployment.kubernetes.io/revision`
//! annotation and a basic status.
//!
//! Old ReplicaSets beyond `revisionHistoryLimit` are deleted once scaled
//! to zero. Not yet: proportional scaling of several active ReplicaSets,
//! progress deadlines and conditions, rollbacks by annotation.

pub mod rollout;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::replicaset::pods::{controller_of, selector_matches};
use rollout::{HASH_LABEL, Old, REVISION};

/// Tuning of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Deployments reconciled in parallel (`--concurrent-deployment-syncs`).
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { concurrency: 5 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the replicaset cache stopped")]
    CacheStopped,
}

struct Ctx {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (cache, writer) = reflector::store::<ReplicaSet>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        replicasets: cache,
    });
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let rs_events = watcher(Api::<ReplicaSet>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    controller
        .watches_stream(rs_events, move |rs: ReplicaSet| {
            deployments_for(&rs, &deployments)
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "deployment sync");
            }
        })
        .await;
    Ok(())
}

fn deployments_for(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        if owner.kind == "Deployment" && owner.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|d| {
            d.spec
                .as_ref()
                .is_some_and(|s| selector_matches(&s.selector, rs.metadata.labels.as_ref()))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn error_policy(_d: Arc<Deployment>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "deployment sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: d.name_any(),
        uid: d.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

async fn scale(api: &Api<ReplicaSet>, rs: &ReplicaSet, replicas: i32) -> Result<(), Error> {
    if spec_replicas(rs) == replicas {
        return Ok(());
    }
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.replicasets
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);

    // Claim ReplicaSets: adopt matching orphans, release owned ones that stopped matching.
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in ctx
        .replicasets
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
                    match rs_api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(crate::api_code(&e), Some(404 | 422)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Some(_) => {}
            None if matches => {
                let patch = json!({"metadata": {
                    "ownerReferences": [controller_ref(&d)],
                    "uid": rs.metadata.uid,
                }});
                match rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    )
                    .await
                {
                    Ok(r) => owned.push(r),
                    Err(e) if matches!(crate::api_code(&e), Some(404 | 409 | 422)) => {}
                    Err(e) => return Err(e.into()),
                }
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

    let template = spec.template.clone();
    let replicas = spec.replicas.unwrap_or(1);
    let new_idx = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| rollout::equal_ignore_hash(t, &template))
    });
    let max_old_revision = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| revision(rs))
        .max()
        .unwrap_or(0);
    let mut new_rs = new_idx.map(|i| owned[i].clone());
    let olds: Vec<ReplicaSet> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| rs.clone())
        .collect();
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (max_surge, max_unavailable) = rollout::fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
    );
    let paused = spec.paused == Some(true);
    let mut collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let mut requeue = None;

    if !paused {
        // Recreate: the old ReplicaSets go to zero and their pods away first.
        let old_running = olds
            .iter()
            .any(|rs| spec_replicas(rs) > 0 || status_of(rs).0 > 0);
        if recreate {
            for rs in &olds {
                scale(&rs_api, rs, 0).await?;
            }
        }
        let may_create = !recreate || !old_running;
        // The new ReplicaSet: its revision is above every old one.
        if let Some(rs) = &new_rs {
            if revision(rs) <= max_old_revision {
                let patch = json!({"metadata": {"annotations": {REVISION: (max_old_revision + 1).to_string()}}});
                new_rs = Some(
                    rs_api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?,
                );
            }
        } else if may_create {
            let all: i32 = olds.iter().map(spec_replicas).sum();
            let initial = if recreate {
                replicas
            } else {
                rollout::new_rs_replicas(replicas, max_surge, all, 0)
            };
            let hash = rollout::template_hash(&template, collision_count);
            let mut t = template.clone();
            t.metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default()
                .insert(HASH_LABEL.to_owned(), hash.clone());
            let mut selector = spec.selector.clone();
            selector
                .match_labels
                .get_or_insert_default()
                .insert(HASH_LABEL.to_owned(), hash.clone());
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "namespace": ns,
                    "labels": t.metadata.as_ref().and_then(|m| m.labels.clone()),
                    "annotations": {REVISION: (max_old_revision + 1).to_string()},
                    "ownerReferences": [controller_ref(&d)],
                },
                "spec": {
                    "replicas": initial,
                    "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
                    "selector": selector,
                    "template": t,
                },
            }))
            .unwrap_or_default();
            match rs_api.create(&PostParams::default(), &rs).await {
                Ok(created) => new_rs = Some(created),
                Err(e) if crate::api_code(&e) == Some(409) => {
                    // Ours, not yet in the cache (upstream's check), or
                    // someone else's with the name: a hash collision.
                    let existing = rs_api.get_opt(&rs.name_any()).await?;
                    let ours = existing.filter(|x| {
                        controller_of(&x.metadata).is_some_and(|r| r.uid == uid)
                            && x.spec
                                .as_ref()
                                .and_then(|s| s.template.as_ref())
                                .is_some_and(|t| rollout::equal_ignore_hash(t, &template))
                    });
                    if ours.is_some() {
                        new_rs = ours;
                    } else {
                        collision_count = Some(collision_count.unwrap_or(0) + 1);
                        requeue = Some(Duration::from_millis(100));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }

        if let Some(new) = &new_rs {
            let new_spec = spec_replicas(new);
            if recreate {
                if !old_running {
                    scale(&rs_api, new, replicas).await?;
                }
            } else {
                let all: i32 = olds.iter().map(spec_replicas).sum::<i32>() + new_spec;
                let mut target = rollout::new_rs_replicas(replicas, max_surge, all, new_spec);
                if olds.iter().all(|rs| spec_replicas(rs) == 0) {
                    target = replicas;
                }
                scale(&rs_api, new, target).await?;
                let view: Vec<Old> = olds
                    .iter()
                    .map(|rs| Old {
                        spec_replicas: spec_replicas(rs),
                        available: status_of(rs).2,
                    })
                    .collect();
                let down = rollout::scale_down_old(
                    replicas,
                    max_unavailable,
                    target,
                    status_of(new).2,
                    &view,
                );
                for (rs, to) in olds.iter().zip(down) {
                    scale(&rs_api, rs, to).await?;
                }
            }
        }
    }

    // History: old ReplicaSets with nothing left beyond revisionHistoryLimit
    // go, oldest revision first (upstream's cleanupDeployment).
    if !paused && olds.iter().all(|rs| spec_replicas(rs) == 0) {
        let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let mut spent: Vec<&ReplicaSet> = olds
            .iter()
            .filter(|rs| status_of(rs).0 == 0 && rs.metadata.deletion_timestamp.is_none())
            .collect();
        spent.sort_by_key(|rs| revision(rs));
        let excess = spent.len().saturating_sub(limit);
        for rs in spent.into_iter().take(excess) {
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..kube::api::DeleteParams::default()
            };
            match rs_api.delete(&rs.name_any(), &params).await {
                Ok(_) => {}
                Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    // Status, from the ReplicaSets' own status.
    let sum = |f: fn(&ReplicaSet) -> i32| owned.iter().map(f).sum::<i32>();
    let total = sum(|rs| status_of(rs).0);
    let ready = sum(|rs| status_of(rs).1);
    let available = sum(|rs| status_of(rs).2);
    let updated = new_rs.as_ref().map_or(0, |rs| status_of(rs).0);
    let unavailable = (replicas - available).max(0);
    let current = d.status.clone().unwrap_or_default();
    let new_revision = new_rs.as_ref().map(revision);
    let mut d_revision_patch = None;
    if let Some(r) = new_revision
        && d.annotations().get(REVISION).map(String::as_str) != Some(r.to_string().as_str())
    {
        d_revision_patch = Some(json!({"metadata": {"annotations": {REVISION: r.to_string()}}}));
    }
    if let Some(p) = d_revision_patch {
        d_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
    }
    if current.replicas.unwrap_or(0) != total
        || current.updated_replicas.unwrap_or(0) != updated
        || current.ready_replicas.unwrap_or(0) != ready
        || current.available_replicas.unwrap_or(0) != available
        || current.unavailable_replicas.unwrap_or(0) != unavailable
        || current.observed_generation != d.metadata.generation
        || current.collision_count != collision_count
    {
        let patch = json!({"status": {
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": unavailable,
            "observedGeneration": d.metadata.generation,
            "collisionCount": collision_count,
        }});
        match d_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if crate::api_code(&e) == Some(404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}
