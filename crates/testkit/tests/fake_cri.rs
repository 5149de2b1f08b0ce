//! The fake CRI runtime through a real tonic client on its unix socket, the
//! way the kubelet talks to it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use skiff_testkit::cri::{ContainerState, ExecResult, FakeRuntime, Run, Target};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

struct Client {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

async fn connect(socket: &Path) -> Client {
    let socket = socket.to_owned();
    let channel = Endpoint::from_static("http://cri.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .expect("connect to the fake runtime");
    Client {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    }
}

async fn setup() -> (tempfile::TempDir, FakeRuntime, Client) {
    let dir = tempfile::Builder::new()
        .prefix("cri")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let fake = FakeRuntime::start(dir.path()).await.expect("start");
    let client = connect(&fake.socket()).await;
    (dir, fake, client)
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sandbox_config(name: &str, log_dir: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            namespace: "default".to_owned(),
            attempt: 0,
        }),
        log_directory: log_dir.to_owned(),
        labels: labels(&[("io.kubernetes.pod.name", name)]),
        annotations: labels(&[("note", "x")]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run_sandbox(c: &mut Client, config: &cri::PodSandboxConfig) -> String {
    c.runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id
}

async fn pull(c: &mut Client, image: &str) -> Result<String, tonic::Status> {
    c.images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn create(
    c: &mut Client,
    sandbox_id: &str,
    sandbox: &cri::PodSandboxConfig,
    name: &str,
    image: &str,
    attempt: u32,
) -> Result<String, tonic::Status> {
    c.runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: name.to_owned(),
                    attempt,
                }),
                image: Some(cri::ImageSpec {
                    image: image.to_owned(),
                    user_specified_image: "busybox".to_owned(),
                    ..Default::default()
                }),
                labels: labels(&[("io.kubernetes.container.name", name)]),
                log_path: format!("{name}/{attempt}.log"),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox.clone()),
        })
        .await
        .map(|r| r.into_inner().container_id)
}

async fn start(c: &mut Client, id: &str) {
    c.runtime
        .start_container(cri::StartContainerRequest {
            container_id: id.to_owned(),
        })
        .await
        .expect("StartContainer");
}

async fn status(c: &mut Client, id: &str) -> cri::ContainerStatus {
    c.runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .expect("status")
}

async fn stop(c: &mut Client, id: &str, timeout: i64) {
    c.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.to_owned(),
            timeout,
        })
        .await
        .expect("StopContainer");
}

