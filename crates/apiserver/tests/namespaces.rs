#![allow(clippy::unwrap_used)]
//! The namespace `finalize` subresource changes `spec.finalizers` (and
//! nothing else).

mod common;

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec};
use kube::api::{Api, ObjectMeta, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_sets_the_namespace_finalizers() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<Namespace> = Api::all(server.client.clone());
    let ns = api
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("fin".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ns.spec.clone().unwrap().finalizers,
        Some(vec!["kubernetes".to_owned()])
    );

    let mut body = ns.clone();
    body.spec = Some(NamespaceSpec {
        finalizers: Some(vec![]),
    });
    body.metadata.labels = Some([("ignored".to_owned(), "yes".to_owned())].into());
    let request = http::Request::put("/api/v1/namespaces/fin/finalize")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let finalized: Namespace = server.client.request(request).await.unwrap();
    assert_eq!(
        finalized.spec.unwrap().finalizers.unwrap_or_default(),
        Vec::<String>::new()
    );
    let stored = api.get("fin").await.unwrap();
    assert_eq!(
        stored.spec.unwrap().finalizers.unwrap_or_default(),
        Vec::<String>::new()
    );
    assert!(
        !stored
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("ignored")
    );
    server.stop().await;
}
