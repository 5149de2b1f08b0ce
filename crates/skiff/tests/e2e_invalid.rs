#![allow(clippy::unwrap_used)]
//! 422 Invalid errors look as they do against upstream: each cause once,
//! every metadata problem reported.

mod common;

use common::{Ctl, KUBECTLS};

#[test]
fn invalid_shows_each_cause_once() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let err = k.fails_with_input(
            &["create", "--validate=false", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
        );
        assert_eq!(
            err.trim(),
            "The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "1.{minor}"
        );
    }
}

#[test]
fn invalid_collects_every_metadata_cause() {
    let c = common::cluster();
    let k = Ctl::new(&c, 33);
    let err = k.fails_with_input(&["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  labels:\n    ok: \"not valid!\"\n");
    assert!(
        err.contains("* metadata.name: ") && err.contains("* metadata.labels: "),
        "{err}"
    );
}
