//! A real skiff server on free loopback ports with a temp data dir, and the
//! real kubectl (any installed version) pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::TestkitError;
use crate::ports::free_port;

/// A running `skiff server`, stopped (SIGKILL) when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    child: Option<Child>,
    binary: PathBuf,
    args: Vec<String>,
    /// Whether the server runs its node agent (containerd + kubelet).
    agent: bool,
    pub port: u16,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts `skiff server` from `binary` (in tests of the skiff crate:
    /// `env!("CARGO_BIN_EXE_skiff")`) with `extra_args`, and waits until
    /// `/readyz` answers.
    pub fn start(binary: &Path, extra_args: &[&str]) -> Result<Self, TestkitError> {
        Self::start_inner(binary, extra_args, false)
    }

    /// Like [`Cluster::start`], with the server's node agent running: a
    /// real node (needs root, containerd, runc, CNI plugins). The data dir
    /// is short (`/tmp/skN...`): containerd's socket path must fit 108 bytes.
    pub fn start_with_agent(binary: &Path, extra_args: &[&str]) -> Result<Self, TestkitError> {
        Self::start_inner(binary, extra_args, true)
    }

    fn start_inner(binary: &Path, extra_args: &[&str], agent: bool) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new().prefix("sk").tempdir_in("/tmp")?;
        let port = free_port();
        let kubeconfig = dir.path().join("data").join("admin.kubeconfig");
        let mut cluster = Cluster {
            dir,
            child: None,
            binary: binary.to_owned(),
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            agent,
            port,
            kubeconfig,
        };
        cluster.spawn()?;
        Ok(cluster)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("skiff.log")
    }

    /// The server's log so far (for failure messages).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(&self.binary);
        command.arg("server");
        if !self.agent {
            // Without a node nothing can reach the cluster DNS; it would
            // only take a port on the host's address.
            command.args(["--disable-agent", "--disable-dns"]);
        }
        // Its own process group, so that dropping the cluster also ends the
        // containerd it started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--https-port")
            .arg(self.port.to_string())
            .arg("--bind-address")
            .arg("127.0.0.1")
            // Clusters of parallel tests must not share the DNS ports.
            .args(["--dns-port", "0", "--dns-metrics-port", "0"])
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                program: self.binary.display().to_string(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        let kubectl = Kubectl::new(1, 33, &self.kubeconfig)?;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                break;
            }
            if self.kubeconfig.exists()
                && let Ok(out) = kubectl.run(&["get", "--raw", "/readyz"])
                && out.status.success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(TestkitError::NotReady {
            what: "skiff server",
            url: format!("https://127.0.0.1:{}", self.port),
            seconds: timeout.as_secs(),
            log: self.logs(),
        })
    }

    /// kubectl `1.<minor>` for this cluster, with its own discovery cache.
    pub fn kubectl(&self, minor: u32) -> Result<Kubectl, TestkitError> {
        Kubectl::new(1, minor, &self.kubeconfig)
    }

    /// Stops the server with SIGTERM and waits for it (graceful shutdown).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stops and starts the server again on the same data dir and port.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.spawn()
    }

    /// Kills the server with SIGKILL (no shutdown: a crash) and starts it
    /// again on the same data dir and port.
    pub fn crash_and_restart(&mut self) -> Result<(), TestkitError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Only while the server is alive (unreaped) is its pid surely
            // still its process group's id: pids are reused (pid_max may
            // be 32768), and a stale group kill would hit strangers.
            if let Ok(None) = child.try_wait()
                && let Some(group) = i32::try_from(child.id())
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the installed kubectl versions live: beside the binary `kubectl`
/// on PATH links to, as `kubectl.1.NN`.
pub fn kubectl_binary(major: u32, minor: u32) -> Result<PathBuf, TestkitError> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("kubectl"))
                .find(|p| p.exists())
        })
        .ok_or_else(|| TestkitError::Spawn {
            program: "kubectl".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "kubectl is not on PATH"),
        })?;
    let real = std::fs::canonicalize(&on_path)?;
    let dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let versioned = dir.join(format!("kubectl.{major}.{minor}"));
    if versioned.exists() {
        Ok(versioned)
    } else {
        Err(TestkitError::Spawn {
            program: versioned.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "this kubectl version is not installed",
            ),
        })
    }
}

/// One kubectl version with its own cache dir (a stale discovery cache
/// would hide bugs).
pub struct Kubectl {
    pub binary: PathBuf,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(major: u32, minor: u32, kubeconfig: &Path) -> Result<Self, TestkitError> {
        Ok(Kubectl {
            binary: kubectl_binary(major, minor)?,
            kubeconfig: kubeconfig.to_owned(),
            cache: tempfile::tempdir()?,
        })
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--request-timeout=30s");
        command
    }

    pub fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        self.command().args(args).output()
    }

    /// Runs with `input` on stdin (`kubectl apply -f -`).
    pub fn run_with_input(&self, args: &[&str], input: &str) -> std::io::Result<Output> {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        child.wait_with_output()
    }
}
