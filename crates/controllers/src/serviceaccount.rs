//! The ServiceAccount controller (`serviceaccount-controller`): every
//! active namespace has a `default` ServiceAccount, which pods without
//! `serviceAccountName` run as.

use k8s_openapi::api::core::v1::ServiceAccount;
use tokio_util::sync::CancellationToken;

use crate::per_namespace::{self, Spec};

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), kube::Error> {
    let spec = Spec {
        name: "default",
        build: Box::new(ServiceAccount::default),
        repair: Box::new(|_| None),
    };
    per_namespace::run(client, spec, shutdown).await
}
