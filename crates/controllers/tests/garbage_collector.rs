#![allow(clippy::unwrap_used)]
//! The garbage collector against a real API server in this process:
//! background, orphan and foreground cascading deletion, and a
//! Deployment → ReplicaSet → Pod chain.

mod common;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        block_owner_deletion: Some(block),
        controller: Some(true),
    }
}

async fn configmap(api: &Api<ConfigMap>, name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": {"k": "v"},
    }))
    .unwrap();
    if !owners.is_empty() {
        cm.metadata.owner_references = Some(owners);
    }
    api.create(&PostParams::default(), &cm).await.unwrap()
}

fn policy(p: PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(p),
        ..DeleteParams::default()
    }
}

fn absent<K>(got: Result<Option<K>, kube::Error>) -> bool {
    matches!(got, Ok(None))
}

#[tokio::test]
async fn background_deletion_removes_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let owner = configmap(&cms, "owner", vec![]).await;
    let a = configmap(&cms, "dep-a", vec![owner_ref(&owner, false)]).await;
    let other = configmap(&cms, "other-owner", vec![]).await;
    // Two owners: stays while one of them is there, losing the dangling reference.
    let mut second = owner_ref(&other, false);
    second.controller = None;
    configmap(&cms, "dep-b", vec![owner_ref(&owner, false), second]).await;
    // A dependent of a dependent goes too.
    configmap(&cms, "dep-a-child", vec![owner_ref(&a, false)]).await;
    cms.delete("owner", &policy(PropagationPolicy::Background))
        .await
        .unwrap();
    assert!(
        absent(cms.get_opt("owner").await),
        "Background deletes the owner at once"
    );
    common::eventually("dep-a and its child are collected", || async {
        absent(cms.get_opt("dep-a").await) && absent(cms.get_opt("dep-a-child").await)
    })
    .await;
    common::eventually("dep-b loses the reference to the deleted owner", || async {
        let b = cms.get("dep-b").await.unwrap();
        let refs = b.metadata.owner_references.unwrap_or_default();
        refs.len() == 1 && refs[0].name == "other-owner"
    })
    .await;
    // An object created with an owner that never existed is collected too
    // (the owner is verified live, by uid).
    let mut ghost = owner_ref(&other, false);
    ghost.uid = "00000000-0000-0000-0000-000000000000".into();
    configmap(&cms, "orphan-from-birth", vec![ghost]).await;
    common::eventually(
        "a dependent of a non-existent owner is collected",
        || async { absent(cms.get_opt("orphan-from-birth").await) },
    )
    .await;
    assert!(!absent(cms.get_opt("other-owner").await));
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn orphan_keeps_dependents_without_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let owner = configmap(&cms, "owner", vec![]).await;
    configmap(&cms, "dep", vec![owner_ref(&owner, true)]).await;
    let marked = cms
        .delete("owner", &policy(PropagationPolicy::Orphan))
        .await
        .unwrap();
    let marked = marked.left().expect("an orphan delete marks the owner");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.finalizers(), ["orphan"]);
    common::eventually("the owner disappears", || async {
        absent(cms.get_opt("owner").await)
    })
    .await;
    let dep = cms.get("dep").await.unwrap();
    assert!(
        dep.metadata.owner_references.unwrap_or_default().is_empty(),
        "the reference to the owner is removed"
    );
    // It stays: nothing collects it afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!absent(cms.get_opt("dep").await));
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn foreground_waits_for_blocking_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let owner = configmap(&cms, "owner", vec![]).await;
    // The blocking dependent carries a finalizer of its own: it is marked by
    // the collector but stays until the finalizer is removed.
    let mut dep: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "dep", "finalizers": ["example.com/hold"]},
    }))
    .unwrap();
    dep.metadata.owner_references = Some(vec![owner_ref(&owner, true)]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    configmap(&cms, "loose", vec![owner_ref(&owner, false)]).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let marked = cms
        .delete("owner", &policy(PropagationPolicy::Foreground))
        .await
        .unwrap()
        .left()
        .expect("a foreground delete marks the owner");
    assert_eq!(marked.finalizers(), ["foregroundDeletion"]);
    common::eventually("the blocking dependent is being deleted", || async {
        cms.get("dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    // The owner waits for it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let held = cms.get("owner").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.finalizers(), ["foregroundDeletion"]);
    // Release the dependent: then the owner goes.
    cms.patch(
        "dep",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    common::eventually("the owner and all dependents are gone", || async {
        absent(cms.get_opt("dep").await)
            && absent(cms.get_opt("owner").await)
            && absent(cms.get_opt("loose").await)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn deployment_replicaset_pod_chain_is_collected() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let client = server.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let labels = json!({"app": "web"});
    let template = json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    for (i, cascade) in [PropagationPolicy::Background, PropagationPolicy::Foreground]
        .into_iter()
        .enumerate()
    {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": format!("web{i}")},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
        }))
        .unwrap();
        let d = deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("web{i}-abc"), "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
        }))
        .unwrap();
        rs.metadata.owner_references = Some(vec![owner_ref(&d, true)]);
        let rs = replicasets
            .create(&PostParams::default(), &rs)
            .await
            .unwrap();
        for p in 0..2 {
            let mut pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("web{i}-abc-{p}"), "labels": labels},
                "spec": template["spec"],
            }))
            .unwrap();
            pod.metadata.owner_references = Some(vec![owner_ref(&rs, true)]);
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
        deployments
            .delete(&format!("web{i}"), &policy(cascade))
            .await
            .unwrap();
        common::eventually("the whole chain is deleted", || async {
            absent(deployments.get_opt(&format!("web{i}")).await)
                && absent(replicasets.get_opt(&format!("web{i}-abc")).await)
                && absent(pods.get_opt(&format!("web{i}-abc-0")).await)
                && absent(pods.get_opt(&format!("web{i}-abc-1")).await)
        })
        .await;
    }
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn only_one_instance_leads() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let timing = skiff_controllers::leader_election::Timing::default();
    let a = skiff_controllers::leader_election::LeaderElector::new(
        server.client.clone(),
        "kube-system",
        "test-lease",
        "a",
        timing,
    );
    let b = skiff_controllers::leader_election::LeaderElector::new(
        server.client.clone(),
        "kube-system",
        "test-lease",
        "b",
        timing,
    );
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    assert!(!b.try_acquire_or_renew().await.unwrap());
    a.release().await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a released lease is free"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(server.client.clone(), "kube-system");
    let lease = leases.get("test-lease").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(1));
    server.stop().await;
}

