#![allow(clippy::unwrap_used)]
//! ResourceQuota status against a real API server in this process: hard
//! mirrored from the spec, used counting non-terminal pods, their requests
//! and limits, and objects by `count/<resource>.<group>`.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn pod(api: &Api<Pod>, name: &str, cpu: &str, memory: &str) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": "1"}}}]},
    }))
    .unwrap();
    api.create(&PostParams::default(), &p).await.unwrap();
}

fn used(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.status
        .as_ref()
        .and_then(|s| s.used.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn quota_status_counts_what_the_namespace_uses() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let quotas: Api<ResourceQuota> = Api::namespaced(server.client.clone(), "default");
    pod(&pods, "a", "250m", "128Mi").await;
    pod(&pods, "b", "500m", "128Mi").await;
    pod(&pods, "done", "1", "1Gi").await;
    let finished = json!({"status": {"phase": "Succeeded"}});
    pods.patch_status("done", &PatchParams::default(), &Patch::Merge(&finished))
        .await
        .unwrap();
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "team"},
        "spec": {"hard": {
            "pods": "5", "requests.cpu": "2", "requests.memory": "1Gi", "limits.cpu": "4",
            "count/resourcequotas": "3",
        }},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    common::eventually("used counts the two running pods", || async {
        let q = quotas.get("team").await.unwrap();
        used(&q)
            == expect(&[
                ("pods", "2"),
                ("requests.cpu", "750m"),
                ("requests.memory", "256Mi"),
                ("limits.cpu", "2"),
                ("count/resourcequotas", "1"),
            ])
            && q.status.unwrap().hard.unwrap().len() == 5
    })
    .await;
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    common::eventually("a deleted pod is released at once", || async {
        let q = quotas.get("team").await.unwrap();
        used(&q).get("pods").map(String::as_str) == Some("1")
            && used(&q).get("requests.cpu").map(String::as_str) == Some("500m")
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
