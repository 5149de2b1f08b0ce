//! Preemption through the default profile's whole cycle: Filter rejects,
//! DefaultPreemption picks a node and victims (or says why not).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use super::candidates::{Candidate, pick_one_node_for_preemption};
use super::{Args, DefaultPreemption};
use crate::framework::{CycleState, FitError, NodeInfo, PodInfo, ScheduleError, Snapshot};
use crate::plugins::default_framework;

/// A pod on a node: name, cpu (millicores), priority, extra metadata and
/// status (merged in).
struct Victim {
    name: &'static str,
    cpu: u32,
    priority: i32,
    extra: Value,
}

fn v(name: &'static str, cpu: u32, priority: i32) -> Victim {
    Victim {
        name,
        cpu,
        priority,
        extra: json!({}),
    }
}

fn with(mut victim: Victim, extra: Value) -> Victim {
    victim.extra = extra;
    victim
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn pod(name: &str, cpu: u32, priority: i32, extra: &Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"priority": priority, "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": format!("{cpu}m")}}}]},
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

/// A node with `cpu` millicores, its pods, and extra Node fields.
fn node(name: &str, cpu: u32, pods: Vec<Victim>, extra: Value) -> NodeInfo {
    let mut n = json!({
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": format!("{cpu}m"), "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut n, &extra);
    let n: Node = serde_json::from_value(n).unwrap();
    let mut info = NodeInfo::new(Arc::new(n));
    for victim in pods {
        let mut extra = json!({"spec": {"nodeName": name}});
        merge(&mut extra, &victim.extra);
        let p = pod(victim.name, victim.cpu, victim.priority, &extra);
        info.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
    }
    info
}

fn pdb(selector: Value, allowed: i32) -> Arc<PodDisruptionBudget> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "budget", "namespace": "default"},
            "spec": {"selector": selector},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 1,
                       "desiredHealthy": 1, "expectedPods": 1},
        }))
        .unwrap(),
    )
}

/// Runs the default profile's cycle; the pod must not fit.
fn attempt(nodes: Vec<NodeInfo>, pdbs: Vec<Arc<PodDisruptionBudget>>, preemptor: &Pod) -> FitError {
    let fw = default_framework("default-scheduler");
    let mut snapshot = Snapshot::from_nodes(nodes);
    snapshot.pdbs = Arc::new(pdbs);
    match fw.schedule(&mut CycleState::default(), preemptor, &snapshot) {
        Err(ScheduleError::Unschedulable(fit)) => *fit,
        Ok(node) => panic!("fits on {node}"),
        Err(ScheduleError::Internal(s)) => panic!("internal error: {s:?}"),
    }
}

struct Case {
    name: &'static str,
    nodes: Vec<NodeInfo>,
    pdbs: Vec<Arc<PodDisruptionBudget>>,
    /// cpu (millicores), priority, extra.
    preemptor: (u32, i32, Value),
    /// The chosen node and its victims (most important first).
    want: Option<(&'static str, Vec<&'static str>)>,
    /// The whole FailedScheduling message.
    message: &'static str,
}

