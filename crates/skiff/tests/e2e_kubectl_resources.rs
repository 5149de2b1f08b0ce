#![allow(clippy::unwrap_used)]
//! Everyday object work with kubectl 1.27 and 1.33: `create -f` of a
//! multi-document YAML, `get` in every output format, `get all`, `get -A`,
//! `describe`, and `delete --cascade`.

mod common;

use std::time::Duration;

use common::{Ctl, KUBECTLS, manifests};

#[test]
fn create_get_and_describe_a_multi_document_app() {
    let c = common::cluster();
    common::suite::create_get_describe(&c);
}

#[test]
fn delete_with_every_cascade_mode() {
    let c = common::cluster();
    common::suite::delete_with_cascade(&c);
}

#[test]
fn create_f_validates_against_the_servers_openapi() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok_with_input(
            &["create", "-f", "-"],
            &manifests::app(&format!("v-{minor}")),
        );
        assert!(out.contains("deployment.apps/web created"), "{out}");
        let err = k.fails_with_input(&["create", "-n", &format!("v-{minor}"), "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: \"1\"\nbogus: 1\n");
        assert!(
            err.contains("unknown field \"bogus\""),
            "kubectl 1.{minor}: {err}"
        );
    }
}

#[test]
fn get_prints_upstream_columns() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("cols-{minor}");
        k.ok_with_input(
            &["create", "--validate=false", "-f", "-"],
            &manifests::app(&ns),
        );
        let header = |args: &[&str]| {
            let mut a = vec!["get", "-n", &ns];
            a.extend_from_slice(args);
            let out = k.ok(&a);
            out.lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            header(&["configmap", "web-config"]),
            "NAME DATA AGE",
            "1.{minor}"
        );
        assert_eq!(
            header(&["secret", "web-secret"]),
            "NAME TYPE DATA AGE",
            "1.{minor}"
        );
        assert_eq!(
            header(&["deployment", "web"]),
            "NAME READY UP-TO-DATE AVAILABLE AGE",
            "1.{minor}"
        );
        assert_eq!(
            header(&["deployment", "web", "-o", "wide"]),
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
            "1.{minor}"
        );
        assert_eq!(
            header(&["service", "web"]),
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            "1.{minor}"
        );
        assert_eq!(
            header(&["service", "web", "-o", "wide"]),
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
            "1.{minor}"
        );
        let row = k.ok(&["get", "-n", &ns, "deployment", "web", "--no-headers"]);
        let row: Vec<&str> = row.split_whitespace().collect();
        // No kubelet runs the pods: none ready or available; UP-TO-DATE is
        // 0 or 2 depending on whether the deployment controller has acted.
        assert_eq!(row[..2], ["web", "0/2"], "1.{minor}: {row:?}");
        assert!(["0", "2"].contains(&row[2]), "1.{minor}: {row:?}");
        assert_eq!(row[3], "0", "1.{minor}: {row:?}");
        let mut w = k.follow(&["get", "-n", &ns, "configmaps", "-w"]);
        let first = w.next_line(Duration::from_secs(20)).unwrap_or_default();
        assert!(
            first.split_whitespace().collect::<Vec<_>>() == ["NAME", "DATA", "AGE"],
            "1.{minor} get -w header: {first}"
        );
    }
}

#[test]
fn kubectl_create_generators() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("gen-{minor}");
        k.ok(&["create", "namespace", &ns]);
        k.ok(&["create", "configmap", "cm", "-n", &ns, "--from-literal=a=1"]);
        k.ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            &ns,
            "--from-literal=a=1",
        ]);
        k.ok(&["create", "deployment", "d", "-n", &ns, "--image=nginx"]);
        k.ok(&[
            "create",
            "service",
            "clusterip",
            "svc",
            "-n",
            &ns,
            "--tcp=80:80",
        ]);
        k.ok(&["create", "job", "j", "-n", &ns, "--image=busybox"]);
    }
}
