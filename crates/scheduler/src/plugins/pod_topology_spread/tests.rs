//! Filter verdicts and scores against hand-computed expectations,
//! including upstream's tricky cases (minDomains, missing labels, node
//! inclusion policies, matchLabelKeys, system defaults).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::framework::{Code, CycleState, PodInfo, Snapshot};
use crate::plugins::testing::{node, pod, scores, with_pods};

const ZONE: &str = LABEL_ZONE;

fn plugin() -> PodTopologySpread {
    PodTopologySpread::new(Args::default()).unwrap()
}

fn labeled(name: &str, labels: Value, spec: Value) -> Pod {
    let mut p = pod(name, spec);
    p.metadata.labels = serde_json::from_value(labels).unwrap();
    p
}

/// `n` pods labelled `foo: bar`.
fn foo_pods(prefix: &str, n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| labeled(&format!("{prefix}-{i}"), json!({"foo": "bar"}), json!({})))
        .collect()
}

fn zone_node(name: &str, zone: &str, pods: Vec<Pod>) -> NodeInfo {
    with_pods(
        node(name, json!({"metadata": {"labels": {ZONE: zone}}})),
        pods,
    )
}

fn constraint(key: &str, max_skew: i32, when: &str, extra: Value) -> Value {
    let mut c = json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"foo": "bar"}}});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// An incoming `foo: bar` pod with these constraints (and `spec`).
fn incoming(constraints: Vec<Value>, spec: Value) -> Pod {
    let mut p = labeled("incoming", json!({"foo": "bar"}), spec);
    if let Some(s) = p.spec.as_mut() {
        s.topology_spread_constraints = Some(serde_json::from_value(json!(constraints)).unwrap());
    }
    p
}

/// PreFilter over all nodes, then each node's Filter verdict:
/// `None` passes, else the code and reason.
fn verdicts(pl: &PodTopologySpread, p: &Pod, nodes: Vec<NodeInfo>) -> Vec<Verdict> {
    let snapshot = Snapshot::from_nodes(nodes);
    let mut state = CycleState::default();
    match pl.pre_filter(&mut state, p, &snapshot) {
        Err(s) if s.is_skip() => return vec![None; snapshot.len()],
        Err(s) => panic!("pre_filter: {s:?}"),
        Ok(_) => {}
    }
    snapshot
        .nodes
        .iter()
        .map(|n| {
            let s = pl.filter(&state, p, n);
            (!s.is_success()).then(|| (s.code, s.reasons.join(", ")))
        })
        .collect()
}

/// `None` passes, else the code and reasons.
type Verdict = Option<(Code, String)>;

fn skew() -> Verdict {
    Some((
        Code::Unschedulable,
        ERR_REASON_CONSTRAINTS_NOT_MATCH.to_owned(),
    ))
}

fn missing() -> Verdict {
    Some((
        Code::UnschedulableAndUnresolvable,
        ERR_REASON_NODE_LABEL_NOT_MATCH.to_owned(),
    ))
}

