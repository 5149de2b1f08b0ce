//! The EndpointSlice controller (`endpointslice-controller`), as
//! upstream's: for every Service with a selector, `discovery.k8s.io/v1`
//! EndpointSlices (`<service>-<random>`, labelled with the service name
//! and `endpointslice.kubernetes.io/managed-by:
//! endpointslice-controller.k8s.io`, controlled by the Service) listing
//! the selected pods that have an IP: conditions ready / serving /
//! terminating, node, zone, the pod as targetRef, and the Service's ports
//! resolved per pod (pods resolving a named port differently land in
//! different slices), at most 100 endpoints per slice.
//!
//! * Reflectors on Services, Pods, Nodes and this controller's slices feed
//!   a keyed work [`queue`] of Services (a pod event queues the Services
//!   selecting it before and after the change; a slice event its Service;
//!   a node's zone change every Service).
//! * A sync computes the desired endpoints and the writes
//!   ([`reconciler`]): only changed slices are written. Services without
//!   a selector or of type ExternalName are left alone, and so are slices
//!   other managers own (the API server's `kubernetes` slice). A deleted
//!   Service's slices go with it through the garbage collector.
//! * The [`tracker`] holds a Service back until the cache shows this
//!   controller's own writes.

pub mod pods;
pub mod reconciler;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::work_queue::Queue;
use reconciler::{CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use tracker::Tracker;

/// Services synced in parallel (upstream's
/// `--concurrent-service-endpoint-syncs` default).
const WORKERS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    queue: Arc<Queue>,
    tracker: Tracker,
}

/// `namespace/name` of an object.
pub fn key_of<K: kube::Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// The keys of the Services in the pod's namespace that select it.
pub fn services_selecting(pod: &Pod, services: &Store<Service>) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| pods::selector(s).is_some_and(|sel| pods::selected(pod, ns, sel)))
        .map(|s| key_of(s.as_ref()))
        .collect()
}

/// The objects a watch event carries.
pub fn event_objects<K>(event: &watcher::Event<K>) -> Option<&K> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
            Some(o)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Runs the controller until `shutdown`.
/// The watches both endpoint controllers need: Services (a change queues
/// the Service) and Pods (a change queues every Service selecting the pod,
/// before or after the change), each feeding its reflector.
pub fn spawn_service_feeds(
    feeds: &mut tokio::task::JoinSet<()>,
    client: &kube::Client,
    queue: &Arc<Queue>,
    (services_w, services): (reflector::store::Writer<Service>, Store<Service>),
    (pods_w, pods): (reflector::store::Writer<Pod>, Store<Pod>),
) {
    let q = queue.clone();
    feeds.spawn(
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(services_w)
        .for_each(move |event| {
            if let Ok(Some(s)) = event.as_ref().map(event_objects) {
                q.add(key_of(s));
            }
            futures::future::ready(())
        }),
    );
    let q = queue.clone();
    feeds.spawn(
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            // Pod caches: managedFields are never read and take much memory.
            .modify(|p| p.metadata.managed_fields = None)
            .map_ok(move |event| {
                if let Some(pod) = event_objects(&event) {
                    let mut keys = services_selecting(pod, &services);
                    if let Some(old) = pods.get(&ObjectRef::from_obj(pod)) {
                        keys.extend(services_selecting(&old, &services));
                    }
                    for k in keys {
                        q.add(k);
                    }
                }
                event
            })
            .reflect(pods_w)
            .for_each(|_| futures::future::ready(())),
    );
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let (services, services_w) = reflector::store::<Service>();
    let (pods_cache, pods_w) = reflector::store::<Pod>();
    let (slices, slices_w) = reflector::store::<EndpointSlice>();
    let (nodes, nodes_w) = reflector::store::<Node>();
    let queue = Arc::new(Queue::default());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        services: services.clone(),
        pods: pods_cache.clone(),
        slices: slices.clone(),
        nodes: nodes.clone(),
        queue: queue.clone(),
        tracker: Tracker::default(),
    });

    let mut feeds = tokio::task::JoinSet::new();
    spawn_service_feeds(
        &mut feeds,
        &client,
        &queue,
        (services_w, services.clone()),
        (pods_w, pods_cache.clone()),
    );
    let q = queue.clone();
    let managed = format!("{LABEL_MANAGED_BY}={CONTROLLER_NAME}");
    feeds.spawn(
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&managed),
        )
        .default_backoff()
        .reflect(slices_w)
        .for_each(move |event| {
            if let Ok(Some(s)) = event.as_ref().map(event_objects)
                && let Some(service) = s.labels().get(LABEL_SERVICE_NAME)
            {
                q.add(format!("{}/{service}", s.namespace().unwrap_or_default()));
            }
            futures::future::ready(())
        }),
    );
    let (q, old_nodes, svcs) = (queue.clone(), nodes.clone(), services.clone());
    feeds.spawn(
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map_ok(move |event| {
                if let watcher::Event::Apply(node) = &event {
                    let before = old_nodes
                        .get(&ObjectRef::from_obj(node))
                        .and_then(|n| reconciler::zone(n.metadata.labels.as_ref()));
                    if before != reconciler::zone(node.metadata.labels.as_ref()) {
                        for s in svcs.state() {
                            q.add(key_of(s.as_ref()));
                        }
                    }
                }
                event
            })
            .reflect(nodes_w)
            .for_each(|_| futures::future::ready(())),
    );

    let ready = async {
        let _ = services.wait_until_ready().await;
        let _ = pods_cache.wait_until_ready().await;
        let _ = slices.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
    };
    tokio::select! {
        () = shutdown.cancelled() => {
            feeds.abort_all();
            return Ok(());
        }
        () = ready => {}
    }
    let queue = ctx.queue.clone();
    crate::work_queue::run_workers(&queue, WORKERS, "endpointslice", &shutdown, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
    feeds.abort_all();
    Ok(())
}

