//! A deterministic fake CRI runtime: the CRI v1 `RuntimeService` and
//! `ImageService` served by tonic on a unix socket, with containers that do
//! what a test scripts instead of running processes.
//!
//! It lets the kubelet's tests drive the real gRPC path without containerd,
//! and backs hollow nodes (many simulated nodes in one process): all state
//! lives in memory behind one mutex, a container is a few hundred bytes, and
//! only containers with a scripted exit or timed log lines own a (sleeping)
//! tokio task; no threads.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use skiff_testkit::cri::{ExecResult, FakeRuntime, Run};
//!
//! let dir = tempfile::Builder::new().prefix("cri").tempdir_in("/tmp")?;
//! let fake = FakeRuntime::start(dir.path()).await?; // serves dir/cri.sock
//! fake.with_images(&["busybox"]);
//! // First start crashes after 2 s, every later start runs until stopped.
//! fake.script("app", vec![
//!     Run::exit_after(Duration::from_secs(2), 1).stdout("boom"),
//!     Run::forever().ignore_sigterm(),
//! ]);
//! fake.exec_result("app", &["cat", "/tmp/healthy"], ExecResult::fail(1, "no such file"));
//! fake.fail_pull("nope:latest", "failed to resolve reference: not found");
//! // ... point the kubelet at fake.socket(), then:
//! assert_eq!(fake.count("StartContainer", "app"), 0);
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour follows containerd where the kubelet can tell the difference:
//! - ids are 64 hex digits; names are reserved per
//!   `(name, pod, namespace, uid, attempt)`, a second create is
//!   `AlreadyExists`;
//! - sandboxes get the next free address of the pod CIDR (round-robin, .1 is
//!   the gateway), none for host-network pods; StopPodSandbox kills the
//!   sandbox's containers (137) and releases the address;
//! - CreateContainer needs a READY sandbox (`NotFound` /
//!   `FailedPrecondition`) and a present image (`NotFound`);
//! - StopContainer sends "SIGTERM": the current run's [`OnSigterm`] decides
//!   (default: exit 143 at once); if it does not exit within `timeout`
//!   seconds it is "SIGKILLed" (137); timeout 0 kills at once. The call
//!   returns when the container has exited, as containerd's does;
//! - exit reasons are "Completed" (0), "Error" (other codes) or the run's
//!   override ("OOMKilled"); ContainerStatus.image is the normalized tag,
//!   image_ref the repo digest (the pod's `imageID`), image_id the id;
//! - a run's termination message is written at exit to the host path of
//!   the mount at the `io.kubernetes.container.terminationMessagePath`
//!   annotation's path, where the kubelet reads it;
//! - log lines are written in the CRI format
//!   (`2016-10-06T00:17:09.669794202Z stdout F text`) to
//!   `log_directory/log_path` (absolute paths only) when the container
//!   starts, timed lines later while it still runs;
//! - GetContainerEvents streams CREATED/STARTED/STOPPED/DELETED events with
//!   the pod's sandbox and container statuses (a lagging reader skips);
//! - RemovePodSandbox / RemoveContainer of unknown ids succeed,
//!   StopPodSandbox / StopContainer / *Status of unknown ids are `NotFound`;
//! - ContainerStats / ListContainerStats / PodSandboxStats /
//!   ListPodSandboxStats report each running container's scripted
//!   [`Usage`] (CPU time accumulates at that rate since its start);
//! - streaming (Exec/Attach/PortForward), metrics descriptors, checkpoint
//!   and UpdateContainerResources are `Unimplemented`.
//!
//! Timers use `tokio::time` and timestamps come from a [`FakeClock`], so a
//! test under `tokio::time::pause()` sees exact, repeatable times. The
//! default clock starts at a fixed epoch (2025-01-01): code that compares
//! CRI timestamps with the real wall clock (an initial probe delay measured
//! from `startedAt`) should run with [`FakeClock::wall`] instead.

mod clock;
mod image;
mod script;
mod service;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use clock::FakeClock;
pub use k8s_cri::v1::{ContainerState, PodSandboxState};
pub use script::{ExecResult, LogLine, LogStream, OnSigterm, Run, Target, Usage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Code;

use service::FakeCri;
use state::State;

/// How a [`FakeRuntime`] starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sandbox addresses come from here (the kubelet's UpdateRuntimeConfig
    /// replaces it). Default `10.42.0.0/24`.
    pub pod_cidr: String,
    /// Default [`FakeClock::fixed`].
    pub clock: FakeClock,
    /// Seed of the id generator: `Some` gives the same ids on every run.
    pub seed: Option<u64>,
    /// Images present from the start.
    pub images: Vec<String>,
    /// Keep the call log (default true; hollow nodes turn it off).
    pub record_calls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pod_cidr: "10.42.0.0/24".to_owned(),
            clock: FakeClock::fixed(),
            seed: None,
            images: Vec::new(),
            record_calls: true,
        }
    }
}

