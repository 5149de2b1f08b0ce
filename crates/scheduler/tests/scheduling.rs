//! The scheduler against an in-process API server: Node objects with
//! allocatable resources and a Ready condition, pods that get bound.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_apiserver::testing::start;
use support::{eventually, start_scheduler, start_with};

async fn create_node(
    client: &kube::Client,
    name: &str,
    cpu: &str,
    memory: &str,
    labels: serde_json::Value,
    taints: serde_json::Value,
) {
    support::ready_node(client, name, cpu, memory, labels, taints).await;
}

async fn create_pod(client: &kube::Client, name: &str, cpu: &str, extra: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn node_of(client: &kube::Client, name: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.get(name).await.ok()?.spec?.node_name
}

async fn wait_bound(client: &kube::Client, name: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(node) = node_of(client, name).await {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for pod {name} to be bound");
}

async fn three_nodes(client: &kube::Client) {
    create_node(client, "big", "4", "8Gi", json!({}), json!([])).await;
    create_node(
        client,
        "small",
        "1",
        "2Gi",
        json!({"disk": "ssd"}),
        json!([]),
    )
    .await;
    create_node(
        client,
        "tainted",
        "4",
        "8Gi",
        json!({}),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await;
}

#[tokio::test]

async fn pods_are_bound_to_fitting_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    three_nodes(&client).await;
    let stop = start_scheduler(client.clone());

    for i in 0..4 {
        create_pod(&client, &format!("web-{i}"), "100m", json!({})).await;
    }
    for i in 0..4 {
        let node = wait_bound(&client, &format!("web-{i}")).await;
        assert_ne!(node, "tainted", "web-{i} went to the tainted node");
    }
    // A toleration opens the tainted node; a nodeSelector picks the label.
    create_pod(
        &client,
        "picky",
        "100m",
        json!({"nodeSelector": {"disk": "ssd"}}),
    )
    .await;
    assert_eq!(wait_bound(&client, "picky").await, "small");
    create_pod(
        &client,
        "gpu",
        "3",
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
               "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                   "nodeSelectorTerms": [{"matchFields": [
                       {"key": "metadata.name", "operator": "In", "values": ["tainted"]}]}]}}}}),
    )
    .await;
    assert_eq!(wait_bound(&client, "gpu").await, "tainted");

    // Scheduled events.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("a Scheduled event for picky", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.message.as_deref() == Some("Successfully assigned default/picky to small")
                    && e.involved_object.name.as_deref() == Some("picky")
            })
    })
    .await;
    stop.cancel();
    server.stop().await;
}

#[tokio::test]
async fn a_pod_that_fits_nowhere_stays_pending_with_the_upstream_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    three_nodes(&client).await;
    let stop = start_scheduler(client.clone());

    create_pod(&client, "huge", "6", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // 6 cpu exceed every node's allocatable: evicting pods cannot help
    // (upstream's message, DefaultPreemption included).
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. \
                    preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    eventually("PodScheduled=False on huge", || async {
        let pod = pods.get("huge").await.unwrap();
        pod.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(expected)
            })
    })
    .await;
    assert_eq!(node_of(&client, "huge").await, None);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("a FailedScheduling event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.type_.as_deref() == Some("Warning")
                    && e.message.as_deref() == Some(expected)
            })
    })
    .await;

    stop.cancel();
    server.stop().await;
}

#[tokio::test]

async fn a_pending_pod_is_bound_once_a_node_fits() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    three_nodes(&client).await;
    let stop = start_scheduler(client.clone());
    create_pod(&client, "huge", "6", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("PodScheduled=False on huge", || async {
        let pod = pods.get("huge").await.unwrap();
        pod.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    // A node big enough appears: the pod is retried and bound there.
    create_node(&client, "huge-node", "16", "64Gi", json!({}), json!([])).await;
    assert_eq!(wait_bound(&client, "huge").await, "huge-node");
    stop.cancel();
    server.stop().await;
}

#[tokio::test]

async fn least_allocated_spreads_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "n1", "2", "4Gi", json!({}), json!([])).await;
    create_node(&client, "n2", "2", "4Gi", json!({}), json!([])).await;
    let stop = start_scheduler(client.clone());
    for i in 0..6 {
        create_pod(&client, &format!("p{i}"), "300m", json!({})).await;
    }
    let mut on_n1 = 0;
    for i in 0..6 {
        if wait_bound(&client, &format!("p{i}")).await == "n1" {
            on_n1 += 1;
        }
    }
    assert_eq!(on_n1, 3, "LeastAllocated puts 3 pods on each node");
    // Priority comes from a PriorityClass (the Priority admission sets it).
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    let class =
        serde_json::from_value(json!({"metadata": {"name": "urgent"}, "value": 1000})).unwrap();
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    create_pod(
        &client,
        "urgent",
        "100m",
        json!({"priorityClassName": "urgent"}),
    )
    .await;
    wait_bound(&client, "urgent").await;
    stop.cancel();
    server.stop().await;
}

/// A second profile that packs pods (MostAllocated), from a config file.
fn packer() -> Vec<std::sync::Arc<skiff_scheduler::Framework>> {
    let config = skiff_scheduler::config::SchedulerConfig::from_str(
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: default-scheduler
  - schedulerName: packer
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
"#,
    )
    .unwrap();
    config
        .profiles
        .iter()
        .map(|p| std::sync::Arc::new(skiff_scheduler::plugins::framework_for(p, None).unwrap()))
        .collect()
}