#[tokio::test]
async fn a_restarted_collector_converges() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    // Deletions made while no collector runs.
    let gone_owner = configmap(&cms, "gone-owner", vec![]).await;
    configmap(&cms, "stray", vec![owner_ref(&gone_owner, false)]).await;
    cms.delete("gone-owner", &DeleteParams::default())
        .await
        .unwrap();
    let orphaning = configmap(&cms, "orphaning", vec![]).await;
    configmap(&cms, "kept", vec![owner_ref(&orphaning, true)]).await;
    cms.delete("orphaning", &policy(PropagationPolicy::Orphan))
        .await
        .unwrap();
    let fg = configmap(&cms, "fg", vec![]).await;
    configmap(&cms, "fg-dep", vec![owner_ref(&fg, true)]).await;
    cms.delete("fg", &policy(PropagationPolicy::Foreground))
        .await
        .unwrap();
    assert!(!absent(cms.get_opt("orphaning").await));
    assert!(!absent(cms.get_opt("fg").await));
    let (stop, task) = common::start_controllers(server.client.clone());
    common::eventually("every pending deletion completes", || async {
        absent(cms.get_opt("stray").await)
            && absent(cms.get_opt("orphaning").await)
            && absent(cms.get_opt("fg").await)
            && absent(cms.get_opt("fg-dep").await)
    })
    .await;
    let kept = cms.get("kept").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}
