//! Creating and deleting a Job's pods (upstream's manageJob): as many
//! active pods as the Job wants, Indexed pods for the pending indexes,
//! slow-start batches, the failure backoff before replacements.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use super::pods::{self as jp, Slot, has_tracking_finalizer};
use super::status::count;
use super::{Ctx, Error, backoff, per_index, remove_finalizer};
use crate::events::EventType;
use crate::replicaset::pods::pods_to_delete;

/// Most pods created or deleted in one sync (upstream's
/// MaxPodCreateDeletePerSync).
const MAX_PER_SYNC: usize = 500;

/// The controller reference of the Job's pods.
pub(super) fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job.name_any(),
        uid: job.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What the Job wants running now.
pub(super) struct Plan<'a> {
    pub indexed: bool,
    pub completions: Option<i32>,
    pub parallelism: i32,
    pub succeeded: i32,
    pub completed: &'a BTreeSet<i32>,
    /// With `backoffLimitPerIndex`: indexes that are not retried.
    pub failed_indexes: &'a BTreeSet<i32>,
    /// Whether each index backs off on its own.
    pub per_index: bool,
    /// Whether deleted pods count as failed only once Failed.
    pub only_replace_failed: bool,
    /// Pods still terminating that replacements must wait for.
    pub terminating: usize,
}

impl Plan<'_> {
    /// Upstream's wantActive.
    fn want_active(&self, active: usize) -> usize {
        let want = match self.completions {
            None if self.succeeded > 0 => count(active),
            None => self.parallelism,
            Some(c) => (c - self.succeeded).clamp(0, self.parallelism),
        };
        usize::try_from(want).unwrap_or(0)
    }
}

/// Deletes surplus pods and creates missing ones (after the backoff
/// delay); returns when to look again.
#[allow(clippy::too_many_arguments)]
pub(super) async fn manage(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    owned: &[Arc<Pod>],
    active: &mut Vec<&Arc<Pod>>,
    plan: &Plan<'_>,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    // Indexed: pods of completed indexes, and duplicates, go first.
    let mut surplus: Vec<&Arc<Pod>> = Vec::new();
    if plan.indexed {
        let mut seen = HashSet::new();
        active.retain(|p| {
            let keep = jp::completion_index(p).is_some_and(|i| {
                !plan.completed.contains(&i)
                    && !plan.failed_indexes.contains(&i)
                    && plan.completions.is_some_and(|c| i < c)
                    && seen.insert(i)
            });
            if !keep {
                surplus.push(p);
            }
            keep
        });
    }
    let want = plan.want_active(active.len());
    if active.len() > want {
        let candidates: Vec<&Pod> = active.iter().map(|p| p.as_ref()).collect();
        let victims: HashSet<String> =
            pods_to_delete(&candidates, &candidates, active.len() - want)
                .into_iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
        active.retain(|p| {
            let go = victims.contains(p.metadata.uid.as_deref().unwrap_or_default());
            if go {
                surplus.push(p);
            }
            !go
        });
    }
    if !surplus.is_empty() {
        // Deletions take precedence: creations wait for the next sync.
        surplus.truncate(MAX_PER_SYNC);
        delete_pods(ctx, job, pod_api, key, &surplus, true).await?;
        return Ok(None);
    }
    let missing = want
        .saturating_sub(active.len())
        .saturating_sub(plan.terminating)
        .min(MAX_PER_SYNC);
    if missing == 0 {
        return Ok(None);
    }
    let settings = &ctx.settings;
    let slots: Vec<Slot> = if plan.indexed {
        let running: HashSet<i32> = active
            .iter()
            .filter_map(|p| jp::completion_index(p))
            .collect();
        let pending = (0..plan.completions.unwrap_or(0)).filter(|i| {
            !plan.completed.contains(i) && !plan.failed_indexes.contains(i) && !running.contains(i)
        });
        if plan.per_index {
            // Each index backs off on its own.
            let last = per_index::last_failed(owned, plan.only_replace_failed);
            let mut ready = Vec::new();
            let mut soonest: Option<Duration> = None;
            for i in pending {
                let failed = last.get(&i);
                let wait = failed.map_or(Duration::ZERO, |p| {
                    per_index::remaining(p, settings.backoff_base, settings.backoff_max, now)
                });
                if wait.is_zero() {
                    let failures = failed.map_or((0, 0), |p| per_index::next_counts(job, p));
                    ready.push(Slot {
                        index: Some(i),
                        failures: Some(failures),
                    });
                } else {
                    soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
                }
                if ready.len() == missing {
                    break;
                }
            }
            if ready.is_empty() {
                return Ok(soonest);
            }
            ready
        } else {
            let finished: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).collect();
            let wait =
                backoff::remaining(&finished, settings.backoff_base, settings.backoff_max, now);
            if !wait.is_zero() {
                return Ok(Some(wait));
            }
            pending
                .take(missing)
                .map(|i| Slot {
                    index: Some(i),
                    failures: None,
                })
                .collect()
        }
    } else {
        let finished: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).collect();
        let wait = backoff::remaining(&finished, settings.backoff_base, settings.backoff_max, now);
        if !wait.is_zero() {
            return Ok(Some(wait));
        }
        vec![Slot::default(); missing]
    };
    create_pods(ctx, job, pod_api, key, &slots).await?;
    Ok(None)
}

