//! The namespace controller (`namespace-controller`), as upstream's: a
//! namespace being deleted (the API server marks it: `deletionTimestamp`,
//! `status.phase: Terminating`, `spec.finalizers: [kubernetes]`) has all
//! its content deleted ([`content`]), its deletion conditions reported
//! ([`conditions`]), and then `kubernetes` removed from `spec.finalizers`
//! through the `finalize` subresource — after which the API server
//! removes the namespace.
//!
//! Content that is still there (finalizers, pods' grace periods) makes it
//! check again after upstream's estimate (the longest pod grace period, or
//! 5 s for finalizers); failures back off.

pub mod conditions;
pub mod content;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// Namespaces cleaned up in parallel (upstream's
/// `--concurrent-namespace-syncs` default).
const CONCURRENCY: u16 = 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("namespace {namespace}: content not removed: {message}")]
    Content { namespace: String, message: String },
}

struct Ctx {
    client: kube::Client,
    /// Failed passes per namespace, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        failures: Mutex::new(HashMap::new()),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "namespace sync");
            }
        })
        .await;
    Ok(())
}

fn error_policy(ns: Arc<Namespace>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %error, "namespace sync failed; retrying");
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    let n = failures.entry(ns.name_any()).or_insert(0);
    *n = n.saturating_add(1);
    Action::requeue(backoff(*n))
}

/// 100 ms doubling, at most 30 s.
fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(16));
    Duration::from_millis(ms).min(Duration::from_secs(30))
}

/// Now in whole seconds, as Kubernetes writes timestamps.
fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    // Act on the latest state (several writers edit a terminating namespace).
    let Some(ns) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        ctx.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&name);
        return Ok(Action::await_change());
    }
    let outcome = content::delete_all(&ctx.client, &name).await;
    let status = ns.status.clone().unwrap_or_default();
    let current: Vec<Value> = status
        .conditions
        .iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let now = now_rfc3339();
    let updated = conditions::update(&current, &outcome, &now);
    if updated.is_some() || status.phase.as_deref() != Some("Terminating") {
        let mut patch = json!({"status": {"phase": "Terminating"}});
        if let Some(conditions) = updated {
            patch["status"]["conditions"] = json!(conditions);
        }
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if outcome.failed() {
        let mut errors = outcome.discovery_errors.clone();
        errors.extend(outcome.delete_errors.iter().cloned());
        return Err(Error::Content {
            namespace: name,
            message: errors.join("; "),
        });
    }
    if outcome.content_left() {
        let wait = u64::try_from(outcome.estimate.max(1)).unwrap_or(1);
        tracing::debug!(namespace = %name, seconds = wait, "content remaining");
        return Ok(Action::requeue(Duration::from_secs(wait)));
    }
    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&name);
    finalize(&api, &name).await?;
    Ok(Action::await_change())
}

/// Removes [`FINALIZER`] from `spec.finalizers` through the `finalize`
/// subresource, retried on conflicts with a fresh read.
async fn finalize(api: &Api<Namespace>, name: &str) -> Result<(), Error> {
    for _ in 0..5 {
        let Some(mut ns) = api.get_opt(name).await? else {
            return Ok(());
        };
        if !has_finalizer(&ns) {
            return Ok(());
        }
        if let Some(spec) = ns.spec.as_mut() {
            let kept: Vec<String> = spec
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            spec.finalizers = Some(kept);
        }
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &ns)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if not_found(&e) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Content {
        namespace: name.to_owned(),
        message: "finalize kept conflicting".to_owned(),
    })
}
