#![allow(clippy::unwrap_used)]
//! The TTL-after-finished controller deletes finished Jobs (and, through
//! foreground deletion and the garbage collector, their pods).

mod common;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn job(name: &str, ttl: Option<i32>) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "ttlSecondsAfterFinished": ttl,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn deletes_finished_jobs_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut config = skiff_controllers::Config::new(server.client.clone());
    config.controllers = ["job", "ttl-after-finished", "garbagecollector"]
        .map(str::to_owned)
        .to_vec();
    config.leader_elect = false;
    config.garbage_collector.resync = Duration::from_secs(1);
    config.garbage_collector.rediscover = Duration::from_secs(2);
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { skiff_controllers::run(config, stop).await.unwrap() }
    });
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(&PostParams::default(), &job("short", Some(2)))
        .await
        .unwrap();
    jobs.create(&PostParams::default(), &job("kept", None))
        .await
        .unwrap();
    for name in ["short", "kept"] {
        let selector = format!("batch.kubernetes.io/job-name={name}");
        let pod = loop {
            let list = pod_api
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
            if let Some(p) = list.items.into_iter().next() {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        pod_api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"phase": "Succeeded"}})),
            )
            .await
            .unwrap();
    }
    common::eventually("both complete", || async {
        let mut done = true;
        for name in ["short", "kept"] {
            let j = jobs.get(name).await.unwrap();
            done &= j
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
        }
        done
    })
    .await;
    // Still there right after finishing (TTL 2 s).
    assert!(jobs.get_opt("short").await.unwrap().is_some());
    common::eventually("deleted after the TTL", || async {
        jobs.get_opt("short").await.unwrap().is_none()
    })
    .await;
    common::eventually("its pod deleted too", || async {
        pod_api
            .list(&ListParams::default().labels("batch.kubernetes.io/job-name=short"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        jobs.get_opt("kept").await.unwrap().is_some(),
        "no TTL, kept"
    );
    stop.cancel();
    task.await.unwrap();
}
