//! Filter verdicts and scores against hand-computed expectations:
//! affinity (first pod of a group), anti-affinity, the symmetry of
//! existing pods' anti-affinity, namespaces and namespaceSelector,
//! AddPod/RemovePod, preferred terms both ways and hardPodAffinityWeight.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::framework::{Code, CycleState, PodInfo, Snapshot};
use crate::plugins::testing::{node, pod, with_pods};

const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

fn plugin() -> InterPodAffinity {
    InterPodAffinity::new(Args::default()).unwrap()
}

fn labeled(name: &str, labels: Value, spec: Value) -> Pod {
    let mut p = pod(name, spec);
    p.metadata.labels = serde_json::from_value(labels).unwrap();
    p
}

fn app(name: &str, app: &str) -> Pod {
    labeled(name, json!({"app": app}), json!({}))
}

fn in_ns(mut p: Pod, ns: &str) -> Pod {
    p.metadata.namespace = Some(ns.to_owned());
    p
}

fn zone_node(name: &str, zone: &str, pods: Vec<Pod>) -> NodeInfo {
    with_pods(
        node(name, json!({"metadata": {"labels": {ZONE: zone}}})),
        pods,
    )
}

/// A required term: pods with `app` over `key` (plus `extra` fields).
fn term(app: &str, key: &str, extra: Value) -> Value {
    let mut t = json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key});
    if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            t.insert(k.clone(), v.clone());
        }
    }
    t
}

fn required(kind: &str, terms: Vec<Value>) -> Value {
    json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}})
}

fn preferred(kind: &str, terms: Vec<(i32, Value)>) -> Value {
    let terms: Vec<Value> = terms
        .into_iter()
        .map(|(w, t)| json!({"weight": w, "podAffinityTerm": t}))
        .collect();
    json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": terms}}})
}

/// a, b in z1; c in z2.
fn three(a: Vec<Pod>, b: Vec<Pod>, c: Vec<Pod>) -> Snapshot {
    Snapshot::from_nodes(vec![
        zone_node("a", "z1", a),
        zone_node("b", "z1", b),
        zone_node("c", "z2", c),
    ])
}

fn with_namespaces(mut s: Snapshot, ns: Value) -> Snapshot {
    let map: HashMap<String, std::collections::BTreeMap<String, String>> =
        serde_json::from_value(ns).unwrap();
    s.namespaces = Arc::new(map);
    s
}

