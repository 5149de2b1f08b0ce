//! Job conditions as upstream writes them: `Suspended`, the interim
//! `FailureTarget`/`SuccessCriteriaMet` and the final `Failed`/`Complete`.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

/// The condition of `type_` if its status is True.
pub fn true_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (a True `Complete` or `Failed`).
pub fn finished(job: &Job) -> Option<&JobCondition> {
    let status = job.status.as_ref()?;
    true_condition(status, COMPLETE).or_else(|| true_condition(status, FAILED))
}

/// Sets condition `type_` to `status` with `reason`/`message`; the
/// transition time changes only with the status. Returns whether anything
/// changed (upstream's ensureJobConditionStatus; a False condition that is
/// absent is not added).
pub fn ensure(
    job: &mut JobStatus,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let value = if status { "True" } else { "False" };
    let conditions = job.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status == value
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
            {
                return false;
            }
            if c.status != value {
                c.last_transition_time = Some(Time(now));
            }
            c.status = value.to_owned();
            c.reason = Some(reason.to_owned());
            c.message = Some(message.to_owned());
            c.last_probe_time = Some(Time(now));
            true
        }
        None if !status => false,
        None => {
            conditions.push(JobCondition {
                type_: type_.to_owned(),
                status: value.to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                last_probe_time: Some(Time(now)),
                last_transition_time: Some(Time(now)),
            });
            true
        }
    }
}
