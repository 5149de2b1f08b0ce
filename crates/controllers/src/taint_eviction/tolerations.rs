//! When a pod on a node with NoExecute taints must go (upstream's taint
//! manager): at once if a taint is not tolerated, after the smallest
//! `tolerationSeconds` of the tolerations used, or never.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Upstream's ToleratesTaint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match t.operator.as_deref() {
        Some("Exists") => true,
        None | Some("" | "Equal") => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        Some(_) => false,
    }
}

/// What happens to a pod under some NoExecute taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stays as long as the taints (all tolerated without a limit).
    Stay,
    /// Goes this many seconds after the taints appeared (0: now).
    After(i64),
}

/// The verdict for a pod with `tolerations` under `taints` (all NoExecute).
pub fn verdict(tolerations: &[Toleration], taints: &[&Taint]) -> Verdict {
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Verdict::After(0);
        }
        used.extend(matching);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(secs) = t.toleration_seconds {
            if secs <= 0 {
                return Verdict::After(0);
            }
            min = Some(min.map_or(secs, |m| m.min(secs)));
        }
    }
    min.map_or(Verdict::Stay, Verdict::After)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        }
    }

    fn tol(key: &str, op: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn verdicts_as_upstream() {
        let unreachable = taint("node.kubernetes.io/unreachable");
        let other = taint("maintenance");
        assert_eq!(verdict(&[], &[&unreachable]), Verdict::After(0));
        let t300 = tol("node.kubernetes.io/unreachable", "Exists", Some(300));
        assert_eq!(
            verdict(std::slice::from_ref(&t300), &[&unreachable]),
            Verdict::After(300)
        );
        // One taint not tolerated: now.
        assert_eq!(
            verdict(std::slice::from_ref(&t300), &[&unreachable, &other]),
            Verdict::After(0)
        );
        // Tolerated forever, and with a limit: the limit wins.
        let all = Toleration {
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        assert_eq!(
            verdict(std::slice::from_ref(&all), &[&unreachable, &other]),
            Verdict::Stay
        );
        assert_eq!(verdict(&[all, t300], &[&unreachable]), Verdict::After(300));
        // Equal compares values; a wrong effect does not tolerate.
        let mut eq = tol("maintenance", "Equal", None);
        assert_eq!(verdict(&[eq.clone()], &[&other]), Verdict::Stay);
        eq.value = Some("x".into());
        assert_eq!(verdict(&[eq], &[&other]), Verdict::After(0));
        let mut no_schedule = tol("maintenance", "Exists", None);
        no_schedule.effect = Some("NoSchedule".into());
        assert_eq!(verdict(&[no_schedule], &[&other]), Verdict::After(0));
        assert_eq!(
            verdict(&[tol("maintenance", "Exists", Some(-5))], &[&other]),
            Verdict::After(0)
        );
    }
}
