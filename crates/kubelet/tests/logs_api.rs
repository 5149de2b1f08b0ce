//! `kubectl logs` end to end: an in-process API server, this crate's
//! kubelet API (serving certificate from the cluster CA) and a fake CRI
//! runtime that runs the containers and writes their CRI logs; read through
//! the API server's `pods/log` with kube-rs and the real kubectl.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_apiserver::pki::{self, CertPair};
use skiff_kubelet::cri::Cri;
use skiff_kubelet::server::{KubeletTls, ServerConfig};
use skiff_testkit::cri::{FakeRuntime, Run};
use skiff_testkit::{Kubectl, free_port};
use tokio_util::sync::CancellationToken;

const NODE: &str = "node-1";
const UID: &str = "0c6b5e2a-web";

struct Setup {
    _dir: tempfile::TempDir,
    ca: CertPair,
    kubelet_port: u16,
    api: skiff_apiserver::testing::Running,
    fake: FakeRuntime,
    cri: Cri,
    kubeconfig: PathBuf,
    pod_log_dir: PathBuf,
    kubelet: CancellationToken,
    kubelet_task: tokio::task::JoinHandle<()>,
}

/// Starts a kubelet API on free loopback ports; returns its port.
async fn start_kubelet(
    serving: CertPair,
    ca_pem: &str,
    pod_log_dir: &Path,
    cri: Option<Cri>,
) -> (u16, CancellationToken, tokio::task::JoinHandle<()>) {
    let port = free_port();
    let config = ServerConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        healthz_port: free_port(),
        ..ServerConfig::new(
            KubeletTls {
                cert_pem: serving.cert_pem,
                key_pem: serving.key_pem,
                client_ca_pem: ca_pem.to_owned(),
            },
            pod_log_dir.to_owned(),
            cri,
        )
    };
    let healthz_port = config.healthz_port;
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = stop.clone();
        async move {
            skiff_kubelet::server::serve(config, shutdown)
                .await
                .unwrap()
        }
    });
    // Ready when the plain healthz answers.
    for _ in 0..100 {
        if let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", healthz_port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("ok"), "{answer}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (port, stop, task)
}

fn labels(pod: &str, uid: &str, container: Option<&str>) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = [
        ("io.kubernetes.pod.name", pod),
        ("io.kubernetes.pod.namespace", "default"),
        ("io.kubernetes.pod.uid", uid),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(c) = container {
        l.insert("io.kubernetes.container.name".into(), c.to_owned());
    }
    l
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("logs")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let api = skiff_apiserver::testing::start(&data).await;
        let ca = CertPair {
            cert_pem: std::fs::read_to_string(data.join("tls/ca.crt")).unwrap(),
            key_pem: std::fs::read_to_string(data.join("tls/ca.key")).unwrap(),
        };
        let serving =
            pki::issue_kubelet_serving(&ca, NODE, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]).unwrap();
        let fake = FakeRuntime::start(dir.path()).await.unwrap();
        fake.with_images(&["busybox"]);
        let cri = Cri::connect(&fake.socket()).await.unwrap();
        let pod_log_dir = dir.path().join("pods");
        let (port, kubelet, kubelet_task) =
            start_kubelet(serving, &ca.cert_pem, &pod_log_dir, Some(cri.clone())).await;
        let nodes: Api<Node> = Api::all(api.client.clone());
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": NODE}})).unwrap(),
            )
            .await
            .unwrap();
        nodes
            .patch_status(
                NODE,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": NODE},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                }})),
            )
            .await
            .unwrap();
        Setup {
            ca,
            kubelet_port: port,
            kubeconfig: data.join("admin.kubeconfig"),
            _dir: dir,
            api,
            fake,
            cri,
            pod_log_dir,
            kubelet,
            kubelet_task,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.api.client.clone(), "default")
    }

    async fn create_pod(&self, pod: serde_json::Value) {
        self.pods()
            .create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
            .unwrap();
    }

    /// Runs a sandbox for pod `web` (uid [`UID`]) whose logs go where the
    /// kubelet writes them.
    async fn sandbox(&self) -> (String, cri::PodSandboxConfig) {
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: UID.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: self
                .pod_log_dir
                .join(format!("default_web_{UID}"))
                .display()
                .to_string(),
            labels: labels("web", UID, None),
            ..Default::default()
        };
        let id = self
            .cri
            .runtime
            .clone()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        (id, config)
    }

    /// Creates and starts attempt `attempt` of container `name`.
    async fn start_container(
        &self,
        sandbox: &(String, cri::PodSandboxConfig),
        name: &str,
        attempt: u32,
    ) -> String {
        let mut runtime = self.cri.runtime.clone();
        let id = runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.0.clone(),
                config: Some(cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: name.into(),
                        attempt,
                    }),
                    image: Some(cri::ImageSpec {
                        image: "busybox".into(),
                        ..Default::default()
                    }),
                    log_path: format!("{name}/{attempt}.log"),
                    labels: labels("web", UID, Some(name)),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox.1.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap();
        id
    }

    fn log_file(&self, container: &str, attempt: u32) -> PathBuf {
        self.pod_log_dir
            .join(format!("default_web_{UID}"))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    fn kubectl(&self, minor: u32) -> Kubectl {
        Kubectl::new(1, minor, &self.kubeconfig).unwrap()
    }

    async fn stop(self) {
        self.kubelet.cancel();
        let _ = self.kubelet_task.await;
        self.fake.shutdown().await;
        self.api.stop().await;
    }
}

