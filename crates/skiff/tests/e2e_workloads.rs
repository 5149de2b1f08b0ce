#![allow(clippy::unwrap_used)]
//! StatefulSets, DaemonSets, Jobs and CronJobs driven by the real kubectl
//! (1.27 and 1.33) against `skiff server`'s controllers and scheduler:
//! `rollout status|history|undo` of StatefulSets and DaemonSets, `wait
//! --for=condition=complete` of a Job, `create cronjob` and `create job
//! --from=cronjob/...`. Pods are readied (or finished) by a stand-in
//! kubelet; DaemonSet pods land on fake nodes.

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, KUBECTLS};

fn statefulset(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        image: {image}
"#
    )
}

fn daemonset(minor: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        workloads: "{minor}"
      containers:
      - name: c
        image: busybox:1.36
"#
    )
}

const JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  completions: 2
  parallelism: 1
  template:
    metadata:
      labels:
        skiff.test/succeed: "yes"
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox:1.36
"#;

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

fn rollout_status(k: &Ctl<'_>, ns: &str, what: &str) -> String {
    k.ok(&["rollout", "status", "-n", ns, what, "--timeout=60s"])
}

#[test]
fn statefulsets_daemonsets_jobs_and_cronjobs_with_kubectl() {
    let c = common::cluster();
    let _kubelet = common::fake_kubelet::start(&c);
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("workloads-{minor}");
        k.create_namespace(&ns);

        // StatefulSet: ordered pods, rollout, history, undo.
        k.create(&ns, &statefulset("busybox:1.36"));
        let out = rollout_status(&k, &ns, "statefulset/web");
        assert!(
            out.contains("rolling update complete 3 pods at revision web-")
                || out.contains("partitioned roll out complete"),
            "1.{minor}: {out}"
        );
        let pods = k.jsonpath(
            &["-n", &ns, "pods", "-l", "app=web"],
            "{.items[*].metadata.name}",
        );
        let mut pods: Vec<&str> = pods.split_whitespace().collect();
        pods.sort_unstable();
        assert_eq!(pods, ["web-0", "web-1", "web-2"], "1.{minor}");
        k.ok(&["set", "image", "-n", &ns, "statefulset/web", "c=busybox:2"]);
        let out = rollout_status(&k, &ns, "statefulset/web");
        // (With the defaulted `partition: 0`, kubectl reports a partitioned roll out.)
        assert!(
            out.contains("rolling update complete 3 pods")
                || out.contains("partitioned roll out complete: 3 new pods"),
            "1.{minor}: {out}"
        );
        let history = k.ok(&["rollout", "history", "-n", &ns, "statefulset/web"]);
        assert!(
            history.lines().any(|l| l.starts_with('2')),
            "1.{minor}: {history}"
        );
        let undo = k.ok(&["rollout", "undo", "-n", &ns, "statefulset/web"]);
        assert_eq!(undo.trim(), "statefulset.apps/web rolled back", "1.{minor}");
        rollout_status(&k, &ns, "statefulset/web");
        let image = k.jsonpath(
            &["-n", &ns, "statefulset", "web"],
            "{.spec.template.spec.containers[0].image}",
        );
        assert_eq!(image.trim(), "busybox:1.36", "1.{minor}");

        // DaemonSet: one pod per fake node, rolled out.
        for n in ["x", "y"] {
            k.ok_with_input(
                &["create", "-f", "-"],
                &format!(
                    "apiVersion: v1\nkind: Node\nmetadata:\n  name: {n}-{minor}\n  labels:\n    skiff.test/fake: \"true\"\n    workloads: \"{minor}\"\n"
                ),
            );
        }
        k.create(&ns, &daemonset(minor));
        let want = format!("x-{minor} y-{minor}");
        wait(&k, "one agent pod per node", || {
            let nodes = k.jsonpath(
                &["-n", &ns, "pods", "-l", "app=agent"],
                "{.items[*].spec.nodeName}",
            );
            let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
            nodes.sort_unstable();
            nodes.join(" ") == want
        });
        let out = rollout_status(&k, &ns, "daemonset/agent");
        assert!(
            out.contains("daemon set \"agent\" successfully rolled out"),
            "1.{minor}: {out}"
        );
        let ready = k.jsonpath(&["-n", &ns, "daemonset", "agent"], "{.status.numberReady}");
        assert_eq!(ready.trim(), "2", "1.{minor}");

        // Job: two completions, then `wait` sees Complete.
        k.create(&ns, JOB);
        let out = k.ok(&[
            "wait",
            "-n",
            &ns,
            "--for=condition=complete",
            "job/pi",
            "--timeout=60s",
        ]);
        assert_eq!(out.trim(), "job.batch/pi condition met", "1.{minor}");
        let succeeded = k.jsonpath(&["-n", &ns, "job", "pi"], "{.status.succeeded}");
        assert_eq!(succeeded.trim(), "2", "1.{minor}");

        // CronJob: created by kubectl, a Job made from it by hand.
        let out = k.ok(&[
            "create",
            "cronjob",
            "tick",
            "-n",
            &ns,
            "--image=busybox:1.36",
            "--schedule=*/5 * * * *",
            "--",
            "true",
        ]);
        assert_eq!(out.trim(), "cronjob.batch/tick created", "1.{minor}");
        let out = k.ok(&["create", "job", "manual", "-n", &ns, "--from=cronjob/tick"]);
        assert_eq!(out.trim(), "job.batch/manual created", "1.{minor}");
        wait(&k, "the manual Job's pod", || {
            !k.jsonpath(
                &["-n", &ns, "pods", "-l", "job-name=manual"],
                "{.items[*].metadata.name}",
            )
            .trim()
            .is_empty()
        });
    }
}
