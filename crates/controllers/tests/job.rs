#![allow(clippy::unwrap_used)]
//! The Job controller against a real API server in this process: there is
//! no kubelet, so the tests move pods to Succeeded/Failed themselves.

mod common;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// The Job controller alone (no leader election), replacing failed pods
/// after 100 ms instead of 10 s.
fn start_job_controller(client: kube::Client) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = skiff_controllers::Config::new(client);
    config.controllers = vec!["job".to_owned()];
    config.leader_elect = false;
    config.job.backoff_base = Duration::from_millis(100);
    let token = CancellationToken::new();
    let task = tokio::spawn({
        let token = token.clone();
        async move { skiff_controllers::run(config, token).await.unwrap() }
    });
    (token, task)
}

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}],
    }});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Every pod of the Job (by the label the API server adds).
async fn pods(api: &Api<Pod>, job: &str) -> Vec<Pod> {
    let mut all = api
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items;
    all.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    all
}

fn is_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

async fn active(api: &Api<Pod>, job: &str) -> Vec<Pod> {
    pods(api, job).await.into_iter().filter(is_active).collect()
}

/// Moves a pod to a terminal phase as a kubelet would.
async fn finish(api: &Api<Pod>, name: &str, phase: &str, exit_code: i32) {
    let patch = json!({"status": {
        "phase": phase,
        "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": exit_code,
            "finishedAt": k8s_openapi::jiff::Timestamp::now().to_string()}}}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn counts(job: &Job) -> (i32, i32, i32) {
    let s = job.status.clone().unwrap_or_default();
    (
        s.active.unwrap_or(0),
        s.succeeded.unwrap_or(0),
        s.failed.unwrap_or(0),
    )
}

async fn events(client: &kube::Client, object: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn completions_with_parallelism_complete_after_enough_successes() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let created = jobs
        .create(
            &PostParams::default(),
            &job("work", json!({"completions": 3, "parallelism": 2})),
        )
        .await
        .unwrap();
    common::eventually("2 pods", || async {
        active(&pod_api, "work").await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = pods(&pod_api, "work").await;
    assert_eq!(first.len(), 2, "parallelism caps the active pods");
    for p in &first {
        let owner = &p.owner_references()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Job", Some(true), Some(true))
        );
        assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
        assert!(p.finalizers().iter().any(|f| f == FINALIZER));
        assert_eq!(p.labels().get("job-name").map(String::as_str), Some("work"));
        assert_eq!(
            p.labels().get("batch.kubernetes.io/controller-uid"),
            created.metadata.uid.as_ref()
        );
        assert!(p.name_any().starts_with("work-"));
    }
    common::eventually("status.active 2", || async {
        counts(&jobs.get("work").await.unwrap()) == (2, 0, 0)
    })
    .await;
    let start = jobs.get("work").await.unwrap().status.unwrap().start_time;
    assert!(start.is_some());

    // Two successes: one replacement (only one completion is left).
    finish(&pod_api, &first[0].name_any(), "Succeeded", 0).await;
    finish(&pod_api, &first[1].name_any(), "Succeeded", 0).await;
    common::eventually("succeeded 2 and one more pod", || async {
        counts(&jobs.get("work").await.unwrap()) == (1, 2, 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = pods(&pod_api, "work").await;
    assert_eq!(now.len(), 3, "never more than the remaining completions");
    assert_eq!(active(&pod_api, "work").await.len(), 1);
    for p in now.iter().filter(|p| !is_active(p)) {
        assert!(p.finalizers().is_empty(), "counted pods lose the finalizer");
    }
    let last = active(&pod_api, "work").await.remove(0);
    finish(&pod_api, &last.name_any(), "Succeeded", 0).await;
    common::eventually("Complete", || async {
        condition(&jobs.get("work").await.unwrap(), "Complete").is_some()
    })
    .await;
    let done = jobs.get("work").await.unwrap();
    assert_eq!(counts(&done), (0, 3, 0));
    let status = done.status.clone().unwrap();
    assert!(status.completion_time.is_some());
    assert_eq!(status.start_time, start);
    assert_eq!(
        condition(&done, "SuccessCriteriaMet").map(|c| c.0),
        Some("CompletionsReached".to_owned())
    );
    let uncounted = status.uncounted_terminated_pods.unwrap_or_default();
    assert!(uncounted.succeeded.unwrap_or_default().is_empty());
    assert_eq!(pods(&pod_api, "work").await.len(), 3);
    common::eventually("events", || async {
        let ev = events(&server.client, "work").await;
        ev.iter().filter(|(r, _)| r == "SuccessfulCreate").count() == 3
            && ev.contains(&("Completed".to_owned(), "Job completed".to_owned()))
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn backoff_limit_fails_after_limit_plus_one_failures() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 2})),
    )
    .await
    .unwrap();
    for attempt in 1..=3 {
        common::eventually("a pod to fail", || async {
            active(&pod_api, "flaky").await.len() == 1
        })
        .await;
        assert_eq!(pods(&pod_api, "flaky").await.len(), attempt);
        let p = active(&pod_api, "flaky").await.remove(0);
        finish(&pod_api, &p.name_any(), "Failed", 1).await;
    }
    common::eventually("Failed", || async {
        condition(&jobs.get("flaky").await.unwrap(), "Failed").is_some()
    })
    .await;
    let failed = jobs.get("flaky").await.unwrap();
    assert_eq!(
        condition(&failed, "Failed"),
        Some((
            "BackoffLimitExceeded".to_owned(),
            "Job has reached the specified backoff limit".to_owned()
        ))
    );
    assert!(condition(&failed, "FailureTarget").is_some());
    assert_eq!(counts(&failed), (0, 0, 3));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(pods(&pod_api, "flaky").await.len(), 3, "no fourth pod");
    common::eventually("BackoffLimitExceeded event", || async {
        events(&server.client, "flaky")
            .await
            .iter()
            .any(|(r, _)| r == "BackoffLimitExceeded")
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_deletes_its_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 2}),
        ),
    )
    .await
    .unwrap();
    common::eventually("2 pods", || async {
        active(&pod_api, "slow").await.len() == 2
    })
    .await;
    common::eventually("Failed", || async {
        condition(&jobs.get("slow").await.unwrap(), "Failed").is_some()
    })
    .await;
    let failed = jobs.get("slow").await.unwrap();
    assert_eq!(
        condition(&failed, "Failed").map(|c| c.0),
        Some("DeadlineExceeded".to_owned())
    );
    // The active pods were deleted and count as failed.
    assert_eq!(counts(&failed), (0, 0, 2));
    common::eventually("pods gone", || async {
        pods(&pod_api, "slow").await.is_empty()
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn indexed_jobs_run_one_pod_per_index() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completions": 4, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await
    .unwrap();
    common::eventually("3 pods", || async {
        active(&pod_api, "idx").await.len() == 3
    })
    .await;
    let index = |p: &Pod| {
        p.annotations()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned()
            .unwrap_or_default()
    };
    let mut first = active(&pod_api, "idx").await;
    first.sort_by_key(&index);
    for (i, p) in first.iter().enumerate() {
        assert_eq!(index(p), i.to_string());
        assert_eq!(
            p.labels().get("batch.kubernetes.io/job-completion-index"),
            Some(&i.to_string())
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        assert!(p.name_any().starts_with(&format!("idx-{i}-")));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        let var = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .unwrap();
        assert_eq!(
            var.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
    }
    finish(&pod_api, &first[1].name_any(), "Succeeded", 0).await;
    common::eventually("index 3 started, 1 completed", || async {
        let j = jobs.get("idx").await.unwrap();
        let s = j.status.clone().unwrap_or_default();
        let act = active(&pod_api, "idx").await;
        s.completed_indexes.as_deref() == Some("1")
            && s.succeeded == Some(1)
            && act.len() == 3
            && act.iter().any(|p| index(p) == "3")
    })
    .await;
    // A failed index is retried with the same index.
    finish(&pod_api, &first[0].name_any(), "Failed", 1).await;
    common::eventually("index 0 again", || async {
        let act = active(&pod_api, "idx").await;
        act.len() == 3 && act.iter().any(|p| index(p) == "0")
    })
    .await;
    for p in active(&pod_api, "idx").await {
        finish(&pod_api, &p.name_any(), "Succeeded", 0).await;
    }
    common::eventually("Complete", || async {
        condition(&jobs.get("idx").await.unwrap(), "Complete").is_some()
    })
    .await;
    let done = jobs.get("idx").await.unwrap();
    let s = done.status.clone().unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(counts(&done), (0, 4, 1));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn pod_failure_policy_ignores_or_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "policy",
            json!({"completions": 2, "parallelism": 2, "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
                {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            ]}}),
        ),
    )
    .await
    .unwrap();
    common::eventually("2 pods", || async {
        active(&pod_api, "policy").await.len() == 2
    })
    .await;
    let first = active(&pod_api, "policy").await;
    // Exit code 3 is ignored: replaced, not counted.
    finish(&pod_api, &first[0].name_any(), "Failed", 3).await;
    common::eventually("replacement", || async {
        active(&pod_api, "policy").await.len() == 2 && pods(&pod_api, "policy").await.len() == 3
    })
    .await;
    assert_eq!(counts(&jobs.get("policy").await.unwrap()).2, 0);
    // Exit code 42 fails the Job at once.
    finish(&pod_api, &first[1].name_any(), "Failed", 42).await;
    common::eventually("Failed", || async {
        condition(&jobs.get("policy").await.unwrap(), "Failed").is_some()
    })
    .await;
    let failed = jobs.get("policy").await.unwrap();
    let (reason, message) = condition(&failed, "Failed").unwrap();
    assert_eq!(reason, "PodFailurePolicy");
    assert_eq!(
        message,
        format!(
            "Container c for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            first[1].name_any()
        )
    );
    // The failing pod and the deleted active one count, the ignored one not.
    assert_eq!(counts(&failed), (0, 0, 2));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn suspend_deletes_active_pods_and_resume_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "pause",
            json!({"completions": 3, "parallelism": 2, "suspend": true}),
        ),
    )
    .await
    .unwrap();
    common::eventually("Suspended", || async {
        condition(&jobs.get("pause").await.unwrap(), "Suspended")
            == Some(("JobSuspended".to_owned(), "Job suspended".to_owned()))
    })
    .await;
    assert!(pods(&pod_api, "pause").await.is_empty());
    assert!(
        jobs.get("pause")
            .await
            .unwrap()
            .status
            .unwrap()
            .start_time
            .is_none(),
        "a suspended job has not started"
    );
    let suspend = |on: bool| {
        let jobs = jobs.clone();
        async move {
            jobs.patch(
                "pause",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"suspend": on}})),
            )
            .await
            .unwrap();
        }
    };
    suspend(false).await;
    common::eventually("2 pods", || async {
        active(&pod_api, "pause").await.len() == 2
    })
    .await;
    let resumed = jobs.get("pause").await.unwrap();
    let first_start = resumed.status.clone().unwrap().start_time.unwrap();
    assert!(condition(&resumed, "Suspended").is_none());
    suspend(true).await;
    common::eventually("pods deleted, not failed", || async {
        let j = jobs.get("pause").await.unwrap();
        pods(&pod_api, "pause").await.is_empty()
            && counts(&j) == (0, 0, 0)
            && condition(&j, "Suspended").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    suspend(false).await;
    common::eventually("running again with a new start time", || async {
        let j = jobs.get("pause").await.unwrap();
        let start = j.status.clone().unwrap().start_time.unwrap();
        active(&pod_api, "pause").await.len() == 2 && start.0 > first_start.0
    })
    .await;
    let j = jobs.get("pause").await.unwrap();
    let c = j.status.unwrap().conditions.unwrap();
    let s = c.iter().find(|c| c.type_ == "Suspended").unwrap();
    assert_eq!(
        (s.status.as_str(), s.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    let ev = events(&server.client, "pause").await;
    assert!(ev.iter().any(|(r, _)| r == "Suspended"));
    assert!(ev.iter().any(|(r, _)| r == "Resumed"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_restart_neither_duplicates_pods_nor_double_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("again", json!({"completions": 4, "parallelism": 2})),
    )
    .await
    .unwrap();
    common::eventually("2 pods", || async {
        active(&pod_api, "again").await.len() == 2
    })
    .await;
    let first = active(&pod_api, "again").await;
    finish(&pod_api, &first[0].name_any(), "Succeeded", 0).await;
    common::eventually("counted", || async {
        counts(&jobs.get("again").await.unwrap()) == (2, 1, 0)
    })
    .await;
    stop.cancel();
    task.await.unwrap();

    // While the controller is down: one more success, one failure.
    let running = active(&pod_api, "again").await;
    assert_eq!(running.len(), 2);
    finish(&pod_api, &running[0].name_any(), "Succeeded", 0).await;
    finish(&pod_api, &running[1].name_any(), "Failed", 1).await;
    let (stop, task) = start_job_controller(server.client.clone());
    common::eventually("counted once after the restart", || async {
        counts(&jobs.get("again").await.unwrap()) == (2, 2, 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(counts(&jobs.get("again").await.unwrap()), (2, 2, 1));
    assert_eq!(
        pods(&pod_api, "again").await.len(),
        5,
        "2 + 2 replacements + the first"
    );
    stop.cancel();
    task.await.unwrap();

    // And once more, restarting right after the pods finish.
    for p in active(&pod_api, "again").await {
        finish(&pod_api, &p.name_any(), "Succeeded", 0).await;
    }
    let (stop, task) = start_job_controller(server.client.clone());
    common::eventually("Complete", || async {
        condition(&jobs.get("again").await.unwrap(), "Complete").is_some()
    })
    .await;
    assert_eq!(counts(&jobs.get("again").await.unwrap()), (0, 4, 1));
    assert_eq!(pods(&pod_api, "again").await.len(), 5);
    for p in pods(&pod_api, "again").await {
        assert!(p.finalizers().is_empty());
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "manual"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let manual: Job = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "spec": {
            "manualSelector": true,
            "selector": {"matchLabels": {"app": "manual"}},
            "completions": 2,
            "parallelism": 2,
            "template": {
                "metadata": {"labels": {"app": "manual"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .unwrap();
    let created = jobs.create(&PostParams::default(), &manual).await.unwrap();
    let mine = |p: &Pod| {
        p.owner_references()
            .iter()
            .any(|r| Some(&r.uid) == created.metadata.uid.as_ref() && r.controller == Some(true))
    };
    let labelled = || async {
        pod_api
            .list(&ListParams::default().labels("app=manual"))
            .await
            .unwrap()
            .items
    };
    common::eventually("orphan adopted, one more created", || async {
        let all = labelled().await;
        all.len() == 2 && all.iter().all(&mine)
    })
    .await;
    let adopted = pod_api.get("orphan").await.unwrap();
    assert!(adopted.finalizers().iter().any(|f| f == FINALIZER));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        labelled().await.len(),
        2,
        "the orphan counts as one of the two"
    );

    // Relabelled: released (reference and finalizer dropped) and replaced.
    pod_api
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "elsewhere"}}})),
        )
        .await
        .unwrap();
    common::eventually("released and replaced", || async {
        let p = pod_api.get("orphan").await.unwrap();
        let all = labelled().await;
        !mine(&p) && p.finalizers().is_empty() && all.len() == 2 && all.iter().all(&mine)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn uncounted_pods_left_by_a_crash_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("crash", json!({"completions": 2, "parallelism": 2})),
    )
    .await
    .unwrap();
    common::eventually("2 pods", || async {
        active(&pod_api, "crash").await.len() == 2
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    // As if the controller died between recording a finished pod in
    // uncountedTerminatedPods and removing its finalizer.
    let first = active(&pod_api, "crash").await.remove(0);
    finish(&pod_api, &first.name_any(), "Succeeded", 0).await;
    jobs.patch_status(
        "crash",
        &PatchParams::default(),
        &Patch::Merge(
            &json!({"status": {"uncountedTerminatedPods": {"succeeded": [first.uid()]}}}),
        ),
    )
    .await
    .unwrap();
    let (stop, task) = start_job_controller(server.client.clone());
    common::eventually("counted once", || async {
        let j = jobs.get("crash").await.unwrap();
        let uncounted = j
            .status
            .clone()
            .unwrap()
            .uncounted_terminated_pods
            .unwrap_or_default();
        counts(&j) == (1, 1, 0) && uncounted.succeeded.unwrap_or_default().is_empty()
    })
    .await;
    assert!(
        pod_api
            .get(&first.name_any())
            .await
            .unwrap()
            .finalizers()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(&jobs.get("crash").await.unwrap()), (1, 1, 0));
    assert_eq!(pods(&pod_api, "crash").await.len(), 2);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn deleting_a_job_lets_its_pods_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut config = skiff_controllers::Config::new(server.client.clone());
    config.controllers = ["job", "garbagecollector"].map(str::to_owned).to_vec();
    config.leader_elect = false;
    config.garbage_collector.resync = Duration::from_secs(1);
    config.garbage_collector.rediscover = Duration::from_secs(2);
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { skiff_controllers::run(config, stop).await.unwrap() }
    });
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    for name in ["background", "foreground"] {
        jobs.create(
            &PostParams::default(),
            &job(name, json!({"parallelism": 2})),
        )
        .await
        .unwrap();
        common::eventually("2 pods", || async {
            active(&pod_api, name).await.len() == 2
        })
        .await;
    }
    // Running pods hold the tracking finalizer; the controller releases it
    // when their Job is gone (background) or being deleted (foreground).
    jobs.delete("background", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    jobs.delete("foreground", &kube::api::DeleteParams::foreground())
        .await
        .unwrap();
    for name in ["background", "foreground"] {
        common::eventually("pods and job gone", || async {
            pods(&pod_api, name).await.is_empty() && jobs.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn without_completions_the_first_success_ends_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    // The API server defaults completions only when parallelism is unset too.
    jobs.create(
        &PostParams::default(),
        &job("queue", json!({"parallelism": 3})),
    )
    .await
    .unwrap();
    common::eventually("3 pods", || async {
        active(&pod_api, "queue").await.len() == 3
    })
    .await;
    let workers = active(&pod_api, "queue").await;
    finish(&pod_api, &workers[0].name_any(), "Succeeded", 0).await;
    common::eventually("one succeeded, the rest keep running", || async {
        counts(&jobs.get("queue").await.unwrap()) == (2, 1, 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods(&pod_api, "queue").await.len(), 3, "no new workers");
    // A failure after a success is not replaced; the job ends once all end.
    finish(&pod_api, &workers[1].name_any(), "Failed", 1).await;
    finish(&pod_api, &workers[2].name_any(), "Succeeded", 0).await;
    common::eventually("Complete", || async {
        condition(&jobs.get("queue").await.unwrap(), "Complete").is_some()
    })
    .await;
    assert_eq!(counts(&jobs.get("queue").await.unwrap()), (0, 2, 1));
    assert_eq!(pods(&pod_api, "queue").await.len(), 3);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn pod_replacement_policy_failed_waits_for_terminating_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("patient", json!({"podReplacementPolicy": "Failed"})),
    )
    .await
    .unwrap();
    common::eventually("a pod", || async {
        active(&pod_api, "patient").await.len() == 1
    })
    .await;
    let first = active(&pod_api, "patient").await.remove(0);
    pod_api
        .delete(&first.name_any(), &kube::api::DeleteParams::default())
        .await
        .unwrap();
    common::eventually("terminating 1", || async {
        let j = jobs.get("patient").await.unwrap();
        j.status.unwrap_or_default().terminating == Some(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pods(&pod_api, "patient").await.len(),
        1,
        "not replaced while terminating"
    );
    // Once the kubelet reports it Failed, it counts and is replaced.
    finish(&pod_api, &first.name_any(), "Failed", 137).await;
    common::eventually("replaced", || async {
        let j = jobs.get("patient").await.unwrap();
        counts(&j) == (1, 0, 1) && active(&pod_api, "patient").await.len() == 1
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn success_policy_ends_an_indexed_job_early() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "leader",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                "successPolicy": {"rules": [{"succeededIndexes": "0"}]}}),
        ),
    )
    .await
    .unwrap();
    common::eventually("3 pods", || async {
        active(&pod_api, "leader").await.len() == 3
    })
    .await;
    let leader = active(&pod_api, "leader")
        .await
        .into_iter()
        .find(|p| p.name_any().starts_with("leader-0-"))
        .unwrap();
    finish(&pod_api, &leader.name_any(), "Succeeded", 0).await;
    common::eventually("Complete", || async {
        condition(&jobs.get("leader").await.unwrap(), "Complete").is_some()
    })
    .await;
    let done = jobs.get("leader").await.unwrap();
    assert_eq!(
        condition(&done, "SuccessCriteriaMet"),
        Some((
            "SuccessPolicy".to_owned(),
            "Matched rules at index 0".to_owned()
        ))
    );
    assert_eq!(
        condition(&done, "Complete").map(|c| c.0),
        Some("SuccessPolicy".to_owned())
    );
    assert_eq!(
        counts(&done),
        (0, 1, 0),
        "the other indexes are not failures"
    );
    assert_eq!(done.status.unwrap().completed_indexes.as_deref(), Some("0"));
    common::eventually("the rest deleted", || async {
        pods(&pod_api, "leader").await.len() == 1
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn backoff_limit_per_index_gives_up_on_one_index() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = start_job_controller(server.client.clone());
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "per",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                "backoffLimitPerIndex": 1}),
        ),
    )
    .await
    .unwrap();
    let annotation = |p: &Pod, key: &str| p.annotations().get(key).cloned().unwrap_or_default();
    let of_index = |i: u32| {
        let pod_api = pod_api.clone();
        async move {
            active(&pod_api, "per").await.into_iter().find(|p| {
                annotation(p, "batch.kubernetes.io/job-completion-index") == i.to_string()
            })
        }
    };
    common::eventually("3 pods", || async {
        active(&pod_api, "per").await.len() == 3
    })
    .await;
    let first = of_index(1).await.unwrap();
    assert_eq!(
        annotation(&first, "batch.kubernetes.io/job-index-failure-count"),
        "0"
    );
    finish(&pod_api, &first.name_any(), "Failed", 1).await;
    common::eventually("index 1 retried", || async {
        of_index(1)
            .await
            .is_some_and(|p| annotation(&p, "batch.kubernetes.io/job-index-failure-count") == "1")
    })
    .await;
    let second = of_index(1).await.unwrap();
    finish(&pod_api, &second.name_any(), "Failed", 1).await;
    common::eventually("index 1 failed", || async {
        let s = jobs.get("per").await.unwrap().status.unwrap_or_default();
        s.failed_indexes.as_deref() == Some("1") && s.failed == Some(2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(of_index(1).await.is_none(), "a failed index is not retried");
    for i in [0, 2] {
        let p = of_index(i).await.unwrap();
        finish(&pod_api, &p.name_any(), "Succeeded", 0).await;
    }
    common::eventually("Failed", || async {
        condition(&jobs.get("per").await.unwrap(), "Failed").is_some()
    })
    .await;
    let failed = jobs.get("per").await.unwrap();
    assert_eq!(
        condition(&failed, "Failed"),
        Some((
            "FailedIndexes".to_owned(),
            "Job has failed indexes".to_owned()
        ))
    );
    let s = failed.status.clone().unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(counts(&failed), (0, 2, 2));
    stop.cancel();
    task.await.unwrap();
}
