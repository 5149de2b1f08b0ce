//! What the fake containers do: scripted runs, SIGTERM behaviour, exec
//! results, and which containers a script applies to.

use std::collections::HashMap;
use std::time::Duration;

/// Which output stream a log line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// A line a run writes to its log, `after` its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub after: Duration,
    pub stream: LogStream,
    pub text: String,
}

/// What a running container does when `StopContainer` sends it SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSigterm {
    /// Exits with `code` after `after` (0 = at once). If `after` is not
    /// shorter than the stop timeout, the container is SIGKILLed at the
    /// timeout instead (exit code 137).
    Exit { after: Duration, code: i32 },
    /// Keeps running; SIGKILLed when the stop timeout ends (exit code 137).
    Ignore,
}

impl Default for OnSigterm {
    /// Dies of the signal at once: 128 + 15.
    fn default() -> Self {
        OnSigterm::Exit {
            after: Duration::ZERO,
            code: 143,
        }
    }
}

/// One start of a container: what it prints and when (if ever) it exits.
///
/// A container's script is a list of runs; start number N (counted per pod
/// uid and container name, across the pod's sandboxes — so N is the
/// container's restart count) plays run N, and the last run repeats once
/// the list is exhausted.
///
/// ```
/// # use std::time::Duration;
/// # use skiff_testkit::cri::Run;
/// let crash = Run::exit_after(Duration::from_secs(2), 1).stdout("boom");
/// let oom = Run::exit_after(Duration::from_secs(1), 137).reason("OOMKilled");
/// let server = Run::forever().ignore_sigterm();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// `Some((d, code))`: exits with `code` `d` after starting. `None`: runs
    /// until stopped or killed.
    pub exit: Option<(Duration, i32)>,
    /// Replaces the derived reason ("Completed" for 0, else "Error"),
    /// e.g. "OOMKilled".
    pub reason: Option<String>,
    /// The container status `message` after this run exits.
    pub message: Option<String>,
    /// Written at exit to the host file mounted at the container's
    /// `terminationMessagePath` (the kubelet reads it into the status).
    pub termination_message: Option<String>,
    /// Lines written to the container's log (those after its exit or stop
    /// are never written).
    pub output: Vec<LogLine>,
    /// Reaction to `StopContainer`.
    pub on_sigterm: OnSigterm,
}

impl Run {
    /// Runs until stopped (the default for unscripted containers).
    pub fn forever() -> Run {
        Run::default()
    }

    /// Exits with `code` after `after`.
    pub fn exit_after(after: Duration, code: i32) -> Run {
        Run {
            exit: Some((after, code)),
            ..Run::default()
        }
    }

    /// Sets the exit reason (e.g. "OOMKilled").
    pub fn reason(mut self, reason: &str) -> Run {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Sets the status message after exit.
    pub fn message(mut self, message: &str) -> Run {
        self.message = Some(message.to_owned());
        self
    }

    /// Writes `text` to the termination message file when it exits.
    pub fn termination_message(mut self, text: &str) -> Run {
        self.termination_message = Some(text.to_owned());
        self
    }

    /// Adds a stdout line written at start.
    pub fn stdout(self, line: &str) -> Run {
        self.line_after(Duration::ZERO, LogStream::Stdout, line)
    }

    /// Adds a stderr line written at start.
    pub fn stderr(self, line: &str) -> Run {
        self.line_after(Duration::ZERO, LogStream::Stderr, line)
    }

    /// Adds a stdout line written `after` the start.
    pub fn stdout_after(self, after: Duration, line: &str) -> Run {
        self.line_after(after, LogStream::Stdout, line)
    }

    /// Adds a stderr line written `after` the start.
    pub fn stderr_after(self, after: Duration, line: &str) -> Run {
        self.line_after(after, LogStream::Stderr, line)
    }

    fn line_after(mut self, after: Duration, stream: LogStream, text: &str) -> Run {
        self.output.push(LogLine {
            after,
            stream,
            text: text.to_owned(),
        });
        self
    }

    /// SIGTERM is ignored: `StopContainer` kills at its timeout (137).
    pub fn ignore_sigterm(mut self) -> Run {
        self.on_sigterm = OnSigterm::Ignore;
        self
    }

    /// SIGTERM makes the container exit with `code` after `after`.
    pub fn on_sigterm_exit(mut self, after: Duration, code: i32) -> Run {
        self.on_sigterm = OnSigterm::Exit { after, code };
        self
    }
}

/// The scripted result of `ExecSync`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// How long the command runs. Longer than the request's timeout (when
    /// non-zero) gives `DeadlineExceeded` at the timeout, as containerd.
    pub delay: Duration,
}

