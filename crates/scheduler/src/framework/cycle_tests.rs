//! The scheduling cycle with the default plugins, on snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::plugins::default_framework;
use crate::plugins::testing::{node, pod, pod_with, with_pods};

fn schedule(snapshot: &Snapshot, p: &Pod) -> Result<String, ScheduleError> {
    let fw = default_framework("default-scheduler");
    fw.schedule(&mut CycleState::default(), p, snapshot)
}

fn message(r: Result<String, ScheduleError>) -> String {
    match r {
        Err(ScheduleError::Unschedulable(fit)) => fit.to_string(),
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

#[test]
fn least_allocated_node_wins_and_soft_taints_are_avoided() {
    let busy = with_pods(node("busy", json!({})), vec![pod_with("x", "2", "4Gi")]);
    let snapshot = Snapshot::from_nodes(vec![busy, node("idle", json!({}))]);
    assert_eq!(
        schedule(&snapshot, &pod_with("p", "100m", "100Mi"))
            .ok()
            .as_deref(),
        Some("idle")
    );
    let snapshot = Snapshot::from_nodes(vec![
        node(
            "soft",
            json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
        ),
        node("plain", json!({})),
    ]);
    for _ in 0..10 {
        assert_eq!(
            schedule(&snapshot, &pod_with("p", "1", "1Gi"))
                .ok()
                .as_deref(),
            Some("plain")
        );
    }
}

#[test]
fn upstream_message_when_nothing_fits() {
    let snapshot = Snapshot::from_nodes(vec![
        node(
            "a",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        ),
        with_pods(node("b", json!({})), vec![pod_with("x", "3500m", "0")]),
        node("c", json!({"spec": {"unschedulable": true}})),
    ]);
    // (PostFilter may add "preemption: ..." after this.)
    let msg = message(schedule(&snapshot, &pod_with("p", "1", "100Mi")));
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint \
             {dedicated: gpu}, 1 node(s) were unschedulable."
        ),
        "{msg}"
    );
    assert_eq!(
        message(schedule(&Snapshot::default(), &pod("p", json!({})))),
        "no nodes available to schedule pods"
    );
}

#[test]
fn nominated_pods_of_higher_priority_hold_their_room() {
    let mut snapshot = Snapshot::from_nodes(vec![node("a", json!({}))]);
    let mut high = pod_with("high", "3", "0");
    if let Some(spec) = high.spec.as_mut() {
        spec.priority = Some(100);
    }
    let mut nominated = HashMap::new();
    nominated.insert("a".to_owned(), vec![Arc::new(PodInfo::new(Arc::new(high)))]);
    snapshot.nominated = Arc::new(nominated);
    // 3 of 4 cpus are promised to the higher-priority pod.
    assert!(schedule(&snapshot, &pod_with("low", "2", "0")).is_err());
    assert!(schedule(&snapshot, &pod_with("small", "1", "0")).is_ok());
}

#[test]
fn filters_stop_after_enough_feasible_nodes_and_rotate() {
    let nodes: Vec<NodeInfo> = (0..1000)
        .map(|i| node(&format!("n{i:04}"), json!({})))
        .collect();
    let snapshot = Snapshot::from_nodes(nodes);
    let fw = default_framework("default-scheduler");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let chosen = fw
            .schedule(
                &mut CycleState::default(),
                &pod_with("p", "1", "1Gi"),
                &snapshot,
            )
            .expect("fits");
        seen.insert(chosen);
    }
    // 420 of 1,000 nodes are looked at per attempt, starting where the
    // last one stopped, so attempts spread over the cluster.
    assert_eq!(fw.next_start.load(Ordering::Relaxed), (5 * 420) % 1000);
    assert!(seen.len() > 1);
}

#[test]
fn gated_pods_are_held() {
    let fw = default_framework("default-scheduler");
    let gated = pod(
        "p",
        json!({"schedulingGates": [{"name": "example.com/a"}, {"name": "b"}]}),
    );
    let s = fw.pre_enqueue(&gated);
    assert_eq!(
        s.reasons,
        vec!["waiting for scheduling gates: [example.com/a b]"]
    );
    assert!(fw.pre_enqueue(&pod("q", json!({}))).is_success());
}

#[test]
fn enabling_a_plugin_where_it_does_not_extend_fails() {
    let mut fw = Framework::new("x");
    let plugin = crate::plugins::new_plugin("NodeName", None).expect("exists");
    assert!(fw.enable(plugin, ExtensionPoint::Score, 1).is_err());
    assert!(crate::plugins::new_plugin("Nope", None).is_err());
}
