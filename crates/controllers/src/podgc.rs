//! The pod garbage collector (`pod-garbage-collector-controller`), as
//! upstream's: pods bound to nodes that no longer exist, and terminating
//! pods that were never scheduled, are marked Failed and force-deleted
//! (no kubelet will ever finish them); finished pods beyond
//! `terminated_threshold` are deleted, oldest first.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::node_pod_caches::NodePodCaches;

/// Tuning, with upstream's defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often pods are looked at (upstream's gcCheckPeriod).
    pub period: Duration,
    /// Finished pods kept (`--terminated-pod-gc-threshold`; 0: no limit).
    pub terminated_threshold: usize,
    /// How long a node must stay missing before its pods go (upstream's
    /// quarantine against a slow informer).
    pub quarantine: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(20),
            terminated_threshold: 12_500,
            quarantine: Duration::from_secs(40),
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
    let result = async {
        if !caches.ready(&shutdown).await? {
            return Ok(());
        }
        let mut missing_since: HashMap<String, Instant> = HashMap::new();
        loop {
            if let Err(e) = pass(&client, &settings, nodes, pods, &mut missing_since).await {
                tracing::warn!(error = %e, "pod GC pass failed");
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

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

async fn pass(
    client: &kube::Client,
    settings: &Settings,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    missing_since: &mut HashMap<String, Instant>,
) -> Result<(), Error> {
    let now = Instant::now();
    let known: BTreeSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
    let all = pods.state();

    // Finished pods above the threshold, oldest first.
    if settings.terminated_threshold > 0 {
        let mut done: Vec<_> = all
            .iter()
            .filter(|p| finished(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        if done.len() > settings.terminated_threshold {
            done.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            });
            let excess = done.len() - settings.terminated_threshold;
            for pod in done.into_iter().take(excess) {
                delete(client, pod, None).await?;
            }
        }
    }

    // Pods on nodes that are gone (after the quarantine, checked live).
    let orphans: BTreeSet<String> = all
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .filter(|n| !known.contains(n))
        .collect();
    missing_since.retain(|n, _| orphans.contains(n));
    let nodes_api: Api<Node> = Api::all(client.clone());
    for node in &orphans {
        let since = *missing_since.entry(node.clone()).or_insert(now);
        if now.saturating_duration_since(since) < settings.quarantine {
            continue;
        }
        if nodes_api.get_opt(node).await?.is_some() {
            missing_since.remove(node);
            continue;
        }
        for pod in all
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(node))
        {
            tracing::info!(pod = %pod.name_any(), node = %node, "deleting a pod whose node is gone");
            delete(client, pod, Some("PodGC: node no longer exists")).await?;
        }
    }

    // Terminating pods that never got a node.
    for pod in all.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_some()
            && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
    }) {
        delete(client, pod, Some("PodGC: unscheduled pod is terminating")).await?;
    }
    Ok(())
}

/// Deletes `pod`; with a `reason`, it is first marked Failed with the
/// `DisruptionTarget` condition and deleted without a grace period.
async fn delete(client: &kube::Client, pod: &Pod, reason: Option<&str>) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    if let Some(message) = reason
        && !finished(pod)
    {
        let patch = json!({"status": {
            "phase": "Failed",
            "conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": message,
                "lastTransitionTime": Time(Timestamp::now()),
            }],
        }});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Err(e) if crate::api_code(&e) == Some(404) => return Ok(()),
            other => {
                other?;
            }
        }
    }
    let params = DeleteParams {
        grace_period_seconds: reason.map(|_| 0),
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
