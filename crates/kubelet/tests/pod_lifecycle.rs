#![allow(clippy::unwrap_used)]
//! The kubelet's pod state machine end to end: an in-process API server, the
//! kubelet's [`skiff_kubelet::run`] and the scripted fake CRI runtime. Every
//! scenario asserts what a user sees through the API (the Pod's status, its
//! Events, the Node and its Lease) and, where the order of runtime calls is
//! the point (init containers, preStop, adoption), the fake's call log.
//!
//! Real time throughout (the in-process API server does not run under
//! paused tokio time): waits poll with generous deadlines, and timing
//! assertions (back-off, grace period) use tolerances and ratios.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use skiff_testkit::cri::{ExecResult, Run, Target};

use support::{Cluster, IMAGE, container_status, events, pod_json, running, waiting_reason};

/// Scenario 1: the Node is registered Ready with upstream's labels and
/// capacity; the Lease is created and then renewed (every 10 s).
#[tokio::test(flavor = "multi_thread")]
async fn node_registers_ready_and_renews_its_lease() {
    let cluster = Cluster::start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = support::eventually(Duration::from_secs(20), "node Ready=True", || async {
        let node = nodes.get_opt(support::NODE).await.ok()??;
        let ready = node
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(node)
    })
    .await;
    let status = node.status.clone().unwrap();
    let capacity = status.capacity.clone().unwrap();
    assert_eq!(capacity["pods"].0, "110", "capacity: {capacity:?}");
    assert!(status.allocatable.unwrap().contains_key("pods"));
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], support::NODE);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(
        ["amd64", "arm64", "arm", "riscv64", "s390x", "ppc64le"]
            .contains(&labels["kubernetes.io/arch"].as_str()),
        "arch label: {labels:?}"
    );
    let addresses = status.addresses.unwrap_or_default();
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"),
        "addresses: {addresses:?}"
    );

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let first = support::eventually(Duration::from_secs(20), "the node lease", || async {
        leases.get_opt(support::NODE).await.ok()?
    })
    .await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(support::NODE));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &first.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.kind == "Node" && o.name == support::NODE),
        "owner: {owner:?}"
    );
    let renewed_at = spec.renew_time.unwrap().0;
    // Renewed every 10 s: wait at most ~15 s for the next renewal.
    let renewed = support::eventually(Duration::from_secs(16), "a lease renewal", || async {
        let lease = leases.get_opt(support::NODE).await.ok()??;
        let t = lease.spec?.renew_time?.0;
        (t > renewed_at).then_some(t)
    })
    .await;
    let gap = renewed.duration_since(renewed_at).as_secs_f64();
    assert!((8.0..=15.0).contains(&gap), "renewed after {gap}s");
    cluster.stop().await;
}