#[tokio::test(start_paused = true)]
async fn sandbox_pull_create_start_and_scripted_exit() {
    let (dir, fake, mut c) = setup().await;
    let v = c
        .runtime
        .version(cri::VersionRequest::default())
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("fake", "v1")
    );

    fake.script(
        "app",
        vec![
            Run::exit_after(Duration::from_secs(2), 3)
                .stdout("hello")
                .stderr("oops"),
        ],
    );
    let logs = dir.path().join("pods/default_web");
    let sb = sandbox_config("web", &logs.to_string_lossy());
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    assert_eq!(sandbox_id.len(), 64);
    let sst = c
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.clone(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .expect("status");
    assert_eq!(sst.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(sst.network.expect("network").ip, "10.42.0.2");
    assert_eq!(sst.metadata.expect("metadata").name, "web");
    assert_eq!(sst.annotations.get("note").map(String::as_str), Some("x"));
    let ns = sst
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .expect("namespace options");
    assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);

    // Not pulled yet: NotFound, like containerd.
    let err = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect_err("image absent");
    assert_eq!(err.code(), Code::NotFound);
    let absent = c
        .images
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: "busybox".to_owned(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect("ImageStatus")
        .into_inner();
    assert!(absent.image.is_none());

    let image_ref = pull(&mut c, "busybox").await.expect("pull");
    assert!(image_ref.starts_with("sha256:"));
    let present = c
        .images
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: "docker.io/library/busybox:latest".to_owned(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect("ImageStatus")
        .into_inner()
        .image
        .expect("present");
    assert_eq!(present.id, image_ref);
    assert_eq!(present.repo_tags, vec!["docker.io/library/busybox:latest"]);

    // The kubelet creates with the image ref the pull returned.
    let id = create(&mut c, &sandbox_id, &sb, "app", &image_ref, 0)
        .await
        .expect("create");
    let st = status(&mut c, &id).await;
    assert_eq!(st.state, ContainerState::ContainerCreated as i32);
    start(&mut c, &id).await;
    let st = status(&mut c, &id).await;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32);
    assert_eq!(
        st.image.expect("image").image,
        "docker.io/library/busybox:latest"
    );
    assert!(
        st.image_ref
            .starts_with("docker.io/library/busybox@sha256:")
    );
    assert_eq!(st.log_path, logs.join("app/0.log").to_string_lossy());
    let started_at = st.started_at;
    assert!(started_at >= st.created_at);

    tokio::time::sleep(Duration::from_millis(1999)).await;
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerRunning as i32
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    let st = status(&mut c, &id).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 3);
    assert_eq!(st.reason, "Error");
    assert_eq!(st.finished_at - started_at, 2_000_000_000);

    // The log file, in the CRI format.
    let log = std::fs::read_to_string(logs.join("app/0.log")).expect("log file");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let ts = skiff_testkit_ts(started_at);
    assert_eq!(lines[0], format!("{ts} stdout F hello"));
    assert_eq!(lines[1], format!("{ts} stderr F oops"));

    assert_eq!(fake.count("StartContainer", "app"), 1);
    assert_eq!(fake.count("RunPodSandbox", "default/web"), 1);
    fake.shutdown().await;
}

/// The expected RFC 3339 timestamp of a fixed-clock nanosecond value.
fn skiff_testkit_ts(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .expect("timestamp")
        .to_string()
}

#[tokio::test(start_paused = true)]
async fn restarts_consume_the_script_and_repeat_the_last_run() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.script(
        Target::in_pod("default", "web", "app"),
        vec![
            Run::exit_after(Duration::from_secs(1), 0),
            Run::exit_after(Duration::from_secs(1), 137).reason("OOMKilled"),
        ],
    );
    // An unscoped script for the same name loses to the pod-scoped one.
    fake.script("app", vec![Run::forever()]);
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let mut seen = Vec::new();
    for attempt in 0..3 {
        let id = create(&mut c, &sandbox_id, &sb, "app", "busybox", attempt)
            .await
            .expect("create");
        start(&mut c, &id).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = status(&mut c, &id).await;
        assert_eq!(st.state, ContainerState::ContainerExited as i32);
        seen.push((st.exit_code, st.reason));
    }
    assert_eq!(
        seen,
        vec![
            (0, "Completed".to_owned()),
            (137, "OOMKilled".to_owned()),
            (137, "OOMKilled".to_owned())
        ]
    );
    assert_eq!(fake.count("StartContainer", "app"), 3);
    // Same name and attempt again: the name is still reserved.
    let err = create(&mut c, &sandbox_id, &sb, "app", "busybox", 2)
        .await
        .expect_err("reserved");
    assert_eq!(err.code(), Code::AlreadyExists);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn stop_container_honours_or_ignores_sigterm() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.script("stubborn", vec![Run::forever().ignore_sigterm()]);
    fake.script(
        "graceful",
        vec![Run::forever().on_sigterm_exit(Duration::from_secs(1), 0)],
    );
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let plain = create(&mut c, &sandbox_id, &sb, "plain", "busybox", 0)
        .await
        .expect("create");
    let stubborn = create(&mut c, &sandbox_id, &sb, "stubborn", "busybox", 0)
        .await
        .expect("create");
    let graceful = create(&mut c, &sandbox_id, &sb, "graceful", "busybox", 0)
        .await
        .expect("create");
    for id in [&plain, &stubborn, &graceful] {
        start(&mut c, id).await;
    }

    // Default: dies of SIGTERM at once.
    let t0 = tokio::time::Instant::now();
    stop(&mut c, &plain, 30).await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    let st = status(&mut c, &plain).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (143, "Error"));

    // Ignores SIGTERM: killed when the 10 s timeout ends.
    let t0 = tokio::time::Instant::now();
    stop(&mut c, &stubborn, 10).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let st = status(&mut c, &stubborn).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"));

    // Exits cleanly one second after SIGTERM.
    let t0 = tokio::time::Instant::now();
    stop(&mut c, &graceful, 30).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    let st = status(&mut c, &graceful).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));

    // Stopping again is a no-op; the timeout was recorded.
    stop(&mut c, &graceful, 30).await;
    let stops: Vec<Option<i64>> = fake
        .calls()
        .iter()
        .filter(|call| call.method == "StopContainer" && call.name == "stubborn")
        .map(|call| call.timeout)
        .collect();
    assert_eq!(stops, vec![Some(10)]);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn stop_returns_early_when_the_container_is_killed_meanwhile() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.script("stubborn", vec![Run::forever().ignore_sigterm()]);
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &sandbox_id, &sb, "stubborn", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    let killer = {
        let fake = fake.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(fake.kill(&id, 2, ""));
        })
    };
    let t0 = tokio::time::Instant::now();
    stop(&mut c, &id, 60).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    killer.await.expect("killer");
    let st = status(&mut c, &id).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (2, "Error"));
    fake.shutdown().await;
}

