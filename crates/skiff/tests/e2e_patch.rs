#![allow(clippy::unwrap_used)]
//! `kubectl patch` with every patch type, with kubectl 1.27 and 1.33:
//! strategic merge (containers merged by name, `$patch: delete`), JSON
//! merge (lists replaced, `null` removes) and JSON patch (RFC 6902,
//! a failing `test` op is an error and changes nothing).

mod common;

use common::{Ctl, KUBECTLS};

/// A Deployment `name` with one container `a` and labels `keep`/`gone`.
fn deployment(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    keep: "yes"
    gone: "soon"
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: a
        image: busybox:1.36
        command: ["sleep", "3600"]
"#
    )
}

/// `(name, image)` of each container of the Deployment's pod template,
/// sorted by name.
fn containers(k: &Ctl<'_>, ns: &str, name: &str) -> Vec<(String, String)> {
    let d = k.get_json(&["-n", ns, "deployment", name]);
    let mut out: Vec<(String, String)> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers: {d:#}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["image"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn strategic_merge_patch_merges_containers_by_name() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("smp-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &deployment("d"));
        let patch = |p: &str| {
            let out = k.ok(&[
                "patch",
                "-n",
                &ns,
                "deployment",
                "d",
                "--type=strategic",
                "-p",
                p,
            ]);
            assert_eq!(
                out.trim(),
                "deployment.apps/d patched",
                "kubectl 1.{minor} patch --type=strategic {p}"
            );
        };

        // A new container is added next to the existing one.
        patch(
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"nginx:1.27"}]}}}}"#,
        );
        assert_eq!(
            containers(&k, &ns, "d"),
            pairs(&[("a", "busybox:1.36"), ("b", "nginx:1.27")]),
            "kubectl 1.{minor}: adding container b"
        );
        // The untouched container keeps its other fields.
        let cmd = k.jsonpath(
            &["-n", &ns, "deployment", "d"],
            "{.spec.template.spec.containers[?(@.name==\"a\")].command}",
        );
        assert_eq!(cmd, r#"["sleep","3600"]"#, "1.{minor}");

        // One container's image, named only by its merge key.
        patch(
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"busybox:1.37"}]}}}}"#,
        );
        assert_eq!(
            containers(&k, &ns, "d"),
            pairs(&[("a", "busybox:1.37"), ("b", "nginx:1.27")]),
            "kubectl 1.{minor}: changing a's image"
        );
        let cmd = k.jsonpath(
            &["-n", &ns, "deployment", "d"],
            "{.spec.template.spec.containers[?(@.name==\"a\")].command}",
        );
        assert_eq!(
            cmd, r#"["sleep","3600"]"#,
            "1.{minor}: command of a was lost"
        );

        // $patch: delete removes one container.
        patch(r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}"#);
        assert_eq!(
            containers(&k, &ns, "d"),
            pairs(&[("a", "busybox:1.37")]),
            "kubectl 1.{minor}: deleting container b"
        );

        // Maps merge; null removes a key.
        patch(r#"{"metadata":{"labels":{"gone":null,"added":"1"}}}"#);
        let labels = k.get_json(&["-n", &ns, "deployment", "d"])["metadata"]["labels"].clone();
        assert_eq!(
            labels,
            serde_json::json!({"keep": "yes", "added": "1"}),
            "kubectl 1.{minor}: labels after a strategic patch"
        );

        // The default --type is strategic.
        let out = k.ok(&[
            "patch",
            "-n",
            &ns,
            "deployment",
            "d",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/d patched", "1.{minor}");
        assert_eq!(
            containers(&k, &ns, "d"),
            pairs(&[("a", "busybox:1.37"), ("c", "busybox:1.36")]),
            "kubectl 1.{minor}: default patch type"
        );
    }
}

#[test]
fn merge_patch_replaces_lists() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("merge-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &deployment("d"));
        let out = k.ok(&[
            "patch",
            "-n",
            &ns,
            "deployment",
            "d",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"gone":null}},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"m","image":"nginx:1.27"}]}}}}"#,
        ]);
        assert_eq!(
            out.trim(),
            "deployment.apps/d patched",
            "kubectl 1.{minor} patch --type=merge"
        );
        assert_eq!(
            containers(&k, &ns, "d"),
            pairs(&[("m", "nginx:1.27")]),
            "kubectl 1.{minor}: a merge patch replaces the whole list"
        );
        let d = k.get_json(&["-n", &ns, "deployment", "d"]);
        assert_eq!(d["spec"]["replicas"], 2, "{d:#}");
        assert_eq!(
            d["metadata"]["labels"],
            serde_json::json!({"keep": "yes"}),
            "{d:#}"
        );
        // The server still defaults the new container.
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"],
            "/dev/termination-log",
            "{d:#}"
        );
    }
}

#[test]
fn json_patch_add_replace_remove_and_failing_test() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("json-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &deployment("d"));
        let out = k.ok(&[
            "patch",
            "-n",
            &ns,
            "deployment",
            "d",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/labels/added","value":"yes"},{"op":"replace","path":"/spec/replicas","value":3},{"op":"remove","path":"/metadata/labels/gone"},{"op":"add","path":"/spec/template/spec/containers/-","value":{"name":"j","image":"nginx:1.27"}},{"op":"test","path":"/spec/replicas","value":3}]"#,
        ]);
        assert_eq!(
            out.trim(),
            "deployment.apps/d patched",
            "kubectl 1.{minor} patch --type=json"
        );
        let d = k.get_json(&["-n", &ns, "deployment", "d"]);
        assert_eq!(d["spec"]["replicas"], 3, "{d:#}");
        assert_eq!(
            d["metadata"]["labels"],
            serde_json::json!({"keep": "yes", "added": "yes"}),
            "kubectl 1.{minor}: {d:#}"
        );
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "j"], "kubectl 1.{minor}: appended with /-");

        // A failing test op rejects the whole patch.
        let generation = d["metadata"]["generation"].clone();
        let err = k.fails(&[
            "patch",
            "-n",
            &ns,
            "deployment",
            "d",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":7}]"#,
        ]);
        assert!(
            err.contains("testing value /spec/replicas failed"),
            "kubectl 1.{minor}: the error should say the test op failed (upstream: \
             `testing value /spec/replicas failed: test failed`):\n{err}"
        );
        let after = k.get_json(&["-n", &ns, "deployment", "d"]);
        assert_eq!(after["spec"]["replicas"], 3, "{after:#}");
        assert_eq!(after["metadata"]["generation"], generation, "{after:#}");

        // Removing a path that does not exist is an error too.
        let err = k.fails(&[
            "patch",
            "-n",
            &ns,
            "deployment",
            "d",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/labels/nonexistent"}]"#,
        ]);
        assert!(!err.trim().is_empty(), "1.{minor}");
    }
}
