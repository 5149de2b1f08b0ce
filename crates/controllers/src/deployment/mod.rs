//! The Deployment controller (`deployment-controller`), as upstream's: one
//! ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`,
//! rolled out by Recreate or RollingUpdate ([`rollout`]); a resize during a
//! rollout is spread proportionally; pausing stops rollouts but not
//! resizes; the revision annotations ([`annotations`]) let `kubectl rollout
//! history|undo` work (an undo puts an old template back, whose ReplicaSet
//! then becomes the new one again); the status and its `Available` and
//! `Progressing` conditions ([`status`]) drive `kubectl rollout status`,
//! including `progressDeadlineSeconds`. Old ReplicaSets beyond
//! `revisionHistoryLimit` are deleted once empty.

pub mod annotations;
mod claim;
mod replicasets;
pub mod rollout;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::replicaset::pods::{controller_of, selector_matches};
use annotations::REVISION;
use replicasets::{Actions, Created, spec_replicas};
use rollout::Old;

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
    recorder: Recorder,
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
        recorder: Recorder::new(client.clone(), "deployment-controller"),
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

fn revision(rs: &ReplicaSet) -> i64 {
    annotations::revision(rs.annotations())
}

fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.replicasets
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let ns = d.namespace().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = claim::claim(&d, spec, &ctx.replicasets, &rs_api).await?;
    let new_idx = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| rollout::equal_ignore_hash(t, &spec.template))
    });
    let mut new_rs = new_idx.map(|i| owned[i].clone());
    let mut olds: Vec<ReplicaSet> = owned
        .into_iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| rs)
        .collect();
    let new_revision = olds.iter().map(revision).max().unwrap_or(0) + 1;
    let actions = Actions {
        api: &rs_api,
        deployment: &d,
        spec,
        recorder: &ctx.recorder,
    };
    if let Some(rs) = &new_rs {
        new_rs = Some(actions.sync_new(rs, new_revision).await?);
    }

    let replicas = spec.replicas.unwrap_or(1);
    let (max_surge, max_unavailable) = rollout::limits(spec);
    let paused = spec.paused == Some(true);
    let mut collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let mut requeue = None;
    let mut created_new = false;
    let current = d.status.clone().unwrap_or_default();
    let rolling_out = !paused && !replicasets::is_scaling_event(spec, new_rs.as_ref(), &olds);

    if !rolling_out {
        actions
            .scale_without_rollout(&mut new_rs, &mut olds)
            .await?;
        if paused {
            actions.prune_history(&olds).await?;
        }
    } else {
        let recreate = !rollout::is_rolling(spec);
        // Recreate: old pods go entirely before the new ones come.
        let mut scaled_down = false;
        if recreate {
            for rs in olds.iter_mut().filter(|rs| spec_replicas(rs) > 0) {
                *rs = actions.scale(rs, 0, false).await?;
                scaled_down = true;
            }
        }
        let old_pods = olds.iter().any(|rs| status_replicas(rs) > 0);
        let may_proceed = !recreate || (!scaled_down && !old_pods);
        if new_rs.is_none() && may_proceed {
            let initial = if recreate {
                replicas
            } else {
                let all: i32 = olds.iter().map(spec_replicas).sum();
                rollout::new_rs_replicas(replicas, max_surge, all, 0)
            };
            match actions
                .create_new(initial, new_revision, collision_count)
                .await?
            {
                Created::New(rs) => {
                    created_new = true;
                    new_rs = Some(*rs);
                }
                Created::Collision => {
                    collision_count = Some(collision_count.unwrap_or(0) + 1);
                    requeue = Some(Duration::from_millis(100));
                }
            }
        } else if let Some(new) = new_rs.as_mut().filter(|_| may_proceed) {
            let new_spec = spec_replicas(new);
            let target = if recreate || new_spec > replicas {
                replicas
            } else {
                let all: i32 = olds.iter().map(spec_replicas).sum::<i32>() + new_spec;
                rollout::new_rs_replicas(replicas, max_surge, all, new_spec)
            };
            let scaled_up = target != new_spec;
            if scaled_up {
                *new = actions.scale(new, target, false).await?;
            }
            let mut scaled_down = false;
            if !recreate && !scaled_up {
                let view: Vec<Old> = olds
                    .iter()
                    .map(|rs| Old {
                        spec_replicas: spec_replicas(rs),
                        available: available(rs),
                    })
                    .collect();
                let down = rollout::scale_down_old(
                    replicas,
                    max_unavailable,
                    target,
                    available(new),
                    &view,
                );
                for (rs, to) in olds.iter_mut().zip(down) {
                    if spec_replicas(rs) != to {
                        *rs = actions.scale(rs, to, false).await?;
                        scaled_down = true;
                    }
                }
            }
            if !scaled_up && !scaled_down && status::complete(&d, &current) {
                actions.prune_history(&olds).await?;
            }
        }
    }

    // The Deployment carries its new ReplicaSet's revision.
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let name = d.name_any();
    if let Some(r) = new_rs.as_ref().map(revision)
        && d.annotations().get(REVISION) != Some(&r.to_string())
    {
        let p = json!({"metadata": {"annotations": {REVISION: r.to_string()}}});
        d_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
    }

    let mut all = olds;
    all.extend(new_rs.clone());
    let outcome = status::next(
        &status::Observed {
            deployment: &d,
            replicasets: &all,
            new: new_rs.as_ref(),
            collision_count,
            created_new,
            rolling_out,
        },
        Timestamp::now(),
    );
    if d.status.as_ref() != Some(&outcome.status) {
        let patch = json!({"status": outcome.status});
        match d_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if crate::api_code(&e) == Some(404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    let next = [requeue, outcome.recheck].into_iter().flatten().min();
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}
