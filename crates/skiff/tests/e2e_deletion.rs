#![allow(clippy::unwrap_used)]
//! Deletion as upstream: finalizers hold an object (marked with a
//! deletionTimestamp) until they are removed; a Pod bound to a node is
//! marked and stays for its grace period until deleted with grace 0.

mod common;

use common::{Ctl, KUBECTLS, manifests};

#[test]
fn graceful_pod_delete_marks_the_pod() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let name = format!("p{minor}");
        k.create("default", &manifests::pod_on_node(&name, "node-a"));
        let out = k.ok(&["delete", "pod", &name, "--grace-period=30", "--wait=false"]);
        assert_eq!(out.trim(), format!("pod \"{name}\" deleted"));
        let p = k.get_json(&["pod", &name]);
        assert!(
            p["metadata"]["deletionTimestamp"].is_string(),
            "1.{minor}: {p:#}"
        );
        assert_eq!(
            p["metadata"]["deletionGracePeriodSeconds"], 30,
            "1.{minor}: {p:#}"
        );
        let err = k.fails(&[
            "wait",
            "--for=delete",
            &format!("pod/{name}"),
            "--timeout=2s",
        ]);
        assert!(err.contains("timed out"), "{err}");
        k.ok(&["delete", "pod", &name, "--grace-period=0", "--force"]);
        k.fails(&["get", "pod", &name]);
    }
}

#[test]
fn finalizers_hold_a_deleted_object() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let name = format!("held{minor}");
        k.create("default", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  finalizers: [example.com/hold]\n"));
        k.ok(&["delete", "configmap", &name, "--wait=false"]);
        let cm = k.get_json(&["configmap", &name]);
        assert!(
            cm["metadata"]["deletionTimestamp"].is_string(),
            "1.{minor}: {cm:#}"
        );
        k.ok(&[
            "patch",
            "configmap",
            &name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        let err = k.fails(&["get", "configmap", &name]);
        assert!(err.contains("not found"), "1.{minor}: {err}");
    }
}