#[test]
fn filter_table() {
    let hard = |extra: Value| constraint(ZONE, 1, "DoNotSchedule", extra);
    let cases: Vec<(&str, Pod, Vec<NodeInfo>, Vec<Verdict>)> = vec![
        (
            "no pods yet: every zone fits",
            incoming(vec![hard(json!({}))], json!({})),
            vec![zone_node("a", "z1", vec![]), zone_node("b", "z2", vec![])],
            vec![None, None],
        ),
        (
            // z1 has 3, z2 has 1: z1 → 3+1-1 = 3 > 1; z2 → 1+1-1 = 1.
            "the crowded zone is refused",
            incoming(vec![hard(json!({}))], json!({})),
            vec![
                zone_node("a", "z1", foo_pods("a", 2)),
                zone_node("b", "z1", foo_pods("b", 1)),
                zone_node("c", "z2", foo_pods("c", 1)),
            ],
            vec![skew(), skew(), None],
        ),
        (
            "a node without the topology key is unresolvable",
            incoming(vec![hard(json!({}))], json!({})),
            vec![zone_node("a", "z1", vec![]), node("nolabel", json!({}))],
            vec![None, missing()],
        ),
        (
            // The incoming pod does not match its own selector: 2+0-0 > 1.
            "no self match",
            labeled(
                "incoming",
                json!({"other": "x"}),
                json!({"topologySpreadConstraints": [hard(json!({}))]}),
            ),
            vec![
                zone_node("a", "z1", foo_pods("a", 2)),
                zone_node("b", "z2", vec![]),
            ],
            vec![skew(), None],
        ),
        (
            // 2 domains < minDomains 3: the global minimum is 0, so
            // 1+1-0 = 2 > 1 everywhere.
            "minDomains above the domain count",
            incoming(vec![hard(json!({"minDomains": 3}))], json!({})),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
            ],
            vec![skew(), skew()],
        ),
        (
            "minDomains met",
            incoming(vec![hard(json!({"minDomains": 2}))], json!({})),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
            ],
            vec![None, None],
        ),
        (
            // nodeAffinityPolicy Honor (default): z3 (no env=prod) is not
            // a domain, the minimum is 1 and z1/z2 take 1+1-1 = 1.
            "nodeAffinityPolicy Honor leaves out nodes the pod cannot use",
            incoming(
                vec![hard(json!({}))],
                json!({"nodeSelector": {"env": "prod"}}),
            ),
            vec![
                prod(zone_node("a", "z1", foo_pods("a", 1))),
                prod(zone_node("b", "z2", foo_pods("b", 1))),
                zone_node("c", "z3", vec![]),
            ],
            vec![None, None, None],
        ),
        (
            // Ignore: z3 counts with 0, so z1/z2 take 1+1-0 = 2 > 1.
            "nodeAffinityPolicy Ignore counts them",
            incoming(
                vec![hard(json!({"nodeAffinityPolicy": "Ignore"}))],
                json!({"nodeSelector": {"env": "prod"}}),
            ),
            vec![
                prod(zone_node("a", "z1", foo_pods("a", 1))),
                prod(zone_node("b", "z2", foo_pods("b", 1))),
                zone_node("c", "z3", vec![]),
            ],
            vec![skew(), skew(), None],
        ),
        (
            // nodeTaintsPolicy Ignore (default): the tainted empty zone
            // is the minimum (0).
            "nodeTaintsPolicy Ignore counts tainted nodes",
            incoming(vec![hard(json!({}))], json!({})),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
                tainted(zone_node("c", "z3", vec![])),
            ],
            vec![skew(), skew(), None],
        ),
        (
            "nodeTaintsPolicy Honor leaves out untolerated taints",
            incoming(vec![hard(json!({"nodeTaintsPolicy": "Honor"}))], json!({})),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
                tainted(zone_node("c", "z3", vec![])),
            ],
            vec![None, None, None],
        ),
        (
            "nodeTaintsPolicy Honor keeps tolerated taints",
            incoming(
                vec![hard(json!({"nodeTaintsPolicy": "Honor"}))],
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
            ),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
                tainted(zone_node("c", "z3", vec![])),
            ],
            vec![skew(), skew(), None],
        ),
        (
            // Terminating pods and pods of other namespaces do not count.
            "terminating and foreign pods are not counted",
            incoming(vec![hard(json!({}))], json!({})),
            vec![
                zone_node(
                    "a",
                    "z1",
                    vec![terminating("t1"), terminating("t2"), foreign("f1")],
                ),
                zone_node("b", "z2", vec![]),
            ],
            vec![None, None],
        ),
        (
            // matchLabelKeys narrows to version=v2: z1's v1 pods do not
            // count.
            "matchLabelKeys",
            {
                let mut p = incoming(
                    vec![hard(json!({"matchLabelKeys": ["version"]}))],
                    json!({}),
                );
                p.metadata.labels =
                    serde_json::from_value(json!({"foo": "bar", "version": "v2"})).unwrap();
                p
            },
            vec![
                zone_node(
                    "a",
                    "z1",
                    vec![
                        labeled("v1-0", json!({"foo": "bar", "version": "v1"}), json!({})),
                        labeled("v1-1", json!({"foo": "bar", "version": "v1"}), json!({})),
                    ],
                ),
                zone_node("b", "z2", vec![]),
            ],
            vec![None, None],
        ),
        (
            "without matchLabelKeys they count",
            {
                let mut p = incoming(vec![hard(json!({}))], json!({}));
                p.metadata.labels =
                    serde_json::from_value(json!({"foo": "bar", "version": "v2"})).unwrap();
                p
            },
            vec![
                zone_node(
                    "a",
                    "z1",
                    vec![
                        labeled("v1-0", json!({"foo": "bar", "version": "v1"}), json!({})),
                        labeled("v1-1", json!({"foo": "bar", "version": "v1"}), json!({})),
                    ],
                ),
                zone_node("b", "z2", vec![]),
            ],
            vec![skew(), None],
        ),
        (
            // Zone and hostname together: a is fine by zone (z1: 1, z2:
            // 1) but has 1 pod while c has 0 → 1+1-0 = 2 > 1 by hostname.
            "two constraints: the hostname one refuses",
            incoming(
                vec![
                    hard(json!({})),
                    constraint(LABEL_HOSTNAME, 1, "DoNotSchedule", json!({})),
                ],
                json!({}),
            ),
            vec![
                zone_node("a", "z1", foo_pods("a", 1)),
                zone_node("b", "z2", foo_pods("b", 1)),
                zone_node("c", "z2", vec![]),
            ],
            // a: zone 1+1-1 = 1 ok, host 2 > 1; b: zone 1+1-1 ok (z2 = 1),
            // host 2 > 1; c: zone ok, host 0+1-0 = 1.
            vec![skew(), skew(), None],
        ),
        (
            "soft constraints only: PreFilter skips",
            incoming(
                vec![constraint(ZONE, 1, "ScheduleAnyway", json!({}))],
                json!({}),
            ),
            vec![
                zone_node("a", "z1", foo_pods("a", 5)),
                node("nolabel", json!({})),
            ],
            vec![None, None],
        ),
        (
            "a null labelSelector matches nothing (not even the pod)",
            incoming(
                vec![
                    json!({"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}),
                ],
                json!({}),
            ),
            vec![
                zone_node("a", "z1", foo_pods("a", 5)),
                zone_node("b", "z2", vec![]),
            ],
            vec![None, None],
        ),
    ];
    let pl = plugin();
    for (name, p, nodes, want) in cases {
        assert_eq!(verdicts(&pl, &p, nodes), want, "{name}");
    }
}