#[test]
fn preemption_cases() {
    let app_db = json!({"metadata": {"labels": {"app": "db"}}});
    let cases = vec![
        Case {
            name: "lowest priority goes first",
            nodes: vec![node(
                "n1",
                2000,
                vec![v("mid", 1000, 5), v("low", 1000, 1)],
                json!({}),
            )],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: Some(("n1", vec!["low"])),
            message: "0/1 nodes are available: 1 Insufficient cpu.",
        },
        Case {
            name: "only as many victims as needed, the more important reprieved",
            nodes: vec![node(
                "n1",
                3000,
                vec![
                    with(
                        v("old", 1000, 1),
                        json!({"status": {"startTime": "2020-01-01T00:00:00Z"}}),
                    ),
                    with(
                        v("new", 2000, 1),
                        json!({"status": {"startTime": "2024-01-01T00:00:00Z"}}),
                    ),
                ],
                json!({}),
            )],
            pdbs: vec![],
            preemptor: (2000, 10, json!({})),
            want: Some(("n1", vec!["new"])),
            message: "0/1 nodes are available: 1 Insufficient cpu.",
        },
        Case {
            name: "the node with fewer victims",
            nodes: vec![
                node(
                    "n1",
                    2000,
                    vec![
                        v("a", 500, 1),
                        v("b", 500, 1),
                        v("c", 500, 1),
                        v("d", 500, 1),
                    ],
                    json!({}),
                ),
                node("n2", 2000, vec![v("big", 2000, 1)], json!({})),
            ],
            pdbs: vec![],
            preemptor: (2000, 10, json!({})),
            want: Some(("n2", vec!["big"])),
            message: "0/2 nodes are available: 2 Insufficient cpu.",
        },
        Case {
            name: "the node whose most important victim matters least",
            nodes: vec![
                node("n1", 1000, vec![v("five", 1000, 5)], json!({})),
                node("n2", 1000, vec![v("three", 1000, 3)], json!({})),
            ],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: Some(("n2", vec!["three"])),
            message: "0/2 nodes are available: 2 Insufficient cpu.",
        },
        Case {
            name: "a PodDisruptionBudget steers to another node",
            nodes: vec![
                node(
                    "n1",
                    1000,
                    vec![with(v("db", 1000, 1), app_db.clone())],
                    json!({}),
                ),
                node("n2", 1000, vec![v("web", 1000, 1)], json!({})),
            ],
            pdbs: vec![pdb(json!({"matchLabels": {"app": "db"}}), 0)],
            preemptor: (1000, 10, json!({})),
            want: Some(("n2", vec!["web"])),
            message: "0/2 nodes are available: 2 Insufficient cpu.",
        },
        Case {
            name: "a PodDisruptionBudget keeps its pod on the node when another will do",
            nodes: vec![node(
                "n1",
                2000,
                vec![
                    with(v("db", 1000, 1), app_db.clone()),
                    // More important than db by priority, yet db (budget)
                    // is reprieved first.
                    v("web", 1000, 2),
                ],
                json!({}),
            )],
            pdbs: vec![pdb(json!({"matchLabels": {"app": "db"}}), 0)],
            preemptor: (1000, 10, json!({})),
            want: Some(("n1", vec!["web"])),
            message: "0/1 nodes are available: 1 Insufficient cpu.",
        },
        Case {
            name: "a budget that allows a disruption is not violated",
            nodes: vec![
                node(
                    "n1",
                    1000,
                    vec![with(v("db", 1000, 1), app_db.clone())],
                    json!({}),
                ),
                node("n2", 1000, vec![v("web", 1000, 2)], json!({})),
            ],
            pdbs: vec![pdb(json!({"matchLabels": {"app": "db"}}), 1)],
            preemptor: (1000, 10, json!({})),
            want: Some(("n1", vec!["db"])),
            message: "0/2 nodes are available: 2 Insufficient cpu.",
        },
        Case {
            name: "a budget is broken when nothing else makes room",
            nodes: vec![node(
                "n1",
                1000,
                vec![with(v("db", 1000, 1), app_db.clone())],
                json!({}),
            )],
            pdbs: vec![pdb(json!({"matchLabels": {"app": "db"}}), 0)],
            preemptor: (1000, 10, json!({})),
            want: Some(("n1", vec!["db"])),
            message: "0/1 nodes are available: 1 Insufficient cpu.",
        },
        Case {
            name: "preemptionPolicy Never",
            nodes: vec![node("n1", 1000, vec![v("low", 1000, 1)], json!({}))],
            pdbs: vec![],
            preemptor: (1000, 10, json!({"spec": {"preemptionPolicy": "Never"}})),
            want: None,
            message: "0/1 nodes are available: 1 Insufficient cpu. \
                      preemption: not eligible due to preemptionPolicy=Never.",
        },
        Case {
            name: "nothing of lower priority",
            nodes: vec![
                node("n1", 1000, vec![v("same", 1000, 10)], json!({})),
                node("n2", 1000, vec![v("higher", 1000, 20)], json!({})),
                node("n3", 1000, vec![v("also", 1000, 10)], json!({})),
            ],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: None,
            message: "0/3 nodes are available: 3 Insufficient cpu. \
                      preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
        },
        Case {
            name: "an untolerated taint is not preemption's to fix",
            nodes: vec![
                node(
                    "n1",
                    1000,
                    vec![v("low", 1000, 1)],
                    json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                ),
                // Evicting low2 is not enough: higher stays.
                node(
                    "n2",
                    1000,
                    vec![v("low2", 500, 1), v("higher", 500, 20)],
                    json!({}),
                ),
            ],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: None,
            message: "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}. \
                      preemption: 0/2 nodes are available: 1 Insufficient cpu, 1 Preemption is not helpful for scheduling.",
        },
        Case {
            name: "a tainted node only",
            nodes: vec![node(
                "n1",
                1000,
                vec![v("low", 1000, 1)],
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
            )],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: None,
            message: "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}. \
                      preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
        },
        Case {
            name: "waiting for the victims of an earlier preemption",
            nodes: vec![node(
                "n1",
                1000,
                vec![with(
                    v("going", 1000, 1),
                    json!({
                        "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                        "status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                            "reason": "PreemptionByScheduler"}]},
                    }),
                )],
                json!({}),
            )],
            pdbs: vec![],
            preemptor: (1000, 10, json!({"status": {"nominatedNodeName": "n1"}})),
            want: None,
            message: "0/1 nodes are available: 1 Insufficient cpu. \
                      preemption: not eligible due to a terminating pod on the nominated node.",
        },
        Case {
            name: "the latest started victims are preferred",
            nodes: vec![
                node(
                    "n1",
                    1000,
                    vec![with(
                        v("old", 1000, 1),
                        json!({"status": {"startTime": "2020-01-01T00:00:00Z"}}),
                    )],
                    json!({}),
                ),
                node(
                    "n2",
                    1000,
                    vec![with(
                        v("new", 1000, 1),
                        json!({"status": {"startTime": "2024-01-01T00:00:00Z"}}),
                    )],
                    json!({}),
                ),
            ],
            pdbs: vec![],
            preemptor: (1000, 10, json!({})),
            want: Some(("n2", vec!["new"])),
            message: "0/2 nodes are available: 2 Insufficient cpu.",
        },
    ];
    for case in cases {
        let (cpu, priority, extra) = &case.preemptor;
        let preemptor = pod("preemptor", *cpu, *priority, extra);
        let fit = attempt(case.nodes, case.pdbs, &preemptor);
        let got = fit.post_filter.as_ref().map(|r| {
            (
                r.nominated_node.clone().unwrap_or_default(),
                r.victims
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
        });
        let want = case
            .want
            .map(|(n, v)| (n.to_owned(), v.into_iter().map(str::to_owned).collect()));
        assert_eq!(got, want, "{}: {}", case.name, fit);
        assert_eq!(fit.to_string(), case.message, "{}", case.name);
    }
}

