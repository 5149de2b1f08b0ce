//! Which finished Jobs of a CronJob to delete: beyond the history limits,
//! oldest start first (upstream's cleanupFinishedJobs and byJobStartTime).

use std::cmp::Ordering;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::job::conditions;

/// Jobs to delete so that at most `successful` Complete and `failed`
/// Failed Jobs remain (a `None` limit keeps them all).
pub fn to_delete<'a>(
    jobs: &[&'a Job],
    successful: Option<i32>,
    failed: Option<i32>,
) -> Vec<&'a Job> {
    let kind = |j: &Job| conditions::finished(j).map(|c| c.type_.clone());
    let mut out = Vec::new();
    for (type_, limit) in [
        (conditions::COMPLETE, successful),
        (conditions::FAILED, failed),
    ] {
        let Some(limit) = limit else {
            continue;
        };
        let mut of_kind: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| kind(j).as_deref() == Some(type_))
            .collect();
        let keep = usize::try_from(limit).unwrap_or(0);
        if of_kind.len() <= keep {
            continue;
        }
        of_kind.sort_by(|a, b| by_start_time(a, b));
        let n = of_kind.len() - keep;
        out.extend(of_kind.into_iter().take(n));
    }
    out
}

/// Started earlier first; Jobs without a start time last; ties by name.
fn by_start_time(a: &Job, b: &Job) -> Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (x, y) if x == y => a.name_any().cmp(&b.name_any()),
        (x, y) => x.cmp(&y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, type_: &str, start: Option<&str>) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"startTime": start, "conditions": [{"type": type_, "status": "True"}]},
        }))
        .unwrap()
    }

    #[test]
    fn oldest_beyond_the_limits() {
        let a = job("a", "Complete", Some("2024-01-01T00:03:00Z"));
        let b = job("b", "Complete", Some("2024-01-01T00:01:00Z"));
        let c = job("c", "Complete", None);
        let d = job("d", "Failed", Some("2024-01-01T00:02:00Z"));
        let e = job("e", "Failed", Some("2024-01-01T00:04:00Z"));
        let all = [&a, &b, &c, &d, &e];
        let names = |v: Vec<&Job>| v.into_iter().map(|j| j.name_any()).collect::<Vec<_>>();
        assert_eq!(names(to_delete(&all, Some(1), Some(1))), ["b", "a", "d"]);
        assert_eq!(names(to_delete(&all, None, Some(0))), ["d", "e"]);
        assert!(to_delete(&all, Some(3), Some(2)).is_empty());
    }
}
