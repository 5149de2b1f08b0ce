//! Objects every namespace must have (the `default` ServiceAccount, the
//! `kube-root-ca.crt` ConfigMap): created in each active namespace,
//! recreated when deleted, put right when changed.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// Turns an existing object into the merge patch that puts it right.
pub type Repair<K> = Box<dyn Fn(&K) -> Option<serde_json::Value> + Send + Sync>;

/// One kind of object each namespace gets.
pub struct Spec<K> {
    /// The object's name in every namespace.
    pub name: &'static str,
    /// The object as it should be created (without a namespace).
    pub build: Box<dyn Fn() -> K + Send + Sync>,
    /// A merge patch that puts an existing object right, if it is wrong.
    pub repair: Repair<K>,
}

struct Ctx<K> {
    client: kube::Client,
    spec: Spec<K>,
}

/// Runs until `shutdown`.
pub async fn run<K>(
    client: kube::Client,
    spec: Spec<K>,
    shutdown: CancellationToken,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static,
{
    let objects = watcher::Config::default().fields(&format!("metadata.name={}", spec.name));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        spec,
    });
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(Api::<K>::all(client), objects, |o: K| {
        o.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
    })
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile::<K>, error_policy::<K>, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "per-namespace object sync");
        }
    })
    .await;
    Ok(())
}

fn error_policy<K>(ns: Arc<Namespace>, error: &kube::Error, _ctx: Arc<Ctx<K>>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %error, "per-namespace object sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile<K>(ns: Arc<Namespace>, ctx: Arc<Ctx<K>>) -> Result<Action, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize,
{
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    let name = ctx.spec.name;
    match api.get_opt(name).await? {
        None => {
            let mut object = (ctx.spec.build)();
            object.meta_mut().name = Some(name.to_owned());
            match api.create(&PostParams::default(), &object).await {
                // Raced with another creator, or the namespace started
                // terminating (403): nothing to do.
                Err(e) if matches!(crate::api_code(&e), Some(403 | 404 | 409)) => {}
                other => {
                    other?;
                }
            }
        }
        Some(existing) => {
            if let Some(patch) = (ctx.spec.repair)(&existing) {
                match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Err(e) if crate::api_code(&e) == Some(404) => {}
                    other => {
                        other?;
                    }
                }
            }
        }
    }
    Ok(Action::await_change())
}