#[test]
fn candidate_count_as_upstream() {
    let p = DefaultPreemption::new(Args::default()).unwrap();
    assert_eq!(p.num_candidates(50), 50);
    assert_eq!(p.num_candidates(500), 100);
    assert_eq!(p.num_candidates(5000), 500);
    let p = DefaultPreemption::new(Args {
        min_candidate_nodes_percentage: 50,
        min_candidate_nodes_absolute: 1,
    })
    .unwrap();
    assert_eq!(p.num_candidates(10), 5);
}

#[test]
fn args_are_validated() {
    let err = |pct, abs| {
        DefaultPreemption::new(Args {
            min_candidate_nodes_percentage: pct,
            min_candidate_nodes_absolute: abs,
        })
        .err()
    };
    assert_eq!(
        err(101, 1).as_deref(),
        Some("minCandidateNodesPercentage: Invalid value: 101: not in valid range [0, 100]")
    );
    assert_eq!(
        err(10, -1).as_deref(),
        Some("minCandidateNodesAbsolute: Invalid value: -1: not in valid range [0, inf)")
    );
    assert!(
        err(0, 0)
            .unwrap()
            .contains("cannot be zero at the same time")
    );
    assert_eq!(err(0, 5), None);
    // Args come from pluginConfig with upstream's field names.
    let args: Args = serde_json::from_value(json!({"minCandidateNodesAbsolute": 5})).unwrap();
    assert_eq!(args.min_candidate_nodes_percentage, 10);
    assert_eq!(args.min_candidate_nodes_absolute, 5);
}

#[test]
fn ties_go_to_the_first_candidate() {
    let victim = |name: &str| Arc::new(PodInfo::new(Arc::new(pod(name, 100, 1, &json!({})))));
    let c = |node: &str, victims: Vec<Arc<PodInfo>>, pdb: usize| Candidate {
        node: node.to_owned(),
        victims,
        num_pdb_violations: pdb,
    };
    let now = jiff::Timestamp::now();
    let cands = vec![
        c("violating", vec![victim("a")], 1),
        c("one", vec![victim("b")], 0),
        c("also-one", vec![victim("c")], 0),
    ];
    assert_eq!(pick_one_node_for_preemption(&cands, now), Some(1));
    assert_eq!(pick_one_node_for_preemption(&[], now), None);
}
