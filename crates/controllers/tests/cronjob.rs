#![allow(clippy::unwrap_used)]
//! The CronJob controller against a real API server in this process, on a
//! clock the tests move forward by hand (no Job controller runs: the tests
//! finish Jobs by writing their status).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Fixture {
    server: common::Running,
    now: Arc<Mutex<Timestamp>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    cronjobs: Api<CronJob>,
    jobs: Api<Job>,
}

impl Fixture {
    async fn start(dir: &std::path::Path) -> Fixture {
        Fixture::start_with(dir, &["cronjob"]).await
    }

    async fn start_with(dir: &std::path::Path, controllers: &[&str]) -> Fixture {
        let server = common::start(dir).await;
        let now = Arc::new(Mutex::new(Timestamp::now()));
        let mut config = skiff_controllers::Config::new(server.client.clone());
        config.controllers = controllers.iter().map(|c| (*c).to_owned()).collect();
        config.leader_elect = false;
        let clock = now.clone();
        config.cronjob.clock = Arc::new(move || *clock.lock().unwrap());
        config.cronjob.max_requeue = Duration::from_millis(100);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { skiff_controllers::run(config, stop).await.unwrap() }
        });
        let cronjobs = Api::namespaced(server.client.clone(), "default");
        let jobs = Api::namespaced(server.client.clone(), "default");
        Fixture {
            server,
            now,
            stop,
            task,
            cronjobs,
            jobs,
        }
    }

    async fn create(&self, name: &str, extra: serde_json::Value) -> CronJob {
        let mut spec = json!({
            "schedule": "*/1 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"from": name}},
                "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }}},
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let cj: CronJob =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.cronjobs
            .create(&PostParams::default(), &cj)
            .await
            .unwrap()
    }

    /// Sets the controller's clock to `seconds` past the first minute
    /// boundary `minutes` minutes after `cj` was created.
    fn set_clock(&self, cj: &CronJob, minutes: i64, seconds: i64) -> Timestamp {
        let boundary = minute_after(cj, minutes);
        *self.now.lock().unwrap() = Timestamp::from_second(boundary.as_second() + seconds).unwrap();
        boundary
    }

    async fn job_names(&self, cj: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .jobs
            .list(&ListParams::default().labels(&format!("from={cj}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        names.sort();
        names
    }

    async fn finish(&self, job: &str, type_: &str, start: Timestamp) {
        let now = Timestamp::now().to_string();
        let mut status = json!({
            "startTime": start.to_string(),
            "conditions": [{"type": type_, "status": "True", "lastTransitionTime": now}],
        });
        if type_ == "Complete" {
            status["completionTime"] = json!(now);
        }
        self.jobs
            .patch_status(
                job,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .unwrap();
    }

    async fn events(&self, object: &str) -> Vec<(String, String)> {
        Api::<Event>::namespaced(self.server.client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(object))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    async fn active(&self, cj: &str) -> Vec<String> {
        self.cronjobs
            .get(cj)
            .await
            .unwrap()
            .status
            .and_then(|s| s.active)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.name)
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// The `n`-th minute boundary after `cj`'s creation (n = 1: the first).
fn minute_after(cj: &CronJob, n: i64) -> Timestamp {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .unwrap()
        .0
        .as_second();
    Timestamp::from_second((created.div_euclid(60) + n) * 60).unwrap()
}

fn name_for(cj: &str, t: Timestamp) -> String {
    format!("{cj}-{}", t.as_second() / 60)
}

#[tokio::test]
async fn creates_a_job_per_schedule_time_with_upstream_names() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start(dir.path()).await;
    let cj = f.create("tick", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        f.job_names("tick").await.is_empty(),
        "nothing before the first minute"
    );

    let m1 = f.set_clock(&cj, 1, 5);
    common::eventually("first job", || async {
        f.job_names("tick").await == [name_for("tick", m1)]
    })
    .await;
    let job = f.jobs.get(&name_for("tick", m1)).await.unwrap();
    assert_eq!(
        job.annotations()
            .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
            .map(String::as_str),
        Some(m1.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().as_str())
    );
    let owner = &job.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("CronJob", Some(true), Some(true))
    );
    assert_eq!(job.labels().get("from").map(String::as_str), Some("tick"));
    common::eventually("status", || async {
        let s = f
            .cronjobs
            .get("tick")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        s.last_schedule_time.map(|t| t.0) == Some(m1)
            && f.active("tick").await == [name_for("tick", m1)]
    })
    .await;

    // Allow: the next minute runs alongside.
    let m2 = f.set_clock(&cj, 2, 1);
    common::eventually("second job", || async {
        f.job_names("tick").await.len() == 2 && f.active("tick").await.len() == 2
    })
    .await;
    assert!(f.job_names("tick").await.contains(&name_for("tick", m2)));

    // Finished jobs leave status.active; a success sets lastSuccessfulTime.
    f.finish(&name_for("tick", m1), "Complete", m1).await;
    common::eventually("completed job left active", || async {
        let s = f
            .cronjobs
            .get("tick")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        f.active("tick").await == [name_for("tick", m2)] && s.last_successful_time.is_some()
    })
    .await;
    common::eventually("events", || async {
        let ev = f.events("tick").await;
        ev.iter().any(|(r, m)| {
            r == "SuccessfulCreate" && *m == format!("Created job {}", name_for("tick", m1))
        }) && ev.iter().any(|(r, m)| {
            r == "SawCompletedJob"
                && *m
                    == format!(
                        "Saw completed job: {}, status: Complete",
                        name_for("tick", m1)
                    )
        })
    })
    .await;
    // Many minutes later only the most recent missed time runs.
    let m9 = f.set_clock(&cj, 9, 2);
    common::eventually("only the latest missed time", || async {
        f.job_names("tick").await.len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.job_names("tick").await.len(), 3);
    assert!(f.job_names("tick").await.contains(&name_for("tick", m9)));
    // More than 100 missed times: still one Job, and a warning.
    let later = f.set_clock(&cj, 9 + 150, 2);
    common::eventually("TooManyMissedTimes", || async {
        f.job_names("tick").await.contains(&name_for("tick", later))
            && f.events("tick").await.iter().any(|(r, m)| {
                r == "TooManyMissedTimes" && m.starts_with("too many missed start times.")
            })
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn forbid_skips_while_a_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start(dir.path()).await;
    let cj = f
        .create("single", json!({"concurrencyPolicy": "Forbid"}))
        .await;
    let m1 = f.set_clock(&cj, 1, 5);
    common::eventually("first job", || async {
        f.job_names("single").await.len() == 1
    })
    .await;
    let m2 = f.set_clock(&cj, 2, 5);
    common::eventually("JobAlreadyActive", || async {
        f.events("single")
            .await
            .iter()
            .any(|(r, _)| r == "JobAlreadyActive")
    })
    .await;
    assert_eq!(f.job_names("single").await, [name_for("single", m1)]);
    // Once it finished, the most recent time runs (no startingDeadline).
    f.finish(&name_for("single", m1), "Failed", m1).await;
    common::eventually("the next job", || async {
        f.job_names("single").await == [name_for("single", m1), name_for("single", m2)]
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start(dir.path()).await;
    let cj = f
        .create("swap", json!({"concurrencyPolicy": "Replace"}))
        .await;
    let m1 = f.set_clock(&cj, 1, 5);
    common::eventually("first job", || async {
        f.job_names("swap").await.len() == 1
    })
    .await;
    let m2 = f.set_clock(&cj, 2, 5);
    common::eventually("replaced", || async {
        f.job_names("swap").await == [name_for("swap", m2)]
            && f.active("swap").await == [name_for("swap", m2)]
    })
    .await;
    let ev = f.events("swap").await;
    assert!(ev.contains(&(
        "SuccessfulDelete".to_owned(),
        format!("Deleted job {}", name_for("swap", m1))
    )));
    f.stop().await;
}

#[tokio::test]
async fn history_limits_prune_the_oldest_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start(dir.path()).await;
    let cj = f
        .create(
            "hist",
            json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
        )
        .await;
    let mut created = Vec::new();
    for (minute, outcome) in [
        (1, "Complete"),
        (2, "Failed"),
        (3, "Complete"),
        (4, "Failed"),
        (5, "Complete"),
    ] {
        let t = f.set_clock(&cj, minute, 5);
        let name = name_for("hist", t);
        common::eventually("job", || async {
            f.job_names("hist").await.contains(&name)
        })
        .await;
        f.finish(&name, outcome, t).await;
        created.push(name);
    }
    // Kept: the 2 newest successes (minutes 3, 5) and the newest failure (4).
    let mut want = vec![created[2].clone(), created[3].clone(), created[4].clone()];
    want.sort();
    common::eventually("pruned", || async { f.job_names("hist").await == want }).await;
    f.stop().await;
}

#[tokio::test]
async fn suspend_deadline_and_time_zones() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start(dir.path()).await;
    let paused = f.create("paused", json!({"suspend": true})).await;
    let _late = f
        .create("late", json!({"startingDeadlineSeconds": 10}))
        .await;
    let nowhere = f
        .create("nowhere", json!({"timeZone": "Mars/Olympus_Mons"}))
        .await;
    let tokyo = f
        .create(
            "tokyo",
            json!({"timeZone": "Asia/Tokyo", "schedule": "0 * * * *"}),
        )
        .await;
    // 30 s past the minute: beyond `late`'s 10 s deadline, so that time
    // is not looked at any more (as upstream, without an event).
    let m1 = f.set_clock(&paused, 1, 30);
    common::eventually("UnknownTimeZone", || async {
        f.events("nowhere").await.iter().any(|(r, m)| {
            r == "UnknownTimeZone" && m.starts_with("invalid timeZone: \"Mars/Olympus_Mons\"")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(f.job_names("paused").await.is_empty());
    assert!(f.job_names("late").await.is_empty());
    assert!(f.job_names("nowhere").await.is_empty());
    let _ = nowhere;
    // Unsuspended, the missed time runs.
    f.cronjobs
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    common::eventually("runs after unsuspending", || async {
        f.job_names("paused").await == [name_for("paused", m1)]
    })
    .await;
    // Hourly in Tokyo: the scheduled timestamp is written in that zone.
    let created = tokyo
        .metadata
        .creation_timestamp
        .as_ref()
        .unwrap()
        .0
        .as_second();
    let hour = Timestamp::from_second((created.div_euclid(3600) + 1) * 3600).unwrap();
    *f.now.lock().unwrap() = Timestamp::from_second(hour.as_second() + 5).unwrap();
    common::eventually("tokyo job", || async {
        f.job_names("tokyo").await.len() == 1
    })
    .await;
    let job = f.jobs.get(&name_for("tokyo", hour)).await.unwrap();
    let stamp = job
        .annotations()
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .unwrap();
    assert!(stamp.ends_with(":00:00+09:00"), "{stamp}");
    // 5 s after a minute is within `late`'s deadline.
    common::eventually("late runs within its deadline", || async {
        f.job_names("late").await == [name_for("late", hour)]
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn with_the_job_controller_runs_pods_and_records_success() {
    use k8s_openapi::api::core::v1::Pod;
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::start_with(dir.path(), &["cronjob", "job"]).await;
    let cj = f
        .create("nightly", json!({"concurrencyPolicy": "Forbid"}))
        .await;
    let m1 = f.set_clock(&cj, 1, 3);
    let job = name_for("nightly", m1);
    let pods: Api<Pod> = Api::namespaced(f.server.client.clone(), "default");
    let selector = format!("batch.kubernetes.io/job-name={job}");
    common::eventually("the job's pod", || async {
        !pods
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .remove(0);
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    common::eventually("success recorded, nothing active", || async {
        let s = f
            .cronjobs
            .get("nightly")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        s.last_successful_time.is_some() && s.active.unwrap_or_default().is_empty()
    })
    .await;
    let done = f.jobs.get(&job).await.unwrap();
    assert_eq!(done.status.unwrap().succeeded, Some(1));
    f.stop().await;
}