/// Scenario 2: one container comes up Running and Ready with the pod
/// conditions, an IP of the runtime's pod CIDR and its QoS class.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_runs_and_becomes_ready() {
    let cluster = Cluster::start().await;
    let mut pod = pod_json(
        "web",
        json!({"containers": [{
            "name": "app", "image": IMAGE,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"},
            },
        }]}),
    );
    pod["metadata"]["labels"] = json!({"app": "web"});
    cluster.create_pod(pod).await;
    let pod = cluster
        .wait_pod("web", "phase Running and Ready", |p| {
            support::phase(p) == "Running" && support::condition(p, "Ready") == Some("True")
        })
        .await;
    let status = pod.status.clone().unwrap();
    let app = container_status(&pod, "app");
    assert!(running(&app), "state: {:?}", app.state);
    assert!(app.ready);
    assert_eq!(app.started, Some(true));
    assert_eq!(app.restart_count, 0);
    assert!(
        app.container_id
            .as_deref()
            .is_some_and(|id| id.contains("://")),
        "containerID: {:?}",
        app.container_id
    );
    assert!(
        app.image_id.contains("sha256:"),
        "imageID {:?}",
        app.image_id
    );
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ] {
        assert_eq!(
            support::condition(&pod, kind),
            Some("True"),
            "{kind}: {:?}",
            status.conditions
        );
    }
    let ip = status.pod_ip.clone().unwrap();
    assert!(
        ip.starts_with("10.42.0.") && ip != "10.42.0.1",
        "podIP {ip}"
    );
    assert_eq!(status.pod_ips.unwrap()[0].ip, ip);
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    let sandboxes = cluster.fake.sandboxes();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(sandboxes[0].ip, ip);

    let reasons: Vec<String> = events(&cluster.client, "web")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Created", "Started"] {
        assert!(reasons.iter().any(|r| r == reason), "events: {reasons:?}");
    }
    // A BestEffort pod next to it.
    cluster
        .create_pod(pod_json(
            "plain",
            json!({"containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    let plain = cluster
        .wait_pod("plain", "Running", |p| support::phase(p) == "Running")
        .await;
    assert_eq!(
        plain.status.unwrap().qos_class.as_deref(),
        Some("BestEffort")
    );
    cluster.stop().await;
}

/// Scenario 3: a crashing container restarts at once, then after 10 s, then
/// 20 s; meanwhile its status is CrashLoopBackOff with upstream's message
/// and the last exit in lastState.
#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_backs_off_10s_then_20s() {
    let cluster = Cluster::start().await;
    cluster.fake.script(
        Target::in_pod("default", "crash", "app"),
        vec![Run::exit_after(Duration::from_millis(100), 1)],
    );
    cluster
        .create_pod(pod_json(
            "crash",
            json!({"containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    // Record every run's start and finish (the fake's clock follows real
    // time) until the fourth start: attempts 0..=3.
    let mut runs: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    let mut saw_backoff = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    while runs.get(&3).is_none_or(|(started, _)| *started <= 0) {
        assert!(Instant::now() < deadline, "runs so far: {runs:?}");
        for c in cluster.fake.containers() {
            if c.pod == "crash" && c.name == "app" {
                runs.insert(c.attempt, (c.started_at, c.finished_at));
            }
        }
        // While the second restart waits: CrashLoopBackOff, back-off 10s.
        if saw_backoff.is_none()
            && runs.contains_key(&1)
            && !runs.contains_key(&2)
            && let Some(p) = pods.get_opt("crash").await.unwrap()
        {
            let s = container_status(&p, "app");
            if waiting_reason(&s).as_deref() == Some("CrashLoopBackOff") {
                saw_backoff = Some(p);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = saw_backoff.expect("CrashLoopBackOff while the second restart waits");
    let s = container_status(&p, "app");
    let waiting = s.state.clone().unwrap().waiting.unwrap();
    let message = waiting.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("back-off 10s restarting failed container=app pod=crash_default("),
        "message: {message}"
    );
    assert_eq!(s.restart_count, 1);
    assert!(!s.ready);
    let last = s.last_state.clone().unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(support::phase(&p), "Running", "restartPolicy Always");
    assert_eq!(support::condition(&p, "Ready"), Some("False"));

    let gap = |attempt: u32| {
        let (_, finished) = runs[&(attempt - 1)];
        let (started, _) = runs[&attempt];
        Duration::from_nanos((started - finished).max(0) as u64).as_secs_f64()
    };
    let (first, second, third) = (gap(1), gap(2), gap(3));
    // First restart: as soon as the exit is seen (relist: 1 s).
    assert!(first < 3.0, "first restart after {first}s");
    // Then 10 s, then 20 s (measured from the exit the kubelet saw up to a
    // relist later).
    assert!(
        (9.5..=13.0).contains(&second),
        "second restart after {second}s"
    );
    assert!(
        (19.5..=23.5).contains(&third),
        "third restart after {third}s"
    );
    let ratio = third / second;
    assert!((1.6..=2.4).contains(&ratio), "back-off ratio {ratio}");

    let p = cluster
        .wait_pod("crash", "restartCount 3", |p| {
            container_status(p, "app").restart_count >= 3
        })
        .await;
    let s = container_status(&p, "app");
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 1);
    let evs = events(&cluster.client, "crash").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("BackOff")
            && e.type_.as_deref() == Some("Warning")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Back-off restarting failed container app"))),
        "events: {:?}",
        support::summary(&evs)
    );
    cluster.stop().await;
}

/// Scenario 4 (and 8): restartPolicy Never / OnFailure end in Succeeded or
/// Failed with the exit's reason; OOMKilled is reported as such.
#[tokio::test(flavor = "multi_thread")]
async fn restart_policies_end_in_terminal_phases() {
    let cluster = Cluster::start().await;
    let script = |pod: &str, runs: Vec<Run>| {
        cluster
            .fake
            .script(Target::in_pod("default", pod, "app"), runs)
    };
    let ms = Duration::from_millis;
    script("never-ok", vec![Run::exit_after(ms(300), 0)]);
    script("never-fail", vec![Run::exit_after(ms(300), 2)]);
    script(
        "onfailure",
        vec![Run::exit_after(ms(300), 3), Run::exit_after(ms(300), 0)],
    );
    script(
        "oom",
        vec![Run::exit_after(ms(300), 137).reason("OOMKilled")],
    );
    for (name, policy) in [
        ("never-ok", "Never"),
        ("never-fail", "Never"),
        ("onfailure", "OnFailure"),
        ("oom", "Never"),
    ] {
        cluster
            .create_pod(pod_json(
                name,
                json!({"restartPolicy": policy, "containers": [{"name": "app", "image": IMAGE}]}),
            ))
            .await;
    }
    let terminal = |p: &Pod| matches!(support::phase(p), "Succeeded" | "Failed");

    let p = cluster.wait_pod("never-ok", "terminal", terminal).await;
    assert_eq!(support::phase(&p), "Succeeded");
    let t = support::terminated(&container_status(&p, "app"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert_eq!(support::condition(&p, "Ready"), Some("False"));
    assert_eq!(container_status(&p, "app").restart_count, 0);

    let p = cluster.wait_pod("never-fail", "terminal", terminal).await;
    assert_eq!(support::phase(&p), "Failed");
    let t = support::terminated(&container_status(&p, "app"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));

    let p = cluster.wait_pod("oom", "terminal", terminal).await;
    assert_eq!(support::phase(&p), "Failed");
    let t = support::terminated(&container_status(&p, "app"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));

    let p = cluster.wait_pod("onfailure", "terminal", terminal).await;
    assert_eq!(support::phase(&p), "Succeeded");
    let s = container_status(&p, "app");
    assert_eq!(s.restart_count, 1, "restarted once after exit 3");
    assert_eq!(support::terminated(&s).exit_code, 0);
    let last = s.last_state.clone().unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 3);

    // Nothing restarts once terminal.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let starts = |pod: &str| {
        cluster
            .fake
            .containers()
            .iter()
            .filter(|c| c.pod == pod)
            .count()
    };
    assert_eq!(starts("never-ok"), 1);
    assert_eq!(starts("never-fail"), 1);
    assert_eq!(starts("oom"), 1);
    assert_eq!(starts("onfailure"), 2);
    // A terminal pod's sandbox is stopped.
    assert!(
        cluster
            .fake
            .sandboxes()
            .iter()
            .all(|s| s.state == skiff_testkit::cri::PodSandboxState::SandboxNotready),
        "sandboxes: {:?}",
        cluster.fake.sandboxes()
    );
    cluster.stop().await;
}

/// Scenario 5: init containers run one after the other before the app
/// container (PodInitializing meanwhile); a failing one fails a Never pod.
#[tokio::test(flavor = "multi_thread")]
async fn init_containers_run_in_order() {
    let cluster = Cluster::start().await;
    let ms = Duration::from_millis;
    cluster.fake.script(
        Target::in_pod("default", "init", "init-1"),
        vec![Run::exit_after(ms(1500), 0)],
    );
    cluster.fake.script(
        Target::in_pod("default", "init", "init-2"),
        vec![Run::exit_after(ms(1500), 0)],
    );
    cluster.fake.script(
        Target::in_pod("default", "init-fails", "init-1"),
        vec![Run::exit_after(ms(300), 4)],
    );
    for name in ["init", "init-fails"] {
        cluster
            .create_pod(pod_json(
                name,
                json!({
                    "restartPolicy": if name == "init" { "Always" } else { "Never" },
                    "initContainers": [
                        {"name": "init-1", "image": IMAGE},
                        {"name": "init-2", "image": IMAGE},
                    ],
                    "containers": [{"name": "app", "image": IMAGE}],
                }),
            ))
            .await;
    }
    let p = cluster
        .wait_pod("init", "init-1 running", |p| {
            support::init_status(p, "init-1").is_some_and(|s| running(&s))
        })
        .await;
    assert_eq!(support::phase(&p), "Pending");
    assert_eq!(support::condition(&p, "Initialized"), Some("False"));
    assert_eq!(
        waiting_reason(&container_status(&p, "app")).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(
        waiting_reason(&support::init_status(&p, "init-2").unwrap()).as_deref(),
        Some("PodInitializing")
    );
    let p = cluster
        .wait_pod("init", "Running", |p| support::phase(p) == "Running")
        .await;
    assert_eq!(support::condition(&p, "Initialized"), Some("True"));
    for name in ["init-1", "init-2"] {
        let s = support::init_status(&p, name).unwrap();
        let t = support::terminated(&s);
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    }
    assert!(running(&container_status(&p, "app")));

    // The call log: each init container started (and exited) before the next.
    let starts: Vec<String> = cluster
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "StartContainer")
        .map(|c| c.name)
        .collect();
    let order: Vec<String> = cluster
        .fake
        .containers()
        .into_iter()
        .filter(|c| c.pod == "init")
        .map(|c| c.name)
        .collect();
    assert_eq!(order, ["init-1", "init-2", "app"], "calls: {starts:?}");
    let views = cluster.fake.containers();
    let view = |name: &str| {
        views
            .iter()
            .find(|c| c.pod == "init" && c.name == name)
            .unwrap()
    };
    assert!(view("init-2").started_at >= view("init-1").finished_at);
    assert!(view("app").started_at >= view("init-2").finished_at);

    // restartPolicy Never and a failing init container: Failed, no app.
    let p = cluster
        .wait_pod("init-fails", "Failed", |p| support::phase(p) == "Failed")
        .await;
    let t = support::terminated(&support::init_status(&p, "init-1").unwrap());
    assert_eq!(t.exit_code, 4);
    assert_eq!(support::condition(&p, "Initialized"), Some("False"));
    assert!(
        !cluster
            .fake
            .containers()
            .iter()
            .any(|c| c.pod == "init-fails" && c.name != "init-1"),
        "nothing after the failed init container: {:?}",
        cluster.fake.containers()
    );
    cluster.stop().await;
}

/// Scenario 6a: a failing readiness probe keeps the container unready,
/// a passing one makes it ready.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_probe_gates_ready() {
    let cluster = Cluster::start().await;
    let target = Target::in_pod("default", "probed", "app");
    cluster.fake.exec_result(
        target.clone(),
        &["cat", "/tmp/ready"],
        ExecResult::fail(1, "cat: /tmp/ready: No such file or directory"),
    );
    cluster
        .create_pod(pod_json(
            "probed",
            json!({"containers": [{
                "name": "app", "image": IMAGE,
                "readinessProbe": {
                    "exec": {"command": ["cat", "/tmp/ready"]},
                    "periodSeconds": 1, "failureThreshold": 1,
                },
            }]}),
        ))
        .await;
    cluster
        .wait_pod("probed", "Running", |p| support::phase(p) == "Running")
        .await;
    // Let the probe fail a few times.
    assert!(
        cluster
            .fake
            .wait_until(Duration::from_secs(15), |f| {
                f.calls()
                    .iter()
                    .filter(|c| c.method == "ExecSync" && c.cmd == ["cat", "/tmp/ready"])
                    .count()
                    >= 2
            })
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = cluster.get_pod("probed").await;
    let s = container_status(&p, "app");
    assert!(running(&s));
    assert!(!s.ready);
    assert_eq!(support::condition(&p, "Ready"), Some("False"));
    assert_eq!(support::condition(&p, "ContainersReady"), Some("False"));
    let evs = events(&cluster.client, "probed").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Unhealthy")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Readiness probe failed"))),
        "events: {:?}",
        support::summary(&evs)
    );

    cluster
        .fake
        .exec_result(target, &["cat", "/tmp/ready"], ExecResult::ok(""));
    let p = cluster
        .wait_pod("probed", "ready", |p| {
            support::condition(p, "Ready") == Some("True")
        })
        .await;
    let s = container_status(&p, "app");
    assert!(s.ready);
    assert_eq!(s.restart_count, 0, "readiness never restarts");
    cluster.stop().await;
}

/// Scenario 6b: a failing liveness probe (failureThreshold 2) kills and
/// restarts the container, with an Unhealthy event.
#[tokio::test(flavor = "multi_thread")]
async fn liveness_probe_restarts_the_container() {
    let cluster = Cluster::start().await;
    let target = Target::in_pod("default", "live", "app");
    let cmd = ["/bin/check", "alive"];
    cluster
        .fake
        .exec_result(target.clone(), &cmd, ExecResult::fail(1, "dead"));
    cluster
        .create_pod(pod_json(
            "live",
            json!({"containers": [{
                "name": "app", "image": IMAGE,
                "livenessProbe": {
                    "exec": {"command": cmd},
                    "periodSeconds": 1, "failureThreshold": 2,
                },
            }]}),
        ))
        .await;
    let p = cluster
        .wait_pod("live", "restartCount 1", |p| {
            container_status(p, "app").restart_count >= 1
        })
        .await;
    // Healthy from now on: no further restarts.
    cluster.fake.exec_result(target, &cmd, ExecResult::ok(""));
    let s = container_status(&p, "app");
    assert_eq!(s.restart_count, 1);
    let stops: Vec<_> = cluster
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "StopContainer" && c.name == "app")
        .collect();
    assert!(!stops.is_empty(), "the kubelet stopped the container");
    // Exactly threshold probes failed before the kill.
    let calls = cluster.fake.calls();
    let first_stop = calls
        .iter()
        .position(|c| c.method == "StopContainer")
        .unwrap();
    let probes_before = calls[..first_stop]
        .iter()
        .filter(|c| c.method == "ExecSync" && c.cmd == cmd)
        .count();
    assert_eq!(probes_before, 2, "failureThreshold 2");
    let p = cluster
        .wait_pod("live", "running again", |p| {
            running(&container_status(p, "app"))
        })
        .await;
    let s = container_status(&p, "app");
    let last = s.last_state.clone().unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 143, "SIGTERM: {last:?}");
    let evs = events(&cluster.client, "live").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Unhealthy")
            && e.type_.as_deref() == Some("Warning")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Liveness probe failed"))),
        "events: {:?}",
        support::summary(&evs)
    );
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("failed liveness probe, will be restarted"))),
        "events: {:?}",
        support::summary(&evs)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = cluster.get_pod("live").await;
    assert_eq!(container_status(&p, "app").restart_count, 1);
    cluster.stop().await;
}

