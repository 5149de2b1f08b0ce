//! The core acceptance scenarios, written once and run against every
//! store (embedded SQLite in their own test files, etcd in `e2e_etcd.rs`).

use std::time::Duration;

use skiff_testkit::Cluster;

use super::{Ctl, KUBECTLS, manifests};

/// How long a `get -w` may take to show an event before the test fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// `create -f` of a multi-document YAML, then `get` in every output
/// format, `get all`, `get -A` and `describe` of each object.
pub fn create_get_describe(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("shop-{minor}");
        let created = k.ok_with_input(
            &["create", "--validate=false", "-f", "-"],
            &manifests::app(&ns),
        );
        assert_eq!(
            lines(&created),
            [
                format!("namespace/{ns} created"),
                "configmap/web-config created".into(),
                "secret/web-secret created".into(),
                "deployment.apps/web created".into(),
                "service/web created".into(),
            ],
            "kubectl 1.{minor} create -f"
        );

        // -o name
        let names = k.ok(&[
            "get",
            "-n",
            &ns,
            "configmap,secret,deployment,service",
            "-o",
            "name",
        ]);
        // The root CA publisher's ConfigMap may or may not be there yet.
        let names: Vec<&str> = lines(&names)
            .into_iter()
            .filter(|n| *n != "configmap/kube-root-ca.crt")
            .collect();
        assert_eq!(
            names,
            [
                "configmap/web-config",
                "secret/web-secret",
                "deployment.apps/web",
                "service/web"
            ],
            "kubectl 1.{minor} get -o name"
        );

        // -o yaml
        let yaml = k.ok(&["get", "-n", &ns, "configmap", "web-config", "-o", "yaml"]);
        for needle in [
            "apiVersion: v1",
            "kind: ConfigMap",
            "greeting: hello",
            "name: web-config",
            &format!("namespace: {ns}"),
            "resourceVersion:",
            "uid:",
            "creationTimestamp:",
        ] {
            assert!(
                yaml.contains(needle),
                "kubectl 1.{minor} -o yaml lacks {needle:?}:\n{yaml}"
            );
        }

        // -o json
        let deploy = k.get_json(&["-n", &ns, "deployment", "web"]);
        assert_eq!(deploy["kind"], "Deployment", "{deploy:#}");
        assert_eq!(deploy["apiVersion"], "apps/v1", "{deploy:#}");
        assert_eq!(deploy["spec"]["replicas"], 2, "{deploy:#}");
        assert_eq!(deploy["metadata"]["generation"], 1, "{deploy:#}");
        assert_eq!(deploy["metadata"]["labels"]["app"], "web", "{deploy:#}");
        assert!(
            deploy["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36),
            "{deploy:#}"
        );
        let rv = deploy["metadata"]["resourceVersion"].as_str().unwrap_or("");
        assert!(rv.parse::<u64>().is_ok(), "resourceVersion {rv:?}");
        let secret = k.get_json(&["-n", &ns, "secret", "web-secret"]);
        assert_eq!(secret["data"]["password"], "czNjcmV0", "{secret:#}");
        assert_eq!(secret["type"], "Opaque", "{secret:#}");

        // -o jsonpath
        let ip = k.jsonpath(&["-n", &ns, "service", "web"], "{.spec.clusterIP}");
        assert!(ip.starts_with("10.43."), "clusterIP {ip:?}");
        let ips = k.jsonpath(&["-n", &ns, "service", "web"], "{.spec.clusterIPs[0]}");
        assert_eq!(ips, ip);
        let greeting = k.jsonpath(&["-n", &ns, "configmap", "web-config"], "{.data.greeting}");
        assert_eq!(greeting, "hello");
        let image = k.jsonpath(
            &["-n", &ns, "deployment", "web"],
            "{.spec.template.spec.containers[0].image}",
        );
        assert_eq!(image, "nginx:1.27");

        // -o wide and the default table: one header, one row per object.
        for (kind, name) in [
            ("configmap", "web-config"),
            ("secret", "web-secret"),
            ("deployment", "web"),
            ("service", "web"),
        ] {
            for format in [None, Some("wide")] {
                let mut args = vec!["get", "-n", &ns, kind, name];
                if let Some(f) = format {
                    args.extend_from_slice(&["-o", f]);
                }
                let out = k.ok(&args);
                let rows = lines(&out);
                assert_eq!(rows.len(), 2, "kubectl 1.{minor} {args:?}:\n{out}");
                assert!(rows[0].starts_with("NAME "), "{out}");
                assert!(rows[1].starts_with(&format!("{name} ")), "{out}");
            }
        }

        // get all: the namespace's workloads and services.
        let all = k.ok(&["get", "all", "-n", &ns, "-o", "name"]);
        let mut all = lines(&all);
        all.sort_unstable();
        // The controllers add the deployment's ReplicaSet and its pods as
        // they get to it.
        assert!(
            all.contains(&"deployment.apps/web") && all.contains(&"service/web"),
            "kubectl 1.{minor} get all: {all:?}"
        );
        assert!(
            all.iter().all(|o| {
                ["deployment.apps/web", "service/web"].contains(o)
                    || o.starts_with("replicaset.apps/web-")
                    || o.starts_with("pod/web-")
            }),
            "kubectl 1.{minor} get all: {all:?}"
        );

        // get -A: every namespace, with a NAMESPACE column.
        let across = k.ok(&["get", "configmaps", "-A"]);
        assert!(across.starts_with("NAMESPACE "), "{across}");
        assert!(
            lines(&across).iter().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&ns.as_str()) && cols.get(1) == Some(&"web-config")
            }),
            "kubectl 1.{minor} get -A:\n{across}"
        );
        let services = k.ok(&[
            "get",
            "services",
            "--all-namespaces",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ]);
        let services = lines(&services);
        assert!(services.contains(&"default/kubernetes"), "{services:?}");
        assert!(
            services.contains(&format!("{ns}/web").as_str()),
            "{services:?}"
        );

        // describe each.
        let describe = |kind: &str, name: &str, needles: &[&str]| {
            let mut args = vec!["describe", kind, name];
            if kind != "namespace" {
                args.extend_from_slice(&["-n", &ns]);
            }
            let out = k.ok(&args);
            // Column widths depend on the longest key: compare words.
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let flat = words(&out);
            for needle in needles {
                assert!(
                    flat.contains(&words(needle)),
                    "kubectl 1.{minor} describe {kind} {name} lacks {needle:?}:\n{out}"
                );
            }
        };
        describe(
            "namespace",
            &ns,
            &[&format!("Name:         {ns}"), "Active"],
        );
        describe(
            "configmap",
            "web-config",
            &["Name:         web-config", "app=web", "greeting:", "hello"],
        );
        describe(
            "secret",
            "web-secret",
            &["Name:         web-secret", "Opaque", "password:  6 bytes"],
        );
        describe(
            "deployment",
            "web",
            &[
                "Name:               web",
                "Selector:           app=web",
                "2 desired",
                "nginx:1.27",
            ],
        );
        describe(
            "service",
            "web",
            &["Name:              web", &ip, "app=web"],
        );
    }
}

