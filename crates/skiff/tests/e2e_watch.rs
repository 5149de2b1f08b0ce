#![allow(clippy::unwrap_used)]
//! Watches with kubectl 1.27 and 1.33: `get -w` sees ADDED, MODIFIED,
//! DELETED in order; a watch from an old resourceVersion replays history;
//! one from a compacted resourceVersion gets 410 Gone, and kubectl
//! recovers from that by relisting.

mod common;

use common::{Ctl, KUBECTLS, manifests};

#[test]
fn get_watch_sees_added_modified_deleted_in_order() {
    let c = common::cluster();
    common::suite::watch_sees_changes_in_order(&c);
}

#[test]
fn watch_from_an_old_resource_version_replays() {
    let c = common::cluster();
    common::suite::watch_replays_from_resource_version(&c);
}

#[test]
fn watch_from_a_compacted_resource_version_is_gone() {
    let mut c = common::cluster_with(&["--compaction-interval-seconds", "1"]);
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("gone-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("old", "a", "1"));
        let rv: i64 = k
            .jsonpath(
                &["-n", &ns, "configmap", "old"],
                "{.metadata.resourceVersion}",
            )
            .parse()
            .unwrap();
        // Two more revisions, then compaction past both: the first event a
        // watch from `rv` would send is gone.
        k.ok(&["label", "-n", &ns, "configmap", "old", "x=y"]);
        k.ok(&["annotate", "-n", &ns, "configmap", "old", "x=y"]);
        common::wait_compacted_past(&c, rv + 2, std::time::Duration::from_secs(60));
        // A restart empties the watch cache's window of recent events, so
        // only the (compacted) store could serve the old revision.
        c.restart().unwrap();
        let k = Ctl::new(&c, minor);
        let path = format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2"
        );
        let out = k.ok(&["get", "--raw", &path]);
        let first = out.lines().next().unwrap_or("");
        let event: serde_json::Value = serde_json::from_str(first)
            .unwrap_or_else(|e| panic!("not a watch event ({e}): {out}"));
        assert_eq!(event["type"], "ERROR", "{out}");
        let status = &event["object"];
        assert_eq!(status["kind"], "Status", "{out}");
        assert_eq!(status["code"], 410, "{out}");
        assert_eq!(status["reason"], "Expired", "{out}");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("too old resource version: {rv}"))),
            "{out}"
        );
        // A consistent list still works: relisting is how clients recover.
        let list = k.ok(&[
            "get",
            "-n",
            &ns,
            "configmaps",
            "--field-selector",
            "metadata.name!=kube-root-ca.crt",
            "-o",
            "name",
        ]);
        assert_eq!(list.trim(), "configmap/old");
        // And so does a watch from the list's resourceVersion.
        let list_rv = k.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
        ]);
        let list_rv: serde_json::Value = serde_json::from_str(&list_rv).unwrap();
        let list_rv = list_rv["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = k.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={list_rv}&timeoutSeconds=1"),
        ]);
        assert!(!out.contains("\"ERROR\""), "{out}");
    }
}

#[test]
fn kubectl_wait_relists_when_its_resource_version_is_compacted() {
    let mut c = common::cluster_with(&["--compaction-interval-seconds", "1"]);
    for minor in KUBECTLS {
        let ns = format!("relist-{minor}");
        let k = Ctl::new(&c, minor);
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("target", "a", "1"));
        // kubectl wait lists and watches (an informer); -v=6 logs requests.
        let mut waiter = k.follow(&[
            "wait",
            "-v=6",
            "-n",
            &ns,
            "configmap/target",
            "--for=jsonpath={.data.a}=2",
            "--timeout=120s",
        ]);
        waiter.wait_stderr(&c, "watch=true", std::time::Duration::from_secs(30));
        let rv: i64 = k
            .jsonpath(
                &["-n", &ns, "configmap", "target"],
                "{.metadata.resourceVersion}",
            )
            .parse()
            .unwrap();
        // Revisions move on elsewhere; then the waiter's history is compacted
        // and the restart both cuts its watch and empties the watch cache.
        k.create(&ns, &manifests::configmap("noise-1", "a", "1"));
        k.create(&ns, &manifests::configmap("noise-2", "a", "1"));
        common::wait_compacted_past(&c, rv + 2, std::time::Duration::from_secs(60));
        c.restart().unwrap();
        let k = Ctl::new(&c, minor);
        k.ok(&[
            "patch",
            "-n",
            &ns,
            "configmap",
            "target",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ]);
        let line = waiter.next_line(std::time::Duration::from_secs(120));
        assert_eq!(
            line.as_deref(),
            Some("configmap/target condition met"),
            "kubectl 1.{minor} wait across a compaction; stderr:\n{}\n--- server log ---\n{}",
            waiter.stderr(),
            c.logs()
        );
    }
}
