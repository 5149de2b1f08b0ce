//! The Endpoints controller (`endpoints-controller`), as upstream's: for
//! every Service with a selector, a core/v1 Endpoints of the same name
//! whose subsets list the selected pods' addresses — ready ones in
//! `addresses`, others in `notReadyAddresses` (all ready with
//! `publishNotReadyAddresses`) — with the ports each pod resolves
//! ([`subsets`]), the Service's labels plus
//! `endpointslice.kubernetes.io/skip-mirror: "true"`, written only when
//! something changed. The API server owns `default/kubernetes`.
//!
//! Endpoints carry no ownerReference upstream: when a Service goes, its
//! Endpoints are deleted here, and at start every Endpoints without a
//! Service (left over while the controller was down) is deleted, unless it
//! is a leader-election record.

pub mod subsets;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::endpointslice::{key_of, pods, spawn_service_feeds};
use crate::work_queue::Queue;

/// Services synced in parallel (upstream's `--concurrent-endpoint-syncs`).
const WORKERS: usize = 5;
/// Endpoints used as leader-election records are not a Service's.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// The Service the API server maintains itself.
const API_SERVER_SERVICE: &str = "default/kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let (services, services_w) = reflector::store::<Service>();
    let (pods_cache, pods_w) = reflector::store::<Pod>();
    let (endpoints, endpoints_w) = reflector::store::<Endpoints>();
    let queue = Arc::new(Queue::default());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        services: services.clone(),
        pods: pods_cache.clone(),
        endpoints: endpoints.clone(),
    });

    let mut feeds = tokio::task::JoinSet::new();
    spawn_service_feeds(
        &mut feeds,
        &client,
        &queue,
        (services_w, services.clone()),
        (pods_w, pods_cache.clone()),
    );
    // Endpoints events: a deleted or changed one is checked again; the
    // first listing finds leftovers of deleted Services.
    let (q, svcs) = (queue.clone(), services.clone());
    let mut first_listing = true;
    feeds.spawn(
        watcher(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(endpoints_w)
        .for_each(move |event| {
            match &event {
                Ok(watcher::Event::InitDone) => first_listing = false,
                Ok(watcher::Event::Delete(e)) => q.add(key_of(e)),
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                    let has_service = svcs
                        .get(
                            &ObjectRef::new(&e.name_any())
                                .within(&e.namespace().unwrap_or_default()),
                        )
                        .is_some();
                    let leader = e.annotations().contains_key(LEADER_ANNOTATION);
                    if has_service || (first_listing && !leader) {
                        q.add(key_of(e));
                    }
                }
                _ => {}
            }
            futures::future::ready(())
        }),
    );

    let ready = async {
        let _ = services.wait_until_ready().await;
        let _ = pods_cache.wait_until_ready().await;
        let _ = endpoints.wait_until_ready().await;
    };
    tokio::select! {
        () = shutdown.cancelled() => {
            feeds.abort_all();
            return Ok(());
        }
        () = ready => {}
    }
    crate::work_queue::run_workers(&queue, WORKERS, "endpoints", &shutdown, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await.map(|()| None) }
    })
    .await;
    feeds.abort_all();
    Ok(())
}

/// One sync of the Service `key` (upstream's syncService).
async fn sync(ctx: &Ctx, key: &str) -> Result<(), Error> {
    if key == API_SERVER_SERVICE {
        return Ok(());
    }
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let Some(service) = ctx.services.get(&ObjectRef::new(name).within(ns)) else {
        // The Service is gone: so are its Endpoints.
        let current = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
        if current
            .as_ref()
            .is_some_and(|e| e.annotations().contains_key(LEADER_ANNOTATION))
        {
            return Ok(());
        }
        return match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e.into()),
        };
    };
    if pods::unmanaged(&service) {
        return Ok(());
    }
    let Some(selector) = pods::selector(&service) else {
        return Ok(());
    };
    let selected: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| pods::selected(p, ns, selector))
        .collect();
    let mut wanted = subsets::subsets(&service, &selected);
    let truncated = subsets::truncate(&mut wanted);
    let labels = subsets::labels(&service);
    let current = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
    let capacity_ok = |e: &Endpoints| {
        e.annotations()
            .get(subsets::ANNOTATION_OVER_CAPACITY)
            .map(String::as_str)
            == truncated.then_some("truncated")
    };
    if let Some(e) = &current
        && subsets::same(e.subsets.as_deref().unwrap_or_default(), &wanted)
        && e.metadata.labels.clone().unwrap_or_default() == labels
        && capacity_ok(e)
    {
        return Ok(());
    }
    let mut annotations: BTreeMap<String, String> = current
        .as_ref()
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    annotations.remove(subsets::ANNOTATION_OVER_CAPACITY);
    if truncated {
        annotations.insert(
            subsets::ANNOTATION_OVER_CAPACITY.to_owned(),
            "truncated".to_owned(),
        );
    }
    let subsets = (!wanted.is_empty()).then_some(wanted);
    let post = PostParams::default();
    match current {
        Some(current) => {
            let mut new = (*current).clone();
            new.subsets = subsets;
            new.metadata.labels = Some(labels);
            new.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            match api.replace(name, &post, &new).await {
                Ok(_) => Ok(()),
                Err(e) if crate::api_code(&e) == Some(404) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        None => {
            let new = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(ns.to_owned()),
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..ObjectMeta::default()
                },
                subsets,
            };
            match api.create(&post, &new).await {
                Ok(_) => Ok(()),
                // The namespace is being deleted.
                Err(e) if crate::api_code(&e) == Some(403) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