/// `delete --cascade=background|orphan|foreground`: the object is gone
/// afterwards, and kubectl says so.
pub fn delete_with_cascade(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("cascade-{minor}");
        k.create_namespace(&ns);
        for cascade in ["background", "orphan", "foreground"] {
            let name = format!("d-{cascade}");
            k.create(&ns, &manifests::deployment(&name, 1));
            let out = k.ok(&[
                "delete",
                "-n",
                &ns,
                "deployment",
                &name,
                &format!("--cascade={cascade}"),
            ]);
            assert_eq!(
                out.trim(),
                format!("deployment.apps \"{name}\" deleted"),
                "kubectl 1.{minor} delete --cascade={cascade}"
            );
            let err = k.fails(&["get", "-n", &ns, "deployment", &name]);
            assert!(
                err.contains(&format!("deployments.apps \"{name}\" not found")),
                "{err}"
            );
        }
        // Deleting a namespace takes its objects along.
        k.create(&ns, &manifests::configmap("left", "a", "1"));
        k.ok(&["delete", "namespace", &ns]);
        let err = k.fails(&["get", "namespace", &ns]);
        assert!(err.contains("NotFound"), "{err}");
        let left = k.ok(&["get", "configmaps", "-n", &ns, "-o", "name"]);
        assert_eq!(left.trim(), "", "objects left in a deleted namespace");
    }
}

