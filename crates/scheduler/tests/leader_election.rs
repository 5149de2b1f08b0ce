//! Two scheduler candidates against an in-process API server: one leads,
//! the other waits; a leader that dies without releasing is replaced once
//! its lease expires; a leader whose lease is taken stops with "leader
//! election lost".
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use skiff_apiserver::testing::start;
use skiff_scheduler::config::LeaderElectionConfig;
use skiff_scheduler::leader::{LeaderError, run_elected};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Short timings so the test takes seconds, not tens of seconds.
fn config() -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::default()
    }
}

type Outcome = Result<(), LeaderError<std::io::Error>>;

/// A candidate whose work marks `leading` and runs until cancelled.
fn candidate(
    client: kube::Client,
    identity: &str,
    shutdown: CancellationToken,
) -> (Arc<AtomicBool>, Arc<AtomicBool>, JoinHandle<Outcome>) {
    let leading = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let (leading, stopped) = (leading.clone(), stopped.clone());
        let identity = identity.to_owned();
        async move {
            run_elected(client, &config(), identity, shutdown, |token| async move {
                leading.store(true, Ordering::SeqCst);
                token.cancelled().await;
                stopped.store(true, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            })
            .await
        }
    });
    (leading, stopped, task)
}

async fn eventually(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt("kube-scheduler")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn the_standby_takes_over_when_the_leader_dies() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();

    let (a_leads, _, a) = candidate(client.clone(), "host-a_1", CancellationToken::new());
    eventually("a leads", Duration::from_secs(10), || {
        a_leads.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(holder(&client).await.as_deref(), Some("host-a_1"));

    let b_shutdown = CancellationToken::new();
    let (b_leads, b_stopped, b) = candidate(client.clone(), "host-b_2", b_shutdown.clone());
    // Several lease durations: the live leader keeps renewing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !b_leads.load(Ordering::SeqCst),
        "b leads beside a live leader"
    );
    assert_eq!(holder(&client).await.as_deref(), Some("host-a_1"));

    // The leader dies: it stops renewing and does not release.
    a.abort();
    let died = Instant::now();
    eventually("b takes over", Duration::from_secs(10), || {
        b_leads.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        died.elapsed() >= Duration::from_millis(1500),
        "b took over before a's lease expired ({:?})",
        died.elapsed()
    );
    assert_eq!(holder(&client).await.as_deref(), Some("host-b_2"));

    // A shut-down leader stops its work and gives the lease back.
    b_shutdown.cancel();
    b.await.unwrap().unwrap();
    assert!(b_stopped.load(Ordering::SeqCst));
    assert_eq!(holder(&client).await, None, "the lease was released");
    server.stop().await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    let (leads, stopped, task) = candidate(client.clone(), "host-a_1", CancellationToken::new());
    eventually("a leads", Duration::from_secs(10), || {
        leads.load(Ordering::SeqCst)
    })
    .await;
    // Another instance takes the lease (for a long time).
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .patch(
            "kube-scheduler",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 60}}),
            ),
        )
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the leader noticed the loss")
        .unwrap();
    assert!(matches!(outcome, Err(LeaderError::Lost)), "{outcome:?}");
    assert_eq!(outcome.unwrap_err().to_string(), "leader election lost");
    assert!(stopped.load(Ordering::SeqCst), "the work was cancelled");
    assert_eq!(holder(&client).await.as_deref(), Some("intruder"));
    server.stop().await;
}

#[tokio::test]
async fn without_leader_election_the_work_just_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let config = LeaderElectionConfig {
        leader_elect: false,
        ..config()
    };
    let shutdown = CancellationToken::new();
    let ran = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let (client, shutdown, ran) = (server.client.clone(), shutdown.clone(), ran.clone());
        async move {
            run_elected(
                client,
                &config,
                "x".to_owned(),
                shutdown,
                |token| async move {
                    ran.store(true, Ordering::SeqCst);
                    token.cancelled().await;
                    Ok::<(), std::io::Error>(())
                },
            )
            .await
        }
    });
    eventually("the work runs", Duration::from_secs(5), || {
        ran.load(Ordering::SeqCst)
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(holder(&server.client).await, None, "no lease is taken");
    server.stop().await;
}

/// Two real schedulers: pods are bound by the leader; when it dies the
/// standby binds the pods created meanwhile.
#[tokio::test]
async fn two_schedulers_one_binds_and_the_standby_takes_over() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::PostParams;

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]
    });
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": status})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
    let scheduler = |identity: &'static str| {
        let client = client.clone();
        tokio::spawn(async move {
            let sched = skiff_scheduler::Config::new(client.clone());
            run_elected(
                client,
                &config(),
                identity.to_owned(),
                CancellationToken::new(),
                |t| skiff_scheduler::run(sched, t),
            )
            .await
        })
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let create = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    };
    let bound = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if pods
                    .get(name)
                    .await
                    .unwrap()
                    .spec
                    .unwrap()
                    .node_name
                    .is_some()
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };

    let a = scheduler("sched-a_1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = scheduler("sched-b_2");
    create("first").await;
    assert!(bound("first").await);
    assert_eq!(holder(&client).await.as_deref(), Some("sched-a_1"));

    a.abort();
    create("second").await;
    assert!(bound("second").await, "the standby took over and bound it");
    assert_eq!(holder(&client).await.as_deref(), Some("sched-b_2"));
    b.abort();
    server.stop().await;
}
