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
