//! The taint eviction controller (`taint-eviction-controller`, upstream's
//! taint manager): pods on nodes with NoExecute taints are deleted when
//! their tolerations run out ([`tolerations`]) — at once without a
//! toleration, after `tolerationSeconds` counted from the taint's
//! `timeAdded` (every pod gets 300 s for `not-ready`/`unreachable` from
//! the API server's DefaultTolerationSeconds admission), or never.

pub mod tolerations;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::node_pod_caches::NodePodCaches;

use crate::events::{EventType, Recorder};
use tolerations::Verdict;

/// How often pods on tainted nodes are looked at.
#[derive(Clone, Debug)]
pub struct Settings {
    pub period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    CacheStopped(#[from] crate::node_pod_caches::CachesStopped),
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let caches = NodePodCaches::watch(&client);
    let (nodes, pods) = (&caches.nodes, &caches.pods);
    let recorder = Recorder::new(client.clone(), "taint-eviction-controller");
    let result = async {
        if !caches.ready(&shutdown).await? {
            return Ok(());
        }
        // When each taint without `timeAdded` was first seen.
        let mut first_seen: HashMap<(String, String), Timestamp> = HashMap::new();
        loop {
            if let Err(e) = pass(&client, nodes, pods, &recorder, &mut first_seen).await {
                tracing::warn!(error = %e, "taint eviction pass failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(settings.period) => {}
            }
        }
    }
    .await;
    drop(caches);
    result
}

fn no_execute(node: &Node) -> Vec<&Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| ts.iter().filter(|t| t.effect == "NoExecute").collect())
        .unwrap_or_default()
}

async fn pass(
    client: &kube::Client,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    recorder: &Recorder,
    first_seen: &mut HashMap<(String, String), Timestamp>,
) -> Result<(), Error> {
    let now = Timestamp::now();
    let tainted: HashMap<String, (Vec<Taint>, Timestamp)> = nodes
        .state()
        .iter()
        .filter_map(|n| {
            let taints = no_execute(n);
            if taints.is_empty() {
                return None;
            }
            let name = n.name_any();
            let since = taints
                .iter()
                .map(|t| match &t.time_added {
                    Some(at) => at.0,
                    None => *first_seen
                        .entry((name.clone(), t.key.clone()))
                        .or_insert(now),
                })
                .min()
                .unwrap_or(now);
            Some((name, (taints.into_iter().cloned().collect(), since)))
        })
        .collect();
    first_seen.retain(|(node, _), _| tainted.contains_key(node));
    if tainted.is_empty() {
        return Ok(());
    }
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some((taints, since)) = tainted.get(node) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Succeeded" | "Failed"))
        {
            continue;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let refs: Vec<&Taint> = taints.iter().collect();
        let Verdict::After(secs) = tolerations::verdict(&tolerations, &refs) else {
            continue;
        };
        if *since + SignedDuration::from_secs(secs) > now {
            continue;
        }
        evict(client, &pod, recorder).await?;
    }
    Ok(())
}

/// Marks the pod as disrupted (the `DisruptionTarget` condition upstream
/// sets) and deletes it.
async fn evict(client: &kube::Client, pod: &Pod, recorder: &Recorder) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    tracing::info!(pod = %format!("{ns}/{name}"), "evicting: NoExecute taint not tolerated");
    recorder.record(
        pod,
        EventType::Normal,
        "TaintManagerEviction",
        format!("Marking for deletion Pod {ns}/{name}"),
    );
    let patch = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(Timestamp::now()),
    }]}});
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Err(e) if crate::api_code(&e) == Some(404) => return Ok(()),
        other => {
            other?;
        }
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}
