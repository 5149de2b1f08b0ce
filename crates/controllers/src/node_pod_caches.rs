//! Node and pod caches for the controllers that look at the whole cluster
//! on a timer (pod GC, taint eviction) rather than per object.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

/// Every Node and Pod, kept current by two watches until dropped.
pub struct NodePodCaches {
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    feeds: tokio::task::JoinHandle<()>,
}

impl Drop for NodePodCaches {
    fn drop(&mut self) {
        self.feeds.abort();
    }
}

/// The caches stopped before they were filled.
#[derive(Debug, thiserror::Error)]
#[error("the node and pod caches stopped")]
pub struct CachesStopped;

impl NodePodCaches {
    pub fn watch(client: &kube::Client) -> Self {
        let (nodes, node_writer) = reflector::store::<Node>();
        let (pods, pod_writer) = reflector::store::<Pod>();
        let node_feed = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
            .for_each(|_| futures::future::ready(()));
        let pod_feed = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            // Pod caches: managedFields are never read and take much memory.
            .modify(|p| p.metadata.managed_fields = None)
            .reflect(pod_writer)
            .for_each(|_| futures::future::ready(()));
        let feeds = tokio::spawn(async move {
            futures::join!(node_feed, pod_feed);
        });
        NodePodCaches { nodes, pods, feeds }
    }

    /// Waits until both caches are filled: `false` if shut down first.
    pub async fn ready(&self, shutdown: &CancellationToken) -> Result<bool, CachesStopped> {
        tokio::select! {
            () = shutdown.cancelled() => Ok(false),
            ready = async {
                self.nodes.wait_until_ready().await.and(self.pods.wait_until_ready().await)
            } => ready.map(|()| true).map_err(|_| CachesStopped),
        }
    }
}