type Verdict = Option<(Code, &'static str)>;

fn verdicts(pl: &InterPodAffinity, p: &Pod, snapshot: &Snapshot) -> Vec<Verdict> {
    let mut state = CycleState::default();
    match pl.pre_filter(&mut state, p, snapshot) {
        Err(s) if s.is_skip() => return vec![None; snapshot.len()],
        Err(s) => panic!("pre_filter: {s:?}"),
        Ok(_) => {}
    }
    snapshot
        .nodes
        .iter()
        .map(|n| verdict(&pl.filter(&state, p, n)))
        .collect()
}

fn verdict(s: &Status) -> Verdict {
    if s.is_success() {
        return None;
    }
    let reason = [
        ERR_REASON_AFFINITY_RULES_NOT_MATCH,
        ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
        ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH,
    ]
    .into_iter()
    .find(|r| s.reasons == [*r])
    .unwrap_or("unexpected reason");
    Some((s.code, reason))
}

const AFF: Verdict = Some((
    Code::UnschedulableAndUnresolvable,
    ERR_REASON_AFFINITY_RULES_NOT_MATCH,
));
const ANTI: Verdict = Some((
    Code::Unschedulable,
    ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
));
const EXISTING: Verdict = Some((
    Code::Unschedulable,
    ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH,
));

#[test]
fn filter_table() {
    let aff = |terms| required("podAffinity", terms);
    let anti = |terms| required("podAntiAffinity", terms);
    let cases: Vec<(&str, Pod, Snapshot, Vec<Verdict>)> = vec![
        (
            "no affinity anywhere: PreFilter skips",
            app("p", "web"),
            three(vec![app("db", "db")], vec![], vec![]),
            vec![None, None, None],
        ),
        (
            "affinity to db's zone",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("db", ZONE, json!({}))]),
            ),
            three(vec![app("db", "db")], vec![], vec![]),
            vec![None, None, AFF],
        ),
        (
            "affinity by hostname",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("db", HOST, json!({}))]),
            ),
            three(vec![app("db", "db")], vec![], vec![]),
            vec![None, AFF, AFF],
        ),
        (
            // Nobody matches, but the pod matches its own term: the first
            // pod of the group goes anywhere with the key.
            "first pod of a group",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("web", ZONE, json!({}))]),
            ),
            Snapshot::from_nodes(vec![
                zone_node("a", "z1", vec![app("db", "db")]),
                node("nozone", json!({})),
            ]),
            vec![None, AFF],
        ),
        (
            "nobody matches and the pod does not match itself",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("db", ZONE, json!({}))]),
            ),
            three(vec![app("x", "cache")], vec![], vec![]),
            vec![AFF, AFF, AFF],
        ),
        (
            // Two terms: an existing pod must match both.
            "all terms must match one pod",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![
                    term("db", ZONE, json!({})),
                    json!({"labelSelector": {"matchLabels": {"tier": "back"}}, "topologyKey": ZONE}),
                ]),
            ),
            three(
                vec![app("db", "db")],
                vec![],
                vec![labeled(
                    "db2",
                    json!({"app": "db", "tier": "back"}),
                    json!({}),
                )],
            ),
            vec![AFF, AFF, None],
        ),
        (
            "anti-affinity by hostname",
            labeled(
                "p",
                json!({"app": "web"}),
                anti(vec![term("web", HOST, json!({}))]),
            ),
            three(vec![app("w", "web")], vec![], vec![]),
            vec![ANTI, None, None],
        ),
        (
            "anti-affinity by zone",
            labeled(
                "p",
                json!({"app": "web"}),
                anti(vec![term("web", ZONE, json!({}))]),
            ),
            three(vec![app("w", "web")], vec![], vec![]),
            vec![ANTI, ANTI, None],
        ),
        (
            // Symmetry: the incoming pod has no terms; the existing pod's
            // anti-affinity keeps it out of z1.
            "an existing pod's anti-affinity blocks the incoming pod",
            app("p", "web"),
            three(
                vec![labeled(
                    "guard",
                    json!({"app": "guard"}),
                    anti(vec![term("web", ZONE, json!({}))]),
                )],
                vec![],
                vec![],
            ),
            vec![EXISTING, EXISTING, None],
        ),
        (
            "an existing pod's anti-affinity for other pods does not",
            app("p", "web"),
            three(
                vec![labeled(
                    "guard",
                    json!({"app": "guard"}),
                    anti(vec![term("db", ZONE, json!({}))]),
                )],
                vec![],
                vec![],
            ),
            vec![None, None, None],
        ),
        (
            // A term without namespaces is about the pod's own namespace.
            "pods of other namespaces do not match by default",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("db", ZONE, json!({}))]),
            ),
            three(vec![in_ns(app("db", "db"), "other")], vec![], vec![]),
            vec![AFF, AFF, AFF],
        ),
        (
            "listed namespaces",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term("db", ZONE, json!({"namespaces": ["other"]}))]),
            ),
            three(vec![in_ns(app("db", "db"), "other")], vec![], vec![]),
            vec![None, None, AFF],
        ),
        (
            "namespaceSelector picks namespaces by their labels",
            labeled(
                "p",
                json!({"app": "web"}),
                aff(vec![term(
                    "db",
                    ZONE,
                    json!({"namespaceSelector": {"matchLabels": {"team": "x"}}}),
                )]),
            ),
            with_namespaces(
                three(
                    vec![in_ns(app("db", "db"), "other")],
                    vec![],
                    vec![in_ns(app("db2", "db"), "third")],
                ),
                json!({"other": {"team": "x"}, "third": {"team": "y"}, "default": {}}),
            ),
            vec![None, None, AFF],
        ),
        (
            "an empty namespaceSelector is every namespace",
            labeled(
                "p",
                json!({"app": "web"}),
                anti(vec![term("web", HOST, json!({"namespaceSelector": {}}))]),
            ),
            three(
                vec![in_ns(app("w1", "web"), "other")],
                vec![],
                vec![in_ns(app("w2", "web"), "third")],
            ),
            vec![ANTI, None, ANTI],
        ),
        (
            // An existing pod's namespaceSelector is matched against the
            // labels of the incoming pod's namespace.
            "an existing pod's namespaceSelector",
            app("p", "web"),
            with_namespaces(
                three(
                    vec![in_ns(
                        labeled(
                            "guard",
                            json!({"app": "guard"}),
                            anti(vec![term(
                                "web",
                                HOST,
                                json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
                            )]),
                        ),
                        "other",
                    )],
                    vec![],
                    vec![in_ns(
                        labeled(
                            "guard2",
                            json!({"app": "guard"}),
                            anti(vec![term(
                                "web",
                                HOST,
                                json!({"namespaceSelector": {"matchLabels": {"env": "dev"}}}),
                            )]),
                        ),
                        "other",
                    )],
                ),
                json!({"default": {"env": "prod"}}),
            ),
            vec![EXISTING, None, None],
        ),
        (
            // Affinity is checked first, then anti-affinity.
            "affinity and anti-affinity together",
            labeled(
                "p",
                json!({"app": "web"}),
                json!({"affinity": {
                    "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", ZONE, json!({}))]},
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", HOST, json!({}))]}
                }}),
            ),
            three(vec![app("db", "db"), app("w", "web")], vec![], vec![]),
            vec![ANTI, None, AFF],
        ),
    ];
    let pl = plugin();
    for (name, p, snapshot, want) in cases {
        assert_eq!(verdicts(&pl, &p, &snapshot), want, "{name}");
    }
}

