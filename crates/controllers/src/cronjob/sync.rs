//! One sync of one CronJob (upstream's syncCronJob and
//! cleanupFinishedJobs): reconcile `status.active` with the Jobs, start the
//! Job of the most recent unmet schedule time, prune the history.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt};

use super::schedule::Schedule;
use super::{Ctx, Error, history, missed};
use crate::events::EventType;
use crate::job::conditions;
use crate::replicaset::pods::controller_of;

/// The annotation recording which schedule time a Job is for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// How soon to look again when our copy of a CronJob was stale.
const STALE_RETRY: Duration = Duration::from_millis(100);

/// More missed times than this draws a warning (upstream's limit).
const TOO_MANY_MISSED: i64 = 100;

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 as Go prints it (`Z` for UTC).
fn rfc3339(t: &Zoned) -> String {
    if t.offset().seconds() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".to_owned()),
        kind: Some("Job".to_owned()),
        name: Some(job.name_any()),
        namespace: job.namespace(),
        uid: job.uid(),
        resource_version: job.resource_version(),
        ..ObjectReference::default()
    }
}

/// The Job for `scheduled` (upstream's getJobFromTemplate2).
fn job_for(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Option<Job> {
    let template = cj.spec.as_ref()?.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.to_owned(),
        rfc3339(&scheduled.to_zoned(tz.clone())),
    );
    Some(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_owned(),
                kind: "CronJob".to_owned(),
                name: cj.name_any(),
                uid: cj.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// Syncs `cj`; returns how long until its next schedule time.
pub(super) async fn sync(ctx: &Ctx, cj: &CronJob) -> Result<Option<Duration>, Error> {
    let now = (ctx.settings.clock)();
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let children: Vec<std::sync::Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let mut status = cj.status.clone().unwrap_or_default();
    let before = status.clone();
    let mut active = status.active.take().unwrap_or_default();
    let in_active = |active: &[ObjectReference], j: &Job| active.iter().any(|r| r.uid == j.uid());

    for j in &children {
        let finished = conditions::finished(j);
        let found = in_active(&active, j);
        if !found && finished.is_none() {
            // Our copy may be older than the status that lists it: check
            // live, and if so, sync again once the cache has caught up.
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
            let fresh = api.get_opt(&cj.name_any()).await?;
            let listed = fresh
                .and_then(|f| f.status)
                .and_then(|s| s.active)
                .is_some_and(|a| in_active(&a, j));
            if listed {
                return Ok(Some(STALE_RETRY));
            }
            ctx.recorder.record(
                cj,
                EventType::Warning,
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.name_any()
                ),
            );
        } else if found && let Some(c) = finished {
            active.retain(|r| r.uid != j.uid());
            ctx.recorder.record(
                cj,
                EventType::Normal,
                "SawCompletedJob",
                format!("Saw completed job: {}, status: {}", j.name_any(), c.type_),
            );
        }
        if let Some(c) = finished
            && c.type_ == conditions::COMPLETE
            && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone())
            && status
                .last_successful_time
                .as_ref()
                .is_none_or(|t| t.0 < done.0)
        {
            status.last_successful_time = Some(done);
        }
    }
    // Active Jobs that vanished (checked live: the cache may be behind).
    let mut kept = Vec::new();
    for r in active {
        if children.iter().any(|j| j.uid() == r.uid) {
            kept.push(r);
            continue;
        }
        let name = r.name.clone().unwrap_or_default();
        match job_api.get_opt(&name).await? {
            Some(j) if j.uid() == r.uid => kept.push(r),
            _ => ctx.recorder.record(
                cj,
                EventType::Normal,
                "MissingJob",
                format!("Active job went missing: {name}"),
            ),
        }
    }
    let mut active = kept;

    let next = if cj.metadata.deletion_timestamp.is_some() {
        None
    } else {
        schedule_next(ctx, cj, &job_api, &mut active, &mut status, now).await?
    };
    status.active = (!active.is_empty()).then_some(active);
    if status != before {
        let mut next_cj = cj.clone();
        next_cj.status = Some(status);
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        let written = api
            .replace_status(&cj.name_any(), &PostParams::default(), &next_cj)
            .await?;
        ctx.written.wrote(written);
    }
    if cj.metadata.deletion_timestamp.is_none() {
        prune_history(ctx, cj, &job_api, &children).await?;
    }
    Ok(next)
}

