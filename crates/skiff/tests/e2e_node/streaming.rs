//! exec, cp, port-forward, attach and `logs -f` through the real kubectl,
//! API server, kubelet and containerd, each for kubectl 1.27 (SPDY only),
//! 1.30 (WebSocket exec, SPDY port-forward) and 1.33 (WebSocket for both).

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use super::common::Ctl;
use super::{TIMEOUT, container_status, wait_json};
use skiff_testkit::Cluster;

/// The kubectl versions whose streaming protocols differ.
const VERSIONS: [u32; 3] = [27, 30, 33];

/// Every streaming scenario against `pod` (a running `web` pod serving
/// `/www` on 8080).
pub fn scenarios(cluster: &Cluster, pod: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let big = scratch.path().join("big.bin");
    std::fs::write(&big, pseudo_random(10 << 20)).unwrap();
    for minor in VERSIONS {
        let ctl = Ctl::new(cluster, minor);
        exec(&ctl, pod);
        copy(&ctl, pod, &big, scratch.path());
        port_forward(&ctl, pod);
        port_forward_big_and_by_service(&ctl, pod, scratch.path());
        terminal(&ctl, pod);
        attach(&ctl);
        follow_logs(&ctl);
    }
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn exec(ctl: &Ctl, pod: &str) {
    assert_eq!(ctl.ok(&["exec", pod, "--", "echo", "hi"]), "hi\n");
    let out = ctl.output(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "kubectl 1.{}: the exit code travels: {out:?}",
        ctl.minor
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{out:?}"
    );
    assert_eq!(
        ctl.ok_with_input(&["exec", "-i", pod, "--", "cat"], "piped\nlines\n"),
        "piped\nlines\n"
    );
    let missing = ctl.fails(&["exec", pod, "-c", "nope", "--", "true"]);
    assert!(missing.contains("container nope is not valid"), "{missing}");
}

fn copy(ctl: &Ctl, pod: &str, big: &std::path::Path, scratch: &std::path::Path) {
    let remote = format!("{pod}:/tmp/big-{}", ctl.minor);
    ctl.ok(&["cp", &big.display().to_string(), &remote]);
    let back = scratch.join(format!("back-{}", ctl.minor));
    ctl.ok(&["cp", &remote, &back.display().to_string()]);
    let (sent, got) = (std::fs::read(big).unwrap(), std::fs::read(&back).unwrap());
    assert!(
        sent == got,
        "kubectl 1.{}: cp round trip changed the file ({} bytes sent, {} back)",
        ctl.minor,
        sent.len(),
        got.len()
    );
}

/// `kubectl port-forward` as a child; returns it once it listens.
fn start_forward(ctl: &Ctl, target: &str, local: u16, remote: u16) -> super::common::Follow {
    let mapping = format!("{local}:{remote}");
    let mut child = ctl.follow(&["port-forward", target, &mapping]);
    let line = child.next_line(TIMEOUT).unwrap_or_else(|| {
        panic!(
            "kubectl 1.{} port-forward never listened: {}",
            ctl.minor,
            child.stderr()
        )
    });
    assert!(line.starts_with("Forwarding from 127.0.0.1"), "{line}");
    child
}

fn get(port: u16, path: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&out)));
    out.split_off(at + 4)
}

fn port_forward(ctl: &Ctl, pod: &str) {
    let local = skiff_testkit::free_port();
    let _forward = start_forward(ctl, &format!("pod/{pod}"), local, 8080);
    let hostname = String::from_utf8(get(local, "/index.html")).unwrap();
    assert_eq!(hostname.trim(), pod);
    // Several connections at once.
    let answers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(local, "/index.html")))
        .collect();
    for a in answers {
        assert_eq!(String::from_utf8(a.join().unwrap()).unwrap().trim(), pod);
    }
}

