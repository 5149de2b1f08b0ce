//! The disruption controller (`disruption-controller`): keeps each
//! PodDisruptionBudget's status — `currentHealthy`, `desiredHealthy`,
//! `expectedPods`, `disruptionsAllowed`, the `DisruptionAllowed` condition
//! — which the API server's eviction subresource (and so `kubectl drain`)
//! obeys, and forgets `disruptedPods` that are gone or timed out.

pub mod budget;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};
use crate::replicaset::pods::{controller_of, selector_matches};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the pod cache stopped")]
    CacheStopped,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    recorder: Recorder,
}

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let (pods, writer) = reflector::store::<Pod>();
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        // Pod caches: managedFields are never read and take much memory.
        .modify(|p| p.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "controllermanager"),
        client,
        pods,
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            let ns = pod.namespace();
            budgets
                .state()
                .iter()
                .filter(|b| b.namespace() == ns)
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "disruption budget sync");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "disruption budget sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// How many pods the controller named by `owner` wants (a ReplicaSet of a
/// Deployment: the Deployment's); `None` for kinds without a known size.
async fn scale_of(
    client: &kube::Client,
    ns: &str,
    owner: &OwnerReference,
) -> Result<Option<i32>, kube::Error> {
    let replicas = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "ReplicaSet") => {
            let Some(rs) = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
            else {
                return Ok(Some(0));
            };
            if let Some(d) = controller_of(&rs.metadata).filter(|d| d.kind == "Deployment") {
                Api::<Deployment>::namespaced(client.clone(), ns)
                    .get_opt(&d.name)
                    .await?
                    .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1))
            } else {
                Some(rs.spec.and_then(|s| s.replicas).unwrap_or(1))
            }
        }
        ("apps/v1", "StatefulSet") => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(&owner.name)
            .await?
            .map(|s| s.spec.and_then(|s| s.replicas).unwrap_or(1)),
        ("v1", "ReplicationController") => {
            Api::<ReplicationController>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
                .map(|s| s.spec.and_then(|s| s.replicas).unwrap_or(1))
        }
        _ => return Ok(None),
    };
    Ok(Some(replicas.unwrap_or(0)))
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let all = ctx.pods.state();
    let pods: Vec<&Pod> = all
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| {
            spec.selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, p.metadata.labels.as_ref()))
        })
        .map(AsRef::as_ref)
        .collect();
    let pod_count = i32::try_from(pods.len()).unwrap_or(i32::MAX);

    // The controllers' sizes, when the budget is relative to them.
    let mut scale = 0;
    if budget::needs_scale(&spec) {
        let mut owners: BTreeMap<String, OwnerReference> = BTreeMap::new();
        let mut unmanaged = 0;
        for p in &pods {
            match controller_of(&p.metadata) {
                Some(o) => {
                    owners.insert(o.uid.clone(), o.clone());
                }
                None => unmanaged += 1,
            }
        }
        for owner in owners.values() {
            match scale_of(&ctx.client, &ns, owner).await? {
                Some(n) => scale += n,
                None => {
                    unmanaged += pods
                        .iter()
                        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == owner.uid))
                        .count();
                }
            }
        }
        if unmanaged > 0 {
            ctx.recorder.record(
                pdb.as_ref(),
                EventType::Warning,
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
                    .to_owned(),
            );
            scale += i32::try_from(unmanaged).unwrap_or(i32::MAX);
        }
    }
    let (expected, desired) = budget::expected_and_desired(&spec, pod_count, scale);

    // Pods the eviction API let go: forgotten once gone or timed out.
    let now = Timestamp::now();
    let present: BTreeSet<&str> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let old = pdb.status.clone().unwrap_or_default();
    let disrupted: BTreeMap<String, Timestamp> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, t)| (k, t.0))
        .filter(|(k, at)| present.contains(k.as_str()) && *at + budget::DELETION_TIMEOUT > now)
        .collect();
    let healthy = budget::healthy(&pods, &disrupted, now);
    let allowed = if expected <= 0 && budget::needs_scale(&spec) {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = pdb.metadata.generation;
    let condition = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old_cond = old
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let transition = match old_cond {
        Some(c) if c.status == condition.0 => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let disrupted_json: BTreeMap<&String, Time> =
        disrupted.iter().map(|(k, t)| (k, Time(*t))).collect();
    let unchanged = old.current_healthy == healthy
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.observed_generation == generation
        && old.disrupted_pods.clone().unwrap_or_default().len() == disrupted.len()
        && old_cond.is_some_and(|c| c.status == condition.0 && c.reason == condition.1);
    if !unchanged {
        let patch = json!({"status": {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": allowed,
            "observedGeneration": generation,
            "disruptedPods": if disrupted.is_empty() { serde_json::Value::Null } else { json!(disrupted_json) },
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": condition.0,
                "reason": condition.1,
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }],
        }});
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        if !crate::patch_status(&api, &pdb.name_any(), &patch).await? {
            return Ok(Action::await_change());
        }
    }
    // Look again when the oldest disrupted pod times out.
    let recheck = disrupted
        .values()
        .map(|at| *at + budget::DELETION_TIMEOUT)
        .min()
        .and_then(|t| Duration::try_from(t.duration_since(now)).ok());
    Ok(recheck.map_or_else(Action::await_change, |d| {
        Action::requeue(d.max(Duration::from_secs(1)))
    }))
}
