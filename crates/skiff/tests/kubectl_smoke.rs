#![allow(clippy::unwrap_used)]
//! The first thing a user does: start skiff and point kubectl at it.

use std::path::Path;

use skiff_testkit::Cluster;

fn cluster() -> Cluster {
    Cluster::start(Path::new(env!("CARGO_BIN_EXE_skiff")), &[]).unwrap()
}

fn ok(out: std::io::Result<std::process::Output>) -> String {
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kubectl_sees_a_working_cluster() {
    let c = cluster();
    for minor in [27, 33] {
        let k = c.kubectl(minor).unwrap();
        let version = ok(k.run(&["version", "-o", "json"]));
        let v: serde_json::Value = serde_json::from_str(&version).unwrap();
        assert_eq!(v["serverVersion"]["minor"], "33", "{version}");
        let namespaces = ok(k.run(&["get", "namespaces", "-o", "name"]));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(
                namespaces.contains(&format!("namespace/{ns}")),
                "{namespaces}"
            );
        }
        let svc = ok(k.run(&[
            "get",
            "service",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]));
        assert_eq!(svc, "10.43.0.1");
        let resources = ok(k.run(&["api-resources", "-o", "name"]));
        for r in [
            "pods",
            "deployments.apps",
            "cronjobs.batch",
            "leases.coordination.k8s.io",
        ] {
            assert!(
                resources.lines().any(|l| l == r),
                "{r} missing from {resources}"
            );
        }
    }
}

#[test]
fn health_endpoints_answer_without_credentials() {
    let c = cluster();
    // No credentials at all: health is public, the API is not.
    let anonymous = |path: &str| {
        std::process::Command::new(skiff_testkit::kubectl_binary(1, 33).unwrap())
            .args([
                "--kubeconfig",
                "/dev/null",
                "--insecure-skip-tls-verify",
                "--token=not-a-valid-token",
            ])
            .arg(format!("--server=https://127.0.0.1:{}", c.port))
            .args(["get", "--raw", path])
            .output()
            .unwrap()
    };
    for path in ["/readyz", "/livez", "/healthz"] {
        let out = anonymous(path);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok", "{path}");
    }
    assert!(String::from_utf8_lossy(&anonymous("/version").stdout).contains("v1.33"));
    let denied = anonymous("/api/v1/namespaces");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Unauthorized"));
    let k = c.kubectl(33).unwrap();
    assert_eq!(ok(k.run(&["get", "--raw", "/livez"])), "ok");
}

#[test]
fn objects_survive_a_restart_and_conflicts_are_detected() {
    let mut c = cluster();
    let k = c.kubectl(33).unwrap();
    ok(k.run_with_input(
        &["apply", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata:\n  a: \"1\"\n",
    ));
    let rv = ok(k.run(&[
        "get",
        "cm",
        "keep",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]));
    c.restart().unwrap();
    let k = c.kubectl(33).unwrap();
    let data = ok(k.run(&["get", "cm", "keep", "-o", "jsonpath={.data.a}"]));
    assert_eq!(data, "1");
    // A replace with a stale resourceVersion is a 409 Conflict.
    ok(k.run(&["label", "cm", "keep", "x=y"]));
    let stale = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  resourceVersion: \"{rv}\"\ndata:\n  a: \"2\"\n"
    );
    let out = k
        .run_with_input(&["replace", "--validate=false", "-f", "-"], &stale)
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After a crash (no shutdown, so no lease handed back) the server's
/// scheduler and controller manager find their own name on their Leases
/// and lead again at once instead of waiting out a stranger's lease; the
/// scheduler is at work (a pod that fits nowhere is marked so).
#[test]
fn after_a_crash_the_server_leads_its_leases_again_under_the_same_name() {
    let mut c = cluster();
    let k = c.kubectl(33).unwrap();
    // (holder, renewTime) once `accept` holds (30 s at most).
    let lease = |k: &skiff_testkit::Kubectl, name: &str, accept: &dyn Fn(&str, &str) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = ok(k.run(&[
                "get",
                "lease",
                name,
                "-n",
                "kube-system",
                "--ignore-not-found",
                "-o",
                "jsonpath={.spec.holderIdentity} {.spec.renewTime}",
            ]));
            let (h, t) = out.trim().split_once(' ').unwrap_or(("", ""));
            if accept(h, t) {
                return (h.to_owned(), t.to_owned());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lease {name}: {out:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let held = |h: &str, _: &str| !h.is_empty();
    let (scheduler, _) = lease(&k, "kube-scheduler", &held);
    let (controllers, _) = lease(&k, "skiff-controller-manager", &held);
    let (_, s_renewed) = lease(&k, "kube-scheduler", &held);
    let (_, c_renewed) = lease(&k, "skiff-controller-manager", &held);
    c.crash_and_restart().unwrap();
    let k = c.kubectl(33).unwrap();
    // The first renewal after the crash is by the same name (a new name
    // would only get the lease once the old one had expired).
    let (h, _) = lease(&k, "kube-scheduler", &|h, t| {
        !h.is_empty() && t != s_renewed
    });
    assert_eq!(h, scheduler);
    let (h, _) = lease(&k, "skiff-controller-manager", &|h, t| {
        !h.is_empty() && t != c_renewed
    });
    assert_eq!(h, controllers);
    ok(k.run(&[
        "run",
        "waiting",
        "--image=skiff.local/busybox",
        "--",
        "sleep",
        "1",
    ]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reason = ok(k.run(&[
            "get",
            "pod",
            "waiting",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        ]));
        if reason == "Unschedulable" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler never looked at the pod"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