fn prod(mut n: NodeInfo) -> NodeInfo {
    let mut node = (*n.node).clone();
    node.metadata
        .labels
        .get_or_insert_default()
        .insert("env".into(), "prod".into());
    n.set_node(Arc::new(node));
    n
}

fn tainted(mut n: NodeInfo) -> NodeInfo {
    let mut node = (*n.node).clone();
    node.spec.get_or_insert_default().taints = Some(
        serde_json::from_value(json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]))
            .unwrap(),
    );
    n.set_node(Arc::new(node));
    n
}

fn terminating(name: &str) -> Pod {
    let mut p = labeled(name, json!({"foo": "bar"}), json!({}));
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::UNIX_EPOCH,
    ));
    p
}

fn foreign(name: &str) -> Pod {
    let mut p = labeled(name, json!({"foo": "bar"}), json!({}));
    p.metadata.namespace = Some("other".into());
    p
}

#[test]
fn add_and_remove_pod_update_the_counts() {
    let pl = plugin();
    let p = incoming(
        vec![constraint(ZONE, 1, "DoNotSchedule", json!({}))],
        json!({}),
    );
    let snapshot = Snapshot::from_nodes(vec![
        zone_node("a", "z1", foo_pods("a", 1)),
        zone_node("b", "z2", vec![]),
    ]);
    let mut state = CycleState::default();
    pl.pre_filter(&mut state, &p, &snapshot).unwrap();
    let (a, b) = (&snapshot.nodes[0], &snapshot.nodes[1]);
    // z1 = 1, z2 = 0: a refuses (1+1-0), b fits.
    assert!(!pl.filter(&state, &p, a).is_success());
    assert!(pl.filter(&state, &p, b).is_success());

    // A nominated pod on b: z2 = 1 too, both fit (1+1-1).
    let mut with = state.clone();
    let added = PodInfo::new(Arc::new(foo_pods("nominated", 1).remove(0)));
    assert!(pl.add_pod(&mut with, &p, &added, b).is_success());
    assert!(pl.filter(&with, &p, a).is_success());
    assert!(pl.filter(&with, &p, b).is_success());
    // The original state is untouched (copy on write).
    assert!(!pl.filter(&state, &p, a).is_success());

    // Preemption removing a's pod: z1 = 0, z2 = 0.
    let removed = a.pods[0].clone();
    assert!(pl.remove_pod(&mut state, &p, &removed, a).is_success());
    assert!(pl.filter(&state, &p, a).is_success());

    // A pod of another namespace changes nothing.
    let mut other = state.clone();
    let foreign = PodInfo::new(Arc::new(foreign("f")));
    assert!(pl.add_pod(&mut other, &p, &foreign, a).is_success());
    assert!(pl.add_pod(&mut other, &p, &foreign, a).is_success());
    assert!(pl.filter(&other, &p, a).is_success());
}