/// One CRI call the runtime received, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The CRI method, e.g. "StartContainer".
    pub method: &'static str,
    /// The container or sandbox id (for creates: the new id, empty on error).
    pub id: String,
    /// Container calls: the container's metadata name; sandbox calls:
    /// `namespace/name`; image calls: the image as requested;
    /// UpdateRuntimeConfig: the pod CIDR.
    pub name: String,
    /// StopContainer and ExecSync: the requested timeout in seconds.
    pub timeout: Option<i64>,
    /// ExecSync: the command.
    pub cmd: Vec<String>,
}

impl Call {
    pub(crate) fn new(method: &'static str, id: &str, name: &str) -> Call {
        Call {
            method,
            id: id.to_owned(),
            name: name.to_owned(),
            timeout: None,
            cmd: Vec::new(),
        }
    }
}

/// A sandbox as the runtime holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxView {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub attempt: u32,
    pub state: PodSandboxState,
    /// Empty for host-network pods.
    pub ip: String,
    pub created_at: i64,
}

/// A container as the runtime holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerView {
    pub id: String,
    pub sandbox_id: String,
    /// The pod's namespace and name (from its sandbox).
    pub namespace: String,
    pub pod: String,
    /// Container metadata name and attempt.
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    /// The image as the pod spec wrote it.
    pub image: String,
    pub exit_code: i32,
    pub reason: String,
    pub log_path: String,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
}

/// State shared by the gRPC services and the handles.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the server when the last handle goes.
struct Server {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A fake CRI runtime serving on a unix socket. Cheap to clone; the server
/// stops on [`FakeRuntime::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
    server: Arc<Server>,
}

impl FakeRuntime {
    /// Serves with the default [`Config`] on `dir/cri.sock`.
    pub async fn start(dir: &Path) -> std::io::Result<FakeRuntime> {
        FakeRuntime::start_with(dir, Config::default()).await
    }

    /// Serves with `config` on `dir/cri.sock` (the path must stay under
    /// 108 bytes: use a temp dir in /tmp). Must be called inside a tokio
    /// runtime.
    pub async fn start_with(dir: &Path, config: Config) -> std::io::Result<FakeRuntime> {
        FakeRuntime::serve(&dir.join("cri.sock"), config)
    }

