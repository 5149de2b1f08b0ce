#![allow(clippy::unwrap_used)]
//! Upstream defaulting that users see: Secret stringData folded into data,
//! the namespace name label, Deployment and Service defaults.

mod common;

use common::{Ctl, KUBECTLS};

#[test]
fn secret_string_data_is_merged_into_data() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        k.create("default", &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{minor}\nstringData:\n  password: s3cret\n"));
        let s = k.get_json(&["secret", &format!("s{minor}")]);
        assert_eq!(s["data"]["password"], "czNjcmV0", "{s:#}");
        assert!(s.get("stringData").is_none(), "{s:#}");
        assert_eq!(s["type"], "Opaque", "{s:#}");
    }
}

#[test]
fn namespace_gets_its_name_label() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("lbl-{minor}");
        k.create_namespace(&ns);
        let l = k.jsonpath(
            &["namespace", &ns],
            "{.metadata.labels.kubernetes\\.io/metadata\\.name}",
        );
        assert_eq!(l, ns);
        let l = k.jsonpath(
            &["namespace", "default"],
            "{.metadata.labels.kubernetes\\.io/metadata\\.name}",
        );
        assert_eq!(l, "default");
    }
}
