//! Shared helpers for the end-to-end tests: booting a cluster, running the
//! real kubectl (1.27 and 1.33) with clear failure messages, following a
//! `kubectl get -w` child process, and a `kube` client for the same cluster.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_kubelet;
pub mod manifests;
pub mod suite;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skiff_testkit::{Cluster, EtcdServer, Kubectl};

/// The kubectl versions every test drives: the oldest and newest supported.
pub const KUBECTLS: [u32; 2] = [27, 33];

/// A cluster on free ports with a temp data dir (embedded SQLite).
pub fn cluster() -> Cluster {
    cluster_with(&[])
}

pub fn cluster_with(args: &[&str]) -> Cluster {
    Cluster::start(Path::new(env!("CARGO_BIN_EXE_skiff")), args)
        .unwrap_or_else(|e| panic!("skiff server did not start: {e}"))
}

/// A cluster whose store is a real etcd started for this test. The etcd
/// server must outlive the cluster: keep both.
pub fn etcd_cluster() -> (EtcdServer, Cluster) {
    let etcd = EtcdServer::start().unwrap_or_else(|e| panic!("etcd did not start: {e}"));
    let endpoint = etcd.client_url();
    let cluster = cluster_with(&["--datastore-endpoint", &endpoint]);
    (etcd, cluster)
}

/// kubectl `1.<minor>` for `c`, with its own discovery cache.
pub fn kubectl(c: &Cluster, minor: u32) -> Kubectl {
    c.kubectl(minor)
        .unwrap_or_else(|e| panic!("kubectl 1.{minor} is not available: {e}"))
}

fn describe(minor: u32, args: &[&str], out: &Output) -> String {
    format!(
        "kubectl 1.{minor} {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// One kubectl version driving one cluster; every failure message carries
/// kubectl's output and the server log.
pub struct Ctl<'a> {
    pub c: &'a Cluster,
    pub minor: u32,
    pub k: Kubectl,
}

impl<'a> Ctl<'a> {
    pub fn new(c: &'a Cluster, minor: u32) -> Self {
        Ctl {
            c,
            minor,
            k: kubectl(c, minor),
        }
    }

    /// Runs kubectl and returns its output, whatever the exit code.
    pub fn output(&self, args: &[&str]) -> Output {
        self.k
            .run(args)
            .unwrap_or_else(|e| panic!("cannot run kubectl 1.{}: {e}", self.minor))
    }

    pub fn output_with_input(&self, args: &[&str], input: &str) -> Output {
        self.k
            .run_with_input(args, input)
            .unwrap_or_else(|e| panic!("cannot run kubectl 1.{}: {e}", self.minor))
    }

    /// Runs kubectl, asserts it succeeded, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        self.expect_success(args, &out)
    }

    /// Like [`Ctl::ok`] with `input` on stdin.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        let out = self.output_with_input(args, input);
        self.expect_success(args, &out)
    }

    /// Runs kubectl, asserts it failed, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        self.expect_failure(args, &out)
    }

    pub fn fails_with_input(&self, args: &[&str], input: &str) -> String {
        let out = self.output_with_input(args, input);
        self.expect_failure(args, &out)
    }

    fn expect_success(&self, args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "expected success: {}\n--- server log ---\n{}",
            describe(self.minor, args, out),
            self.c.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn expect_failure(&self, args: &[&str], out: &Output) -> String {
        assert!(
            !out.status.success(),
            "expected failure: {}\n--- server log ---\n{}",
            describe(self.minor, args, out),
            self.c.logs()
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl get -o json` of one object, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}):\n{out}"))
    }

    /// `kubectl get -o jsonpath=<path>` of one object.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        let arg = format!("jsonpath={path}");
        all.extend_from_slice(&["-o", &arg]);
        self.ok(&all)
    }

    /// Starts kubectl with `args` as a long-running child whose stdout is
    /// read line by line (`get -w`).
    pub fn follow(&self, args: &[&str]) -> Follow {
        Follow::spawn(self, args)
    }

    /// Creates a namespace from a manifest (works with every kubectl: the
    /// `create namespace` generator of 1.33 sends protobuf).
    pub fn create_namespace(&self, name: &str) {
        self.ok_with_input(
            &["create", "--validate=false", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
        );
    }

    /// `kubectl create --validate=false -f -` of `yaml`.
    pub fn create(&self, namespace: &str, yaml: &str) -> String {
        self.ok_with_input(
            &["create", "--validate=false", "-n", namespace, "-f", "-"],
            yaml,
        )
    }
}

/// A kubectl child process (e.g. `get -w`) whose stdout lines arrive on a
/// channel; killed when dropped.
pub struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub seen: Vec<String>,
    what: String,
}

impl Follow {
    fn spawn(ctl: &Ctl<'_>, args: &[&str]) -> Follow {
        let mut child = ctl
            .k
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl 1.{}: {e}", ctl.minor));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = stderr_text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Follow {
            child,
            lines: rx,
            stderr: stderr_text,
            seen: Vec::new(),
            what: format!("kubectl 1.{} {}", ctl.minor, args.join(" ")),
        }
    }

    /// The next stdout line, or `None` after `timeout` / at the end.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// The next line that parses as JSON and satisfies `pred`; panics with
    /// everything seen so far after `timeout`.
    pub fn next_json_matching(
        &mut self,
        c: &Cluster,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && pred(&v)
                    {
                        return v;
                    }
                }
                None => panic!(
                    "{}: never saw {what}\n--- stdout lines ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
                    self.what,
                    self.seen.join("\n"),
                    self.stderr.lock().unwrap(),
                    c.logs()
                ),
            }
        }
    }

    /// Waits until kubectl's stderr (e.g. its `-v=6` request log) has a
    /// line containing `needle`.
    pub fn wait_stderr(&self, c: &Cluster, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: stderr never showed {needle:?}\n--- stderr ---\n{}\n--- server log ---\n{}",
            self.what,
            self.stderr(),
            c.logs()
        );
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for kubectl to exit on its own; `None` if it still runs after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server log has a line for which `pred` holds.
pub fn wait_for_log(c: &Cluster, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if c.logs().lines().any(&pred) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the server never logged {what}\n--- server log ---\n{}",
        c.logs()
    );
}

/// The highest revision the automatic compactor has compacted to so far,
/// from its `compacted store history revision=N` log lines.
pub fn compacted_revision(c: &Cluster) -> Option<i64> {
    strip_ansi(&c.logs())
        .lines()
        .filter(|l| l.contains("compacted store history"))
        .filter_map(|l| {
            let at = l.rfind("revision")?;
            let digits: String = l[at..]
                .chars()
                .skip_while(|ch| !ch.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .max()
}

/// `s` without terminal colour codes (`ESC [ ... m`), as the server's log
/// and kubectl 1.27's `cluster-info` contain them.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for esc in chars.by_ref() {
                if esc.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Waits until history up to at least `revision` has been compacted (the
/// server must run with a short `--compaction-interval-seconds`).
pub fn wait_compacted_past(c: &Cluster, revision: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if compacted_revision(c).is_some_and(|r| r >= revision) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "history was never compacted past revision {revision}\n--- server log ---\n{}",
        c.logs()
    );
}

/// A `kube` client from the cluster's admin kubeconfig.
pub async fn kube_client(c: &Cluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&c.kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", c.kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig: {e}"));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a kube client: {e}"))
}

/// The `metav1.Status` of a failed kube call.
pub fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error (a metav1.Status), got {other:?}"),
    }
}
