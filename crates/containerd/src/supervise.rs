//! Running containerd as a child: start, wait until it answers, restart it
//! when it dies, stop it on shutdown. Containers outlive containerd (their
//! shims are separate processes), so stopping or restarting it never stops
//! a pod — the same contract as k3s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ContainerdConfig, cgroup_v2, detect_cni_bin_dir, overlay_works};
use crate::{ContainerdError, PACKAGES_HINT, find_on_path};

/// How long containerd may take to answer on its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM'd containerd may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Restart backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// containerd's log is rotated at start once it is this big.
const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
/// A run this long resets the backoff: the crash was not a start-up loop.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// A running, supervised containerd.
#[derive(Debug)]
pub struct Managed {
    socket: PathBuf,
    pid: Arc<AtomicU32>,
    supervisor: JoinHandle<()>,
}

impl Managed {
    /// The gRPC socket (CRI and containerd API) to connect to.
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// The process id of the current containerd child, if one is running
    /// (it changes on every restart).
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Resolves once containerd has stopped for good (after the shutdown
    /// token was cancelled).
    pub async fn wait(self) {
        if let Err(e) = self.supervisor.await {
            tracing::error!(error = %e, "containerd supervisor failed");
        }
    }
}

/// Writes the config, starts containerd and waits until it answers; then
/// keeps it running until `shutdown` is cancelled.
pub async fn start(
    config: ContainerdConfig,
    shutdown: CancellationToken,
) -> Result<Managed, ContainerdError> {
    let containerd = require("containerd")?;
    require("runc")?;
    let ctr = require("ctr")?;
    let cni_bin_dir = match &config.cni_bin_dir {
        Some(dir) => dir.clone(),
        None => detect_cni_bin_dir()?,
    };
    // Before touching its directory: a daemon there keeps its config.
    let socket = config.socket();
    if socket_answers(&socket).await {
        let pid = process_using(&config.config_file());
        return Err(ContainerdError::AlreadyRunning { socket, pid });
    }
    for dir in [&config.dir, &config.cni_conf_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| ContainerdError::io("creating directory", dir, e))?;
    }
    let snapshotter = if overlay_works(&config.dir) {
        "overlayfs"
    } else {
        tracing::warn!(dir = %config.dir.display(), "overlay mounts fail here; using the slower native snapshotter");
        "native"
    };
    tracing::info!(
        cgroup = if cgroup_v2() { "v2" } else { "v1" },
        driver = "cgroupfs",
        snapshotter,
        cni_bin_dir = %cni_bin_dir.display(),
        "configuring containerd"
    );
    let config_file = config.config_file();
    std::fs::write(&config_file, config.render(&cni_bin_dir, snapshotter))
        .map_err(|e| ContainerdError::io("writing", &config_file, e))?;

    let process = Process {
        containerd,
        ctr,
        config_file,
        socket: socket.clone(),
        log: config.log_file(),
    };
    let child = tokio::select! {
        biased;
        // Dropping the half-started child kills it (kill_on_drop).
        () = shutdown.cancelled() => return Err(ContainerdError::Cancelled),
        result = process.spawn_ready() => result?,
    };
    let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
    tracing::info!(socket = %socket.display(), pid = child.id(), "containerd is ready");
    let supervisor = tokio::spawn(supervise(process, child, pid.clone(), shutdown));
    Ok(Managed {
        socket,
        pid,
        supervisor,
    })
}

fn require(program: &str) -> Result<PathBuf, ContainerdError> {
    find_on_path(program).ok_or_else(|| ContainerdError::MissingProgram {
        program: program.to_string(),
        hint: PACKAGES_HINT,
    })
}

