//! `spec.successPolicy` of Indexed Jobs: the Job succeeds early once the
//! succeeded indexes satisfy a rule (upstream's matchSuccessPolicy).

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::SuccessPolicy;

use super::indexes;

/// The message of the first rule `completed` satisfies: all of its
/// `succeededIndexes` (or, with `succeededCount`, that many of them), or
/// at least `succeededCount` indexes overall.
pub fn matched(
    policy: &SuccessPolicy,
    completions: i32,
    completed: &BTreeSet<i32>,
) -> Option<String> {
    if completed.is_empty() {
        return None;
    }
    policy.rules.iter().enumerate().find_map(|(i, rule)| {
        let ok = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(text), count) => {
                let required = indexes::parse(text, completions);
                let hits = required.intersection(completed).count();
                !required.is_empty()
                    && match count {
                        Some(n) => hits >= usize::try_from(n).unwrap_or(usize::MAX),
                        None => hits == required.len(),
                    }
            }
            (None, Some(n)) => completed.len() >= usize::try_from(n).unwrap_or(usize::MAX),
            (None, None) => false,
        };
        ok.then(|| format!("Matched rules at index {i}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_satisfied_rule() {
        let policy: SuccessPolicy = serde_json::from_value(json!({"rules": [
            {"succeededIndexes": "0,2-3"},
            {"succeededIndexes": "4-9", "succeededCount": 2},
            {"succeededCount": 5},
        ]}))
        .unwrap();
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(matched(&policy, 10, &set(&[0, 2])), None);
        assert_eq!(
            matched(&policy, 10, &set(&[0, 2, 3])).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(
            matched(&policy, 10, &set(&[1, 5, 9])).as_deref(),
            Some("Matched rules at index 1")
        );
        assert_eq!(
            matched(&policy, 10, &set(&[0, 1, 4, 6, 8])).as_deref(),
            Some("Matched rules at index 1")
        );
        assert_eq!(
            matched(&policy, 12, &set(&[0, 1, 2, 4, 10])).as_deref(),
            Some("Matched rules at index 2")
        );
    }
}