/// Scenario 6c: until the startup probe passes the container is not
/// started, not ready, and its liveness probe does not run.
#[tokio::test(flavor = "multi_thread")]
async fn startup_probe_gates_liveness_and_readiness() {
    let cluster = Cluster::start().await;
    let target = Target::in_pod("default", "slow", "app");
    let startup = ["test", "-f", "/started"];
    let liveness = ["test", "-f", "/alive"];
    cluster
        .fake
        .exec_result(target.clone(), &startup, ExecResult::fail(1, ""));
    cluster
        .create_pod(pod_json(
            "slow",
            json!({"containers": [{
                "name": "app", "image": IMAGE,
                "startupProbe": {
                    "exec": {"command": startup},
                    "periodSeconds": 1, "failureThreshold": 60,
                },
                "livenessProbe": {
                    "exec": {"command": liveness},
                    "periodSeconds": 1, "failureThreshold": 1,
                },
            }]}),
        ))
        .await;
    assert!(
        cluster
            .fake
            .wait_until(Duration::from_secs(20), |f| {
                f.calls()
                    .iter()
                    .filter(|c| c.method == "ExecSync" && c.cmd == startup)
                    .count()
                    >= 3
            })
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = cluster.get_pod("slow").await;
    let s = container_status(&p, "app");
    assert!(running(&s));
    assert_eq!(s.started, Some(false));
    assert!(!s.ready);
    assert_eq!(support::condition(&p, "Ready"), Some("False"));
    let liveness_runs = |f: &skiff_testkit::cri::FakeRuntime| {
        f.calls()
            .iter()
            .filter(|c| c.method == "ExecSync" && c.cmd == liveness)
            .count()
    };
    assert_eq!(
        liveness_runs(&cluster.fake),
        0,
        "liveness waits for startup"
    );

    cluster
        .fake
        .exec_result(target, &startup, ExecResult::ok(""));
    let p = cluster
        .wait_pod("slow", "started and ready", |p| {
            let s = container_status(p, "app");
            s.started == Some(true) && s.ready
        })
        .await;
    assert_eq!(support::condition(&p, "Ready"), Some("True"));
    assert!(
        cluster
            .fake
            .wait_until(Duration::from_secs(10), |f| liveness_runs(f) >= 1)
            .await,
        "liveness runs once started"
    );
    assert_eq!(container_status(&p, "app").restart_count, 0);
    cluster.stop().await;
}

/// Scenario 7: deleting a pod runs the preStop hook, then stops the
/// container with the pod's grace period; the object goes away after it.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_termination_runs_pre_stop_and_honours_the_grace_period() {
    let cluster = Cluster::start().await;
    cluster.fake.script(
        Target::in_pod("default", "stubborn", "app"),
        vec![Run::forever().ignore_sigterm()],
    );
    let hook = ["/bin/sh", "-c", "echo bye"];
    cluster
        .create_pod(pod_json(
            "stubborn",
            json!({
                "terminationGracePeriodSeconds": 2,
                "containers": [{
                    "name": "app", "image": IMAGE,
                    "lifecycle": {"preStop": {"exec": {"command": hook}}},
                }],
            }),
        ))
        .await;
    cluster
        .wait_pod("stubborn", "Running", |p| support::phase(p) == "Running")
        .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let deleted_at = Instant::now();
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(Duration::from_secs(20), "the pod is gone", || async {
        pods.get_opt("stubborn")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    let took = deleted_at.elapsed().as_secs_f64();
    assert!(took >= 1.9, "gone after {took}s, before the grace period");
    assert!(took < 10.0, "gone after {took}s");

    let calls = cluster.fake.calls();
    let hook_at = calls
        .iter()
        .position(|c| c.method == "ExecSync" && c.cmd == hook)
        .expect("the preStop hook ran");
    let stop_at = calls
        .iter()
        .position(|c| c.method == "StopContainer" && c.name == "app")
        .expect("StopContainer");
    assert!(hook_at < stop_at, "preStop before StopContainer: {calls:?}");
    assert_eq!(calls[stop_at].timeout, Some(2), "{:?}", calls[stop_at]);
    let app = cluster.fake.container("default", "stubborn", "app");
    // SIGKILLed at the end of the grace period (or already removed).
    if let Some(app) = app {
        assert_eq!(app.exit_code, 137, "{app:?}");
        let ran = Duration::from_nanos((app.finished_at - app.started_at).max(0) as u64);
        assert!(ran >= Duration::from_secs(2));
    }
    assert!(
        cluster
            .fake
            .sandboxes()
            .iter()
            .all(|s| s.name != "stubborn"),
        "the sandbox is removed: {:?}",
        cluster.fake.sandboxes()
    );
    let evs = events(&cluster.client, "stubborn").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Killing")),
        "events: {:?}",
        support::summary(&evs)
    );
    cluster.stop().await;
}

/// Scenario 9: an image that fails to pull: ErrImagePull, then
/// ImagePullBackOff; once the registry works the container starts.
#[tokio::test(flavor = "multi_thread")]
async fn image_pull_failure_backs_off() {
    let cluster = Cluster::start().await;
    let image = "registry.example/team/missing:v1";
    cluster
        .fake
        .fail_pull(image, "failed to resolve reference: not found");
    let seen = support::Seen::watch(&cluster.client, "pull");
    cluster
        .create_pod(pod_json(
            "pull",
            json!({"containers": [{
                "name": "app", "image": image, "imagePullPolicy": "Always",
            }]}),
        ))
        .await;
    let p = cluster
        .wait_pod("pull", "ImagePullBackOff", |p| {
            waiting_reason(&container_status(p, "app")).as_deref() == Some("ImagePullBackOff")
        })
        .await;
    assert_eq!(support::phase(&p), "Pending");
    let w = container_status(&p, "app").state.unwrap().waiting.unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some(format!("Back-off pulling image \"{image}\"").as_str())
    );
    // ErrImagePull came first (the kubelet re-syncs at once on its own
    // status write, so it may have lasted only milliseconds: a watch sees it).
    let waiting = seen.waiting("app");
    let err = waiting
        .iter()
        .position(|(reason, _)| reason == "ErrImagePull")
        .unwrap_or_else(|| panic!("no ErrImagePull seen: {waiting:?}"));
    let backoff = waiting
        .iter()
        .position(|(reason, _)| reason == "ImagePullBackOff")
        .unwrap();
    assert!(err < backoff, "{waiting:?}");
    let message = &waiting[err].1;
    assert!(
        message.contains(image) && message.contains("not found"),
        "message: {message}"
    );
    assert_eq!(cluster.fake.count("CreateContainer", "app"), 0);
    let evs = events(&cluster.client, "pull").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Failed")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with(&format!("Failed to pull image \"{image}\"")))),
        "events: {:?}",
        support::summary(&evs)
    );
    // The pull is retried only after the back-off (10 s).
    let pulls = cluster.fake.count("PullImage", image);
    assert_eq!(pulls, 1, "one pull before the back-off ends");
    cluster.fake.clear_pull_failure(image);
    let p = cluster
        .wait_pod("pull", "Running", |p| support::phase(p) == "Running")
        .await;
    assert!(running(&container_status(&p, "app")));
    drop(seen);
    cluster.stop().await;
}