#[test]
fn add_and_remove_pod_update_the_counts() {
    let pl = plugin();
    let p = labeled(
        "p",
        json!({"app": "web"}),
        required("podAntiAffinity", vec![term("web", HOST, json!({}))]),
    );
    let snapshot = three(vec![app("w", "web")], vec![], vec![]);
    let (a, b, c) = (&snapshot.nodes[0], &snapshot.nodes[1], &snapshot.nodes[2]);
    let mut state = CycleState::default();
    pl.pre_filter(&mut state, &p, &snapshot).unwrap();
    assert_eq!(verdict(&pl.filter(&state, &p, a)), ANTI);

    // A nominated web pod on b: b is taken too (on a copy).
    let mut with = state.clone();
    let nominated = PodInfo::new(Arc::new(app("n", "web")));
    assert!(pl.add_pod(&mut with, &p, &nominated, b).is_success());
    assert_eq!(verdict(&pl.filter(&with, &p, b)), ANTI);
    assert_eq!(verdict(&pl.filter(&state, &p, b)), None);

    // A nominated pod whose anti-affinity rejects web pods, on c.
    let guard = PodInfo::new(Arc::new(labeled(
        "g",
        json!({"app": "guard"}),
        required("podAntiAffinity", vec![term("web", HOST, json!({}))]),
    )));
    assert!(pl.add_pod(&mut with, &p, &guard, c).is_success());
    assert_eq!(verdict(&pl.filter(&with, &p, c)), EXISTING);
    assert!(pl.remove_pod(&mut with, &p, &guard, c).is_success());
    assert_eq!(verdict(&pl.filter(&with, &p, c)), None);

    // Preemption removing the web pod from a frees it.
    let victim = a.pods[0].clone();
    assert!(pl.remove_pod(&mut state, &p, &victim, a).is_success());
    assert_eq!(verdict(&pl.filter(&state, &p, a)), None);
}

#[test]
fn first_pod_check_uses_live_counts() {
    // After the only matching pod is removed, the group is empty again and
    // the pod (matching itself) may go anywhere.
    let pl = plugin();
    let p = labeled(
        "p",
        json!({"app": "web"}),
        required("podAffinity", vec![term("web", ZONE, json!({}))]),
    );
    let snapshot = three(vec![app("w", "web")], vec![], vec![]);
    let mut state = CycleState::default();
    pl.pre_filter(&mut state, &p, &snapshot).unwrap();
    assert_eq!(verdict(&pl.filter(&state, &p, &snapshot.nodes[2])), AFF);
    let victim = snapshot.nodes[0].pods[0].clone();
    assert!(
        pl.remove_pod(&mut state, &p, &victim, &snapshot.nodes[0])
            .is_success()
    );
    assert_eq!(verdict(&pl.filter(&state, &p, &snapshot.nodes[2])), None);
}

fn scores_in(pl: &InterPodAffinity, p: &Pod, snapshot: &Snapshot) -> Vec<i64> {
    let mut state = CycleState::default();
    if pl
        .pre_score(&mut state, p, snapshot, &snapshot.nodes)
        .is_skip()
    {
        return vec![-1; snapshot.len()];
    }
    let mut out: Vec<NodeScore> = snapshot
        .nodes
        .iter()
        .map(|n| NodeScore {
            name: n.name().to_owned(),
            score: pl.score(&state, p, n).unwrap(),
        })
        .collect();
    assert!(pl.normalize_score(&state, p, &mut out).is_success());
    out.into_iter().map(|s| s.score).collect()
}

