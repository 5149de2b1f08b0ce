#![allow(clippy::unwrap_used)]
//! Optimistic concurrency: updates carrying the same resourceVersion race,
//! exactly one wins and the other gets 409 Conflict.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[test]
fn concurrent_kubectl_replace_with_one_resource_version() {
    let c = common::cluster();
    common::suite::concurrent_replace_conflicts(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_api_updates_with_one_resource_version() {
    let c = common::cluster();
    let client = common::kube_client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "race"},
        "data": {"n": "0"}
    }))
    .unwrap();
    cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    for round in 1..=5 {
        // Every writer starts from the same resourceVersion.
        let updates = (0..4).map(|writer| {
            let mut mine = cm.clone();
            mine.data = Some([("n".to_owned(), format!("{round}-{writer}"))].into());
            let cms = cms.clone();
            async move { cms.replace("race", &PostParams::default(), &mine).await }
        });
        let results = futures::future::join_all(updates).await;
        let mut winners = Vec::new();
        for r in results {
            match r {
                Ok(won) => winners.push(won),
                Err(e) => {
                    let status = common::api_error(e);
                    assert_eq!(status.code, 409, "{status:?}");
                    assert_eq!(status.reason, "Conflict", "{status:?}");
                    assert!(
                        status
                            .message
                            .contains("the object has been modified; please apply your changes to the latest version and try again"),
                        "{status:?}"
                    );
                    let details = status.details.expect("details");
                    assert_eq!(details.name, "race");
                    assert_eq!(details.kind, "configmaps");
                }
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one update wins\n{}",
            c.logs()
        );
        cm = cms.get("race").await.unwrap();
        assert_eq!(
            cm.data, winners[0].data,
            "the stored object is the winner's"
        );
        assert_eq!(
            cm.metadata.resource_version,
            winners[0].metadata.resource_version
        );
    }
}