/// `kubectl get -w --output-watch-events -o json` sees ADDED, MODIFIED,
/// DELETED, in order, for changes made by another kubectl.
pub fn watch_sees_changes_in_order(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("watch-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("before", "a", "0"));
        let mut w = k.follow(&[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ]);
        // The initial list arrives as ADDED before the watch starts.
        let first = w.next_json_matching(c, EVENT_TIMEOUT, "ADDED before", |e| {
            e["object"]["metadata"]["name"] == "before"
        });
        assert_eq!(first["type"], "ADDED", "{first}");

        let other = Ctl::new(c, if minor == 27 { 33 } else { 27 });
        other.create(&ns, &manifests::configmap("watched", "a", "1"));
        other.ok(&["label", "-n", &ns, "configmap", "watched", "step=two"]);
        other.ok(&["delete", "-n", &ns, "configmap", "watched"]);

        let mut types = Vec::new();
        let mut versions = Vec::new();
        while types.len() < 3 {
            let e = w.next_json_matching(c, EVENT_TIMEOUT, "three events for \"watched\"", |e| {
                e["object"]["metadata"]["name"] == "watched"
            });
            types.push(e["type"].as_str().unwrap_or("").to_owned());
            versions.push(
                e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
            );
            if types.len() == 2 {
                assert_eq!(e["object"]["metadata"]["labels"]["step"], "two", "{e}");
            }
        }
        assert_eq!(
            types,
            ["ADDED", "MODIFIED", "DELETED"],
            "kubectl 1.{minor}: {:?}",
            w.seen
        );
        assert!(
            versions.windows(2).all(|v| v[0] < v[1]),
            "resourceVersions must increase: {versions:?}"
        );
    }
}

/// A watch from an old resourceVersion replays every change since then.
pub fn watch_replays_from_resource_version(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("replay-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("r", "a", "1"));
        let rv = k.jsonpath(
            &["-n", &ns, "configmap", "r"],
            "{.metadata.resourceVersion}",
        );
        k.ok(&["annotate", "-n", &ns, "configmap", "r", "n=1"]);
        k.create(&ns, &manifests::configmap("s", "a", "1"));
        k.ok(&["delete", "-n", &ns, "configmap", "r"]);
        let path = format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2"
        );
        let out = k.ok(&["get", "--raw", &path]);
        let events: Vec<(String, String)> = lines(&out)
            .iter()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|err| panic!("watch line is not JSON ({err}): {l}"));
                (
                    e["type"].as_str().unwrap_or("").to_owned(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            // The root CA publisher adds its ConfigMap to the new
            // namespace whenever it gets to it.
            .filter(|(_, name)| name != "kube-root-ca.crt")
            .collect();
        let expected: Vec<(String, String)> = [("MODIFIED", "r"), ("ADDED", "s"), ("DELETED", "r")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            events, expected,
            "kubectl 1.{minor} get --raw {path}:\n{out}"
        );
    }
}