#[test]
fn scores_table() {
    let guard = |spec: Value| labeled("guard", json!({"app": "guard"}), spec);
    // -1 everywhere: PreScore skipped.
    let cases: Vec<(&str, Args, Pod, Snapshot, Vec<i64>)> = vec![
        (
            "no affinity anywhere: skipped",
            Args::default(),
            app("p", "web"),
            three(vec![app("db", "db")], vec![], vec![]),
            vec![-1, -1, -1],
        ),
        (
            // z1: +10 → a, b 10; c 0.
            "preferred affinity",
            Args::default(),
            labeled(
                "p",
                json!({"app": "web"}),
                preferred("podAffinity", vec![(10, term("db", ZONE, json!({})))]),
            ),
            three(vec![app("db", "db")], vec![], vec![]),
            vec![100, 100, 0],
        ),
        (
            // a: −5; min −5, max 0.
            "preferred anti-affinity",
            Args::default(),
            labeled(
                "p",
                json!({"app": "web"}),
                preferred("podAntiAffinity", vec![(5, term("web", HOST, json!({})))]),
            ),
            three(vec![app("w", "web")], vec![], vec![]),
            vec![0, 100, 100],
        ),
        (
            // a: 10 − 5 = 5, b: 10, c: 0.
            "both",
            Args::default(),
            labeled(
                "p",
                json!({"app": "web"}),
                json!({"affinity": {
                    "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                        [{"weight": 10, "podAffinityTerm": term("db", ZONE, json!({}))}]},
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                        [{"weight": 5, "podAffinityTerm": term("web", HOST, json!({}))}]}
                }}),
            ),
            three(vec![app("db", "db"), app("w", "web")], vec![], vec![]),
            vec![50, 100, 0],
        ),
        (
            // Symmetry: an existing pod on c prefers web pods in its zone.
            "an existing pod's preferred affinity",
            Args::default(),
            app("p", "web"),
            three(
                vec![],
                vec![],
                vec![guard(preferred(
                    "podAffinity",
                    vec![(20, term("web", ZONE, json!({})))],
                ))],
            ),
            vec![0, 0, 100],
        ),
        (
            "an existing pod's preferred anti-affinity",
            Args::default(),
            app("p", "web"),
            three(
                vec![guard(preferred(
                    "podAntiAffinity",
                    vec![(7, term("web", HOST, json!({})))],
                ))],
                vec![],
                vec![],
            ),
            vec![0, 100, 100],
        ),
        (
            // hardPodAffinityWeight 1: z2 +1.
            "an existing pod's required affinity",
            Args::default(),
            app("p", "web"),
            three(
                vec![],
                vec![],
                vec![guard(required(
                    "podAffinity",
                    vec![term("web", ZONE, json!({}))],
                ))],
            ),
            vec![0, 0, 100],
        ),
        (
            "hardPodAffinityWeight 0 ignores it",
            Args {
                hard_pod_affinity_weight: 0,
                ..Args::default()
            },
            app("p", "web"),
            three(
                vec![],
                vec![],
                vec![guard(required(
                    "podAffinity",
                    vec![term("web", ZONE, json!({}))],
                ))],
            ),
            vec![-1, -1, -1],
        ),
        (
            "ignorePreferredTermsOfExistingPods",
            Args {
                ignore_preferred_terms_of_existing_pods: true,
                ..Args::default()
            },
            app("p", "web"),
            three(
                vec![],
                vec![],
                vec![guard(preferred(
                    "podAffinity",
                    vec![(20, term("web", ZONE, json!({})))],
                ))],
            ),
            vec![-1, -1, -1],
        ),
        (
            // The existing pod's preferred term matches nothing: a pair is
            // never entered, PreScore skips.
            "existing terms that do not match",
            Args::default(),
            app("p", "web"),
            three(
                vec![guard(preferred(
                    "podAffinity",
                    vec![(20, term("db", ZONE, json!({})))],
                ))],
                vec![],
                vec![],
            ),
            vec![-1, -1, -1],
        ),
        (
            // Incoming preferred term with namespaceSelector: only the
            // db pod in the team=x namespace counts (on c).
            "preferred term with namespaceSelector",
            Args::default(),
            labeled(
                "p",
                json!({"app": "web"}),
                preferred(
                    "podAffinity",
                    vec![(
                        10,
                        term(
                            "db",
                            HOST,
                            json!({"namespaceSelector": {"matchLabels": {"team": "x"}}}),
                        ),
                    )],
                ),
            ),
            with_namespaces(
                three(
                    vec![in_ns(app("db1", "db"), "other")],
                    vec![],
                    vec![in_ns(app("db2", "db"), "mine")],
                ),
                json!({"mine": {"team": "x"}, "other": {"team": "y"}}),
            ),
            vec![0, 0, 100],
        ),
    ];
    for (name, args, p, snapshot, want) in cases {
        let pl = InterPodAffinity::new(args).unwrap();
        assert_eq!(scores_in(&pl, &p, &snapshot), want, "{name}");
    }
}

