//! Writing a Job's status: only when it says something new, and with the
//! Job's resourceVersion so a sync working from a stale Job gets a
//! conflict instead of overwriting newer counts.

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use super::{Ctx, Error};

/// A count as the API's int32.
pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether `new` says something `old` does not (empty lists and strings
/// count as absent, so a server that drops them cannot cause a write loop).
pub(super) fn differs(old: Option<&JobStatus>, new: &JobStatus) -> bool {
    fn canonical(s: &JobStatus) -> serde_json::Value {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        prune(&mut v);
        v
    }
    fn prune(v: &mut serde_json::Value) {
        if let serde_json::Value::Object(map) = v {
            map.values_mut().for_each(prune);
            map.retain(|_, x| match x {
                serde_json::Value::Null => false,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Object(o) => !o.is_empty(),
                _ => true,
            });
        }
    }
    canonical(old.unwrap_or(&JobStatus::default())) != canonical(new)
}

/// Replaces the Job's status (with its resourceVersion).
pub(super) async fn write_status(ctx: &Ctx, job: &Job, status: JobStatus) -> Result<Job, Error> {
    let mut next = job.clone();
    next.status = Some(status);
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let written = api
        .replace_status(&job.name_any(), &PostParams::default(), &next)
        .await?;
    ctx.written.wrote(written.clone());
    Ok(written)
}
