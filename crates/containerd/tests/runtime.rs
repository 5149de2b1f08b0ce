//! A real managed containerd (needs root, containerd, runc, busybox-static):
//! start, offline images, containers from them, restart after a crash,
//! shutdown. CI runs as root; elsewhere set `SKIFF_SKIP_ROOT_TESTS=1` to
//! skip these tests explicitly — they never skip silently.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_containerd::images::{BUSYBOX_IMAGE, PAUSE_IMAGE, ensure_images, list_images};
use skiff_containerd::{ContainerdConfig, ContainerdError, Managed, start};
use tokio_util::sync::CancellationToken;

/// True when the test may run; panics when it may not and nobody said so.
fn root_or_skip() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var("SKIFF_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("not root and SKIFF_SKIP_ROOT_TESTS=1: skipping the containerd tests");
        return false;
    }
    panic!(
        "the containerd tests need root (CI runs them as root); \
         set SKIFF_SKIP_ROOT_TESTS=1 to skip them"
    );
}

/// If the test fails half-way: kills its containers (their shims would
/// outlive containerd) and then the containerd child.
struct Cleanup {
    pid: Option<u32>,
    socket: PathBuf,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        for id in &self.containers {
            let _ = ctr(&self.socket, &["task", "kill", "-s", "SIGKILL", id]);
        }
        std::thread::sleep(Duration::from_millis(500));
        for id in &self.containers {
            let _ = ctr(&self.socket, &["task", "delete", "--force", id]);
            let _ = ctr(&self.socket, &["container", "delete", id]);
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

fn ctr(socket: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .expect("run ctr")
}

fn ctr_ok(socket: &Path, args: &[&str]) -> String {
    let out = ctr(socket, args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn snapshotter(config: &ContainerdConfig) -> String {
    let toml = std::fs::read_to_string(config.config_file()).expect("config.toml");
    skiff_containerd::config::snapshotter_of(&toml).expect("snapshotter")
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_containerd_runs_offline_images() {
    if !root_or_skip() {
        return;
    }
    // Short: a unix socket path has at most 108 bytes.
    let tmp = tempfile::Builder::new()
        .prefix("skc")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let agent = tmp.path().join("agent");
    let config = ContainerdConfig::new(&agent);
    let shutdown = CancellationToken::new();
    let managed: Managed = start(config.clone(), shutdown.clone())
        .await
        .expect("containerd starts");
    let socket = managed.socket();
    // Container ids name cgroups shared by every containerd on the host.
    let id = |name: &str| format!("skiff-test-{name}-{}", std::process::id());
    let (echo, pause_id, reaper, survivor) =
        (id("echo"), id("pause"), id("reaper"), id("survivor"));
    let mut cleanup = Cleanup {
        pid: managed.pid(),
        socket: socket.clone(),
        containers: vec![
            echo.clone(),
            pause_id.clone(),
            reaper.clone(),
            survivor.clone(),
        ],
    };
    assert_eq!(socket, config.socket());

    // A second daemon on the same directory is refused.
    let err = start(config.clone(), CancellationToken::new())
        .await
        .expect_err("second containerd on the same dir");
    assert!(
        matches!(err, ContainerdError::AlreadyRunning { pid: Some(p), .. } if Some(p) == managed.pid()),
        "{err}"
    );

    // An air-gap archive (gzip, which ctr cannot read itself) provides
    // busybox; pause is built.
    let images_dir = agent.join("images");
    std::fs::create_dir_all(&images_dir).expect("images dir");
    let plain = tmp.path().join("busybox.tar");
    skiff_containerd::images::build_busybox(Path::new("/bin/busybox"), &plain).expect("build");
    let gz = images_dir.join("busybox.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create gz"),
        flate2::Compression::fast(),
    );
    std::io::copy(
        &mut std::fs::File::open(&plain).expect("open tar"),
        &mut encoder,
    )
    .expect("gzip");
    encoder.finish().expect("finish gzip");

    // Offline images: imported and built, then not again.
    let mut lines = Vec::new();
    ensure_images(&socket, &agent, |l| lines.push(l.to_string()))
        .await
        .expect("ensure_images");
    let images = list_images(&socket).await.expect("list images");
    assert!(images.contains(PAUSE_IMAGE), "{images:?}\n{lines:?}");
    assert!(images.contains(BUSYBOX_IMAGE), "{images:?}\n{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("busybox.tar.gz")),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("building skiff.local/busybox")),
        "busybox came from the air-gap archive: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("building skiff.local/pause")),
        "{lines:?}"
    );
    let mut again = Vec::new();
    ensure_images(&socket, &agent, |l| again.push(l.to_string()))
        .await
        .expect("ensure_images again");
    assert!(again.is_empty(), "nothing to do the second time: {again:?}");

    cri_runs_a_pod_sandbox(&socket, tmp.path()).await;

    let snap = snapshotter(&config);
    // A container from the busybox image.
    let out = ctr_ok(
        &socket,
        &[
            "run",
            "--rm",
            "--snapshotter",
            &snap,
            BUSYBOX_IMAGE,
            &echo,
            "echo",
            "hello-from-busybox",
        ],
    );
    assert!(out.contains("hello-from-busybox"), "{out:?}");

    // The pause container exits 0 promptly on SIGTERM.
    let mut pause = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args([
            "--namespace",
            "k8s.io",
            "run",
            "--rm",
            "--snapshotter",
            &snap,
        ])
        .args([PAUSE_IMAGE, pause_id.as_str()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ctr run pause");
    wait_until("the pause task to run", Duration::from_secs(10), || {
        ctr(&socket, &["task", "ls"])
            .stdout
            .windows(7)
            .any(|w| w == b"RUNNING")
    })
    .await;
    ctr_ok(&socket, &["task", "kill", "-s", "SIGTERM", &pause_id]);
    let status = tokio::time::timeout(Duration::from_secs(5), pause.wait())
        .await
        .expect("pause stops within 5s of SIGTERM")
        .expect("ctr run pause");
    assert!(status.success(), "pause exit: {status}");

    // The pause shell reaps orphans: run it as PID 1 of a busybox
    // container, orphan a short sleep, and look for zombies.
    let pause_script = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done";
    ctr_ok(
        &socket,
        &[
            "run",
            "-d",
            "--snapshotter",
            &snap,
            BUSYBOX_IMAGE,
            &reaper,
            "sh",
            "-c",
            pause_script,
        ],
    );
    ctr_ok(
        &socket,
        &[
            "task",
            "exec",
            "--exec-id",
            "orphan",
            &reaper,
            "sh",
            "-c",
            "sleep 0.2 & exit 0",
        ],
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ps = ctr_ok(
        &socket,
        &[
            "task",
            "exec",
            "--exec-id",
            "ps",
            &reaper,
            "ps",
            "-o",
            "pid,stat,comm",
        ],
    );
    assert!(
        !ps.lines().skip(1).any(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('Z'))),
        "zombie left behind:\n{ps}"
    );
    ctr_ok(&socket, &["task", "kill", "-s", "SIGKILL", &reaper]);
    wait_until("the reaper task to stop", Duration::from_secs(10), || {
        !String::from_utf8_lossy(&ctr(&socket, &["task", "ls"]).stdout).contains("RUNNING")
    })
    .await;
    ctr_ok(&socket, &["task", "delete", &reaper]);
    ctr_ok(&socket, &["container", "delete", &reaper]);

    // A container that must outlive containerd's crash and shutdown.
    ctr_ok(
        &socket,
        &[
            "run",
            "-d",
            "--snapshotter",
            &snap,
            BUSYBOX_IMAGE,
            &survivor,
            "sleep",
            "300",
        ],
    );
    let running = |socket: &Path| {
        String::from_utf8_lossy(&ctr(socket, &["task", "ls"]).stdout)
            .lines()
            .any(|l| l.starts_with(survivor.as_str()) && l.contains("RUNNING"))
    };
    assert!(running(&socket));

    // A crashed containerd is restarted and answers again.
    let old = managed.pid().expect("containerd pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &old.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_until(
        "containerd to be restarted",
        Duration::from_secs(20),
        || managed.pid().is_some_and(|p| p != old),
    )
    .await;
    cleanup.pid = managed.pid();
    ctr_ok(&socket, &["version"]);
    assert!(
        list_images(&socket)
            .await
            .expect("list")
            .contains(PAUSE_IMAGE)
    );
    assert!(running(&socket), "the container died with containerd");

    // Shutdown stops it; the container keeps running.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), managed.wait())
        .await
        .expect("containerd stops within 15s");
    cleanup.pid = None;
    assert!(
        tokio::net::UnixStream::connect(&socket).await.is_err(),
        "socket still answers after shutdown"
    );

    // The next start (stale socket left behind) finds the container again.
    let shutdown = CancellationToken::new();
    let managed = start(config.clone(), shutdown.clone())
        .await
        .expect("containerd starts again");
    cleanup.pid = managed.pid();
    assert!(
        running(&socket),
        "the container did not survive the shutdown"
    );
    ctr_ok(&socket, &["task", "kill", "-s", "SIGKILL", &survivor]);
    wait_until("the container to stop", Duration::from_secs(10), || {
        !running(&socket)
    })
    .await;
    ctr_ok(&socket, &["task", "delete", &survivor]);
    ctr_ok(&socket, &["container", "delete", &survivor]);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), managed.wait())
        .await
        .expect("containerd stops within 15s");
    cleanup.pid = None;
}

/// Runs [`missing_containerd_child`] in a child process with an empty PATH
/// (changing this process's environment would race with the other tests).
#[test]
fn missing_containerd_names_the_packages() {
    let tmp = tempfile::Builder::new()
        .prefix("skm")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "missing_containerd_child", "--nocapture"])
        .env("PATH", tmp.path())
        .env("SKIFF_MISSING_DIR", tmp.path())
        .output()
        .expect("run child test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("apt-get install containerd runc containernetworking-plugins"),
        "{text}"
    );
}

/// Run by `missing_containerd_names_the_packages` with an empty PATH.
#[tokio::test]
async fn missing_containerd_child() {
    let Some(dir) = std::env::var_os("SKIFF_MISSING_DIR") else {
        return;
    };
    let config = ContainerdConfig::new(Path::new(&dir));
    let err = start(config, CancellationToken::new())
        .await
        .expect_err("no containerd on PATH");
    assert!(
        matches!(err, ContainerdError::MissingProgram { .. }),
        "{err}"
    );
    println!("{err}");
}

/// The CRI plugin serves the offline pause image as the sandbox: a
/// host-network pod sandbox (no CNI needed) runs, stops and is removed.
async fn cri_runs_a_pod_sandbox(socket: &Path, tmp: &Path) {
    use k8s_cri::v1::image_service_client::ImageServiceClient;
    use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
    use k8s_cri::v1::*;

    let path = socket.to_path_buf();
    let channel = tonic::transport::Endpoint::from_static("http://cri.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .expect("CRI connection");
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    let mut images = ImageServiceClient::new(channel);

    let version = runtime
        .version(VersionRequest::default())
        .await
        .expect("CRI Version")
        .into_inner();
    assert_eq!(version.runtime_name, "containerd");
    let status = images
        .image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: PAUSE_IMAGE.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect("CRI ImageStatus")
        .into_inner();
    assert!(status.image.is_some(), "CRI does not see {PAUSE_IMAGE}");

    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "skiff-test".into(),
            uid: format!("uid-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: tmp.join("pod-logs").to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Pod as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("CRI RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let state = runtime
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .expect("CRI PodSandboxStatus")
        .into_inner()
        .status
        .expect("sandbox status")
        .state;
    assert_eq!(state, PodSandboxState::SandboxReady as i32);
    let started = Instant::now();
    runtime
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .expect("CRI StopPodSandbox");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the sandbox took {:?} to stop",
        started.elapsed()
    );
    runtime
        .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .expect("CRI RemovePodSandbox");
}

#[tokio::test]
async fn shutdown_during_start_leaves_nothing_running() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("skc")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let config = ContainerdConfig::new(&tmp.path().join("agent"));
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let err = start(config.clone(), shutdown)
        .await
        .expect_err("cancelled start");
    assert!(matches!(err, ContainerdError::Cancelled), "{err}");
    let config_file = config.config_file().into_os_string().into_encoded_bytes();
    wait_until(
        "no process to use the config",
        Duration::from_secs(5),
        || {
            !std::fs::read_dir("/proc")
                .expect("/proc")
                .flatten()
                .any(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == config_file))
                })
        },
    )
    .await;
}