/// One sync of the Service `key`; `Some(d)`: look again after `d`.
async fn sync(ctx: &Ctx, key: &str) -> Result<Option<Duration>, Error> {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let Some(service) = ctx.services.get(&ObjectRef::new(name).within(ns)) else {
        ctx.tracker.forget(key);
        return Ok(None);
    };
    if pods::unmanaged(&service) {
        return Ok(None);
    }
    let slices = &ctx.slices;
    let cached = |slice: &str| {
        slices
            .get(&ObjectRef::new(slice).within(ns))
            .and_then(|s| s.metadata.resource_version.clone())
    };
    if !ctx.tracker.satisfied(key, &cached) {
        return Ok(Some(Duration::from_millis(100)));
    }
    let Some(selector) = pods::selector(&service) else {
        return Ok(None);
    };
    let selected: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| pods::selected(p, ns, selector))
        .collect();
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.labels().get(LABEL_SERVICE_NAME).map(String::as_str) == Some(name)
                && s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
        })
        .collect();
    let nodes = &ctx.nodes;
    let zone_of = |node: &str| {
        nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| reconciler::zone(n.metadata.labels.as_ref()))
    };
    let desired = reconciler::desired(&service, &selected, &zone_of);
    let plan = reconciler::plan(&service, &desired, &existing);
    if plan.is_empty() {
        return Ok(None);
    }
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let post = PostParams::default();
    // No new slices for a Service being deleted (the garbage collector
    // is removing them).
    if service.metadata.deletion_timestamp.is_none() {
        for slice in &plan.create {
            match api.create(&post, slice).await {
                Ok(created) => ctx.tracker.wrote(
                    key,
                    &created.name_any(),
                    created.metadata.resource_version.clone(),
                ),
                // The namespace is being deleted.
                Err(e) if crate::api_code(&e) == Some(403) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
    for slice in &plan.update {
        match api.replace(&slice.name_any(), &post, slice).await {
            Ok(updated) => ctx.tracker.wrote(
                key,
                &updated.name_any(),
                updated.metadata.resource_version.clone(),
            ),
            Err(e) if crate::api_code(&e) == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for slice in &plan.delete {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: slice.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&slice.name_any(), &params).await {
            Ok(_) => ctx.tracker.wrote(key, &slice.name_any(), None),
            Err(e) if crate::api_code(&e) == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}
