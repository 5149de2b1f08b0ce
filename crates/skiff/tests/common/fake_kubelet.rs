//! A stand-in kubelet for clusters without a node agent: it marks pods
//! Running and Ready (except those labelled `stuck`; those labelled
//! `skiff.test/succeed` finish with exit code 0), finishes deleting
//! terminating pods, and keeps nodes labelled `skiff.test/fake=true` Ready.

use std::sync::mpsc::{Sender, TryRecvError, channel};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use skiff_testkit::Cluster;

/// Runs until the returned sender is dropped.
pub fn start(c: &Cluster) -> Sender<()> {
    let (stop, stopped) = channel::<()>();
    let kubeconfig = c.kubeconfig.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            let mut ticks = 0u32;
            while matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                pass(&client).await;
                if ticks.is_multiple_of(20) {
                    heartbeat(&client).await;
                }
                ticks = ticks.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    });
    stop
}

async fn pass(client: &kube::Client) {
    let all: Api<Pod> = Api::all(client.clone());
    let pods = all
        .list(&ListParams::default().labels("!stuck"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for p in pods {
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        if p.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        if p.labels().contains_key("skiff.test/succeed") {
            let patch = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
                "name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }]}});
            let _ = api
                .patch_status(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            continue;
        }
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            continue;
        }
        let patch = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
        ]}});
        let _ = api
            .patch_status(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    }
}

async fn heartbeat(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(list) = nodes
        .list(&ListParams::default().labels("skiff.test/fake=true"))
        .await
    else {
        return;
    };
    let now = Time(Timestamp::now());
    for n in list.items {
        let patch = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        }});
        let _ = nodes
            .patch_status(
                &n.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await;
    }
}