/// Appends CRI records stamped now.
fn append(path: &Path, stream: &str, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in lines {
        let now = jiff::Timestamp::now();
        writeln!(f, "{now} {stream} F {line}").unwrap();
    }
    f.flush().unwrap();
}

async fn wait_for_file(path: &Path) {
    for _ in 0..200 {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} was never written", path.display());
}

fn web_pod() -> serde_json::Value {
    json!({
        "metadata": {
            "name": "web",
            "annotations": {"kubectl.kubernetes.io/default-container": "app"},
        },
        "spec": {
            "nodeName": NODE,
            "containers": [
                {"name": "app", "image": "busybox"},
                {"name": "sidecar", "image": "busybox"},
            ],
        },
    })
}

/// A pod whose `app` crashed once (attempt 0) and runs again (attempt 1),
/// with a `sidecar`.
async fn running_web(s: &Setup) -> String {
    s.create_pod(web_pod()).await;
    s.fake.script(
        "app",
        vec![
            Run::exit_after(Duration::from_millis(1), 1).stdout("first run crashed"),
            Run::forever()
                .stdout("hello")
                .stderr("a warning")
                .stdout("world"),
        ],
    );
    s.fake
        .script("sidecar", vec![Run::forever().stdout("sidecar up")]);
    let sandbox = s.sandbox().await;
    s.start_container(&sandbox, "app", 0).await;
    wait_for_file(&s.log_file("app", 0)).await;
    let app = s.start_container(&sandbox, "app", 1).await;
    s.start_container(&sandbox, "sidecar", 0).await;
    wait_for_file(&s.log_file("app", 1)).await;
    wait_for_file(&s.log_file("sidecar", 0)).await;
    app
}