impl ExecResult {
    /// Exit code 0 with `stdout`.
    pub fn ok(stdout: &str) -> ExecResult {
        ExecResult {
            stdout: stdout.as_bytes().to_vec(),
            ..ExecResult::default()
        }
    }

    /// Exit code `code` with `stderr`.
    pub fn fail(code: i32, stderr: &str) -> ExecResult {
        ExecResult {
            exit_code: code,
            stderr: stderr.as_bytes().to_vec(),
            ..ExecResult::default()
        }
    }

    /// Runs for `delay` before answering.
    pub fn delayed(mut self, delay: Duration) -> ExecResult {
        self.delay = delay;
        self
    }
}

/// What a running container uses, as ContainerStats / PodSandboxStats
/// report it (CPU as a constant rate, so cumulative CPU time grows with
/// tokio time since start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
}

impl Default for Usage {
    /// 1m CPU, 1 MiB: small but visible in `kubectl top`.
    fn default() -> Self {
        Usage {
            cpu_millicores: 1,
            memory_bytes: 1 << 20,
        }
    }
}

/// The containers a script or exec result applies to: a container name,
/// optionally narrowed to a pod namespace, a pod name, and pod labels (the
/// sandbox's labels, which the kubelet copies from the pod). The most
/// specific matching target wins (pod name > labels > namespace).
///
/// ```
/// # use skiff_testkit::cri::Target;
/// let any_app = Target::container("app");
/// let one_pod = Target::in_pod("default", "web-0", "app");
/// let deployment = Target::in_namespace("default", "app").with_pod_label("app", "web");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Target {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    /// Labels the pod's sandbox must carry.
    pub pod_labels: Vec<(String, String)>,
    pub container: String,
}

/// The pod side of a match: what the sandbox metadata and labels say.
pub(crate) struct PodRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a HashMap<String, String>,
}

impl Target {
    /// Every container named `container`, in any pod.
    pub fn container(container: &str) -> Target {
        Target {
            container: container.to_owned(),
            ..Target::default()
        }
    }

    /// Container `container` of pod `namespace/pod`.
    pub fn in_pod(namespace: &str, pod: &str, container: &str) -> Target {
        Target {
            namespace: Some(namespace.to_owned()),
            pod: Some(pod.to_owned()),
            container: container.to_owned(),
            ..Target::default()
        }
    }

    /// Containers named `container` in pods of `namespace`.
    pub fn in_namespace(namespace: &str, container: &str) -> Target {
        Target {
            namespace: Some(namespace.to_owned()),
            container: container.to_owned(),
            ..Target::default()
        }
    }

    /// Narrows to pods labelled `key=value` (e.g. a Deployment's pods,
    /// whose names are random).
    pub fn with_pod_label(mut self, key: &str, value: &str) -> Target {
        self.pod_labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `None` if it does not match; otherwise its specificity (higher wins).
    pub(crate) fn matches(&self, pod: &PodRef<'_>, container: &str) -> Option<u8> {
        if self.container != container {
            return None;
        }
        let mut score = 0;
        if let Some(ns) = &self.namespace {
            if ns != pod.namespace {
                return None;
            }
            score += 1;
        }
        if !self.pod_labels.is_empty() {
            let all = self
                .pod_labels
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v));
            if !all {
                return None;
            }
            score += 2;
        }
        if let Some(p) = &self.pod {
            if p != pod.name {
                return None;
            }
            score += 4;
        }
        Some(score)
    }
}

impl From<&str> for Target {
    fn from(container: &str) -> Target {
        Target::container(container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_target_scores_highest() {
        let labels = HashMap::from([("app".to_owned(), "web".to_owned())]);
        let web = PodRef {
            namespace: "default",
            name: "web",
            labels: &labels,
        };
        let db = PodRef {
            namespace: "default",
            name: "db",
            labels: &HashMap::new(),
        };
        let any = Target::container("app");
        let ns = Target::in_namespace("default", "app");
        let labelled = Target::container("app").with_pod_label("app", "web");
        let pod = Target::in_pod("default", "web", "app");
        assert_eq!(any.matches(&web, "app"), Some(0));
        assert_eq!(ns.matches(&web, "app"), Some(1));
        assert_eq!(labelled.matches(&web, "app"), Some(2));
        assert_eq!(labelled.matches(&db, "app"), None);
        assert_eq!(pod.matches(&web, "app"), Some(5));
        assert_eq!(pod.matches(&db, "app"), None);
        assert_eq!(any.matches(&web, "sidecar"), None);
    }
}
