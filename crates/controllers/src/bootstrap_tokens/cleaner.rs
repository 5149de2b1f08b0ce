//! The token cleaner (`tokencleaner-controller`): deletes bootstrap-token
//! Secrets once their `expiration` has passed, so an expired token cannot
//! be revived and the list stays short.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::{NAMESPACE, SECRET_TYPE, Token};

/// Longest sleep between passes.
const RESYNC: Duration = Duration::from_secs(60);

/// Deletes expired tokens; returns when the next one expires.
async fn sweep(secrets: &Api<Secret>) -> Result<Option<Timestamp>, kube::Error> {
    let now = Timestamp::now();
    let listed = secrets
        .list(&ListParams::default().fields(&format!("type={SECRET_TYPE}")))
        .await?;
    let mut next: Option<Timestamp> = None;
    for secret in &listed.items {
        let Some(token) = Token::from_secret(secret) else {
            continue;
        };
        let Some(expiration) = token.expiration else {
            continue;
        };
        if !token.expired(now) {
            next = Some(next.map_or(expiration, |n| n.min(expiration)));
            continue;
        }
        tracing::info!(token = %token.id, "deleting an expired bootstrap token");
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match secrets.delete(&secret.name_any(), &params).await {
            Ok(_) => {}
            Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(next)
}

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client, NAMESPACE);
    let mut changes = watcher(
        secrets.clone(),
        watcher::Config::default().fields(&format!("type={SECRET_TYPE}")),
    )
    .boxed();
    loop {
        let wait = match sweep(&secrets).await {
            Ok(Some(next)) => {
                let ms = next.as_millisecond() - Timestamp::now().as_millisecond();
                Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 100).min(RESYNC)
            }
            Ok(None) => RESYNC,
            Err(e) => {
                tracing::warn!(error = %e, "cleaning bootstrap tokens failed; retrying");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = changes.next() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
