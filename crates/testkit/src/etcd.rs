//! A real etcd (Debian's `etcd-server`) on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// Why a test dependency could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "cannot start {program}: {source} (install Debian's etcd-server: apt-get install etcd-server)"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what} on {url} did not become ready within {seconds}s; log: {log}")]
    NotReady {
        what: &'static str,
        url: String,
        seconds: u64,
        log: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One etcd member with its own temp data dir. Killed (SIGKILL) when dropped.
pub struct EtcdServer {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd (`$SKIFF_ETCD_BIN` or `etcd` on PATH) and waits until it
    /// answers its health endpoint.
    pub fn start() -> Result<Self, TestkitError> {
        let mut server = EtcdServer {
            dir: tempfile::tempdir()?,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let program = std::env::var("SKIFF_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&program)
            .arg("--name=skiff-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", self.client_url()))
            .arg(format!("--advertise-client-urls={}", self.client_url()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=skiff-test={peer}"))
            .arg("--listen-metrics-urls=")
            .arg("--log-level=warn")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| TestkitError::Spawn { program, source })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                break;
            }
            if health_ok(self.client_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::NotReady {
            what: "etcd",
            url: self.client_url(),
            seconds: timeout.as_secs(),
            log: std::fs::read_to_string(self.log_path()).unwrap_or_default(),
        })
    }

    /// SIGKILLs etcd (as a power cut would) and starts it again on the same
    /// data dir and ports.
    pub fn kill_and_restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// etcd's `/health` answers `{"health":"true"...}` once it has a leader.
fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
