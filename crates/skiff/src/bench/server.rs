//! The server under test: `skiff server` from this binary, started as a
//! child process (so its memory can be read) on free loopback ports with a
//! temp data dir, and a `kube` client for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

/// A running `skiff server`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Server {
    /// The API server alone (`--disable-agent`), with `extra` flags.
    pub fn start(extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn("server", false, extra)
    }

    /// `skiff apiserver`: the API server without the server's scheduler,
    /// controllers, DNS or agent, for benchmarks that run one of those as
    /// their own child process.
    pub fn start_apiserver(extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn("apiserver", false, extra)
    }

    /// The server with its node agent (its own containerd and kubelet): a
    /// real node, which needs root, containerd, runc and the CNI plugins.
    /// The data dir is short (`/tmp/skbXXXXXX/data`): containerd's socket
    /// path must fit in 108 bytes.
    pub fn start_node(extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn("server", true, extra)
    }

    fn spawn(subcommand: &str, agent: bool, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("skb").tempdir_in("/tmp")?;
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("skiff.log"))?;
        let port = skiff_testkit::free_port();
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args([subcommand, "--https-port", &port.to_string()])
            .args(["--bind-address", "127.0.0.1"])
            .args(["--dns-port", "0", "--dns-metrics-port", "0"])
            .arg("--data-dir")
            .arg(&data);
        if agent {
            command
                // Beside the data dir (removed with it), not /var/log/pods.
                .arg("--pod-log-dir")
                .arg(dir.path().join("pods"))
                .arg("--kubelet-port")
                .arg(skiff_testkit::free_port().to_string())
                .arg("--kubelet-healthz-port")
                .arg(skiff_testkit::free_port().to_string())
                .args(["--proxy-healthz-port", "0", "--proxy-metrics-port", "0"])
                // A benchmark measures start-up, not the host's disk: no
                // evictions because a shared build machine's disk is full.
                .args([
                    "--eviction-hard",
                    "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%,nodefs.inodesFree<1%",
                ]);
            // Its own process group: Ctrl-C reaches only the benchmark,
            // which deletes its pods before stopping the server.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        } else {
            command.arg("--disable-agent");
        }
        let child = command
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting skiff server")?;
        Ok(Server {
            child: Some(child),
            kubeconfig: data.join("admin.kubeconfig"),
            dir,
        })
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn rss_mb(&self) -> f64 {
        self.pid().map_or(0.0, rss_mb)
    }

    /// The last `lines` lines of the server's log (for error messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("skiff.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The server's log and, with its agent, containerd's, with file names
    /// to copy them to.
    pub fn logs(&self) -> Vec<(PathBuf, &'static str)> {
        let containerd = self.data_dir().join("agent/containerd/containerd.log");
        let mut logs = vec![(self.dir.path().join("skiff.log"), "skiff.log")];
        if containerd.exists() {
            logs.push((containerd, "containerd.log"));
        }
        logs
    }

    /// Stops the server gracefully (SIGTERM: it stops its containerd too)
    /// and waits for it; SIGKILL after 30 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

/// Resident memory of process `pid` in MiB (`VmRSS`); 0 if unknown.
pub fn rss_mb(pid: u32) -> f64 {
    rss_kib(pid).map_or(0.0, |kib| kib as f64 / 1024.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A client for the server at `kubeconfig`, once it answers (60 s).
pub async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if kubeconfig.exists() {
            let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            if Api::<Namespace>::all(client.clone())
                .get("default")
                .await
                .is_ok()
            {
                return Ok(client);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the server did not become ready within 60s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
