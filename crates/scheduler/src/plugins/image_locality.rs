//! ImageLocality: prefer nodes that already have the pod's images, by
//! their size scaled by how widespread they are (so one node with a big
//! image does not attract every pod), as upstream's formula.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, MAX_NODE_SCORE, NodeInfo, Plugin, Snapshot, Status,
};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;
const STATE_KEY: &str = "PreScoreImageLocality";

pub struct ImageLocality;

/// `nginx` → `nginx:latest`; names with a tag or digest stay.
pub fn normalized_image_name(name: &str) -> String {
    let slash = name.rfind('/').map_or(-1, |i| i as i64);
    let colon = name.rfind(':').map_or(-1, |i| i as i64);
    if colon <= slash && !name.contains('@') {
        format!("{name}:latest")
    } else {
        name.to_owned()
    }
}

/// (normalized image names, total nodes) for the attempt.
#[derive(Clone)]
struct Images {
    names: Vec<String>,
    total_nodes: usize,
    /// Image → number of nodes that have it.
    spread: Vec<usize>,
}

fn images(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .filter_map(|c| c.image.as_deref())
                .map(normalized_image_name)
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's `calculatePriority`.
pub fn priority(sum_scores: i64, num_containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * i64::try_from(num_containers.max(1)).unwrap_or(1);
    let sum = sum_scores.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        // PreScore counts each image's nodes once per attempt.
        &[ExtensionPoint::PreScore, ExtensionPoint::Score]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        _nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        let names = images(pod);
        let spread = names
            .iter()
            .map(|n| snapshot.image_nodes.get(n).copied().unwrap_or(0))
            .collect();
        state.write(
            STATE_KEY,
            Images {
                names,
                total_nodes: snapshot.len(),
                spread,
            },
        );
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let computed;
        let images = match state.read::<Images>(STATE_KEY) {
            Some(i) => i,
            None => {
                computed = Images {
                    names: images(pod),
                    total_nodes: 1,
                    spread: Vec::new(),
                };
                &computed
            }
        };
        let total = images.total_nodes.max(1) as f64;
        let mut sum = 0i64;
        for (i, name) in images.names.iter().enumerate() {
            if let Some(&size) = node.images.get(name) {
                let spread = images.spread.get(i).copied().unwrap_or(1) as f64;
                sum += (size as f64 * spread / total) as i64;
            }
        }
        Ok(priority(sum, images.names.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_formula() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.2"), "nginx:1.2");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalized_image_name("a@sha256:00"), "a@sha256:00");
        assert_eq!(priority(0, 1), 0);
        assert_eq!(priority(MAX_CONTAINER_THRESHOLD, 1), MAX_NODE_SCORE);
        // 500 MB on every node, one container: (500-23)/(1000-23) → 48.
        assert_eq!(priority(500 * MB, 1), 48);
    }
}
