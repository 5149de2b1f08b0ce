#![allow(clippy::unwrap_used)]
//! `kubectl delete --cascade=orphan|foreground|background` with the
//! garbage collector that `skiff server` runs: orphan keeps the dependent
//! (without its ownerReference), foreground and the default remove it.

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, KUBECTLS};

fn owner_and_dependent(k: &Ctl<'_>, ns: &str) {
    k.create(
        ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owner\ndata:\n  a: \"1\"\n",
    );
    let uid = k.jsonpath(&["-n", ns, "configmap", "owner"], "{.metadata.uid}");
    assert!(!uid.trim().is_empty());
    k.create(
        ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {}\n    blockOwnerDeletion: true\ndata:\n  b: \"2\"\n",
            uid.trim()
        ),
    );
}

/// Polls `kubectl get` until the object is gone (up to ~10 s).
fn wait_gone(k: &Ctl<'_>, ns: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = k.output(&["get", "-n", ns, "configmap", name]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not found"), "1.{}: {err}", k.minor);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "1.{}: configmap {ns}/{name} still there\n--- server log ---\n{}",
            k.minor,
            k.c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn delete_cascade_orphan_foreground_background() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        for cascade in ["orphan", "foreground", "background", "default"] {
            let ns = format!("cascade-{cascade}-{minor}");
            k.create_namespace(&ns);
            owner_and_dependent(&k, &ns);
            let mut args = vec!["delete", "-n", &ns, "configmap", "owner"];
            let flag = format!("--cascade={cascade}");
            if cascade != "default" {
                args.push(&flag);
            }
            let out = k.ok(&args);
            assert_eq!(
                out.trim(),
                "configmap \"owner\" deleted",
                "1.{minor} {flag}"
            );
            wait_gone(&k, &ns, "owner");
            if cascade == "orphan" {
                // The dependent stays, without the reference to its owner.
                std::thread::sleep(Duration::from_millis(1500));
                let refs = k.jsonpath(
                    &["-n", &ns, "configmap", "dependent"],
                    "{.metadata.ownerReferences}",
                );
                assert_eq!(refs.trim(), "", "1.{minor}: orphaned dependent: {refs}");
            } else {
                wait_gone(&k, &ns, "dependent");
            }
        }
    }
}