/// label, annotate, scale, replace, wait --for=jsonpath, wait --for=delete,
/// delete --grace-period.
pub fn everyday_verbs(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("verbs-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("cfg", "greeting", "hello"));
        k.create(&ns, &manifests::deployment("app", 1));

        // label / annotate (and removing them again)
        let out = k.ok(&[
            "label",
            "-n",
            &ns,
            "configmap",
            "cfg",
            "tier=front",
            "env=dev",
        ]);
        assert_eq!(out.trim(), "configmap/cfg labeled");
        k.ok(&["annotate", "-n", &ns, "configmap", "cfg", "note=hi"]);
        let cm = k.get_json(&["-n", &ns, "configmap", "cfg"]);
        assert_eq!(cm["metadata"]["labels"]["tier"], "front", "{cm:#}");
        assert_eq!(cm["metadata"]["labels"]["env"], "dev", "{cm:#}");
        assert_eq!(cm["metadata"]["annotations"]["note"], "hi", "{cm:#}");
        k.ok(&["label", "-n", &ns, "configmap", "cfg", "env-"]);
        k.ok(&[
            "label",
            "-n",
            &ns,
            "configmap",
            "cfg",
            "tier=back",
            "--overwrite",
        ]);
        let labels = k.jsonpath(&["-n", &ns, "configmap", "cfg"], "{.metadata.labels}");
        assert_eq!(labels, r#"{"tier":"back"}"#);
        let err = k.fails(&["label", "-n", &ns, "configmap", "cfg", "tier=again"]);
        assert!(err.contains("already has a value (back)"), "{err}");
        let selected = k.ok(&[
            "get",
            "-n",
            &ns,
            "configmaps",
            "-l",
            "tier=back",
            "-o",
            "name",
        ]);
        assert_eq!(selected.trim(), "configmap/cfg");
        let none = k.ok(&[
            "get",
            "-n",
            &ns,
            "configmaps",
            "-l",
            "tier,tier!=back",
            "-o",
            "name",
        ]);
        assert_eq!(none.trim(), "");

        // scale (the scale subresource), then wait for the spec to show it.
        let out = k.ok(&["scale", "-n", &ns, "deployment", "app", "--replicas=3"]);
        assert_eq!(out.trim(), "deployment.apps/app scaled");
        let out = k.ok(&[
            "wait",
            "-n",
            &ns,
            "deployment/app",
            "--for=jsonpath={.spec.replicas}=3",
            "--timeout=20s",
        ]);
        assert_eq!(out.trim(), "deployment.apps/app condition met");
        let generation = k.jsonpath(&["-n", &ns, "deployment", "app"], "{.metadata.generation}");
        assert_eq!(
            generation, "2",
            "scaling changes the spec: generation bumps"
        );
        // A precondition on the current size.
        let err = k.fails(&[
            "scale",
            "-n",
            &ns,
            "deployment",
            "app",
            "--current-replicas=1",
            "--replicas=5",
        ]);
        assert!(err.contains("Expected replicas to be 1, was 3"), "{err}");

        // replace: the whole object, from its own YAML.
        let yaml = k.ok(&["get", "-n", &ns, "configmap", "cfg", "-o", "yaml"]);
        let out = k.ok_with_input(
            &["replace", "--validate=false", "-f", "-"],
            &yaml.replace("greeting: hello", "greeting: bye"),
        );
        assert_eq!(out.trim(), "configmap/cfg replaced");
        let out = k.ok(&[
            "wait",
            "-n",
            &ns,
            "configmap/cfg",
            "--for=jsonpath={.data.greeting}=bye",
            "--timeout=20s",
        ]);
        assert_eq!(out.trim(), "configmap/cfg condition met");
        // ... replace without a resourceVersion is unconditional.
        let out = k.ok_with_input(
            &["replace", "--validate=false", "-n", &ns, "-f", "-"],
            &manifests::configmap("cfg", "greeting", "again"),
        );
        assert_eq!(out.trim(), "configmap/cfg replaced");
        let greeting = k.jsonpath(&["-n", &ns, "configmap", "cfg"], "{.data.greeting}");
        assert_eq!(greeting, "again");

        // wait --for=delete, in the background while another kubectl deletes
        // (once the waiter watches: `-v=6` logs its requests on stderr).
        let mut waiter = k.follow(&[
            "wait",
            "-v=6",
            "-n",
            &ns,
            "configmap/cfg",
            "--for=delete",
            "--timeout=30s",
        ]);
        waiter.wait_stderr(c, "watch=true", Duration::from_secs(30));
        k.ok(&["delete", "-n", &ns, "configmap", "cfg"]);
        let line = waiter.next_line(Duration::from_secs(40));
        assert_eq!(
            line.as_deref(),
            Some("configmap/cfg condition met"),
            "kubectl 1.{minor} wait --for=delete; stderr: {}",
            waiter.stderr()
        );
        // wait --for=delete of something already gone succeeds at once.
        k.ok(&[
            "wait",
            "-n",
            &ns,
            "configmap/cfg",
            "--for=delete",
            "--timeout=5s",
        ]);

        // delete --grace-period: an unscheduled pod goes at once (upstream
        // too), and --grace-period=0 --force removes any pod.
        k.create(&ns, &manifests::pod("unscheduled"));
        let out = k.ok(&[
            "delete",
            "-n",
            &ns,
            "pod",
            "unscheduled",
            "--grace-period=30",
        ]);
        assert_eq!(out.trim(), "pod \"unscheduled\" deleted");
        let err = k.fails(&["get", "-n", &ns, "pod", "unscheduled"]);
        assert!(err.contains("not found"), "{err}");
        k.create(&ns, &manifests::pod_on_node("bound", "node-a"));
        let out = k.output(&[
            "delete",
            "-n",
            &ns,
            "pod",
            "bound",
            "--grace-period=0",
            "--force",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "pod \"bound\" force deleted");
        let err = k.fails(&["get", "-n", &ns, "pod", "bound"]);
        assert!(err.contains("not found"), "{err}");
    }
}

/// Two `kubectl replace` at once with the same resourceVersion: exactly
/// one wins, the other is told the object was modified (409 Conflict).
pub fn concurrent_replace_conflicts(c: &Cluster) {
    for minor in KUBECTLS {
        let k = Ctl::new(c, minor);
        let ns = format!("conflict-{minor}");
        k.create_namespace(&ns);
        k.create(&ns, &manifests::configmap("race", "winner", "none"));
        let rv = k.jsonpath(
            &["-n", &ns, "configmap", "race"],
            "{.metadata.resourceVersion}",
        );
        let body = |who: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: race\n  namespace: {ns}\n  resourceVersion: \"{rv}\"\ndata:\n  winner: {who}\n"
            )
        };
        let (a, b) = std::thread::scope(|s| {
            let ka = Ctl::new(c, minor);
            let kb = Ctl::new(c, minor);
            let (ba, bb) = (body("a"), body("b"));
            let ha = s.spawn(move || {
                ka.output_with_input(&["replace", "--validate=false", "-f", "-"], &ba)
            });
            let hb = s.spawn(move || {
                kb.output_with_input(&["replace", "--validate=false", "-f", "-"], &bb)
            });
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let results = [("a", &a), ("b", &b)];
        let winners: Vec<&str> = results
            .iter()
            .filter(|(_, o)| o.status.success())
            .map(|(w, _)| *w)
            .collect();
        let report = || {
            results
                .iter()
                .map(|(w, o)| {
                    format!(
                        "{w}: {} {} {}",
                        o.status,
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            winners.len(),
            1,
            "exactly one replace must win:\n{}",
            report()
        );
        let loser = results.iter().find(|(_, o)| !o.status.success()).unwrap();
        let err = String::from_utf8_lossy(&loser.1.stderr);
        assert!(
            err.contains("Error from server (Conflict)")
                && err.contains("the object has been modified; please apply your changes to the latest version and try again"),
            "the loser must see a 409 Conflict:\n{}",
            report()
        );
        let stored = k.jsonpath(&["-n", &ns, "configmap", "race"], "{.data.winner}");
        assert_eq!(stored, winners[0], "the stored object is the winner's");
    }
}
