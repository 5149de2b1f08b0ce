//! The node agent end to end, as root with containerd from Debian: `skiff
//! server` runs its own containerd and kubelet, and real pods run. One
//! cluster serves every scenario (they share one CNI bridge and run in
//! sequence).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "e2e_node/streaming.rs"]
mod streaming;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Ctl;
use skiff_testkit::Cluster;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Root-only: in CI (root) this runs; elsewhere it fails unless
/// `SKIFF_SKIP_ROOT_TESTS=1` says to skip on purpose.
fn root_or_skip() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("SKIFF_SKIP_ROOT_TESTS").as_deref() == Ok("1"),
            "the node tests need root (containerd, runc, CNI); set SKIFF_SKIP_ROOT_TESTS=1 to skip them"
        );
    }
    root
}

/// Polls `kubectl get <args> -o json` until `pred` holds.
fn wait_json(
    ctl: &Ctl,
    args: &[&str],
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = ctl.output(&all);
        if out.status.success()
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        {
            if pred(&v) {
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "timed out waiting for {what}; last seen:\n{}\n--- events ---\n{}\n--- server log (tail) ---\n{}",
        serde_json::to_string_pretty(&last).unwrap_or_default(),
        ctl.output(&["get", "events", "-A"])
            .stdout
            .iter()
            .map(|b| *b as char)
            .collect::<String>(),
        tail(&ctl.c.logs(), 80)
    );
}

/// A plain HTTP GET with retries (rules and endpoints settle within seconds).
fn http_get(host: &str, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match std::net::TcpStream::connect_timeout(
            &format!("{host}:{port}").parse().unwrap(),
            Duration::from_secs(2),
        ) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if let Some((_, body)) = out.split_once("\r\n\r\n")
                    && !body.is_empty()
                {
                    return body.to_owned();
                }
                last = format!("{out:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("GET http://{host}:{port}{path} never answered: {last}");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_ready_node(ctl: &Ctl) {
    wait_json(ctl, &["nodes"], "a Ready node", |nodes| {
        nodes["items"].as_array().is_some_and(|items| {
            items.iter().any(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
        })
    });
}

/// Runs `command` in `pod` until its output satisfies `pred` (DNS and
/// rules settle within seconds); returns that output.
fn exec_until(ctl: &Ctl, pod: &str, command: &[&str], pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(command);
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = ctl.output(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && pred(&text) {
            return text;
        }
        last = text;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "`{}` in {pod} never gave the expected output; last:\n{last}\n--- server log (tail) ---\n{}",
        command.join(" "),
        tail(&ctl.c.logs(), 60)
    );
}

fn container_status(pod: &serde_json::Value) -> &serde_json::Value {
    &pod["status"]["containerStatuses"][0]
}

#[test]
fn a_node_runs_real_pods() {
    if !root_or_skip() {
        return;
    }
    let logs = tempfile::Builder::new()
        .prefix("sklogs")
        .tempdir_in("/tmp")
        .unwrap();
    let shared = tempfile::Builder::new()
        .prefix("skhost")
        .tempdir_in("/tmp")
        .unwrap();
    let log_dir = logs.path().display().to_string();
    let mut cluster = Cluster::start_with_agent(
        Path::new(env!("CARGO_BIN_EXE_skiff")),
        &[
            "--pod-log-dir",
            &log_dir,
            "--kubelet-port",
            &skiff_testkit::free_port().to_string(),
            "--kubelet-healthz-port",
            &skiff_testkit::free_port().to_string(),
            // The test machine's disk may be fuller than upstream's
            // defaults allow; this test is not about eviction.
            "--eviction-hard",
            "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%,nodefs.inodesFree<1%",
            "--proxy-healthz-port",
            "0",
            "--proxy-metrics-port",
            "0",
        ],
    )
    .unwrap_or_else(|e| panic!("skiff server with its agent did not start: {e}"));
    let ctl = Ctl::new(&cluster, 33);

    // The node registers, reports its runtime and becomes Ready.
    wait_ready_node(&ctl);
    let nodes = ctl.get_json(&["nodes"]);
    let node = &nodes["items"][0];
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap_or_default()
            .starts_with("containerd://"),
        "{node}"
    );
    assert!(node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"].is_string());
    let lease = ctl.get_json(&[
        "lease",
        "-n",
        "kube-node-lease",
        node["metadata"]["name"].as_str().unwrap(),
    ]);
    assert!(lease["spec"]["renewTime"].is_string(), "{lease}");

    // A Deployment of the built-in busybox image serving HTTP gets Ready
    // through its readiness probe.
    ctl.ok_with_input(&["apply", "-f", "-"], WEB);
    ctl.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let pods = ctl.get_json(&["pods", "-l", "app=web"]);
    let web_pods = pods["items"].as_array().unwrap().clone();
    assert_eq!(web_pods.len(), 2);
    for pod in &web_pods {
        assert_eq!(pod["status"]["phase"], "Running");
        assert!(
            pod["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .starts_with("10.42.0."),
            "{pod}"
        );
        assert_eq!(container_status(pod)["ready"], true);
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
    }

    // A Service reaches the pods by ClusterIP through kube-proxy's nftables
    // rules, from the host and from a pod (found through its service
    // environment variables); one without endpoints refuses at once.
    ctl.ok_with_input(&["apply", "-f", "-"], SERVICES);
    let svc = ctl.get_json(&["service", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
    wait_json(
        &ctl,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        "web's endpoints",
        |l| {
            l["items"][0]["endpoints"]
                .as_array()
                .is_some_and(|e| e.len() == 2)
        },
    );
    let body = http_get(&cluster_ip, 80, "/index.html");
    assert!(body.starts_with("web-"), "{body:?}");
    let empty_ip = ctl.jsonpath(&["service", "empty"], "{.spec.clusterIP}");
    let refused = std::net::TcpStream::connect_timeout(
        &format!("{empty_ip}:80").parse().unwrap(),
        Duration::from_secs(5),
    );
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    ctl.create("default", CLIENT);
    let client = wait_json(&ctl, &["pod", "client"], "the client pod to finish", |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    assert_eq!(client["status"]["phase"], "Succeeded", "{client}");
    assert!(ctl.ok(&["logs", "client"]).starts_with("web-"));

    // exec, cp, port-forward, attach and logs -f with each kubectl.
    let web0 = web_pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    streaming::scenarios(&cluster, &web0);

    // The ServiceAccount admission's kube-api-access volume: the kubelet
    // projects a bound token, the cluster CA and the namespace.
    let sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    exec_until(
        &ctl,
        &web0,
        &["cat", &format!("{sa_dir}/namespace")],
        |out| out == "default",
    );
    exec_until(&ctl, &web0, &["cat", &format!("{sa_dir}/token")], |out| {
        out.starts_with("eyJ") && out.split('.').count() == 3
    });
    exec_until(&ctl, &web0, &["cat", &format!("{sa_dir}/ca.crt")], |out| {
        out.starts_with("-----BEGIN CERTIFICATE-----")
    });

    // Cluster DNS through the kube-dns Service (10.43.0.10): a Service's
    // name from inside a pod, its reverse record, and HTTP by name.
    let kube_dns = ctl.get_json(&["service", "kube-dns", "-n", "kube-system"]);
    assert_eq!(kube_dns["spec"]["clusterIP"], "10.43.0.10", "{kube_dns}");
    let lookup = exec_until(
        &ctl,
        &web0,
        &["nslookup", "web.default.svc.cluster.local"],
        |out| out.contains(&cluster_ip),
    );
    assert!(
        lookup.contains("10.43.0.10"),
        "answered by the cluster DNS: {lookup}"
    );
    exec_until(&ctl, &web0, &["nslookup", &cluster_ip], |out| {
        out.contains("web.default.svc.cluster.local")
    });
    exec_until(
        &ctl,
        &web0,
        &[
            "wget",
            "-q",
            "-O",
            "-",
            "http://web.default.svc.cluster.local/index.html",
        ],
        |out| out.starts_with("web-"),
    );
    let missing = ctl.output(&[
        "exec",
        &web0,
        "--",
        "nslookup",
        "nope.default.svc.cluster.local",
    ]);
    assert!(
        !missing.status.success(),
        "an unknown name fails: {missing:?}"
    );

    // A container that exits 1 goes CrashLoopBackOff, restarting with back-off.
    ctl.create("default", CRASH);
    let crash = wait_json(&ctl, &["pod", "crash"], "CrashLoopBackOff", |p| {
        container_status(p)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert_eq!(
        container_status(&crash)["lastState"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(
        container_status(&crash)["lastState"]["terminated"]["reason"],
        "Error"
    );
    let table = ctl.ok(&["get", "pod", "crash"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    // Its output reaches `kubectl logs` through the API server and the
    // kubelet API, for the last run and the one before.
    for minor in common::KUBECTLS {
        let ctl = Ctl::new(&cluster, minor);
        assert_eq!(ctl.ok(&["logs", "crash"]).trim(), "boom");
        assert_eq!(ctl.ok(&["logs", "crash", "--previous"]).trim(), "boom");
        let stamped = ctl.ok(&["logs", "crash", "--timestamps"]);
        assert!(stamped.trim_end().ends_with(" boom"), "{stamped}");
    }

    // A failing exec liveness probe restarts the container.
    ctl.create("default", LIVENESS);
    wait_json(&ctl, &["pod", "liveness"], "a liveness restart", |p| {
        container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    let events = ctl.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=liveness",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");

    // Env from a ConfigMap and a Secret volume are what the container sees.
    ctl.create("default", CONFIG);
    let done = wait_json(
        &ctl,
        &["pod", "env-check"],
        "the env check to finish",
        |p| matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")),
    );
    assert_eq!(done["status"]["phase"], "Succeeded", "{done}");
    assert_eq!(
        container_status(&done)["state"]["terminated"]["reason"],
        "Completed"
    );

    // A memory limit OOM-kills a hog and says so.
    ctl.create("default", OOM);
    let oom = wait_json(&ctl, &["pod", "hog"], "the hog to be killed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(
        container_status(&oom)["state"]["terminated"]["reason"],
        "OOMKilled",
        "{oom}"
    );

    // Deleting a pod runs preStop and waits out the grace period for a
    // process that ignores SIGTERM.
    let graceful = GRACEFUL.replace("HOSTDIR", &shared.path().display().to_string());
    ctl.create("default", &graceful);
    wait_json(&ctl, &["pod", "graceful"], "graceful to run", |p| {
        container_status(p)["state"]["running"].is_object()
    });
    let started = Instant::now();
    ctl.ok(&["delete", "pod", "graceful", "--timeout=60s"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "deleted after {took:?}, before the 3 s grace period"
    );
    let said = std::fs::read_to_string(shared.path().join("prestop")).unwrap_or_default();
    assert_eq!(said.trim(), "bye", "the preStop hook did not run");
    ctl.fails(&["get", "pod", "graceful"]);

    // A static pod runs from a manifest file and is mirrored into the API;
    // deleting the mirror pod does not stop it; removing the file does.
    let node_name = node["metadata"]["name"].as_str().unwrap().to_owned();
    let manifests = cluster.data_dir().join("agent").join("pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("static-web.yaml"), STATIC).unwrap();
    let mirror_name = format!("static-web-{node_name}");
    let mirror = wait_json(&ctl, &["pod", &mirror_name], "the mirror pod to run", |p| {
        container_status(p)["state"]["running"].is_object()
    });
    assert!(
        mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string(),
        "{mirror}"
    );
    let static_id = container_status(&mirror)["containerID"]
        .as_str()
        .unwrap()
        .to_owned();
    ctl.ok(&["delete", "pod", &mirror_name, "--wait=false"]);
    let again = wait_json(
        &ctl,
        &["pod", &mirror_name],
        "the mirror pod to come back",
        |p| {
            p["metadata"]["uid"] != mirror["metadata"]["uid"]
                && container_status(p)["state"]["running"].is_object()
        },
    );
    assert_eq!(
        container_status(&again)["containerID"].as_str(),
        Some(static_id.as_str())
    );
    std::fs::remove_file(manifests.join("static-web.yaml")).unwrap();
    wait_json(&ctl, &["pods"], "the mirror pod to go", |pods| {
        pods["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .all(|p| p["metadata"]["name"] != mirror_name.as_str())
        })
    });

    // Restarting the server leaves running containers alone and adopts them.
    let before: Vec<(String, String)> = web_pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                container_status(p)["containerID"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    cluster.restart().unwrap_or_else(|e| panic!("restart: {e}"));
    let ctl = Ctl::new(&cluster, 33);
    wait_ready_node(&ctl);
    ctl.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    for (name, id) in &before {
        let pod = wait_json(&ctl, &["pod", name], "the pod after restart", |p| {
            container_status(p)["ready"] == true
        });
        assert_eq!(
            container_status(&pod)["containerID"].as_str(),
            Some(id.as_str()),
            "{pod}"
        );
        assert_eq!(container_status(&pod)["restartCount"], 0);
    }

    ctl.ok(&[
        "delete",
        "deploy/web",
        "pod/crash",
        "pod/liveness",
        "pod/env-check",
        "pod/hog",
        "--wait=true",
        "--timeout=90s",
    ]);
    cluster.stop();
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: skiff.local/busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
"#;

const STATIC: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: static-web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sleep", "3600"]
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"#;

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sh", "-c", "wget -q -O - http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/index.html"]
"#;

const CRASH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sh", "-c", "echo boom; exit 1"]
"#;

const LIVENESS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sleep", "3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/missing"]}
      periodSeconds: 1
      failureThreshold: 1
"#;

const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: env-check}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sh", "-c", "test \"$GREETING\" = hello && test \"$(cat /etc/creds/token)\" = s3cret"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: settings, key: greeting}}
    volumeMounts:
    - {name: creds, mountPath: /etc/creds}
  volumes:
  - name: creds
    secret: {secretName: creds}
"#;

const OOM: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]
    resources:
      limits: {memory: 32Mi}
"#;

const GRACEFUL: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: skiff.local/busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo bye > /out/prestop"]}
    volumeMounts:
    - {name: out, mountPath: /out}
  volumes:
  - name: out
    hostPath: {path: HOSTDIR, type: Directory}
"#;