#[test]
fn scores_table() {
    let soft = |key: &str, skew: i32| constraint(key, skew, "ScheduleAnyway", json!({}));
    let three = || {
        vec![
            zone_node("a", "z1", foo_pods("a", 2)),
            zone_node("b", "z1", foo_pods("b", 1)),
            zone_node("c", "z2", vec![]),
        ]
    };
    let cases: Vec<(&str, Pod, Vec<NodeInfo>, Vec<i64>)> = vec![
        (
            // 2 zones: weight ln 4 = 1.386; z1 = 3 → a, b: round(4.16) = 4;
            // c: 0. Normalized 100·(4+0−s)/4.
            "zone",
            incoming(vec![soft(ZONE, 1)], json!({})),
            three(),
            vec![0, 0, 100],
        ),
        (
            // 3 hosts: weight ln 5 = 1.609; a: round(3.22) = 3, b: 2, c: 0.
            "hostname",
            incoming(vec![soft(LABEL_HOSTNAME, 1)], json!({})),
            three(),
            vec![0, 33, 100],
        ),
        (
            // maxSkew 2 adds 1 to each: 4, 3, 1; 100·(5−s)/4.
            "hostname maxSkew 2",
            incoming(vec![soft(LABEL_HOSTNAME, 2)], json!({})),
            three(),
            vec![25, 50, 100],
        ),
        (
            // d lacks the zone key: ignored (0); the others as "zone".
            "a node without the key scores 0",
            incoming(vec![soft(ZONE, 1)], json!({})),
            {
                let mut n = three();
                n.push(node("d", json!({})));
                n
            },
            vec![0, 0, 100, 0],
        ),
        (
            "no matching pods anywhere: all 100",
            incoming(vec![soft(ZONE, 1)], json!({})),
            vec![zone_node("a", "z1", vec![]), zone_node("b", "z2", vec![])],
            vec![100, 100],
        ),
        (
            "hard constraints only: PreScore skips",
            incoming(
                vec![constraint(ZONE, 1, "DoNotSchedule", json!({}))],
                json!({}),
            ),
            three(),
            vec![0, 0, 0],
        ),
        (
            "no constraints and no controller: no defaults",
            labeled("incoming", json!({"foo": "bar"}), json!({})),
            three(),
            vec![0, 0, 0],
        ),
    ];
    let pl = plugin();
    for (name, p, nodes, want) in cases {
        assert_eq!(scores(&pl, &p, nodes), want, "{name}");
    }
}

fn owned(mut p: Pod, kind: &str, api_version: &str) -> Pod {
    p.metadata.owner_references = Some(
        serde_json::from_value(json!([{"apiVersion": api_version, "kind": kind,
            "name": "owner", "uid": "u1", "controller": true}]))
        .unwrap(),
    );
    p
}