fn params(f: impl FnOnce(&mut LogParams)) -> LogParams {
    let mut p = LogParams::default();
    f(&mut p);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_through_the_api_server_with_kube_rs() {
    let s = Setup::start().await;
    running_web(&s).await;
    let pods = s.pods();
    // The default-container annotation picks `app`.
    assert_eq!(
        pods.logs("web", &LogParams::default()).await.unwrap(),
        "hello\na warning\nworld\n"
    );
    let container = |c: &str| Some(c.to_owned());
    assert_eq!(
        pods.logs("web", &params(|p| p.container = container("sidecar")))
            .await
            .unwrap(),
        "sidecar up\n"
    );
    assert_eq!(
        pods.logs("web", &params(|p| p.tail_lines = Some(1)))
            .await
            .unwrap(),
        "world\n"
    );
    assert_eq!(
        pods.logs("web", &params(|p| p.limit_bytes = Some(8)))
            .await
            .unwrap(),
        "hello\na "
    );
    assert_eq!(
        pods.logs("web", &params(|p| p.previous = true))
            .await
            .unwrap(),
        "first run crashed\n"
    );
    // The fake runtime's clock starts at 2025-01-01.
    let stamped = pods
        .logs(
            "web",
            &params(|p| {
                p.timestamps = true;
                p.tail_lines = Some(1);
            }),
        )
        .await
        .unwrap();
    assert!(
        stamped.starts_with("2025-01-01T00:00:") && stamped.ends_with("Z world\n"),
        "{stamped}"
    );
    append(&s.log_file("app", 1), "stdout", &["fresh"]);
    assert_eq!(
        pods.logs("web", &params(|p| p.since_seconds = Some(3600)))
            .await
            .unwrap(),
        "fresh\n"
    );

    // Errors, upstream's words.
    let error = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    };
    let e = pods
        .logs("web", &params(|p| p.container = container("nope")))
        .await
        .unwrap_err();
    assert_eq!(
        error(e),
        (400, "container nope is not valid for pod web".into())
    );
    let e = pods
        .logs(
            "web",
            &params(|p| {
                p.container = container("sidecar");
                p.previous = true;
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error(e),
        (
            400,
            "previous terminated container \"sidecar\" in pod \"web\" not found".into()
        )
    );
    let e = pods
        .logs("web", &params(|p| p.tail_lines = Some(-1)))
        .await
        .unwrap_err();
    assert_eq!(error(e).0, 422);
    s.create_pod(
        json!({"metadata": {"name": "two"}, "spec": {"nodeName": NODE, "containers": [
        {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]}}),
    )
    .await;
    let e = pods.logs("two", &LogParams::default()).await.unwrap_err();
    assert_eq!(
        error(e),
        (
            400,
            "a container name must be specified for pod two, choose one of: [a b]".into()
        )
    );
    // Scheduled here but never started: the kubelet has no logs for it.
    let e = pods
        .logs("two", &params(|p| p.container = container("a")))
        .await
        .unwrap_err();
    assert_eq!(error(e).0, 404);
    // Its status says why: upstream kubelet's words.
    pods.patch_status(
        "two",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"containerStatuses": [{
            "name": "a", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }]}})),
    )
    .await
    .unwrap();
    let e = pods
        .logs("two", &params(|p| p.container = container("a")))
        .await
        .unwrap_err();
    assert_eq!(
        error(e),
        (
            400,
            "container \"a\" in pod \"two\" is waiting to start: ContainerCreating".into()
        )
    );
    s.create_pod(
        json!({"metadata": {"name": "pending"}, "spec": {"containers": [
        {"name": "a", "image": "busybox"}]}}),
    )
    .await;
    let e = pods
        .logs("pending", &LogParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        error(e),
        (400, "pod pending does not have a host assigned".into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_until_the_container_exits() {
    let s = Setup::start().await;
    let app = running_web(&s).await;
    let pods = s.pods();
    let mut lines = pods
        .log_stream(
            "web",
            &params(|p| {
                p.follow = true;
                p.tail_lines = Some(1);
            }),
        )
        .await
        .unwrap()
        .lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .expect("a line within 10 s")
            .map(|l| l.unwrap())
    };
    assert_eq!(next().await.as_deref(), Some("world"));
    append(
        &s.log_file("app", 1),
        "stdout",
        &["appended 1", "appended 2"],
    );
    assert_eq!(next().await.as_deref(), Some("appended 1"));
    assert_eq!(next().await.as_deref(), Some("appended 2"));
    append(&s.log_file("app", 1), "stderr", &["last words"]);
    assert!(s.fake.kill(&app, 0, ""));
    assert_eq!(next().await.as_deref(), Some("last words"));
    // The container stopped: the stream ends.
    assert_eq!(next().await, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_logs() {
    let s = Setup::start().await;
    let app = running_web(&s).await;
    for minor in [27, 33] {
        let kubectl = s.kubectl(minor);
        let run = |args: &[&str]| {
            let out = kubectl.run(args).unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (ok, out, err) = run(&["logs", "web"]);
        assert!(ok, "1.{minor}: {err}");
        assert_eq!(out, "hello\na warning\nworld\n", "1.{minor}");
        let (ok, out, err) = run(&["logs", "web", "-c", "sidecar"]);
        assert!(ok, "1.{minor}: {err}");
        assert_eq!(out, "sidecar up\n");
        let (ok, out, _) = run(&["logs", "web", "--tail=2"]);
        assert!(ok);
        assert_eq!(out, "a warning\nworld\n");
        let (ok, out, _) = run(&["logs", "pod/web", "--timestamps", "--tail=1"]);
        assert!(ok);
        assert!(
            out.starts_with("2025-01-01T00:00:") && out.ends_with("Z world\n"),
            "{out}"
        );
        let (ok, out, _) = run(&["logs", "web", "--previous"]);
        assert!(ok);
        assert_eq!(out, "first run crashed\n");
        let (ok, _, err) = run(&["logs", "web", "-c", "sidecar", "--previous"]);
        assert!(!ok);
        assert!(
            err.contains(
                "Error from server (BadRequest): previous terminated container \"sidecar\" in pod \"web\" not found"
            ),
            "1.{minor}: {err}"
        );
    }
    // kubectl logs -f: lines appear as they are written; the command ends
    // when the container exits.
    let kubectl = s.kubectl(33);
    let mut child = kubectl
        .command()
        .args(["logs", "-f", "web", "--tail=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a line within 10 s")
    };
    assert_eq!(next().await.as_deref(), Some("world"));
    append(&s.log_file("app", 1), "stdout", &["followed"]);
    assert_eq!(next().await.as_deref(), Some("followed"));
    assert!(s.fake.kill(&app, 0, ""));
    assert_eq!(next().await, None);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_certificate_must_name_its_address_unless_skipped() {
    let s = Setup::start().await;
    running_web(&s).await;
    // A kubelet whose serving certificate is for another address.
    let wrong = pki::issue_serving(&s.ca, NODE, &[], &[IpAddr::from([10, 1, 2, 3])]).unwrap();
    let (port, stop, task) = start_kubelet(wrong, &s.ca.cert_pem, &s.pod_log_dir, None).await;
    let nodes: Api<Node> = Api::all(s.api.client.clone());
    nodes
        .patch_status(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
            ),
        )
        .await
        .unwrap();
    match s.pods().logs("web", &LogParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert!(status.message.contains("certificate"), "{}", status.message);
        }
        other => panic!("{other:?}"),
    }
    let out = s
        .kubectl(33)
        .run(&["logs", "web", "--insecure-skip-tls-verify-backend"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\na warning\nworld\n"
    );
    stop.cancel();
    task.await.unwrap();
    s.stop().await;
}

/// `GET path` on the kubelet at 127.0.0.1:`port` over TLS, presenting
/// `client` (if any); the raw answer.
async fn kubelet_get(
    ca: &CertPair,
    client: Option<&CertPair>,
    port: u16,
    path: &str,
) -> std::io::Result<String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_admins_may_read_logs_from_the_kubelet() {
    let s = Setup::start().await;
    running_web(&s).await;
    let port = s.kubelet_port;
    let path = "/containerLogs/default/web/app?tailLines=1";
    let admin =
        pki::issue_client(&s.ca, "kube-apiserver-kubelet-client", &["system:masters"]).unwrap();
    let answer = kubelet_get(&s.ca, Some(&admin), port, path).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("world"), "{answer}");
    let node = pki::issue_client(&s.ca, "system:node:other", &["system:nodes"]).unwrap();
    let answer = kubelet_get(&s.ca, Some(&node), port, path).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Without a client certificate the handshake (or the first read) fails.
    assert!(kubelet_get(&s.ca, None, port, path).await.is_err());
    s.stop().await;
}