fn sha256_of(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn port_forward_big_and_by_service(ctl: &Ctl, pod: &str, scratch: &std::path::Path) {
    ctl.ok(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        "head -c 52428800 /dev/urandom > /www/big",
    ]);
    let want = ctl.ok(&["exec", pod, "--", "sha256sum", "/www/big"]);
    let want = want.split_whitespace().next().unwrap().to_owned();
    let local = skiff_testkit::free_port();
    let _forward = start_forward(ctl, &format!("pod/{pod}"), local, 8080);
    let body = get(local, "/big");
    assert_eq!(body.len(), 50 << 20);
    let file = scratch.join(format!("big-forwarded-{}", ctl.minor));
    std::fs::write(&file, &body).unwrap();
    assert_eq!(sha256_of(&file), want, "50 MiB through port-forward intact");
    ctl.ok(&["exec", pod, "--", "rm", "/www/big"]);
    // By Service (its port 80 → the pods' named port) and by Deployment.
    for target in ["svc/web", "deploy/web"] {
        let local = skiff_testkit::free_port();
        let remote = if target == "svc/web" { 80 } else { 8080 };
        let _forward = start_forward(ctl, target, local, remote);
        let name = String::from_utf8(get(local, "/index.html")).unwrap();
        assert!(name.trim().starts_with("web-"), "{target}: {name:?}");
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A kubectl command line for a terminal.
fn command_line(ctl: &Ctl, args: &[&str]) -> String {
    let cmd = ctl.k.command();
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tmux session running one command in a real terminal.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", &width.to_string()])
            .args(["-y", &height.to_string(), command])
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session");
        Tmux {
            name: name.to_owned(),
        }
    }

    fn send(&self, keys: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys, "Enter"])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn resize(&self, width: u16, height: u16) {
        let ok = Command::new("tmux")
            .args(["resize-window", "-t", &self.name, "-x", &width.to_string()])
            .args(["-y", &height.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if pred(&self.screen()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the terminal never showed {what}:\n{}", self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `exec -it` in a real terminal: a prompt, a command, and `stty size`
/// following a resize.
fn terminal(ctl: &Ctl, pod: &str) {
    let line = command_line(ctl, &["exec", "-it", pod, "--", "sh"]);
    let term = Tmux::start(&format!("skiff-exec-{}", ctl.minor), &line, 100, 30);
    // capture-pane drops trailing blanks: the prompt `/ # ` ends a line in `#`.
    term.wait_for("a shell prompt", |s| {
        s.lines().any(|l| l.trim_end().ends_with('#'))
    });
    term.send("echo answer=$((6*7))");
    term.wait_for("the command's output", |s| s.contains("answer=42"));
    term.send("stty size");
    term.wait_for("the first size", |s| s.contains("30 100"));
    term.resize(120, 40);
    std::thread::sleep(Duration::from_millis(500));
    term.send("stty size");
    term.wait_for("the resized terminal", |s| s.contains("40 120"));
    term.send("exit");
}

const ATTACHABLE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: attachable}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: skiff.local/busybox
    command: ["sh"]
    stdin: true
    tty: true
"#;

/// `kubectl attach -it` to a container started with stdin and a tty.
fn attach(ctl: &Ctl) {
    let name = format!("attachable-{}", ctl.minor);
    ctl.create("default", &ATTACHABLE.replace("attachable", &name));
    wait_json(ctl, &["pod", &name], "attachable to run", |p| {
        container_status(p)["state"]["running"].is_object()
    });
    let line = command_line(ctl, &["attach", "-it", &name]);
    let term = Tmux::start(&format!("skiff-{name}"), &line, 100, 30);
    term.wait_for("the attach banner", |s| s.contains("pressing enter"));
    term.send("echo attached=$((40+2))");
    term.wait_for("the attached shell's output", |s| s.contains("attached=42"));
    drop(term);
    ctl.ok(&["delete", "pod", &name, "--wait=false"]);
}

const TICKER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: tick
    image: skiff.local/busybox
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]
"#;

/// `logs -f` shows lines written after it started and ends when the pod
/// goes.
fn follow_logs(ctl: &Ctl) {
    let name = format!("ticker-{}", ctl.minor);
    ctl.create("default", &TICKER.replace("ticker", &name));
    wait_json(ctl, &["pod", &name], "ticker to run", |p| {
        container_status(p)["state"]["running"].is_object()
    });
    let mut follow = ctl.follow(&["logs", "-f", &name]);
    let number = |line: Option<String>| -> u64 {
        let line = line.expect("a log line");
        line.trim_start_matches("tick ").trim().parse().unwrap()
    };
    let first = number(follow.next_line(TIMEOUT));
    let mut last = first;
    for _ in 0..5 {
        last = number(follow.next_line(TIMEOUT));
    }
    assert!(
        last >= first + 5,
        "new lines keep coming: {first} then {last}"
    );
    // The other log options travel too; `deploy/NAME` picks a pod.
    let head = ctl.ok(&[
        "logs",
        &name,
        "--since-time=2020-01-01T00:00:00Z",
        "--limit-bytes=12",
    ]);
    assert_eq!(head, "tick 0\ntick ", "kubectl 1.{}", ctl.minor);
    ctl.ok(&["logs", "deploy/web", "--all-containers"]);
    ctl.ok(&["delete", "pod", &name, "--wait=false"]);
    let status = follow.wait_exit(TIMEOUT);
    assert!(
        status.is_some(),
        "logs -f did not end when the pod was deleted"
    );
}