#[test]
fn system_default_constraints_spread_a_controllers_pods() {
    // Labels app=web; the ReplicaSet's pods carry pod-template-hash too.
    let web = |name: &str| {
        owned(
            labeled(
                name,
                json!({"app": "web", "pod-template-hash": "h"}),
                json!({}),
            ),
            "ReplicaSet",
            "apps/v1",
        )
    };
    let nodes = vec![
        zone_node("a", "z1", vec![web("w0")]),
        zone_node("b", "z1", vec![]),
        node("c", json!({})),
    ];
    // Hostname (maxSkew 3, 3 hosts: ln 5) and zone (maxSkew 5; domains z1
    // and "" (c has no zone): ln 4). a: 1·1.609+2 + 1·1.386+4 = 9.0 → 9;
    // b: 2 + 5.386 → 7; c (no zone, still scored by hostname): 2.
    // Normalized 100·(11−s)/9.
    assert_eq!(
        scores(&plugin(), &web("incoming"), nodes.clone()),
        vec![22, 44, 100]
    );
    // Per-pod StatefulSet labels are left out of the selector: pods of the
    // same set still count.
    let member = |name: &str| {
        owned(
            labeled(
                name,
                json!({"app": "db", "statefulset.kubernetes.io/pod-name": name,
                       "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": name}),
                json!({}),
            ),
            "StatefulSet",
            "apps/v1",
        )
    };
    let nodes = vec![
        zone_node("a", "z1", vec![member("db-0")]),
        zone_node("b", "z1", vec![]),
        node("c", json!({})),
    ];
    assert_eq!(scores(&plugin(), &member("db-1"), nodes), vec![22, 44, 100]);
    // A Job's pod gets no defaults (upstream only looks at RS/SS/RC and
    // Services).
    let job = owned(
        labeled("j", json!({"app": "web"}), json!({})),
        "Job",
        "batch/v1",
    );
    let nodes = vec![
        zone_node("a", "z1", vec![web("w0")]),
        zone_node("b", "z1", vec![]),
    ];
    assert_eq!(scores(&plugin(), &job, nodes), vec![0, 0]);
}

#[test]
fn list_defaulting_applies_hard_default_constraints() {
    let pl = PodTopologySpread::new(
        serde_json::from_value(json!({
            "defaultingType": "List",
            "defaultConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]
        }))
        .unwrap(),
    )
    .unwrap();
    let rc = |name: &str| {
        owned(
            labeled(name, json!({"app": "x"}), json!({})),
            "ReplicationController",
            "v1",
        )
    };
    let nodes = vec![
        zone_node("a", "z1", vec![rc("r0")]),
        zone_node("b", "z2", vec![]),
        node("c", json!({})),
    ];
    assert_eq!(
        verdicts(&pl, &rc("incoming"), nodes),
        vec![skew(), None, missing()]
    );
}

#[test]
fn args_are_validated() {
    let bad = [
        json!({"defaultingType": "System", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}),
        json!({"defaultingType": "Sometimes"}),
        json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 0, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}),
        json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "Maybe"}]}),
        json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"a": "b"}}}]}),
        json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 2, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}),
    ];
    for args in bad {
        let parsed: Args = serde_json::from_value(args.clone()).unwrap();
        assert!(PodTopologySpread::new(parsed).is_err(), "{args}");
    }
    // Through the registry, with and without args.
    assert!(crate::plugins::new_plugin(NAME, None).is_ok());
    assert!(crate::plugins::new_plugin(NAME, Some(&json!({"defaultingType": "List"}))).is_ok());
}

