//! A Deployment's status as upstream computes it: counts from its
//! ReplicaSets, the `Available` condition, and the `Progressing` condition
//! that `kubectl rollout status` reads (progress, completion, pause and
//! the progress deadline).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::rollout;

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";
/// Upstream's reasons, which `kubectl rollout status` and users match on.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// What the controller saw and did in this sync.
pub struct Observed<'a> {
    pub deployment: &'a Deployment,
    /// Every ReplicaSet the Deployment owns, the new one included.
    pub replicasets: &'a [ReplicaSet],
    pub new: Option<&'a ReplicaSet>,
    pub collision_count: Option<i32>,
    /// The new ReplicaSet was created in this sync.
    pub created_new: bool,
    /// A rollout step ran (not only a scale or a paused sync): the
    /// Progressing condition is brought up to date.
    pub rolling_out: bool,
}

/// The status to write, and when to look again for the progress deadline.
pub struct Outcome {
    pub status: DeploymentStatus,
    pub recheck: Option<Duration>,
}

fn counts(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn get<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Upstream's SetDeploymentCondition: the same status and reason is no
/// change; the same status keeps its transition time.
fn set(conds: &mut Vec<DeploymentCondition>, mut new: DeploymentCondition) {
    if let Some(old) = get(conds, &new.type_) {
        if old.status == new.status && old.reason == new.reason {
            return;
        }
        if old.status == new.status {
            new.last_transition_time
                .clone_from(&old.last_transition_time);
        }
    }
    conds.retain(|c| c.type_ != new.type_);
    conds.push(new);
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

fn deadline(d: &Deployment) -> SignedDuration {
    let secs = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    SignedDuration::from_secs(i64::from(secs))
}

/// Upstream's DeploymentComplete: every desired replica updated and
/// available, no old ones left, and the latest spec observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.updated_replicas.unwrap_or(0) == replicas
        && s.replicas.unwrap_or(0) == replicas
        && s.available_replicas.unwrap_or(0) == replicas
        && s.observed_generation >= d.metadata.generation
}

/// Upstream's DeploymentProgressing: more updated, ready or available
/// pods, or fewer old ones, than the stored status says.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let olds = |s: &DeploymentStatus| s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || olds(new) < olds(old)
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn timed_out(d: &Deployment, conds: &[DeploymentCondition], now: Timestamp) -> bool {
    let Some(cond) = get(conds, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => cond
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + deadline(d) < now),
    }
}