#[test]
fn args_are_validated() {
    assert!(
        InterPodAffinity::new(Args {
            hard_pod_affinity_weight: 101,
            ..Args::default()
        })
        .is_err()
    );
    assert!(
        InterPodAffinity::new(Args {
            hard_pod_affinity_weight: -1,
            ..Args::default()
        })
        .is_err()
    );
    let parsed: Args = serde_json::from_value(json!({})).unwrap();
    assert_eq!(parsed, Args::default());
    assert!(crate::plugins::new_plugin(NAME, Some(&json!({"hardPodAffinityWeight": 5}))).is_ok());
    assert!(
        crate::plugins::new_plugin(NAME, Some(&json!({"hardPodAffinityWeight": 500}))).is_err()
    );
}

/// The benchmark shape (5,000 nodes, 10,000 pods, 1 in 10 with required
/// anti-affinity): one attempt's PreFilter, Filter on every node,
/// PreScore and Score on 500 nodes.
/// `cargo test -p skiff-scheduler --lib scale -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn scale_5000_nodes_10000_pods() {
    let nodes: Vec<NodeInfo> = (0..5000)
        .map(|i| {
            let pods = (0..2)
                .map(|j| {
                    let k = i * 2 + j;
                    let spec = if k % 10 == 0 {
                        required(
                            "podAntiAffinity",
                            vec![term(&format!("app-{}", k % 50), HOST, json!({}))],
                        )
                    } else {
                        json!({})
                    };
                    labeled(
                        &format!("p{k}"),
                        json!({"app": format!("app-{}", k % 50)}),
                        spec,
                    )
                })
                .collect();
            zone_node(&format!("n{i:04}"), &format!("z{}", i % 10), pods)
        })
        .collect();
    let snapshot = Snapshot::from_nodes(nodes);
    let pl = plugin();
    let p = labeled(
        "incoming",
        json!({"app": "app-10"}),
        json!({"affinity": {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("app-10", HOST, json!({}))]},
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                [{"weight": 10, "podAffinityTerm": term("app-3", ZONE, json!({}))}]}
        }}),
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
    let feasible = &snapshot.nodes[..500];
    let start = std::time::Instant::now();
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
        "InterPodAffinity: pre_filter {pre_filter:?}, filter×5000 {filter:?} ({fits} fit), pre_score+score×500 {score:?}"
    );
    // A pod without terms: only the nodes with required anti-affinity pods.
    let plain = app("plain", "app-5");
    let start = std::time::Instant::now();
    let mut state = CycleState::default();
    let pre = pl.pre_filter(&mut state, &plain, &snapshot);
    let skip = pl.pre_score(&mut state, &plain, &snapshot, feasible);
    eprintln!(
        "InterPodAffinity plain pod: pre_filter ({}) + pre_score ({}) {:?}",
        if pre.is_err() { "skip" } else { "state" },
        if skip.is_skip() { "skip" } else { "state" },
        start.elapsed()
    );
}

/// Counts remembered between attempts follow the nodes' changes: one
/// plugin (one memo), attempts on snapshots before and after pods move.
#[test]
fn remembered_counts_follow_node_changes() {
    let pl = plugin();
    let p = pod(
        "incoming",
        required("podAntiAffinity", vec![term("web", ZONE, json!({}))]),
    );
    let verdicts = |snapshot: &Snapshot| -> Vec<bool> {
        let mut state = CycleState::default();
        pl.pre_filter(&mut state, &p, snapshot).unwrap();
        snapshot
            .nodes
            .iter()
            .map(|n| pl.filter(&state, &p, n).is_success())
            .collect()
    };
    let a = zone_node("a", "z1", vec![app("w1", "web")]);
    let b = zone_node("b", "z2", vec![app("d1", "db")]);
    let before = Snapshot::from_nodes(vec![a.clone(), b.clone()]);
    assert_eq!(verdicts(&before), [false, true]);
    assert_eq!(verdicts(&before), [false, true], "remembered");
    let mut a2 = a.clone();
    assert!(a2.remove_pod("default/w1"));
    let mut b2 = b.clone();
    b2.add_pod(Arc::new(PodInfo::new(Arc::new(app("w2", "web")))));
    let after = Snapshot::from_nodes(vec![a2, b2]);
    assert_eq!(verdicts(&after), [true, false]);
}