/// Creates one pod per slot in slow-start batches (1, 2, 4, …), stopping
/// at the first error, as upstream.
async fn create_pods(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    slots: &[Slot],
) -> Result<(), Error> {
    let post = &PostParams::default();
    let owner = controller_ref(job);
    let mut rest = slots;
    let mut batch = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        batch *= 2;
        let results = futures::future::join_all(now.iter().map(|slot| {
            let pod = jp::pod_for(job, owner.clone(), *slot);
            async move {
                match pod {
                    Some(p) => pod_api.create(post, &p).await.map(Some),
                    None => Ok(None),
                }
            }
        }))
        .await;
        let mut failed = None;
        let mut names = Vec::new();
        for r in results {
            match r {
                Ok(Some(p)) => names.push(p.name_any()),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        for name in &names {
            ctx.recorder.record(
                job,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            );
        }
        ctx.expectations.expect_creates(key, names);
        if let Some(e) = failed {
            ctx.recorder.record(
                job,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating: {e}"),
            );
            return Err(e.into());
        }
    }
    Ok(())
}

/// Deletes `victims`; with `uncounted` their tracking finalizer goes first
/// so they do not count as failures (suspension, surplus, success).
pub(super) async fn delete_pods(
    ctx: &Ctx,
    job: &Job,
    pod_api: &Api<Pod>,
    key: &str,
    victims: &[&Arc<Pod>],
    uncounted: bool,
) -> Result<(), Error> {
    ctx.expectations
        .expect_deletes(key, victims.iter().filter_map(|p| p.metadata.uid.clone()));
    let results = futures::future::join_all(victims.iter().map(|p| async move {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        if uncounted && has_tracking_finalizer(p) {
            ctx.expectations.expect_unfinalized(&uid);
            if let Err(e) = remove_finalizer(pod_api, p).await {
                ctx.expectations.unfinalize_failed(&uid);
                return (uid, p.name_any(), Err(e));
            }
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let r = pod_api.delete(&p.name_any(), &params).await.map(|_| ());
        (uid, p.name_any(), r)
    }))
    .await;
    let mut failed = None;
    for (uid, name, r) in results {
        match r {
            Ok(()) => ctx.recorder.record(
                job,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(e) => {
                ctx.expectations.delete_failed(key, &uid);
                if crate::api_code(&e) != Some(404) {
                    failed = Some(e);
                }
            }
        }
    }
    failed.map_or(Ok(()), |e| Err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn want_active_as_upstream() {
        let none = BTreeSet::new();
        let plan = |completions, parallelism, succeeded| Plan {
            indexed: false,
            completions,
            parallelism,
            succeeded,
            completed: &none,
            failed_indexes: &none,
            per_index: false,
            only_replace_failed: false,
            terminating: 0,
        };
        assert_eq!(plan(Some(3), 2, 0).want_active(0), 2);
        assert_eq!(plan(Some(3), 2, 2).want_active(2), 1);
        assert_eq!(plan(Some(3), 2, 5).want_active(0), 0);
        assert_eq!(plan(None, 4, 0).want_active(1), 4);
        // Without completions, once one succeeded nothing new starts.
        assert_eq!(plan(None, 4, 1).want_active(2), 2);
    }
}
