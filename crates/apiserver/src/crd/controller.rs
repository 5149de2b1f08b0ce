//! Keeps the server in step with the stored CustomResourceDefinitions, level
//! triggered: on every change of any definition (and every few seconds)
//! it recomputes each definition's status (accepted names, Established),
//! the served custom resources and, when those change, the OpenAPI
//! documents; and it finishes deleting definitions whose objects are gone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_openapi::{ResourceSpec, Subresource};
use tokio_util::sync::CancellationToken;

use super::CLEANUP_FINALIZER;
use super::served;
use crate::http::App;
use crate::object;
use crate::registry::Part;
use crate::resources::ResourceInfo;
use crate::watch_cache::ResourceCache;

/// Longest wait between two passes when nothing changes.
const RESYNC: Duration = Duration::from_secs(5);

/// The definitions' table entry and cache.
fn definitions_cache(app: &App) -> Option<(Arc<ResourceInfo>, Arc<ResourceCache>)> {
    let registry = &app.registry;
    let crds =
        registry
            .resources
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let cache = registry.cache.resource(&crds)?;
    Some((crds, cache))
}

/// One pass over the stored definitions.
async fn pass(app: &App, crds: &ResourceInfo, cache: &ResourceCache) {
    let (objects, _) = app
        .registry
        .cache
        .consistent_snapshot(cache, &crds.key_prefix());
    let definitions: Vec<Value> = objects.iter().map(|(_, o)| Value::clone(o)).collect();
    reconcile(app, crds, &definitions).await;
}

/// One pass, so that custom resources are served as soon as the server is.
pub async fn sync(app: &App) {
    if let Some((crds, cache)) = definitions_cache(app) {
        pass(app, &crds, &cache).await;
    }
}

pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let Some((crds, cache)) = definitions_cache(&app) else {
        return;
    };
    loop {
        let mut live = cache
            .subscribe(app.registry.cache.revision())
            .map(|s| s.live);
        pass(&app, &crds, &cache).await;
        let changed = async {
            match live.as_mut() {
                Some(live) => {
                    let _ = live.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(RESYNC) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn reconcile(app: &App, crds: &ResourceInfo, definitions: &[Value]) {
    let registry = &app.registry;
    let desired: Vec<Value> = definitions
        .iter()
        .map(|crd| {
            let mut wanted = crd.clone();
            wanted["status"] = desired_status(crd, definitions);
            wanted
        })
        .collect();
    // Serve first, then report Established: a client that sees the
    // condition can use the resource (and its schema) at once.
    let custom: Vec<ResourceInfo> = desired.iter().flat_map(served::resources).collect();
    if registry.resources.custom_differs(&custom) {
        rebuild_openapi(app, custom.clone()).await;
        registry.resources.set_custom(custom);
    }
    for (crd, wanted) in definitions.iter().zip(&desired) {
        let Some(name) = object::name(crd) else {
            continue;
        };
        if crd.get("status") != wanted.get("status") {
            let result = registry
                .modify(crds, name, Part::Status, |current| {
                    let mut new = current.clone();
                    new["status"] = desired_status(current, definitions);
                    Ok(new)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(crd = name, error = %e.message, "updating CRD status failed");
            }
        }
        if object::is_deleting(crd) {
            finish_deletion(app, crds, crd, name).await;
        } else if !object::finalizers(crd)
            .iter()
            .any(|f| f == CLEANUP_FINALIZER)
        {
            let result = registry
                .modify(crds, name, Part::Main, |current| {
                    let mut new = current.clone();
                    let meta = object::meta_mut(&mut new);
                    let mut finalizers = object::finalizers(current);
                    finalizers.push(CLEANUP_FINALIZER.to_owned());
                    meta.insert("finalizers".into(), json!(finalizers));
                    Ok(new)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(crd = name, error = %e.message, "adding the cleanup finalizer failed");
            }
        }
    }
}

/// Deletes the objects of a definition being deleted; once none are left,
/// drops the cleanup finalizer so the definition goes too.
async fn finish_deletion(app: &App, crds: &ResourceInfo, crd: &Value, name: &str) {
    if !object::finalizers(crd)
        .iter()
        .any(|f| f == CLEANUP_FINALIZER)
    {
        return;
    }
    let Some(r) = app
        .registry
        .resources
        .snapshot()
        .iter()
        .find(|r| r.custom.as_ref().is_some_and(|c| c.crd == name))
        .cloned()
    else {
        return;
    };
    match app.registry.delete_all(&r).await {
        Ok(0) => {}
        Ok(left) => {
            tracing::info!(crd = name, left, "waiting for custom objects' finalizers");
            return;
        }
        Err(e) => {
            tracing::warn!(crd = name, error = %e.message, "deleting custom objects failed");
            return;
        }
    }
    let result = app
        .registry
        .modify(crds, name, Part::Main, |current| {
            let mut new = current.clone();
            let finalizers: Vec<String> = object::finalizers(current)
                .into_iter()
                .filter(|f| f != CLEANUP_FINALIZER)
                .collect();
            object::meta_mut(&mut new).insert("finalizers".into(), json!(finalizers));
            Ok(new)
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(crd = name, error = %e.message, "removing the cleanup finalizer failed");
    }
}

/// Rebuilds the OpenAPI documents with the custom resources' schemas; a
/// schema the builder rejects leaves that resource out of the documents
/// (it is still served).
async fn rebuild_openapi(app: &App, custom: Vec<ResourceInfo>) {
    let built = tokio::task::spawn_blocking(move || {
        let mut builder = skiff_openapi::builtin();
        for r in &custom {
            let Some(schema) = r.custom.as_ref().and_then(|c| c.schema()) else {
                continue;
            };
            let mut subresources = Vec::new();
            if r.has_subresource("status") {
                subresources.push(Subresource::Status);
            }
            if r.has_subresource("scale") {
                subresources.push(Subresource::Scale);
            }
            let spec = ResourceSpec {
                group: r.group.to_string(),
                version: r.version.to_string(),
                kind: r.kind.to_string(),
                plural: r.plural.to_string(),
                namespaced: r.namespaced,
                subresources,
            };
            if let Err(e) = builder.add_custom(spec, schema.clone()) {
                tracing::warn!(resource = %r.plural, error = %e, "custom schema left out of OpenAPI");
            }
        }
        builder.build()
    })
    .await;
    match built {
        Ok(Ok(docs)) => app.registry.openapi.replace(docs),
        Ok(Err(e)) => tracing::warn!(error = %e, "rebuilding OpenAPI failed"),
        Err(e) => tracing::warn!(error = %e, "rebuilding OpenAPI panicked"),
    }
}

/// The status a definition should have, given all the others (names
/// must not clash within a group).
fn desired_status(crd: &Value, all: &[Value]) -> Value {
    let uid = object::meta_str(crd, "uid");
    let others: Vec<Value> = all
        .iter()
        .filter(|other| object::meta_str(other, "uid") != uid)
        .cloned()
        .collect();
    skiff_crd::crd_status(crd, &others, &object::now_rfc3339())
}
