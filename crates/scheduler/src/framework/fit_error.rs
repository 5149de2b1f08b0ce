//! Why a pod fits nowhere, worded as upstream's `FitError`:
//! `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
//! Insufficient cpu. preemption: 0/3 nodes are available: 3 No
//! preemption victims found for incoming pod.`

use std::collections::{BTreeMap, HashSet};

use super::plugin::{NodeStatuses, PostFilterResult};

#[derive(Clone, Debug, Default)]
pub struct FitError {
    pub num_nodes: usize,
    /// Every rejected node's status.
    pub statuses: NodeStatuses,
    /// Set when a PreFilter plugin rejected the pod outright.
    pub pre_filter_msg: Option<String>,
    /// What PostFilter (preemption) said.
    pub post_filter_msg: Option<String>,
    /// PostFilter's decision when it found a way (preemption).
    pub post_filter: Option<PostFilterResult>,
    /// Plugins that rejected the pod (for requeueing on their events).
    pub plugins: HashSet<&'static str>,
}

impl FitError {
    /// Reason → how many nodes gave it.
    pub fn histogram(&self) -> BTreeMap<String, usize> {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for status in self.statuses.values() {
            for r in &status.reasons {
                *reasons.entry(r.clone()).or_default() += 1;
            }
        }
        reasons
    }
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        if let Some(msg) = &self.pre_filter_msg {
            write!(f, " {msg}.")?;
        } else {
            let mut parts: Vec<String> = self
                .histogram()
                .into_iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            parts.sort();
            if !parts.is_empty() {
                write!(f, " {}.", parts.join(", "))?;
            }
        }
        if let Some(msg) = &self.post_filter_msg {
            write!(f, " {msg}.")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Status;

    #[test]
    fn upstream_wording() {
        let mut e = FitError {
            num_nodes: 3,
            ..FitError::default()
        };
        e.statuses
            .insert("a".into(), Status::unschedulable("Insufficient cpu"));
        e.statuses
            .insert("b".into(), Status::unschedulable("Insufficient cpu"));
        e.statuses.insert(
            "c".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        e.post_filter_msg = Some(
            "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod"
                .into(),
        );
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        );
        let none = FitError::default();
        assert_eq!(none.to_string(), "no nodes available to schedule pods");
    }
}