/// The scheduling half of a sync: start the Job of the most recent unmet
/// time if the policies allow it.
async fn schedule_next(
    ctx: &Ctx,
    cj: &CronJob,
    job_api: &Api<Job>,
    active: &mut Vec<ObjectReference>,
    status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(None);
    };
    let tz = match spec.time_zone.as_deref() {
        None => TimeZone::UTC,
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                ctx.recorder.record(
                    cj,
                    EventType::Warning,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                );
                return Ok(None);
            }
        },
    };
    if spec.suspend == Some(true) {
        return Ok(None);
    }
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.recorder.record(
                cj,
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok(None);
        }
    };
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let last = status.last_schedule_time.as_ref().map(|t| t.0);
    let next = || missed::until_next(&schedule, &tz, created, last, now);
    let unmet = match missed::most_recent(
        &schedule,
        &tz,
        created,
        last,
        spec.starting_deadline_seconds,
        now,
    ) {
        Ok(u) => u,
        Err(e) => {
            ctx.recorder.record(
                cj,
                EventType::Warning,
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            );
            return Ok(None);
        }
    };
    if unmet.missed > TOO_MANY_MISSED {
        ctx.recorder.record(
            cj,
            EventType::Warning,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                .to_owned(),
        );
    }
    let Some(scheduled) = unmet.most_recent else {
        return Ok(next());
    };
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled.as_second().saturating_add(deadline) < now.as_second()
    {
        ctx.recorder.record(
            cj,
            EventType::Warning,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
            ),
        );
        return Ok(next());
    }
    let name = job_name(&cj.name_any(), scheduled);
    if active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || last == Some(scheduled)
    {
        return Ok(next());
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            ctx.recorder.record(
                cj,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid"
                    .to_owned(),
            );
            return Ok(next());
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let old = r.name.clone().unwrap_or_default();
                if !delete_job(ctx, cj, job_api, &old).await? {
                    return Err(Error::Replace(old));
                }
            }
        }
        _ => {}
    }
    let Some(job) = job_for(cj, scheduled, &tz) else {
        return Ok(next());
    };
    let created_job = match job_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            ctx.recorder.record(
                cj,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {}", j.name_any()),
            );
            j
        }
        Err(e) if crate::api_code(&e) == Some(409) => {
            let existing = job_api.get(&name).await?;
            // Someone else's Job, or one already counted: nothing to add.
            if controller_of(&existing.metadata)
                .is_none_or(|o| Some(&o.uid) != cj.metadata.uid.as_ref())
                || active.iter().any(|r| r.uid == existing.uid())
            {
                return Ok(next());
            }
            existing
        }
        Err(e) => {
            ctx.recorder.record(
                cj,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating job: {e}"),
            );
            return Err(e.into());
        }
    };
    active.push(job_ref(&created_job));
    status.last_schedule_time = Some(Time(scheduled));
    Ok(missed::until_next(
        &schedule,
        &tz,
        created,
        Some(scheduled),
        now,
    ))
}

/// Deletes a Job in the background (its pods follow through the garbage
/// collector), recording `SuccessfulDelete`; false if that failed.
async fn delete_job(ctx: &Ctx, cj: &CronJob, api: &Api<Job>, name: &str) -> Result<bool, Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            ctx.recorder.record(
                cj,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {name}"),
            );
            Ok(true)
        }
        Err(e) if crate::api_code(&e) == Some(404) => Ok(true),
        Err(e) => {
            ctx.recorder.record(
                cj,
                EventType::Warning,
                "FailedDelete",
                format!("Deleted job: {e}"),
            );
            Ok(false)
        }
    }
}

/// Deletes finished Jobs beyond the history limits.
async fn prune_history(
    ctx: &Ctx,
    cj: &CronJob,
    api: &Api<Job>,
    children: &[std::sync::Arc<Job>],
) -> Result<(), Error> {
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(());
    };
    let live: Vec<&Job> = children
        .iter()
        .map(AsRef::as_ref)
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    let victims = history::to_delete(
        &live,
        spec.successful_jobs_history_limit,
        spec.failed_jobs_history_limit,
    );
    for j in victims {
        delete_job(ctx, cj, api, &j.name_any()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_and_timestamps() {
        let t: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(job_name("hello", t), "hello-28401121");
        assert_eq!(rfc3339(&t.to_zoned(TimeZone::UTC)), "2024-01-01T00:01:00Z");
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(rfc3339(&t.to_zoned(tokyo)), "2024-01-01T09:01:00+09:00");
    }
}