/// The benchmark shape (5,000 nodes, 10,000 pods): one attempt's
/// PreFilter, Filter on every node, PreScore and Score on 500 nodes.
/// `cargo test -p skiff-scheduler --lib scale -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn scale_5000_nodes_10000_pods() {
    let nodes: Vec<NodeInfo> = (0..5000)
        .map(|i| {
            let pods = (0..2)
                .map(|j| {
                    owned(
                        labeled(
                            &format!("p{i}-{j}"),
                            json!({"app": format!("app-{}", (i * 2 + j) % 50)}),
                            json!({}),
                        ),
                        "ReplicaSet",
                        "apps/v1",
                    )
                })
                .collect();
            zone_node(&format!("n{i:04}"), &format!("z{}", i % 10), pods)
        })
        .collect();
    let snapshot = Snapshot::from_nodes(nodes);
    let pl = plugin();
    let mut p = labeled(
        "incoming",
        json!({"app": "app-7"}),
        json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "app-7"}}},
            {"maxSkew": 1, "topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "app-7"}}}]}),
    );
    let start = std::time::Instant::now();
    let mut state = CycleState::default();
    pl.pre_filter(&mut state, &p, &snapshot).unwrap();
    let pre_filter = start.elapsed();
    let start = std::time::Instant::now();
    let fits = snapshot
        .nodes
        .iter()
        .filter(|n| pl.filter(&state, &p, n).is_success())
        .count();
    let filter = start.elapsed();
    let start = std::time::Instant::now();
    let feasible = &snapshot.nodes[..500];
    assert!(
        pl.pre_score(&mut state, &p, &snapshot, feasible)
            .is_success()
    );
    let mut out: Vec<NodeScore> = feasible
        .iter()
        .map(|n| NodeScore {
            name: n.name().to_owned(),
            score: pl.score(&state, &p, n).unwrap(),
        })
        .collect();
    pl.normalize_score(&state, &p, &mut out);
    let score = start.elapsed();
    eprintln!(
        "PodTopologySpread: pre_filter {pre_filter:?}, filter×5000 {filter:?} ({fits} fit), pre_score+score×500 {score:?}"
    );
    // System defaults (no constraints of its own, controlled by a RS).
    p.spec.as_mut().unwrap().topology_spread_constraints = None;
    let p = owned(p, "ReplicaSet", "apps/v1");
    let start = std::time::Instant::now();
    let mut state = CycleState::default();
    assert!(
        pl.pre_score(&mut state, &p, &snapshot, feasible)
            .is_success()
    );
    for n in feasible {
        pl.score(&state, &p, n).unwrap();
    }
    eprintln!(
        "PodTopologySpread system defaults: pre_score+score×500 {:?}",
        start.elapsed()
    );
}

/// Counts remembered between attempts follow the nodes' changes: one
/// plugin (one memo), attempts on snapshots before and after pods move.
#[test]
fn remembered_counts_follow_node_changes() {
    let pl = plugin();
    let c = constraint(ZONE, 1, "DoNotSchedule", json!({}));
    let p = incoming(vec![c], json!({}));
    let counts = |snapshot: &Snapshot| {
        let mut state = CycleState::default();
        pl.pre_filter(&mut state, &p, snapshot).unwrap();
        let s = state
            .read::<filtering::PreFilterState>(filtering::STATE_KEY)
            .unwrap();
        let mut v: Vec<(String, i64)> = s.counts[0].iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    };
    let a = zone_node("a", "z1", foo_pods("a", 2));
    let b = zone_node("b", "z2", foo_pods("b", 1));
    let before = Snapshot::from_nodes(vec![a.clone(), b.clone()]);
    assert_eq!(counts(&before), [("z1".into(), 2), ("z2".into(), 1)]);
    // The same nodes again: the remembered counts.
    assert_eq!(counts(&before), [("z1".into(), 2), ("z2".into(), 1)]);
    // b gains two pods, a loses one: both recounted.
    let mut b2 = b.clone();
    for extra in foo_pods("b-new", 2) {
        b2.add_pod(Arc::new(PodInfo::new(Arc::new(extra))));
    }
    let mut a2 = a.clone();
    assert!(a2.remove_pod("default/a-0"));
    let after = Snapshot::from_nodes(vec![a2, b2]);
    assert_eq!(counts(&after), [("z1".into(), 1), ("z2".into(), 3)]);
}
