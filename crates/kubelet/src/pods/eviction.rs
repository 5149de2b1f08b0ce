//! Node-pressure eviction, as upstream's eviction manager with hard
//! thresholds: every 10 s the signals are read; under pressure one pod is
//! evicted at a time — BestEffort before Burstable before Guaranteed, lower
//! priority first, the biggest user of the starved resource first. Static
//! and critical pods are never evicted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_cri::v1::{ImageFsInfoRequest, ListContainerStatsRequest};
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::{labels, qos, static_pods};
use crate::node::pressure;

pub const PERIOD: Duration = Duration::from_secs(10);
/// Upstream's system-critical priority: such pods are never evicted.
const CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// How long a victim may take to go before another is chosen.
const VICTIM_WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Manager {
    evicted: HashSet<String>,
    last: Option<(String, Instant)>,
}

impl Manager {
    /// Reads the signals, publishes the node's pressure and returns the
    /// pod to evict now (uid, status message), if any.
    pub async fn check(&mut self, ctx: &super::Context, pods: &[Pod]) -> Option<(String, String)> {
        let mut cri = ctx.cri.clone();
        let imagefs = cri
            .images
            .image_fs_info(ImageFsInfoRequest::default())
            .await
            .ok()
            .and_then(|r| {
                r.into_inner()
                    .image_filesystems
                    .first()
                    .and_then(|f| f.fs_id.as_ref())
                    .map(|id| std::path::PathBuf::from(&id.mountpoint))
            });
        let signals = pressure::read(&ctx.root_dir, imagefs.as_deref());
        let (pressure, crossed) = pressure::evaluate(&signals, &ctx.eviction_hard);
        ctx.pressure.send_if_modified(|p| {
            let changed = *p != pressure;
            *p = pressure;
            changed
        });
        let crossed = crossed?;
        let live: HashSet<&str> = pods
            .iter()
            .filter(|p| evictable(p) || p.metadata.deletion_timestamp.is_some())
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        if let Some((uid, at)) = &self.last
            && live.contains(uid.as_str())
            && at.elapsed() < VICTIM_WAIT
        {
            return None;
        }
        let usage = usage_by_pod(ctx, crossed.resource == "memory").await;
        let victim = choose_victim(pods, &self.evicted, &usage)?;
        let uid = victim.metadata.uid.clone()?;
        tracing::warn!(pod = ?victim.metadata.name, resource = crossed.resource, "evicting a pod under node pressure");
        self.evicted.insert(uid.clone());
        self.last = Some((uid.clone(), Instant::now()));
        Some((uid, crossed.message()))
    }
}

/// Upstream's ranking, simplified: QoS class, then priority, then usage.
pub fn choose_victim<'a>(
    pods: &'a [Pod],
    evicted: &HashSet<String>,
    usage: &HashMap<String, u64>,
) -> Option<&'a Pod> {
    pods.iter()
        .filter(|p| {
            evictable(p) && !evicted.contains(p.metadata.uid.as_deref().unwrap_or_default())
        })
        .min_by_key(|p| {
            let uid = p.metadata.uid.as_deref().unwrap_or_default();
            let qos_rank = match qos::pod_qos(p) {
                qos::QosClass::BestEffort => 0,
                qos::QosClass::Burstable => 1,
                qos::QosClass::Guaranteed => 2,
            };
            let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            (
                qos_rank,
                priority,
                std::cmp::Reverse(usage.get(uid).copied().unwrap_or(0)),
            )
        })
}

fn evictable(pod: &Pod) -> bool {
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let critical = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= CRITICAL_PRIORITY;
    !terminal
        && !critical
        && !static_pods::is_static(pod)
        && pod.metadata.deletion_timestamp.is_none()
}

/// Memory working set (or writable-layer bytes) per pod uid.
async fn usage_by_pod(ctx: &super::Context, memory: bool) -> HashMap<String, u64> {
    let mut cri = ctx.cri.clone();
    let Ok(resp) = cri
        .runtime
        .list_container_stats(ListContainerStatsRequest::default())
        .await
    else {
        return HashMap::new();
    };
    let mut usage = HashMap::new();
    for stats in resp.into_inner().stats {
        let Some(uid) = stats
            .attributes
            .as_ref()
            .and_then(|a| a.labels.get(labels::POD_UID))
            .cloned()
        else {
            continue;
        };
        let bytes = if memory {
            stats
                .memory
                .and_then(|m| m.working_set_bytes)
                .map_or(0, |v| v.value)
        } else {
            stats
                .writable_layer
                .and_then(|w| w.used_bytes)
                .map_or(0, |v| v.value)
        };
        *usage.entry(uid).or_insert(0) += bytes;
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, resources: serde_json::Value, priority: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": uid, "name": uid},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": resources}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn best_effort_and_big_users_go_first_critical_never() {
        let guaranteed = serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        let pods = vec![
            pod("g", guaranteed.clone(), 0),
            pod("be-small", serde_json::json!({}), 0),
            pod("be-big", serde_json::json!({}), 0),
            pod("critical", serde_json::json!({}), CRITICAL_PRIORITY),
        ];
        let usage = HashMap::from([
            ("be-small".to_owned(), 10),
            ("be-big".to_owned(), 1000),
            ("critical".to_owned(), 99999),
        ]);
        let mut evicted = HashSet::new();
        let first = choose_victim(&pods, &evicted, &usage).and_then(|p| p.metadata.uid.clone());
        assert_eq!(first.as_deref(), Some("be-big"));
        evicted.insert("be-big".to_owned());
        evicted.insert("be-small".to_owned());
        let next = choose_victim(&pods, &evicted, &usage).and_then(|p| p.metadata.uid.clone());
        assert_eq!(next.as_deref(), Some("g"));
        evicted.insert("g".to_owned());
        assert!(choose_victim(&pods, &evicted, &usage).is_none());
    }
}
