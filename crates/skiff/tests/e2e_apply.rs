#![allow(clippy::unwrap_used)]
//! `kubectl apply` as users run it, with kubectl 1.27 and 1.33: client-side
//! apply (created / unchanged / configured, removals through the
//! last-applied-configuration annotation), server-side apply (field
//! managers, conflicts, `--force-conflicts`), `kubectl diff`, `kubectl edit`
//! with a scripted editor and `kubectl set image`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Ctl, KUBECTLS};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Writes `contents` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// A Deployment `name` (container `c`) and a ConfigMap `<name>-conf`.
fn app(
    name: &str,
    image: &str,
    replicas: u32,
    tier_label: bool,
    drop_env: bool,
    conf_b: bool,
) -> String {
    let tier = if tier_label {
        "\n    tier: frontend"
    } else {
        ""
    };
    let drop = if drop_env {
        "\n        - name: DROP\n          value: \"2\""
    } else {
        ""
    };
    let b = if conf_b { "\n  b: \"2\"" } else { "" };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}{tier}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: c
        image: {image}
        env:
        - name: KEEP
          value: "1"{drop}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-conf
data:
  a: "1"{b}
"#
    )
}

/// Runs `kubectl diff -f file` and returns (exit code, stdout, stderr).
fn diff(k: &Ctl<'_>, ns: &str, file: &str) -> (Option<i32>, String, String) {
    let out = k.output(&["diff", "-n", ns, "-f", file]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_side_apply_diff_edit_and_set_image() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("csa-{minor}");
        k.create_namespace(&ns);
        let dir = tempfile::tempdir().unwrap();
        let v1 = write(
            dir.path(),
            "v1.yaml",
            &app("web", "busybox:1.36", 2, true, true, true),
        );
        let v2 = write(
            dir.path(),
            "v2.yaml",
            &app("web", "busybox:1.37", 3, false, false, false),
        );
        let v3 = write(
            dir.path(),
            "v3.yaml",
            &app("web", "busybox:1.37", 4, false, false, false),
        );

        // First apply creates both objects.
        let out = k.ok(&["apply", "-n", &ns, "-f", &v1]);
        assert_eq!(
            lines(&out),
            ["deployment.apps/web created", "configmap/web-conf created"],
            "kubectl 1.{minor} apply (first)"
        );
        let live = k.get_json(&["-n", &ns, "deployment", "web"]);
        let annotation = live["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap_or_else(|| panic!("1.{minor}: no {LAST_APPLIED} annotation: {live:#}"));
        let last: serde_json::Value = serde_json::from_str(annotation)
            .unwrap_or_else(|e| panic!("1.{minor}: last-applied is not JSON ({e}): {annotation}"));
        assert_eq!(last["spec"]["replicas"], 2, "{last:#}");
        assert_eq!(live["metadata"]["labels"]["tier"], "frontend", "{live:#}");

        // The same file again changes nothing.
        let out = k.ok(&["apply", "-n", &ns, "-f", &v1]);
        assert_eq!(
            lines(&out),
            [
                "deployment.apps/web unchanged",
                "configmap/web-conf unchanged"
            ],
            "kubectl 1.{minor} apply (same file)"
        );
        let again = k.get_json(&["-n", &ns, "deployment", "web"]);
        assert_eq!(again["metadata"]["generation"], 1, "{again:#}");

        // Changed file: image, replicas; a label, an env var and a
        // ConfigMap key removed from the file are removed from the objects.
        let out = k.ok(&["apply", "-n", &ns, "-f", &v2]);
        assert_eq!(
            lines(&out),
            [
                "deployment.apps/web configured",
                "configmap/web-conf configured"
            ],
            "kubectl 1.{minor} apply (changed file)"
        );
        let live = k.get_json(&["-n", &ns, "deployment", "web"]);
        assert_eq!(live["spec"]["replicas"], 3, "1.{minor}: {live:#}");
        let container = &live["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "busybox:1.37", "1.{minor}: {live:#}");
        assert_eq!(
            container["env"],
            serde_json::json!([{"name": "KEEP", "value": "1"}]),
            "1.{minor}: env var DROP should be gone: {live:#}"
        );
        assert!(
            live["metadata"]["labels"].get("tier").is_none(),
            "1.{minor}: label tier should be gone: {live:#}"
        );
        assert_eq!(live["metadata"]["labels"]["app"], "web", "{live:#}");
        let last: serde_json::Value = serde_json::from_str(
            live["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap_or_else(|| panic!("1.{minor}: no {LAST_APPLIED}: {live:#}")),
        )
        .unwrap();
        assert_eq!(last["spec"]["replicas"], 3, "{last:#}");
        let conf = k.get_json(&["-n", &ns, "configmap", "web-conf"]);
        assert_eq!(
            conf["data"],
            serde_json::json!({"a": "1"}),
            "1.{minor}: key b should be gone: {conf:#}"
        );

        // kubectl diff: nothing to show for the applied file, the change
        // for a changed one.
        let (code, stdout, stderr) = diff(&k, &ns, &v2);
        assert_eq!(
            code,
            Some(0),
            "kubectl 1.{minor} diff of the applied file\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- server log ---\n{}",
            c.logs()
        );
        assert!(stdout.trim().is_empty(), "1.{minor}: {stdout}");
        let (code, stdout, stderr) = diff(&k, &ns, &v3);
        assert_eq!(
            code,
            Some(1),
            "kubectl 1.{minor} diff of a changed file\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- server log ---\n{}",
            c.logs()
        );
        let changed = |sign: char, text: &str| {
            stdout
                .lines()
                .any(|l| l.starts_with(sign) && l[1..].trim() == text)
        };
        assert!(
            changed('-', "replicas: 3") && changed('+', "replicas: 4"),
            "kubectl 1.{minor} diff should show replicas 3 -> 4:\n{stdout}"
        );
        assert!(
            !stdout.contains("image: busybox"),
            "1.{minor}: unchanged lines are not diff lines:\n{stdout}"
        );
        // diff is a dry run: nothing changed.
        let replicas = k.jsonpath(&["-n", &ns, "deployment", "web"], "{.spec.replicas}");
        assert_eq!(replicas, "3", "1.{minor}: diff must not change the object");

        // kubectl edit with a scripted editor.
        let editor = dir.path().join("editor.sh");
        std::fs::write(
            &editor,
            "#!/bin/sh\nsed -i 's/image: busybox:1.37/image: busybox:1.38/' \"$1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = ["edit", "-n", &ns, "deployment/web"];
        let out =
            k.k.command()
                .env_remove("KUBE_EDITOR")
                .env("EDITOR", &editor)
                .args(args)
                .output()
                .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("deployment.apps/web edited"),
            "kubectl 1.{minor} edit: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n--- server log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
        let image = k.jsonpath(
            &["-n", &ns, "deployment", "web"],
            "{.spec.template.spec.containers[0].image}",
        );
        assert_eq!(image, "busybox:1.38", "1.{minor}: edit was not stored");

        // kubectl set image.
        let out = k.ok(&["set", "image", "-n", &ns, "deployment/web", "c=busybox:2"]);
        assert_eq!(
            lines(&out),
            ["deployment.apps/web image updated"],
            "kubectl 1.{minor} set image"
        );
        let live = k.get_json(&["-n", &ns, "deployment", "web"]);
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1, "{live:#}");
        assert_eq!(containers[0]["image"], "busybox:2", "{live:#}");
        assert_eq!(
            containers[0]["env"],
            serde_json::json!([{"name": "KEEP", "value": "1"}]),
            "{live:#}"
        );
    }
}

/// The managedFields entry of `manager` with operation Apply.
fn apply_entry<'v>(obj: &'v serde_json::Value, manager: &str) -> Option<&'v serde_json::Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
}

fn owns_replicas(entry: &serde_json::Value) -> bool {
    entry["fieldsV1"]["f:spec"].get("f:replicas").is_some()
}

#[test]
fn server_side_apply_with_two_managers_and_conflicts() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("ssa-{minor}");
        k.create_namespace(&ns);
        let dir = tempfile::tempdir().unwrap();
        let full = write(
            dir.path(),
            "full.yaml",
            &common::manifests::deployment("ssa", 2),
        );
        let other_label = write(
            dir.path(),
            "other.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n  labels:\n    team: other\n",
        );
        let other_replicas = write(
            dir.path(),
            "other-replicas.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n  labels:\n    team: other\nspec:\n  replicas: 5\n",
        );

        let out = k.ok(&["apply", "--server-side", "-n", &ns, "-f", &full]);
        assert_eq!(
            lines(&out),
            ["deployment.apps/ssa serverside-applied"],
            "kubectl 1.{minor} apply --server-side"
        );
        let first = k.get_json(&["-n", &ns, "deployment", "ssa", "--show-managed-fields"]);
        assert_eq!(first["spec"]["replicas"], 2, "{first:#}");
        let entry = apply_entry(&first, "kubectl").unwrap_or_else(|| {
            panic!("1.{minor}: no managedFields entry for kubectl/Apply: {first:#}")
        });
        assert!(owns_replicas(entry), "1.{minor}: {first:#}");

        // The same apply again: no error, nothing changes.
        let out = k.ok(&["apply", "--server-side", "-n", &ns, "-f", &full]);
        assert_eq!(
            lines(&out),
            ["deployment.apps/ssa serverside-applied"],
            "kubectl 1.{minor} apply --server-side (again)"
        );
        let again = k.get_json(&["-n", &ns, "deployment", "ssa"]);
        assert_eq!(
            again["metadata"]["generation"], first["metadata"]["generation"],
            "1.{minor}: a no-op apply must not change the spec: {again:#}"
        );

        // A second manager applies a different field.
        let out = k.ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-n",
            &ns,
            "-f",
            &other_label,
        ]);
        assert_eq!(lines(&out), ["deployment.apps/ssa serverside-applied"]);
        let both = k.get_json(&["-n", &ns, "deployment", "ssa", "--show-managed-fields"]);
        assert_eq!(both["metadata"]["labels"]["team"], "other", "{both:#}");
        assert_eq!(
            both["spec"]["replicas"], 2,
            "1.{minor}: fields of kubectl stay: {both:#}"
        );
        assert_eq!(
            both["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.36",
            "{both:#}"
        );
        let mine = apply_entry(&both, "kubectl")
            .unwrap_or_else(|| panic!("1.{minor}: kubectl's entry is gone: {both:#}"));
        let theirs = apply_entry(&both, "other")
            .unwrap_or_else(|| panic!("1.{minor}: no entry for manager other: {both:#}"));
        assert!(owns_replicas(mine), "{both:#}");
        assert!(
            theirs["fieldsV1"]["f:metadata"]["f:labels"]
                .get("f:team")
                .is_some(),
            "1.{minor}: other should own metadata.labels.team: {both:#}"
        );
        assert!(!owns_replicas(theirs), "{both:#}");

        // A conflicting value for a field kubectl owns.
        let err = k.fails(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-n",
            &ns,
            "-f",
            &other_replicas,
        ]);
        assert!(
            err.contains("conflict") && err.contains(".spec.replicas"),
            "kubectl 1.{minor}: the conflict error should name the field:\n{err}"
        );
        assert!(
            err.contains("\"kubectl\""),
            "kubectl 1.{minor}: the conflict error should name the owner:\n{err}"
        );
        let replicas = k.jsonpath(&["-n", &ns, "deployment", "ssa"], "{.spec.replicas}");
        assert_eq!(
            replicas, "2",
            "1.{minor}: a conflicting apply changed the object"
        );

        // --force-conflicts takes the field over.
        let out = k.ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-n",
            &ns,
            "-f",
            &other_replicas,
        ]);
        assert_eq!(lines(&out), ["deployment.apps/ssa serverside-applied"]);
        let forced = k.get_json(&["-n", &ns, "deployment", "ssa", "--show-managed-fields"]);
        assert_eq!(forced["spec"]["replicas"], 5, "{forced:#}");
        let mine = apply_entry(&forced, "kubectl")
            .unwrap_or_else(|| panic!("1.{minor}: kubectl's entry is gone: {forced:#}"));
        let theirs = apply_entry(&forced, "other")
            .unwrap_or_else(|| panic!("1.{minor}: no entry for manager other: {forced:#}"));
        assert!(
            owns_replicas(theirs),
            "1.{minor}: other should own .spec.replicas now: {forced:#}"
        );
        assert!(
            !owns_replicas(mine),
            "1.{minor}: kubectl should no longer own .spec.replicas: {forced:#}"
        );
    }
}