    /// Serves with `config` on the unix socket `socket` (replacing a stale
    /// socket file).
    pub fn serve(socket: &Path, config: Config) -> std::io::Result<FakeRuntime> {
        let mut state = State::new(config.clock, &config.pod_cidr, config.seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        state.record_calls = config.record_calls;
        for image in &config.images {
            state.add_image(image);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
        });
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::remove_file(socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(socket)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let cri = FakeCri {
            shared: shared.clone(),
        };
        let router = tonic::transport::Server::builder()
            .add_service(
                k8s_cri::v1::runtime_service_server::RuntimeServiceServer::new(cri.clone()),
            )
            .add_service(k8s_cri::v1::image_service_server::ImageServiceServer::new(
                cri,
            ));
        let task = tokio::spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            let stopped = async move {
                let _ = stop_rx.await;
            };
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                tracing::warn!(error = %e, "fake CRI server");
            }
        });
        Ok(FakeRuntime {
            shared,
            server: Arc::new(Server {
                stop: Mutex::new(Some(stop_tx)),
                task: Mutex::new(Some(task)),
                socket: socket.to_owned(),
            }),
        })
    }

    /// The unix socket the runtime serves on.
    pub fn socket(&self) -> PathBuf {
        self.server.socket.clone()
    }

    /// The socket as a kubelet `--container-runtime-endpoint` (`unix://…`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.server.socket.display())
    }

    /// The clock behind every timestamp the runtime reports.
    pub fn clock(&self) -> FakeClock {
        self.shared.lock().clock
    }

    // ---- images -----------------------------------------------------------

    /// Makes images present, as if pulled (any spelling: `busybox`,
    /// `docker.io/library/busybox:latest`, ...).
    pub fn with_images(&self, references: &[&str]) {
        let mut state = self.shared.lock();
        for r in references {
            state.add_image(r);
        }
    }

    /// The normalized tags of the present images.
    pub fn images(&self) -> Vec<String> {
        self.shared
            .lock()
            .images()
            .iter()
            .map(|i| i.tag.clone())
            .collect()
    }

    /// PullImage of `image` fails with `Unknown` and `message` (the kubelet
    /// reports ErrImagePull) until [`FakeRuntime::clear_pull_failure`].
    pub fn fail_pull(&self, image: &str, message: &str) {
        self.fail_pull_with(image, Code::Unknown, message);
    }

    /// PullImage of `image` fails with `code` and `message`.
    pub fn fail_pull_with(&self, image: &str, code: Code, message: &str) {
        self.shared
            .lock()
            .set_pull_failure(image, Some((code, message.to_owned())));
    }

    /// PullImage of `image` succeeds again.
    pub fn clear_pull_failure(&self, image: &str) {
        self.shared.lock().set_pull_failure(image, None);
    }

    /// PullImage of `image` takes `delay` (tokio time).
    pub fn pull_delay(&self, image: &str, delay: Duration) {
        self.shared.lock().set_pull_delay(image, delay);
    }

    // ---- runtime ----------------------------------------------------------

    /// The RuntimeReady condition of Status.
    pub fn set_runtime_ready(&self, ready: bool) {
        self.shared.lock().runtime_ready = ready;
    }

    /// The NetworkReady condition of Status.
    pub fn set_network_ready(&self, ready: bool) {
        self.shared.lock().network_ready = ready;
    }

    /// `Some(message)`: RunPodSandbox fails with `Unknown` and `message`;
    /// `None`: it works again.
    pub fn fail_sandbox_creation(&self, message: Option<&str>) {
        self.shared.lock().sandbox_failure = message.map(str::to_owned);
    }

    // ---- containers -------------------------------------------------------

    /// Scripts the containers of `target` (a container name, or a
    /// [`Target`] narrowed to a namespace, pod labels or a pod): start N of the container
    /// in one pod (by uid, across its sandboxes) plays `runs[N]`,
    /// the last run repeating. Replaces the target's previous script; starts
    /// already counted stay counted.
    pub fn script(&self, target: impl Into<Target>, runs: Vec<Run>) {
        self.shared.lock().set_script(target.into(), runs);
    }

    /// ExecSync in containers of `target` whose command starts with
    /// `cmd_prefix` (empty: any command) answers `result`. An exact rule
    /// ([`FakeRuntime::exec_result_exact`]) beats prefixes, a longer prefix
    /// a shorter one, then the most specific target wins. Unscripted
    /// commands exit 0 with no output. Setting the same rule again replaces
    /// it (a probe that starts failing).
    pub fn exec_result(&self, target: impl Into<Target>, cmd_prefix: &[&str], result: ExecResult) {
        self.set_exec(target.into(), cmd_prefix, false, result);
    }

    /// ExecSync of exactly `cmd` in containers of `target` answers `result`.
    pub fn exec_result_exact(&self, target: impl Into<Target>, cmd: &[&str], result: ExecResult) {
        self.set_exec(target.into(), cmd, true, result);
    }

    fn set_exec(&self, target: Target, argv: &[&str], exact: bool, result: ExecResult) {
        self.shared.lock().set_exec(state::ExecRule {
            target,
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            exact,
            result,
        });
    }

    /// What running containers of `target` report in ContainerStats and
    /// PodSandboxStats (default [`Usage::default`]).
    pub fn usage(&self, target: impl Into<Target>, usage: Usage) {
        self.shared.lock().set_usage(target.into(), usage);
    }

    /// Makes a running container exit now with `code` and `reason` (empty:
    /// "Completed"/"Error" by code). False if it was not running.
    pub fn kill(&self, container_id: &str, exit_code: i32, reason: &str) -> bool {
        let reason = (!reason.is_empty()).then(|| reason.to_owned());
        self.shared
            .lock()
            .exit(container_id, exit_code, reason, None)
    }

    /// The sandbox dies (its infra container exits): its running containers
    /// exit 137 and it turns NOTREADY, so the kubelet must recreate the pod's
    /// sandbox. False if there is no such sandbox.
    pub fn kill_sandbox(&self, sandbox_id: &str) -> bool {
        self.shared.lock().stop_sandbox(sandbox_id).is_ok()
    }

    /// Every sandbox, in creation order.
    pub fn sandboxes(&self) -> Vec<SandboxView> {
        self.shared.lock().sandbox_views()
    }

    /// Every container, in creation order.
    pub fn containers(&self) -> Vec<ContainerView> {
        self.shared.lock().container_views()
    }

    /// The newest container named `name` in pod `namespace/pod`.
    pub fn container(&self, namespace: &str, pod: &str, name: &str) -> Option<ContainerView> {
        self.containers()
            .into_iter()
            .rev()
            .find(|c| c.namespace == namespace && c.pod == pod && c.name == name)
    }

    // ---- call log ---------------------------------------------------------

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls()
    }

    /// How many `method` calls named `name` (see [`Call::name`]) were made.
    pub fn count(&self, method: &str, name: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.method == method && c.name == name)
            .count()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.shared.lock().clear_calls();
    }

    /// Turns the call log on or off.
    pub fn record_calls(&self, on: bool) {
        self.shared.lock().record_calls = on;
    }

    /// Waits (tokio time) until `done` holds, re-checking after every call
    /// the runtime receives and every container exit. False if `timeout`
    /// passed first.
    ///
    /// ```no_run
    /// # async fn demo(fake: skiff_testkit::cri::FakeRuntime) {
    /// # use std::time::Duration;
    /// assert!(fake.wait_until(Duration::from_secs(30), |f| f.count("StartContainer", "app") >= 3).await);
    /// # }
    /// ```
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&FakeRuntime) -> bool,
    ) -> bool {
        let mut changes = self.shared.lock().changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return done(self);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return done(self),
            }
        }
    }

    /// Stops serving (graceful, bounded to 5 s) and removes the socket.
    pub async fn shutdown(self) {
        if let Some(stop) = self.server.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        let task = self.server.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.server.socket);
    }
}
