#![allow(clippy::unwrap_used)]
//! `--cluster-cidr`/`--node-cidr-mask-size` (upstream's controller-manager
//! flags): nodes get their `spec.podCIDR` from the configured range, and a
//! range that cannot be split refuses to start.

mod common;

use std::time::Duration;

use common::Ctl;

#[test]
fn nodes_get_pod_ranges_from_the_configured_cluster_cidr() {
    let c = common::cluster_with(&[
        "--cluster-cidr",
        "10.100.0.0/16",
        "--node-cidr-mask-size",
        "26",
    ]);
    let k = Ctl::new(&c, 33);
    for node in ["n1", "n2"] {
        k.ok_with_input(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"),
        );
    }
    let mut ranges = Vec::new();
    for node in ["n1", "n2"] {
        let mut cidr = String::new();
        for _ in 0..100 {
            cidr = k.jsonpath(&["node", node], "{.spec.podCIDR}");
            if !cidr.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            cidr.starts_with("10.100.0.") && cidr.ends_with("/26"),
            "{node}: {cidr:?}"
        );
        ranges.push(cidr);
    }
    assert_ne!(ranges[0], ranges[1]);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "controller-manager",
            "--cluster-cidr",
            "10.100.0.0/16",
            "--node-cidr-mask-size",
            "8",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cluster-cidr/--node-cidr-mask-size"),
        "{stderr}"
    );
}
