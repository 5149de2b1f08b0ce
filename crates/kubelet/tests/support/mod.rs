//! A cluster of one for the kubelet's tests: an in-process API server, a
//! fake CRI runtime and [`skiff_kubelet::run`] against both.
#![allow(clippy::unwrap_used, dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use skiff_kubelet::{Config, NodeSpec};
use skiff_testkit::cri::{self, FakeClock, FakeRuntime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const NODE: &str = "node-a";
/// Present in the fake runtime from the start; a tag, so IfNotPresent.
pub const IMAGE: &str = "busybox:1.36";
/// How long a wait for a pod state may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub api: skiff_apiserver::testing::Running,
    pub client: kube::Client,
    pub fake: FakeRuntime,
    kubelet: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Cluster {
    /// API server, fake runtime and a running kubelet.
    pub async fn start() -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "skiff_kubelet=debug,warn".into()),
            )
            .with_test_writer()
            .try_init();
        // Unix socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kl")
            .tempdir_in("/tmp")
            .unwrap();
        let api = skiff_apiserver::testing::start(&dir.path().join("server")).await;
        let fake = FakeRuntime::start_with(
            dir.path(),
            cri::Config {
                clock: FakeClock::wall(),
                images: vec![IMAGE.to_owned()],
                ..cri::Config::default()
            },
        )
        .await
        .unwrap();
        let mut cluster = Cluster {
            client: api.client.clone(),
            dir,
            api,
            fake,
            kubelet: None,
        };
        cluster.start_kubelet();
        cluster
    }

    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    /// Starts a kubelet (on the same root dir and runtime as any before).
    pub fn start_kubelet(&mut self) {
        self.start_kubelet_with(|_| {});
    }

    /// Starts a kubelet whose config `adjust` changed first.
    pub fn start_kubelet_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        assert!(self.kubelet.is_none(), "a kubelet is running");
        let mut config = Config {
            client: self.client.clone(),
            node: NodeSpec::new(NODE, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
            runtime_endpoint: self.fake.socket(),
            root_dir: self.root_dir(),
            pod_log_dir: self.dir.path().join("logs"),
            cni_conf_dir: None,
            cluster_dns: None,
            api: None,
            pod_manifest_path: None,
            // The host's disk may be fuller than upstream's thresholds
            // allow; only the eviction test asks for pressure.
            eviction_hard: skiff_kubelet::node::pressure::Thresholds {
                memory_available: 0,
                nodefs_available_percent: 0,
                nodefs_inodes_free_percent: 0,
                imagefs_available_percent: 0,
            },
        };
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                if let Err(e) = skiff_kubelet::run(config, shutdown).await {
                    panic!("the kubelet failed: {e}");
                }
            }
        });
        self.kubelet = Some((shutdown, task));
    }

    /// Stops the kubelet and waits for it to return.
    pub async fn stop_kubelet(&mut self) {
        if let Some((shutdown, task)) = self.kubelet.take() {
            shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the kubelet stops within 10 s")
                .unwrap();
        }
    }

    pub async fn stop(mut self) {
        self.stop_kubelet().await;
        self.api.stop().await;
        self.fake.shutdown().await;
    }

    /// The runtime calls that change something or run in a container
    /// (not the lists, status and image queries the kubelet polls with).
    pub fn calls(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| {
                !c.method.starts_with("List")
                    && !matches!(
                        c.method,
                        "Status" | "Version" | "ImageStatus" | "ImageFsInfo"
                    )
            })
            .map(|c| match c.timeout {
                Some(t) => format!("{} {} {:?} timeout={t}", c.method, c.name, c.cmd),
                None => format!("{} {}", c.method, c.name),
            })
            .collect()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod (bound to [`NODE`]) from JSON.
    pub async fn create_pod(&self, mut pod: serde_json::Value) -> Pod {
        pod["spec"]["nodeName"] = json!(NODE);
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    pub async fn get_pod(&self, name: &str) -> Pod {
        self.pods().get(name).await.unwrap()
    }

    /// Polls the pod until `done` holds; panics with its status after [`WAIT`].
    pub async fn wait_pod(&self, name: &str, what: &str, done: impl Fn(&Pod) -> bool) -> Pod {
        let pods = self.pods();
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(Some(pod)) = pods.get_opt(name).await {
                if done(&pod) {
                    return pod;
                }
                last = Some(pod);
            }
            if tokio::time::Instant::now() >= deadline {
                let status = last.and_then(|p| p.status).unwrap_or_default();
                panic!(
                    "pod {name}: no {what} within {WAIT:?}; phase {:?}, conditions {:?}, \
                     init containers {:#?}, containers {:#?}\nruntime calls: {:?}",
                    status.phase,
                    status.conditions,
                    status.init_container_statuses,
                    status.container_statuses,
                    self.calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every version of one pod a watch saw (what `kubectl get -w` shows),
/// including states that lasted only milliseconds.
pub struct Seen {
    pods: Arc<Mutex<Vec<Pod>>>,
    task: JoinHandle<()>,
}

impl Seen {
    pub fn watch(client: &kube::Client, name: &str) -> Seen {
        use futures::StreamExt;
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let config =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
        let pods = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let pods = pods.clone();
            async move {
                let mut stream = kube::runtime::watcher(api, config).boxed();
                // Ends at the first error: the watcher would otherwise
                // retry without pause once the API server stops.
                while let Some(Ok(event)) = stream.next().await {
                    if let kube::runtime::watcher::Event::Apply(pod)
                    | kube::runtime::watcher::Event::InitApply(pod) = event
                    {
                        pods.lock().unwrap().push(pod);
                    }
                }
            }
        });
        Seen { pods, task }
    }

    /// The distinct successive waiting states (reason, message) of
    /// container `name`.
    pub fn waiting(&self, name: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pod in self.pods.lock().unwrap().iter() {
            let s = container_status(pod, name);
            let Some(w) = s.state.and_then(|st| st.waiting) else {
                continue;
            };
            let entry = (w.reason.unwrap_or_default(), w.message.unwrap_or_default());
            if out.last() != Some(&entry) {
                out.push(entry);
            }
        }
        out
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it gives `Some`, panicking after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pod named `name` in `default` with `spec`.
pub fn pod_json(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The status ("True"/"False") of condition `kind`.
pub fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// The status of regular container `name` (a default one if absent).
pub fn container_status(pod: &Pod, name: &str) -> ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .cloned()
        .unwrap_or_default()
}

pub fn init_status(pod: &Pod, name: &str) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

pub fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

pub fn waiting_reason(s: &ContainerStatus) -> Option<String> {
    s.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

/// The current terminated state; panics when the container is not terminated.
pub fn terminated(s: &ContainerStatus) -> ContainerStateTerminated {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.clone())
        .unwrap_or_else(|| panic!("{} is not terminated: {:?}", s.name, s.state))
}

/// The Events about pod `name` in `default`.
pub async fn events(client: &kube::Client, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

/// `type reason: message` of each event, for failure messages.
pub fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}
