#![allow(clippy::unwrap_used)]
//! What every namespace gets from the controller manager: the `default`
//! ServiceAccount and the `kube-root-ca.crt` ConfigMap, recreated when
//! deleted and put right when edited.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn ca_of(api: &Api<ConfigMap>) -> Option<String> {
    api.get_opt("kube-root-ca.crt")
        .await
        .unwrap()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("ca.crt").cloned())
}

#[tokio::test]
async fn every_namespace_gets_a_default_serviceaccount_and_the_root_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(server.client.clone(), "team");
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), "team");
    common::eventually("default ServiceAccount", || async {
        sas.get_opt("default").await.unwrap().is_some()
    })
    .await;
    common::eventually("kube-root-ca.crt", || async {
        ca_of(&cms).await.as_deref() == Some(common::TEST_CA)
    })
    .await;
    // The bootstrap namespaces get them too.
    let kube_system: Api<ServiceAccount> = Api::namespaced(server.client.clone(), "kube-system");
    common::eventually("kube-system/default", || async {
        kube_system.get_opt("default").await.unwrap().is_some()
    })
    .await;

    // Deleted: recreated. Edited: put right.
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("default ServiceAccount recreated", || async {
        sas.get_opt("default")
            .await
            .unwrap()
            .is_some_and(|sa| sa.metadata.deletion_timestamp.is_none())
    })
    .await;
    let patch = json!({"data": {"ca.crt": "forged", "extra": "x"}});
    cms.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    common::eventually("kube-root-ca.crt repaired", || async {
        let cm = cms.get("kube-root-ca.crt").await.unwrap();
        let data = cm.data.unwrap_or_default();
        data.get("ca.crt").map(String::as_str) == Some(common::TEST_CA) && data.len() == 1
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