#[tokio::test]
async fn profiles_are_chosen_by_scheduler_name_and_other_schedulers_pods_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "a", "4", "8Gi", json!({}), json!([])).await;
    create_node(&client, "b", "4", "8Gi", json!({}), json!([])).await;
    let mut config = skiff_scheduler::Config::new(client.clone());
    config.profiles = packer();
    let stop = start_with(config);

    create_pod(&client, "first", "1", json!({"schedulerName": "packer"})).await;
    let first = wait_bound(&client, "first").await;
    // MostAllocated puts the next one beside it; LeastAllocated would not.
    create_pod(&client, "second", "1", json!({"schedulerName": "packer"})).await;
    assert_eq!(wait_bound(&client, "second").await, first);
    create_pod(&client, "spread", "1", json!({})).await;
    assert_ne!(wait_bound(&client, "spread").await, first);

    create_pod(
        &client,
        "foreign",
        "100m",
        json!({"schedulerName": "someone-else"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node_of(&client, "foreign").await, None);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let about_foreign = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("foreign"))
        .count();
    assert_eq!(about_foreign, 0, "no scheduler of ours touched it");
    stop.cancel();
}

#[tokio::test]
async fn gated_pods_wait_and_host_ports_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "only", "4", "8Gi", json!({}), json!([])).await;
    let stop = start_scheduler(client.clone());

    create_pod(
        &client,
        "gated",
        "100m",
        json!({"schedulingGates": [{"name": "example.com/wait"}]}),
    )
    .await;
    let port = |n: &str| {
        json!({"containers": [{"name": n, "image": "nginx",
            "ports": [{"containerPort": 80, "hostPort": 8080}]}]})
    };
    create_pod(&client, "port-1", "100m", port("c")).await;
    assert_eq!(wait_bound(&client, "port-1").await, "only");
    create_pod(&client, "port-2", "100m", port("c")).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("port-2 reported unschedulable", || {
        let pods = pods.clone();
        async move {
            let Ok(p) = pods.get("port-2").await else { return false };
            p.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| {
                    c.type_ == "PodScheduled"
                        && c.message.as_deref().is_some_and(|m| {
                            m.starts_with("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.")
                        })
                })
        }
    })
    .await;
    assert_eq!(node_of(&client, "gated").await, None);
    let gated = pods.get("gated").await.unwrap();
    let reason = gated
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("SchedulingGated"));
    // Removing the gate lets it through.
    pods.patch(
        "gated",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"schedulingGates": null}})),
    )
    .await
    .unwrap();
    assert_eq!(wait_bound(&client, "gated").await, "only");
    // Freeing the port lets the second one in.
    pods.delete(
        "port-1",
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    assert_eq!(wait_bound(&client, "port-2").await, "only");
    stop.cancel();
}

/// A PreBind plugin that refuses its first call; PostBind counts.
struct FlakyPreBind {
    pre_binds: std::sync::atomic::AtomicUsize,
    post_binds: std::sync::atomic::AtomicUsize,
}

impl skiff_scheduler::framework::Plugin for FlakyPreBind {
    fn name(&self) -> &'static str {
        "FlakyPreBind"
    }

    fn points(&self) -> &'static [skiff_scheduler::framework::ExtensionPoint] {
        &[
            skiff_scheduler::framework::ExtensionPoint::PreBind,
            skiff_scheduler::framework::ExtensionPoint::PostBind,
        ]
    }

    fn pre_bind(
        &self,
        _state: &skiff_scheduler::framework::CycleState,
        _pod: &Pod,
        _node: &str,
    ) -> skiff_scheduler::framework::Status {
        use std::sync::atomic::Ordering;
        if self.pre_binds.fetch_add(1, Ordering::SeqCst) == 0 {
            skiff_scheduler::framework::Status::error("volume not ready yet")
        } else {
            skiff_scheduler::framework::Status::success()
        }
    }

    fn post_bind(&self, _state: &skiff_scheduler::framework::CycleState, _pod: &Pod, _node: &str) {
        self.post_binds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_failed_pre_bind_retries_the_pod_and_post_bind_follows_a_binding() {
    use skiff_scheduler::framework::ExtensionPoint;
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "only", "4", "8Gi", json!({}), json!([])).await;
    let plugin = std::sync::Arc::new(FlakyPreBind {
        pre_binds: 0.into(),
        post_binds: 0.into(),
    });
    let mut fw = skiff_scheduler::plugins::default_framework("default-scheduler");
    fw.enable(plugin.clone(), ExtensionPoint::PreBind, 0)
        .unwrap();
    fw.enable(plugin.clone(), ExtensionPoint::PostBind, 0)
        .unwrap();
    let mut config = skiff_scheduler::Config::new(client.clone());
    config.profiles = vec![std::sync::Arc::new(fw)];
    let stop = start_with(config);

    create_pod(&client, "p", "100m", json!({})).await;
    assert_eq!(wait_bound(&client, "p").await, "only");
    assert_eq!(
        plugin.pre_binds.load(Ordering::SeqCst),
        2,
        "refused once, then retried"
    );
    eventually("PostBind ran", || {
        let plugin = plugin.clone();
        async move { plugin.post_binds.load(Ordering::SeqCst) == 1 }
    })
    .await;
    stop.cancel();
}