/// Scenario 10: an env var from a missing ConfigMap key holds the container
/// in CreateContainerConfigError until the ConfigMap appears.
#[tokio::test(flavor = "multi_thread")]
async fn missing_config_map_is_a_config_error_until_created() {
    let cluster = Cluster::start().await;
    cluster
        .create_pod(pod_json(
            "cfg",
            json!({"containers": [{
                "name": "app", "image": IMAGE,
                "env": [{"name": "GREETING", "valueFrom": {
                    "configMapKeyRef": {"name": "app-settings", "key": "greeting"},
                }}],
            }]}),
        ))
        .await;
    let p = cluster
        .wait_pod("cfg", "CreateContainerConfigError", |p| {
            waiting_reason(&container_status(p, "app")).as_deref()
                == Some("CreateContainerConfigError")
        })
        .await;
    let w = container_status(&p, "app").state.unwrap().waiting.unwrap();
    let message = w.message.unwrap_or_default();
    assert!(message.contains("app-settings"), "message: {message}");
    assert_eq!(support::phase(&p), "Pending");
    assert_eq!(cluster.fake.count("CreateContainer", "app"), 0);
    let evs = events(&cluster.client, "cfg").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Failed")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("app-settings"))),
        "events: {:?}",
        support::summary(&evs)
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-settings"}, "data": {"greeting": "hello"},
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let p = cluster
        .wait_pod("cfg", "Running", |p| support::phase(p) == "Running")
        .await;
    assert!(running(&container_status(&p, "app")));
    assert_eq!(cluster.fake.count("CreateContainer", "app"), 1);
    cluster.stop().await;
}