/// The status the Deployment should have after this sync.
pub fn next(o: &Observed, now: Timestamp) -> Outcome {
    let d = o.deployment;
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let old = d.status.clone().unwrap_or_default();
    let sum = |f: fn(&ReplicaSet) -> i32| o.replicasets.iter().map(f).sum::<i32>();
    let available = sum(|rs| counts(rs).2);
    let spec_total = sum(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(|rs| counts(rs).0)),
        updated_replicas: Some(o.new.map_or(0, |rs| counts(rs).0)),
        ready_replicas: Some(sum(|rs| counts(rs).1)),
        available_replicas: Some(available),
        unavailable_replicas: Some((spec_total - available).max(0)),
        collision_count: o.collision_count,
        conditions: None,
        terminating_replicas: old.terminating_replicas,
    };
    let mut conds = old.conditions.clone().unwrap_or_default();
    let deadline_on = has_progress_deadline(d);
    let new_name = o.new.map(ResourceExt::name_any);

    // Pause and resume (upstream's checkPausedConditions).
    let timed_out_before =
        get(&conds, PROGRESSING).and_then(|c| c.reason.as_deref()) == Some(TIMED_OUT);
    if deadline_on && !timed_out_before {
        let paused_cond =
            get(&conds, PROGRESSING).and_then(|c| c.reason.as_deref()) == Some(PAUSED);
        if spec.paused == Some(true) && !paused_cond {
            let c = condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                now,
            );
            set(&mut conds, c);
        } else if spec.paused != Some(true) && paused_cond {
            let c = condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                now,
            );
            set(&mut conds, c);
        }
    }

    // The new ReplicaSet's creation or discovery.
    if deadline_on && let Some(name) = &new_name {
        if o.created_new {
            let c = condition(
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                now,
            );
            set(&mut conds, c);
        } else if get(&conds, PROGRESSING).is_none() {
            let c = condition(
                PROGRESSING,
                "True",
                "FoundNewReplicaSet",
                format!("Found new replica set \"{name}\""),
                now,
            );
            set(&mut conds, c);
        }
    }

    // Availability.
    let (_, max_unavailable) = rollout::limits(&spec);
    let c = if available >= replicas - max_unavailable {
        condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set(&mut conds, c);

    // Progress (upstream's syncRolloutStatus).
    let mut recheck = None;
    if o.rolling_out {
        if !deadline_on {
            conds.retain(|c| c.type_ != PROGRESSING);
        }
        let current = get(&conds, PROGRESSING).cloned();
        let already_complete = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        if deadline_on && !already_complete {
            if complete(d, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
                    None => format!(
                        "Deployment \"{}\" has successfully progressed.",
                        d.name_any()
                    ),
                };
                set(
                    &mut conds,
                    condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
                );
            } else if progressing(&old, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                    None => format!("Deployment \"{}\" is progressing.", d.name_any()),
                };
                let mut c = condition(PROGRESSING, "True", "ReplicaSetUpdated", msg, now);
                // Progress refreshes the update time even with the same reason.
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    c.last_transition_time.clone_from(&cur.last_transition_time);
                }
                conds.retain(|c| c.type_ != PROGRESSING);
                conds.push(c);
            } else if timed_out(d, &conds, now) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                    None => format!("Deployment \"{}\" has timed out progressing.", d.name_any()),
                };
                set(
                    &mut conds,
                    condition(PROGRESSING, "False", TIMED_OUT, msg, now),
                );
            }
        }
        // Look again when the deadline would pass without progress.
        if let Some(c) = get(&conds, PROGRESSING)
            && deadline_on
            && !matches!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE | TIMED_OUT))
            && !complete(d, &status)
            && let Some(t) = &c.last_update_time
        {
            let left = (t.0 + deadline(d)).duration_since(now);
            let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
            recheck = Some(left.max(Duration::from_secs(1)));
        }
    }

    // Failures of the ReplicaSets to create pods.
    let failure = o
        .new
        .into_iter()
        .chain(o.replicasets.iter())
        .filter_map(|rs| rs.status.as_ref()?.conditions.as_ref())
        .flatten()
        .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
        .cloned();
    match failure {
        Some(f) => set(
            &mut conds,
            DeploymentCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => conds.retain(|c| c.type_ != REPLICA_FAILURE),
    }

    status.conditions = Some(conds);
    Outcome { status, recheck }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": 60,
                "selector": {},
                "template": {},
            },
            "status": status,
        }))
        .unwrap_or_default()
    }

    fn rs(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available},
        }))
        .unwrap_or_default()
    }

    fn progressing_reason(s: &DeploymentStatus) -> Option<String> {
        get(s.conditions.as_deref().unwrap_or_default(), PROGRESSING)?
            .reason
            .clone()
    }

    #[test]
    fn complete_rollout_reports_new_replicaset_available() {
        let d = deployment(3, json!({}));
        let sets = [rs("web-1", 3, 3)];
        let out = next(
            &Observed {
                deployment: &d,
                replicasets: &sets,
                new: Some(&sets[0]),
                collision_count: None,
                created_new: false,
                rolling_out: true,
            },
            Timestamp::now(),
        );
        assert_eq!(
            progressing_reason(&out.status).as_deref(),
            Some(NEW_RS_AVAILABLE)
        );
        assert_eq!(out.recheck, None);
        let available = get(
            out.status.conditions.as_deref().unwrap_or_default(),
            AVAILABLE,
        );
        assert_eq!(available.map(|c| c.status.as_str()), Some("True"));
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let then = Timestamp::now() - SignedDuration::from_secs(120);
        let d = deployment(
            3,
            json!({
                "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{
                    "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                    "lastUpdateTime": Time(then), "lastTransitionTime": Time(then),
                }],
            }),
        );
        let sets = [rs("web-1", 2, 2), rs("web-2", 1, 0)];
        let out = next(
            &Observed {
                deployment: &d,
                replicasets: &sets,
                new: Some(&sets[1]),
                collision_count: None,
                created_new: false,
                rolling_out: true,
            },
            Timestamp::now(),
        );
        assert_eq!(progressing_reason(&out.status).as_deref(), Some(TIMED_OUT));
    }

    #[test]
    fn pausing_is_a_progressing_unknown_condition() {
        let mut d = deployment(1, json!({}));
        if let Some(s) = d.spec.as_mut() {
            s.paused = Some(true);
        }
        let sets = [rs("web-1", 1, 1)];
        let out = next(
            &Observed {
                deployment: &d,
                replicasets: &sets,
                new: Some(&sets[0]),
                collision_count: None,
                created_new: false,
                rolling_out: false,
            },
            Timestamp::now(),
        );
        let c = get(
            out.status.conditions.as_deref().unwrap_or_default(),
            PROGRESSING,
        );
        assert_eq!(c.map(|c| c.status.as_str()), Some("Unknown"));
        assert_eq!(progressing_reason(&out.status).as_deref(), Some(PAUSED));
    }
}
