#![allow(clippy::unwrap_used)]
//! `kubectl drain` and `uncordon` with each kubectl: pods leave the node
//! through the eviction API, a PodDisruptionBudget that allows it lets the
//! drain finish, one that does not makes kubectl retry and give up with
//! upstream's message. Two fake nodes per kubectl (no node agent here: a
//! stand-in kubelet readies pods and finishes their deletion).

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, KUBECTLS};

fn node(name: &str, minor: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    skiff.test/fake: \"true\"\n    drain: \"{minor}\"\n"
    )
}

fn app(minor: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      nodeSelector:
        drain: "{minor}"
      containers:
      - name: c
        image: busybox:1.36
        resources:
          requests:
            cpu: "1"
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: web
"#
    )
}

/// Polls `check` (a kubectl jsonpath output test) for up to 60 s.
fn wait(k: &Ctl<'_>, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "1.{}: timed out waiting for {what}\n--- server log ---\n{}",
            k.minor,
            k.c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn web_nodes(k: &Ctl<'_>, ns: &str) -> Vec<String> {
    let out = k.jsonpath(
        &["-n", ns, "pods", "-l", "app=web"],
        "{range .items[*]}{.spec.nodeName}{\" \"}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    );
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn kubectl_drain_evicts_within_the_disruption_budget() {
    let c = common::cluster();
    let _kubelet = common::fake_kubelet::start(&c);
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("drain-{minor}");
        let (a, b) = (format!("a-{minor}"), format!("b-{minor}"));
        k.create_namespace(&ns);
        k.ok_with_input(&["create", "-f", "-"], &node(&a, minor));
        k.ok_with_input(&["create", "-f", "-"], &node(&b, minor));
        wait(&k, "nodes Ready", || {
            k.jsonpath(
                &["nodes", "-l", &format!("drain={minor}")],
                "{.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            )
            .trim()
                == "True True"
        });
        k.create(&ns, &app(minor));
        let spread = vec![format!("{a} True"), format!("{b} True")];
        wait(&k, "one ready web pod per node", || {
            web_nodes(&k, &ns) == spread
        });
        wait(&k, "the budget allows one disruption", || {
            k.jsonpath(&["-n", &ns, "pdb", "web"], "{.status.disruptionsAllowed}")
                .trim()
                == "1"
        });

        // The budget allows it: the pod on a moves to b.
        let out = k.ok(&["drain", &a, "--ignore-daemonsets", "--timeout=60s"]);
        assert!(
            out.contains(&format!("node/{a} cordoned")),
            "1.{minor}: {out}"
        );
        assert!(
            out.contains(&format!("node/{a} drained")),
            "1.{minor}: {out}"
        );
        let unschedulable = k.jsonpath(&["node", &a], "{.spec.unschedulable}");
        assert_eq!(unschedulable.trim(), "true", "1.{minor}");
        let both_on_b = vec![format!("{b} True"), format!("{b} True")];
        wait(&k, "both web pods ready on b", || {
            web_nodes(&k, &ns) == both_on_b
        });

        // A budget that allows nothing: kubectl retries, then gives up.
        k.ok(&[
            "patch",
            "-n",
            &ns,
            "pdb",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":2}}"#,
        ]);
        wait(&k, "the budget allows nothing", || {
            k.jsonpath(&["-n", &ns, "pdb", "web"], "{.status.disruptionsAllowed}")
                .trim()
                == "0"
        });
        let err = k.fails(&["drain", &b, "--ignore-daemonsets", "--timeout=7s"]);
        assert!(
            err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
            "1.{minor}: {err}"
        );
        assert_eq!(
            web_nodes(&k, &ns),
            both_on_b,
            "1.{minor}: a pod left despite the budget"
        );

        let out = k.ok(&["uncordon", &a]);
        assert!(
            out.contains(&format!("node/{a} uncordoned")),
            "1.{minor}: {out}"
        );
        k.ok(&["uncordon", &b]);
    }
}