#[tokio::test]
async fn exec_sync_is_scripted_per_container_and_command_prefix() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.exec_result("app", &["cat"], ExecResult::ok("any file"));
    fake.exec_result(
        "app",
        &["cat", "/tmp/healthy"],
        ExecResult::fail(1, "cat: can't open '/tmp/healthy'"),
    );
    fake.exec_result_exact("app", &["cat"], ExecResult::fail(2, "cat: no file"));
    fake.exec_result(
        "app",
        &["sleep"],
        ExecResult::ok("late").delayed(Duration::from_secs(5)),
    );
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    let exec = |cmd: &[&str], timeout: i64| cri::ExecSyncRequest {
        container_id: id.clone(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        timeout,
    };
    // Not running yet.
    let err = c
        .runtime
        .exec_sync(exec(&["true"], 1))
        .await
        .expect_err("not running");
    assert_eq!(err.code(), Code::Unknown);
    start(&mut c, &id).await;

    let r = c
        .runtime
        .exec_sync(exec(&["cat", "/tmp/healthy"], 1))
        .await
        .expect("exec")
        .into_inner();
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.stderr, b"cat: can't open '/tmp/healthy'");
    let r = c
        .runtime
        .exec_sync(exec(&["cat", "/etc/hosts"], 1))
        .await
        .expect("exec")
        .into_inner();
    assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"any file"[..]));
    let r = c
        .runtime
        .exec_sync(exec(&["cat"], 1))
        .await
        .expect("exec")
        .into_inner();
    assert_eq!(r.exit_code, 2);
    let r = c
        .runtime
        .exec_sync(exec(&["ls"], 1))
        .await
        .expect("exec")
        .into_inner();
    assert_eq!((r.exit_code, r.stdout.len()), (0, 0));

    tokio::time::pause();
    let err = c
        .runtime
        .exec_sync(exec(&["sleep", "10"], 2))
        .await
        .expect_err("timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let r = c
        .runtime
        .exec_sync(exec(&["sleep", "10"], 10))
        .await
        .expect("exec")
        .into_inner();
    assert_eq!(r.stdout, b"late");

    let execs: Vec<Vec<String>> = fake
        .calls()
        .into_iter()
        .filter(|call| call.method == "ExecSync")
        .map(|call| call.cmd)
        .collect();
    assert_eq!(execs.len(), 7);
    assert_eq!(execs[1], vec!["cat", "/tmp/healthy"]);
    fake.shutdown().await;
}