/// What it takes to (re)start containerd.
struct Process {
    containerd: PathBuf,
    ctr: PathBuf,
    config_file: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Process {
    /// Spawns containerd and waits until `ctr version` answers.
    async fn spawn_ready(&self) -> Result<Child, ContainerdError> {
        match std::fs::remove_file(&self.socket) {
            Ok(()) => tracing::debug!(socket = %self.socket.display(), "removed stale socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ContainerdError::io(
                    "removing stale socket",
                    &self.socket,
                    e,
                ));
            }
        }
        rotate_log(&self.log);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| ContainerdError::io("opening", &self.log, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| ContainerdError::io("opening", &self.log, e))?;
        let mut child = Command::new(&self.containerd)
            .arg("--config")
            .arg(&self.config_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in skiff's terminal must not
            // reach containerd before skiff decides to stop it.
            .process_group(0)
            // containerd never outlives skiff's runtime unless skiff itself
            // is SIGKILLed; its shims and containers survive either way.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ContainerdError::io("starting", &self.containerd, e))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Err(self.not_ready(format!("it exited ({status})"))),
                Ok(None) => {}
                Err(e) => return Err(self.not_ready(format!("waiting for it failed: {e}"))),
            }
            if socket_answers(&self.socket).await && self.ctr_version().await {
                match self.cri_status().await.as_deref() {
                    Some("ok") => return Ok(child),
                    Some(status) => {
                        stop(&mut child).await;
                        return Err(self.not_ready(format!(
                            "its CRI plugin did not load (status {status:?})"
                        )));
                    }
                    None => {}
                }
            }
            if Instant::now() >= deadline {
                stop(&mut child).await;
                return Err(self.not_ready(format!(
                    "no answer on {} within {}s",
                    self.socket.display(),
                    READY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn ctr_version(&self) -> bool {
        Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .arg("version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// The status column of the CRI plugin in `ctr plugins ls` (`ok`,
    /// `error`, `skip`); `None` while it cannot be read.
    async fn cri_status(&self) -> Option<String> {
        let out = Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["plugins", "ls"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    ["io.containerd.grpc.v1", "cri", .., status] => Some(status.to_string()),
                    _ => None,
                }
            })
    }

    fn not_ready(&self, reason: String) -> ContainerdError {
        ContainerdError::NotReady {
            reason,
            log: self.log.clone(),
            tail: log_tail(&self.log, 10),
        }
    }
}

/// Keeps one previous log once the current one passes [`MAX_LOG_BYTES`], so
/// a node that restarts containerd often does not fill its disk.
fn rotate_log(log: &Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        if let Err(e) = std::fs::rename(log, &old) {
            tracing::warn!(log = %log.display(), error = %e, "rotating containerd's log failed");
        }
    }
}

/// The process whose command line names `config_file` (a containerd left
/// running by an earlier skiff), for the error that asks to stop it.
fn process_using(config_file: &Path) -> Option<u32> {
    let wanted = config_file.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == wanted)
                .then_some(pid)
        })
}

/// The last `lines` lines of the log, each on its own line after a newline.
fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(log) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|l| format!("\n  {l}")).collect()
}

/// Whether something accepts connections on the unix socket.
async fn socket_answers(socket: &Path) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::UnixStream::connect(socket)
        )
        .await,
        Ok(Ok(_))
    )
}

/// Restarts containerd whenever it exits, until shutdown.
async fn supervise(
    process: Process,
    mut child: Child,
    pid: Arc<AtomicU32>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut started = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                tracing::info!(pid = child.id(), "stopping containerd");
                stop(&mut child).await;
                pid.store(0, Ordering::SeqCst);
                tracing::info!("containerd stopped");
                return;
            }
            status = child.wait() => {
                pid.store(0, Ordering::SeqCst);
                match status {
                    Ok(status) => tracing::warn!(%status, log = %process.log.display(), "containerd exited; restarting"),
                    Err(e) => tracing::warn!(error = %e, "waiting for containerd failed; restarting"),
                }
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF_MIN;
        }
        // Restart with backoff until one start succeeds or shutdown.
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            let restarted = tokio::select! {
                () = shutdown.cancelled() => return,
                result = process.spawn_ready() => result,
            };
            match restarted {
                Ok(new_child) => {
                    child = new_child;
                    pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
                    started = Instant::now();
                    tracing::info!(pid = child.id(), "containerd restarted");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "restarting containerd failed")
                }
            }
        }
    }
}

/// SIGTERM, up to [`STOP_TIMEOUT`] to exit, then SIGKILL.
async fn stop(child: &mut Child) {
    if let Some(id) = child.id() {
        let pid = i32::try_from(id)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid
            && let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        {
            tracing::warn!(error = %e, "sending SIGTERM to containerd failed");
        }
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "waiting for containerd failed"),
        Err(_) => {
            tracing::warn!(
                "containerd ignored SIGTERM for {}s; killing it",
                STOP_TIMEOUT.as_secs()
            );
            if let Err(e) = child.kill().await {
                tracing::warn!(error = %e, "killing containerd failed");
            }
        }
    }
}
