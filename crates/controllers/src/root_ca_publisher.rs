//! The root CA publisher (`root-ca-certificate-publisher-controller`):
//! every active namespace has the ConfigMap `kube-root-ca.crt` holding the
//! cluster CA, so pods can verify the API server (projected
//! service-account volumes mount it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::per_namespace::{self, Spec};

/// The ConfigMap's name in every namespace.
pub const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Runs the controller until `shutdown`, publishing `ca_pem`.
pub async fn run(
    client: kube::Client,
    ca_pem: String,
    shutdown: CancellationToken,
) -> Result<(), kube::Error> {
    let data = BTreeMap::from([("ca.crt".to_owned(), ca_pem)]);
    let wanted = data.clone();
    let spec = Spec {
        name: NAME,
        build: Box::new(move || ConfigMap {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_KEY.to_owned(),
                    DESCRIPTION.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data.clone()),
            ..ConfigMap::default()
        }),
        repair: Box::new(move |cm: &ConfigMap| {
            let described = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESCRIPTION_KEY))
                .is_some_and(|d| !d.is_empty());
            if cm.data.as_ref() == Some(&wanted) && described {
                return None;
            }
            // Data as a whole is replaced: keys someone added go too.
            let mut data: serde_json::Map<String, serde_json::Value> = cm
                .data
                .iter()
                .flatten()
                .map(|(k, _)| (k.clone(), serde_json::Value::Null))
                .collect();
            for (k, v) in &wanted {
                data.insert(k.clone(), json!(v));
            }
            Some(json!({
                "metadata": {"annotations": {DESCRIPTION_KEY: DESCRIPTION}},
                "data": data,
            }))
        }),
    };
    per_namespace::run(client, spec, shutdown).await
}