#[tokio::test]
async fn list_filters_and_sandbox_lifecycle() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    let web = sandbox_config("web", "");
    let db = sandbox_config("db", "");
    let web_id = run_sandbox(&mut c, &web).await;
    let db_id = run_sandbox(&mut c, &db).await;
    let a = create(&mut c, &web_id, &web, "a", "busybox", 0)
        .await
        .expect("a");
    let b = create(&mut c, &web_id, &web, "b", "busybox", 0)
        .await
        .expect("b");
    let d = create(&mut c, &db_id, &db, "d", "busybox", 0)
        .await
        .expect("d");
    start(&mut c, &a).await;
    start(&mut c, &d).await;

    let list = |filter: cri::ContainerFilter| cri::ListContainersRequest {
        filter: Some(filter),
    };
    let ids = |r: cri::ListContainersResponse| -> Vec<String> {
        r.containers.into_iter().map(|c| c.id).collect()
    };
    let all = ids(c
        .runtime
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .expect("list")
        .into_inner());
    assert_eq!(all, vec![a.clone(), b.clone(), d.clone()]);
    let running = ids(c
        .runtime
        .list_containers(list(cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner());
    assert_eq!(running, vec![a.clone(), d.clone()]);
    let in_web = ids(c
        .runtime
        .list_containers(list(cri::ContainerFilter {
            pod_sandbox_id: web_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner());
    assert_eq!(in_web, vec![a.clone(), b.clone()]);
    let by_label = ids(c
        .runtime
        .list_containers(list(cri::ContainerFilter {
            label_selector: labels(&[("io.kubernetes.container.name", "b")]),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner());
    assert_eq!(by_label, vec![b.clone()]);
    let by_id = ids(c
        .runtime
        .list_containers(list(cri::ContainerFilter {
            id: d.clone(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner());
    assert_eq!(by_id, vec![d.clone()]);

    // Stopping a sandbox kills its containers and makes it NOTREADY.
    c.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: web_id.clone(),
        })
        .await
        .expect("StopPodSandbox");
    let st = status(&mut c, &a).await;
    assert_eq!(
        (st.state, st.exit_code),
        (ContainerState::ContainerExited as i32, 137)
    );
    let sandboxes =
        |state: Option<cri::PodSandboxState>, sel: &[(&str, &str)]| cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                id: String::new(),
                state: state.map(|s| cri::PodSandboxStateValue { state: s as i32 }),
                label_selector: labels(sel),
            }),
        };
    let ready: Vec<String> = c
        .runtime
        .list_pod_sandbox(sandboxes(Some(cri::PodSandboxState::SandboxReady), &[]))
        .await
        .expect("list")
        .into_inner()
        .items
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ready, vec![db_id.clone()]);
    let named: Vec<String> = c
        .runtime
        .list_pod_sandbox(sandboxes(None, &[("io.kubernetes.pod.name", "web")]))
        .await
        .expect("list")
        .into_inner()
        .items
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(named, vec![web_id.clone()]);
    // A NOTREADY sandbox takes no new containers.
    let err = create(&mut c, &web_id, &web, "late", "busybox", 0)
        .await
        .expect_err("not ready");
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Removal takes the containers along and is idempotent.
    for _ in 0..2 {
        c.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: web_id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
    }
    let left: Vec<String> = fake.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(left, vec![d.clone()]);
    let err = c
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: web_id.clone(),
            verbose: false,
        })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    // The released address is reused once the range wraps, not at once.
    let again = run_sandbox(&mut c, &sandbox_config("web2", "")).await;
    let ips: Vec<String> = fake.sandboxes().into_iter().map(|s| s.ip).collect();
    assert_eq!(ips, vec!["10.42.0.3", "10.42.0.4"]);
    assert_eq!(fake.sandboxes()[1].id, again);
    fake.shutdown().await;
}

#[tokio::test]
async fn images_pull_failures_and_runtime_status() {
    let (_dir, fake, mut c) = setup().await;
    fake.fail_pull(
        "nope",
        "failed to resolve reference \"docker.io/library/nope:latest\": not found",
    );
    let err = pull(&mut c, "docker.io/library/nope:latest")
        .await
        .expect_err("scripted failure");
    assert_eq!(err.code(), Code::Unknown);
    assert!(err.message().contains("not found"));
    fake.clear_pull_failure("nope");
    pull(&mut c, "nope").await.expect("pull after clearing");
    pull(&mut c, "quay.io/x/y:v1").await.expect("pull");
    let listed: Vec<Vec<String>> = c
        .images
        .list_images(cri::ListImagesRequest { filter: None })
        .await
        .expect("ListImages")
        .into_inner()
        .images
        .into_iter()
        .map(|i| i.repo_tags)
        .collect();
    assert_eq!(
        listed,
        vec![
            vec!["docker.io/library/nope:latest".to_owned()],
            vec!["quay.io/x/y:v1".to_owned()]
        ]
    );
    c.images
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: "nope".to_owned(),
                ..Default::default()
            }),
        })
        .await
        .expect("RemoveImage");
    assert_eq!(fake.images(), vec!["quay.io/x/y:v1"]);
    let fs = c
        .images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .expect("ImageFsInfo")
        .into_inner();
    assert_eq!(fs.image_filesystems.len(), 1);

    let conditions = |r: cri::StatusResponse| -> Vec<(String, bool)> {
        r.status
            .expect("status")
            .conditions
            .into_iter()
            .map(|c| (c.r#type, c.status))
            .collect()
    };
    let s = c
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("Status")
        .into_inner();
    assert_eq!(
        conditions(s),
        vec![
            ("RuntimeReady".to_owned(), true),
            ("NetworkReady".to_owned(), true)
        ]
    );
    fake.set_network_ready(false);
    let s = c
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("Status")
        .into_inner();
    assert_eq!(
        conditions(s),
        vec![
            ("RuntimeReady".to_owned(), true),
            ("NetworkReady".to_owned(), false)
        ]
    );

    fake.fail_sandbox_creation(Some("failed to setup network"));
    let err = c
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(sandbox_config("web", "")),
            runtime_handler: String::new(),
        })
        .await
        .expect_err("scripted failure");
    assert_eq!(err.message(), "failed to setup network");
    fake.fail_sandbox_creation(None);
    run_sandbox(&mut c, &sandbox_config("web", "")).await;
    fake.shutdown().await;
}