/// Scenario 11: a restarted kubelet adopts the running container: no new
/// sandbox or container, the status stays Running.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_kubelet_adopts_running_containers() {
    let mut cluster = Cluster::start().await;
    cluster
        .create_pod(pod_json(
            "adopted",
            json!({"containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    let before = cluster
        .wait_pod("adopted", "Running and Ready", |p| {
            support::phase(p) == "Running" && support::condition(p, "Ready") == Some("True")
        })
        .await;
    let id_before = container_status(&before, "app").container_id;

    cluster.stop_kubelet().await;
    cluster.fake.clear_calls();
    cluster.start_kubelet();
    // Let the new kubelet list the runtime and sync the pod a few times.
    assert!(
        cluster
            .fake
            .wait_until(Duration::from_secs(20), |f| f.count("ListContainers", "")
                >= 3)
            .await,
        "calls: {:?}",
        cluster.fake.calls()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for method in [
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
    ] {
        let n = cluster
            .fake
            .calls()
            .iter()
            .filter(|c| c.method == method)
            .count();
        assert_eq!(
            n,
            0,
            "{method} after the restart: {:?}",
            cluster.fake.calls()
        );
    }
    let p = cluster.get_pod("adopted").await;
    assert_eq!(support::phase(&p), "Running");
    let s = container_status(&p, "app");
    assert!(running(&s) && s.ready);
    assert_eq!(s.restart_count, 0);
    assert_eq!(s.container_id, id_before);
    assert_eq!(cluster.fake.containers().len(), 1);
    cluster.stop().await;
}

/// The pod's sandbox dies: the kubelet creates a new one and starts the
/// container again in it (restartCount 1, a new pod IP lease).
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_sandbox_is_recreated() {
    let cluster = Cluster::start().await;
    cluster
        .create_pod(pod_json(
            "phoenix",
            json!({"containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    cluster
        .wait_pod("phoenix", "Running", |p| support::phase(p) == "Running")
        .await;
    let first = cluster.fake.sandboxes()[0].clone();
    assert!(cluster.fake.kill_sandbox(&first.id));
    let p = cluster
        .wait_pod("phoenix", "running in a new sandbox", |p| {
            let s = container_status(p, "app");
            running(&s) && s.restart_count == 1
        })
        .await;
    let sandboxes = cluster.fake.sandboxes();
    let ready: Vec<_> = sandboxes
        .iter()
        .filter(|s| s.state == skiff_testkit::cri::PodSandboxState::SandboxReady)
        .collect();
    assert_eq!(ready.len(), 1, "{sandboxes:?}");
    assert_eq!(ready[0].attempt, 1);
    assert_ne!(ready[0].id, first.id);
    let status = p.status.clone().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some(ready[0].ip.as_str()));
    assert_eq!(support::phase(&p), "Running");
    assert_eq!(
        support::condition(&p, "PodReadyToStartContainers"),
        Some("True")
    );
    let last = container_status(&p, "app")
        .last_state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 137);
    cluster.stop().await;
}

/// A failing init container with restartPolicy Always is retried with
/// back-off while the app container waits in PodInitializing.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_init_container_crash_loops() {
    let cluster = Cluster::start().await;
    cluster.fake.script(
        Target::in_pod("default", "stuck", "setup"),
        vec![Run::exit_after(Duration::from_millis(100), 1)],
    );
    cluster
        .create_pod(pod_json(
            "stuck",
            json!({
                "initContainers": [{"name": "setup", "image": IMAGE}],
                "containers": [{"name": "app", "image": IMAGE}],
            }),
        ))
        .await;
    let p = cluster
        .wait_pod("stuck", "init CrashLoopBackOff", |p| {
            support::init_status(p, "setup")
                .is_some_and(|s| waiting_reason(&s).as_deref() == Some("CrashLoopBackOff"))
        })
        .await;
    let s = support::init_status(&p, "setup").unwrap();
    assert!(s.restart_count >= 1, "{s:?}");
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 1);
    assert_eq!(support::phase(&p), "Pending");
    assert_eq!(support::condition(&p, "Initialized"), Some("False"));
    assert_eq!(
        waiting_reason(&container_status(&p, "app")).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(cluster.fake.count("CreateContainer", "app"), 0);
    cluster.stop().await;
}

/// restartPolicy Never: a liveness failure kills the container for good
/// and the pod fails.
#[tokio::test(flavor = "multi_thread")]
async fn liveness_failure_with_restart_policy_never_fails_the_pod() {
    let cluster = Cluster::start().await;
    let cmd = ["/bin/check"];
    cluster.fake.exec_result(
        Target::in_pod("default", "once", "app"),
        &cmd,
        ExecResult::fail(1, "unhealthy"),
    );
    cluster
        .create_pod(pod_json(
            "once",
            json!({"restartPolicy": "Never", "containers": [{
                "name": "app", "image": IMAGE,
                "livenessProbe": {"exec": {"command": cmd}, "periodSeconds": 1, "failureThreshold": 1},
            }]}),
        ))
        .await;
    let p = cluster
        .wait_pod("once", "Failed", |p| support::phase(p) == "Failed")
        .await;
    let s = container_status(&p, "app");
    assert_eq!(s.restart_count, 0);
    assert_ne!(support::terminated(&s).exit_code, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.fake.count("CreateContainer", "app"), 1);
    cluster.stop().await;
}

/// Deleting a crash-looping pod does not wait for its back-off.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_crash_looping_pod_is_prompt() {
    let cluster = Cluster::start().await;
    cluster.fake.script(
        Target::in_pod("default", "doomed", "app"),
        vec![Run::exit_after(Duration::from_millis(100), 1)],
    );
    cluster
        .create_pod(pod_json(
            "doomed",
            json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    cluster
        .wait_pod("doomed", "CrashLoopBackOff", |p| {
            waiting_reason(&container_status(p, "app")).as_deref() == Some("CrashLoopBackOff")
        })
        .await;
    let pods = cluster.pods();
    let deleted_at = Instant::now();
    pods.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(Duration::from_secs(15), "the pod is gone", || async {
        pods.get_opt("doomed")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    let took = deleted_at.elapsed().as_secs_f64();
    assert!(took < 5.0, "gone after {took}s");
    assert!(
        cluster.fake.sandboxes().is_empty(),
        "{:?}",
        cluster.fake.sandboxes()
    );
    cluster.stop().await;
}

/// A startup probe that fails `failureThreshold` times restarts the
/// container, as a liveness failure would.
#[tokio::test(flavor = "multi_thread")]
async fn startup_probe_failing_out_restarts_the_container() {
    let cluster = Cluster::start().await;
    let cmd = ["test", "-f", "/booted"];
    let target = Target::in_pod("default", "never-boots", "app");
    cluster
        .fake
        .exec_result(target.clone(), &cmd, ExecResult::fail(1, ""));
    cluster
        .create_pod(pod_json(
            "never-boots",
            json!({"containers": [{
                "name": "app", "image": IMAGE,
                "startupProbe": {"exec": {"command": cmd}, "periodSeconds": 1, "failureThreshold": 2},
            }]}),
        ))
        .await;
    let p = cluster
        .wait_pod("never-boots", "restartCount 1", |p| {
            container_status(p, "app").restart_count >= 1
        })
        .await;
    cluster.fake.exec_result(target, &cmd, ExecResult::ok(""));
    assert_eq!(container_status(&p, "app").restart_count, 1);
    let evs = events(&cluster.client, "never-boots").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("failed startup probe, will be restarted"))),
        "events: {:?}",
        support::summary(&evs)
    );
    let p = cluster
        .wait_pod("never-boots", "started and ready", |p| {
            let s = container_status(p, "app");
            s.started == Some(true) && s.ready
        })
        .await;
    assert_eq!(container_status(&p, "app").restart_count, 1);
    cluster.stop().await;
}

/// As upstream, ErrImagePull stays in the status until the next sync
/// (seconds), so `kubectl get pods` shows it. Today the kubelet's own
/// status write comes back through its pod watch and re-syncs the pod at
/// once, so ErrImagePull turns into ImagePullBackOff within ~10 ms.
#[tokio::test(flavor = "multi_thread")]
async fn err_image_pull_is_visible_to_polling_clients() {
    let cluster = Cluster::start().await;
    let image = "registry.example/team/missing:v2";
    cluster.fake.fail_pull(image, "not found");
    cluster
        .create_pod(pod_json(
            "pull",
            json!({"containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}),
        ))
        .await;
    let pods = cluster.pods();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(p)) = pods.get_opt("pull").await
            && let Some(reason) = waiting_reason(&container_status(&p, "app"))
            && seen.last() != Some(&reason)
        {
            seen.push(reason);
        }
        if seen.iter().any(|r| r == "ErrImagePull") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.iter().any(|r| r == "ErrImagePull"),
        "polling every 50 ms saw only {seen:?}"
    );
    cluster.stop().await;
}

/// Node-pressure eviction: with the memory threshold above what the host
/// has, the node reports MemoryPressure and evicts the BestEffort pod
/// first (Failed, reason Evicted), keeping the Guaranteed one for now.
#[tokio::test(flavor = "multi_thread")]
async fn memory_pressure_evicts_best_effort_pods_first() {
    let mut cluster = Cluster::start().await;
    cluster.stop_kubelet().await;
    cluster.start_kubelet_with(|c| c.eviction_hard.memory_available = u64::MAX);
    let limits = json!({"limits": {"cpu": "100m", "memory": "64Mi"}});
    cluster
        .create_pod(pod_json(
            "guaranteed",
            json!({"containers": [{"name": "app", "image": IMAGE, "resources": limits}]}),
        ))
        .await;
    cluster
        .create_pod(pod_json(
            "best-effort",
            json!({"containers": [{"name": "app", "image": IMAGE}]}),
        ))
        .await;
    // Both pods in one poll: the next victim follows 10 s after the
    // first, so the guaranteed pod is checked at the moment the
    // best-effort one is seen evicted.
    let pods = cluster.pods();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (evicted, guaranteed) = loop {
        let be = pods.get_opt("best-effort").await.ok().flatten();
        let g = pods.get_opt("guaranteed").await.ok().flatten();
        if let (Some(be), Some(g)) = (be, g)
            && support::phase(&be) == "Failed"
        {
            break (be, g);
        }
        assert!(Instant::now() < deadline, "best-effort was never evicted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = evicted.status.clone().unwrap_or_default();
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("The node was low on resource: memory."),
        "{status:?}"
    );
    // On a loaded machine the poll may come after the next victim (10 s
    // later): then the guaranteed pod must have gone second.
    if support::phase(&guaranteed) == "Failed" {
        let ready_changed = |p: &k8s_openapi::api::core::v1::Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_transition_time.clone())
                .map(|t| t.0)
        };
        assert!(
            ready_changed(&guaranteed) > ready_changed(&evicted),
            "the guaranteed pod was evicted before the best-effort one"
        );
    }
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    support::eventually(Duration::from_secs(30), "MemoryPressure=True", || {
        let nodes = nodes.clone();
        async move {
            let node = nodes.get(support::NODE).await.ok()?;
            let pressure = node
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "MemoryPressure")?;
            (pressure.status == "True").then_some(())
        }
    })
    .await;
    cluster.stop().await;
}
