#![allow(clippy::unwrap_used)]
//! `kubectl rollout status|history|undo|pause|resume|restart` against the
//! controllers `skiff server` runs, with each kubectl. Pods are made Ready
//! by a stand-in kubelet (no node agent here), except pods labelled
//! `stuck`, whose rollouts must hit their progress deadline.

mod common;

use std::time::Duration;

use common::{Ctl, KUBECTLS};

fn image(k: &Ctl<'_>, ns: &str) -> String {
    k.jsonpath(
        &["-n", ns, "deployment", "web"],
        "{.spec.template.spec.containers[0].image}",
    )
}

fn rollout_status(k: &Ctl<'_>, ns: &str, name: &str) {
    let out = k.ok(&[
        "rollout",
        "status",
        "-n",
        ns,
        &format!("deployment/{name}"),
        "--timeout=60s",
    ]);
    assert!(
        out.contains(&format!("deployment \"{name}\" successfully rolled out")),
        "1.{}: {out}",
        k.minor
    );
}

fn replicaset_count(k: &Ctl<'_>, ns: &str) -> usize {
    k.jsonpath(
        &["-n", ns, "replicasets", "-l", "app=web"],
        "{.items[*].metadata.name}",
    )
    .split_whitespace()
    .count()
}

#[test]
fn kubectl_rollout_subcommands() {
    let c = common::cluster();
    let _kubelet = common::fake_kubelet::start(&c);
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("rollout-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &common::manifests::deployment("web", 2));
        rollout_status(&k, &ns, "web");

        // A new revision with a change cause.
        k.ok(&["set", "image", "-n", &ns, "deployment/web", "c=busybox:2"]);
        k.ok(&[
            "annotate",
            "-n",
            &ns,
            "deployment/web",
            "kubernetes.io/change-cause=to busybox 2",
        ]);
        rollout_status(&k, &ns, "web");
        let history = k.ok(&["rollout", "history", "-n", &ns, "deployment/web"]);
        let rows: Vec<Vec<&str>> = history
            .lines()
            .skip_while(|l| !l.starts_with("REVISION"))
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![vec!["1", "<none>"], vec!["2", "to", "busybox", "2"]],
            "1.{minor}: {history}"
        );
        let one = k.ok(&[
            "rollout",
            "history",
            "-n",
            &ns,
            "deployment/web",
            "--revision=1",
        ]);
        assert!(one.contains("busybox:1.36"), "1.{minor}: {one}");

        // Undo goes back to revision 1's template, as revision 3.
        let undo = k.ok(&["rollout", "undo", "-n", &ns, "deployment/web"]);
        assert_eq!(undo.trim(), "deployment.apps/web rolled back", "1.{minor}");
        rollout_status(&k, &ns, "web");
        assert_eq!(image(&k, &ns), "busybox:1.36");
        let revs = k.jsonpath(
            &["-n", &ns, "deployment", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        );
        assert_eq!(revs.trim(), "3", "1.{minor}");
        k.ok(&[
            "rollout",
            "undo",
            "-n",
            &ns,
            "deployment/web",
            "--to-revision=2",
        ]);
        rollout_status(&k, &ns, "web");
        assert_eq!(image(&k, &ns), "busybox:2");
        assert_eq!(
            replicaset_count(&k, &ns),
            2,
            "1.{minor}: undo reuses ReplicaSets"
        );

        // Paused: the template change waits for resume.
        let paused = k.ok(&["rollout", "pause", "-n", &ns, "deployment/web"]);
        assert_eq!(paused.trim(), "deployment.apps/web paused", "1.{minor}");
        k.ok(&["set", "image", "-n", &ns, "deployment/web", "c=busybox:3"]);
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            replicaset_count(&k, &ns),
            2,
            "1.{minor}: rolled out while paused"
        );
        let resumed = k.ok(&["rollout", "resume", "-n", &ns, "deployment/web"]);
        assert_eq!(resumed.trim(), "deployment.apps/web resumed", "1.{minor}");
        rollout_status(&k, &ns, "web");
        assert_eq!(replicaset_count(&k, &ns), 3, "1.{minor}");

        // Restart: a new ReplicaSet with the restartedAt annotation.
        let restarted = k.ok(&["rollout", "restart", "-n", &ns, "deployment/web"]);
        assert_eq!(
            restarted.trim(),
            "deployment.apps/web restarted",
            "1.{minor}"
        );
        rollout_status(&k, &ns, "web");
        assert_eq!(replicaset_count(&k, &ns), 4, "1.{minor}");

        // A rollout that cannot progress fails `rollout status`.
        let stuck = common::manifests::deployment("stuck", 1)
            .replace(
                "        app: stuck\n    spec:",
                "        app: stuck\n        stuck: \"yes\"\n    spec:",
            )
            .replace(
                "spec:\n  replicas",
                "spec:\n  progressDeadlineSeconds: 2\n  replicas",
            );
        k.create(&ns, &stuck);
        let err = k.fails(&[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/stuck",
            "--timeout=60s",
        ]);
        assert!(
            err.contains("deployment \"stuck\" exceeded its progress deadline"),
            "1.{minor}: {err}"
        );
    }
}