#[tokio::test]
async fn unimplemented_calls_say_so() {
    let (_dir, fake, mut c) = setup().await;
    let err = c
        .runtime
        .update_container_resources(cri::UpdateContainerResourcesRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), Code::Unimplemented);
    let err = c
        .runtime
        .exec(cri::ExecRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), Code::Unimplemented);
    fake.shutdown().await;
}

#[tokio::test]
async fn container_events_stream() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    let mut events = c
        .runtime
        .get_container_events(cri::GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    stop(&mut c, &id, 0).await;
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let e = events.message().await.expect("event").expect("open");
        assert_eq!(e.container_id, id);
        assert_eq!(e.containers_statuses.len(), 1);
        kinds.push(e.container_event_type);
    }
    assert_eq!(
        kinds,
        vec![
            cri::ContainerEventType::ContainerCreatedEvent as i32,
            cri::ContainerEventType::ContainerStartedEvent as i32,
            cri::ContainerEventType::ContainerStoppedEvent as i32,
        ]
    );
    drop(events);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timed_log_lines_stop_at_exit() {
    let (dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.script(
        "app",
        vec![
            Run::exit_after(Duration::from_secs(3), 0)
                .stdout("first")
                .stdout_after(Duration::from_millis(1500), "second")
                .stderr_after(Duration::from_secs(5), "never"),
        ],
    );
    let logs = dir.path().join("pods/default_web");
    let sb = sandbox_config("web", &logs.to_string_lossy());
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    let started_at = status(&mut c, &id).await.started_at;
    let path = logs.join("app/0.log");
    assert_eq!(
        std::fs::read_to_string(&path).expect("log"),
        format!("{} stdout F first\n", skiff_testkit_ts(started_at))
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(&path).expect("log");
    assert_eq!(
        log,
        format!(
            "{} stdout F first\n{} stdout F second\n",
            skiff_testkit_ts(started_at),
            skiff_testkit_ts(started_at + 1_500_000_000)
        )
    );
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerExited as i32
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_until_wakes_on_calls() {
    let (_dir, fake, mut c) = setup().await;
    let waiter = {
        let fake = fake.clone();
        tokio::spawn(async move {
            fake.wait_until(Duration::from_secs(60), |f| {
                f.count("RunPodSandbox", "default/web") == 1
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    run_sandbox(&mut c, &sandbox_config("web", "")).await;
    assert!(waiter.await.expect("waiter"));
    let t0 = tokio::time::Instant::now();
    assert!(
        !fake
            .wait_until(Duration::from_secs(2), |f| f
                .count("RunPodSandbox", "default/db")
                == 1)
            .await
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_sandbox_turns_notready_and_takes_its_containers() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    assert!(fake.kill_sandbox(&sandbox_id));
    assert!(!fake.kill_sandbox("nope"));
    let st = status(&mut c, &id).await;
    assert_eq!(
        (st.state, st.exit_code),
        (ContainerState::ContainerExited as i32, 137)
    );
    assert_eq!(
        fake.sandboxes()[0].state,
        skiff_testkit::cri::PodSandboxState::SandboxNotready
    );
    fake.shutdown().await;
}

/// Hollow nodes: many runtimes in one process, each with a few pods, all
/// on tasks of one runtime thread.
#[tokio::test]
async fn many_runtimes_in_one_process() {
    let dir = tempfile::Builder::new()
        .prefix("cri")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let mut nodes = Vec::new();
    for n in 0..100 {
        let fake = FakeRuntime::start_with(
            &dir.path().join(format!("n{n}")),
            skiff_testkit::cri::Config {
                pod_cidr: format!("10.42.{n}.0/24"),
                images: vec!["busybox".to_owned()],
                record_calls: false,
                ..Default::default()
            },
        )
        .await
        .expect("start");
        let client = connect(&fake.socket()).await;
        nodes.push((fake, client));
    }
    for (n, (_, c)) in nodes.iter_mut().enumerate() {
        for p in 0..5 {
            let sb = sandbox_config(&format!("pod{p}"), "");
            let sandbox_id = run_sandbox(c, &sb).await;
            let id = create(c, &sandbox_id, &sb, "app", "busybox", 0)
                .await
                .expect("create");
            start(c, &id).await;
            let ip = c
                .runtime
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: sandbox_id,
                    verbose: false,
                })
                .await
                .expect("status")
                .into_inner()
                .status
                .and_then(|s| s.network)
                .map(|n| n.ip)
                .unwrap_or_default();
            assert_eq!(ip, format!("10.42.{n}.{}", p + 2));
        }
    }
    for (fake, _) in &nodes {
        assert_eq!(fake.containers().len(), 5);
        assert!(fake.calls().is_empty(), "call log off");
    }
    for (fake, client) in nodes {
        drop(client);
        fake.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn runs_count_per_pod_uid_across_sandboxes_and_cidr_follows_the_kubelet() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    c.runtime
        .update_runtime_config(cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: "10.42.9.0/24".to_owned(),
                }),
            }),
        })
        .await
        .expect("UpdateRuntimeConfig");
    fake.script(
        "app",
        vec![Run::exit_after(Duration::from_secs(1), 0), Run::forever()],
    );
    let mut sb = sandbox_config("web", "");
    let first = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &first, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&mut c, &id).await.exit_code, 0);
    assert!(fake.kill_sandbox(&first));

    // The same pod's next sandbox: its container plays run 1.
    if let Some(m) = sb.metadata.as_mut() {
        m.attempt = 1;
    }
    let second = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &second, &sb, "app", "busybox", 1)
        .await
        .expect("create");
    start(&mut c, &id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerRunning as i32
    );

    // A recreated pod (new uid, same name) starts over at run 0.
    if let Some(m) = sb.metadata.as_mut() {
        m.uid = "uid-web-2".to_owned();
        m.attempt = 0;
    }
    let third = run_sandbox(&mut c, &sb).await;
    let id = create(&mut c, &third, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerExited as i32
    );

    let ips: Vec<String> = fake.sandboxes().into_iter().map(|s| s.ip).collect();
    assert_eq!(ips, vec!["10.42.9.2", "10.42.9.3", "10.42.9.4"]);
    assert_eq!(fake.count("UpdateRuntimeConfig", "10.42.9.0/24"), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn label_targets_and_termination_messages() {
    let (dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.script(
        Target::container("app").with_pod_label("app", "web"),
        vec![Run::exit_after(Duration::from_secs(1), 2).termination_message("bad config")],
    );
    fake.exec_result(
        Target::container("app").with_pod_label("app", "web"),
        &[],
        ExecResult::fail(1, "unhealthy"),
    );
    let mut sb = sandbox_config("web-7f9c-abcde", "");
    sb.labels.insert("app".to_owned(), "web".to_owned());
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let termination = dir.path().join("termination-log");
    std::fs::write(&termination, "").expect("touch");
    let id = c
        .runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "app".to_owned(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: "busybox".to_owned(),
                    ..Default::default()
                }),
                annotations: labels(&[(
                    "io.kubernetes.container.terminationMessagePath",
                    "/dev/termination-log",
                )]),
                mounts: vec![cri::Mount {
                    container_path: "/dev/termination-log".to_owned(),
                    host_path: termination.to_string_lossy().into_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            sandbox_config: Some(sb.clone()),
        })
        .await
        .expect("create")
        .into_inner()
        .container_id;
    start(&mut c, &id).await;
    let r = c
        .runtime
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["true".to_owned()],
            timeout: 1,
        })
        .await
        .expect("exec")
        .into_inner();
    assert_eq!(r.exit_code, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&mut c, &id).await.exit_code, 2);
    assert_eq!(
        std::fs::read_to_string(&termination).expect("termination log"),
        "bad config"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn stats_follow_the_scripted_usage() {
    let (_dir, fake, mut c) = setup().await;
    fake.with_images(&["busybox"]);
    fake.usage(
        "app",
        skiff_testkit::cri::Usage {
            cpu_millicores: 250,
            memory_bytes: 64 << 20,
        },
    );
    let sb = sandbox_config("web", "");
    let sandbox_id = run_sandbox(&mut c, &sb).await;
    let app = create(&mut c, &sandbox_id, &sb, "app", "busybox", 0)
        .await
        .expect("create");
    let side = create(&mut c, &sandbox_id, &sb, "side", "busybox", 0)
        .await
        .expect("create");
    start(&mut c, &app).await;
    start(&mut c, &side).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = c
        .runtime
        .container_stats(cri::ContainerStatsRequest {
            container_id: app.clone(),
        })
        .await
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    let cpu = stats.cpu.expect("cpu");
    assert_eq!(cpu.usage_nano_cores.map(|v| v.value), Some(250_000_000));
    // 0.25 cores for 4 s.
    assert_eq!(
        cpu.usage_core_nano_seconds.map(|v| v.value),
        Some(1_000_000_000)
    );
    let pods = c
        .runtime
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None })
        .await
        .expect("ListPodSandboxStats")
        .into_inner()
        .stats;
    assert_eq!(pods.len(), 1);
    let linux = pods[0].linux.clone().expect("linux");
    assert_eq!(linux.containers.len(), 2);
    // 64 MiB + the default 1 MiB of "side".
    assert_eq!(
        linux
            .memory
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value),
        Some(65 << 20)
    );
    let listed = c
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                label_selector: labels(&[("io.kubernetes.container.name", "side")]),
                ..Default::default()
            }),
        })
        .await
        .expect("ListContainerStats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    fake.shutdown().await;
}
