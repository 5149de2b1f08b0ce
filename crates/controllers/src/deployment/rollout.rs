//! Pure rollout arithmetic of upstream's deployment controller: the pod
//! template hash, maxSurge/maxUnavailable and the RollingUpdate steps.

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label (and selector key) that tells a Deployment's ReplicaSets apart.
pub const HASH_LABEL: &str = "pod-template-hash";

/// fnv-1a, 32 bits (upstream hashes with fnv32a too).
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's rand.SafeEncodeString: no vowels, no look-alikes.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The `pod-template-hash` of `template` (without that label) and
/// `collision_count`: fnv32a of the template's JSON, safe-encoded as
/// upstream (which hashes its Go form, so the values differ from upstream).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Whether two templates are equal once `pod-template-hash` is ignored.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                m.labels = None;
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// An int-or-percent of `total`, rounded up or down (upstream's
/// GetScaledValueFromIntOrPercent).
pub fn scaled(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let s = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
    let prod = pct * i64::from(total);
    let v = if round_up {
        (prod + 99) / 100
    } else {
        prod / 100
    };
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// (maxSurge, maxUnavailable) for `replicas` (upstream's ResolveFenceposts:
/// both zero means one may be unavailable).
pub fn fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let s = scaled(surge, "25%", replicas, true);
    let mut u = scaled(unavailable, "25%", replicas, false);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// Whether the Deployment rolls out with the RollingUpdate strategy (the
/// default).
pub fn is_rolling(spec: &DeploymentSpec) -> bool {
    spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

/// The Deployment's (maxSurge, maxUnavailable) in pods: zero for
/// Recreate, maxUnavailable never above `replicas` (upstream's MaxSurge
/// and MaxUnavailable).
pub fn limits(spec: &DeploymentSpec) -> (i32, i32) {
    let replicas = spec.replicas.unwrap_or(1);
    if !is_rolling(spec) {
        return (0, 0);
    }
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (surge, unavailable) = fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
    );
    let unavailable = if replicas == 0 {
        0
    } else {
        unavailable.min(replicas)
    };
    (surge, unavailable)
}

/// The new ReplicaSet's replicas during a RollingUpdate (upstream's
/// NewRSNewReplicas): up to `replicas + maxSurge` pods in all.
pub fn new_rs_replicas(
    replicas: i32,
    max_surge: i32,
    all_spec_replicas: i32,
    new_spec_replicas: i32,
) -> i32 {
    if new_spec_replicas >= replicas {
        return new_spec_replicas;
    }
    let max_total = replicas + max_surge;
    if all_spec_replicas >= max_total {
        return new_spec_replicas;
    }
    let up = (max_total - all_spec_replicas).min(replicas - new_spec_replicas);
    new_spec_replicas + up
}

/// One old ReplicaSet as the scale-down step sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Old {
    pub spec_replicas: i32,
    pub available: i32,
}

/// New spec.replicas of the old ReplicaSets (oldest first) during a
/// RollingUpdate (upstream's reconcileOldReplicaSets: unhealthy pods go
/// first, then available ones down to `replicas - maxUnavailable`).
pub fn scale_down_old(
    replicas: i32,
    max_unavailable: i32,
    new_spec_replicas: i32,
    new_available: i32,
    olds: &[Old],
) -> Vec<i32> {
    let mut out: Vec<i32> = olds.iter().map(|o| o.spec_replicas).collect();
    let old_count: i32 = out.iter().sum();
    if old_count == 0 {
        return out;
    }
    let all = old_count + new_spec_replicas;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new_spec_replicas - new_available;
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return out;
    }
    // Unhealthy replicas first.
    let mut cleaned = 0;
    for (i, o) in olds.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (o.spec_replicas - o.available).max(0);
        let down = unhealthy.min(max_scaled_down - cleaned);
        out[i] -= down;
        cleaned += down;
    }
    // Then available ones, keeping minAvailable.
    let available: i32 = olds.iter().map(|o| o.available).sum::<i32>() + new_available;
    if available <= min_available {
        return out;
    }
    let mut total = (available - min_available).min(max_scaled_down - cleaned);
    for v in &mut out {
        if total <= 0 {
            break;
        }
        let down = (*v).min(total);
        *v -= down;
        total -= down;
    }
    out
}

/// One active ReplicaSet as proportional scaling sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    pub spec_replicas: i32,
    /// Its `max-replicas` annotation: the Deployment's size + surge when it
    /// was last scaled.
    pub max_replicas: Option<i32>,
}

/// New sizes of the active ReplicaSets (given oldest first) when a
/// Deployment with several of them is resized mid-rollout (upstream's
/// proportional scaling): each gets a share of the change in proportion to
/// its size, the rounding leftover goes to the largest (newest on ties when
/// growing, oldest when shrinking).
pub fn proportional(
    replicas: i32,
    max_surge: i32,
    deployment_status_replicas: i32,
    sets: &[Active],
) -> Vec<i32> {
    let mut sizes: Vec<i32> = sets.iter().map(|s| s.spec_replicas).collect();
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let to_add = allowed - sizes.iter().sum::<i32>();
    if to_add == 0 || sets.is_empty() {
        return sizes;
    }
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| {
        let by_size = sets[b].spec_replicas.cmp(&sets[a].spec_replicas);
        if to_add > 0 {
            by_size.then(b.cmp(&a))
        } else {
            by_size.then(a.cmp(&b))
        }
    });
    let mut added = 0;
    for &i in &order {
        let set = &sets[i];
        if set.spec_replicas == 0 || to_add == added {
            continue;
        }
        let fraction = if replicas == 0 {
            -set.spec_replicas
        } else {
            let annotated = set.max_replicas.unwrap_or(deployment_status_replicas);
            if annotated <= 0 {
                0
            } else {
                let scaled = f64::from(set.spec_replicas) * f64::from(replicas + max_surge)
                    / f64::from(annotated);
                // Saturating float-to-int conversion, as upstream's RoundToInt32.
                #[allow(clippy::cast_possible_truncation)]
                let rounded = scaled.round() as i32;
                rounded - set.spec_replicas
            }
        };
        let left = to_add - added;
        let proportion = if to_add > 0 {
            fraction.min(left)
        } else {
            fraction.max(left)
        };
        sizes[i] += proportion;
        added += proportion;
    }
    let first = order[0];
    sizes[first] = (sizes[first] + to_add - added).max(0);
    sizes
}

#[cfg(test)]
mod tests {
    #[test]
    fn proportional_scaling_as_upstream() {
        // The documented example: 10 replicas, surge 3, mid-rollout with
        // 8 old and 5 new pods; scaled to 15 the extra 5 split 3:2.
        let sets = [
            Active {
                spec_replicas: 8,
                max_replicas: Some(13),
            },
            Active {
                spec_replicas: 5,
                max_replicas: Some(13),
            },
        ];
        assert_eq!(proportional(15, 3, 13, &sets), vec![11, 7]);
        // Scaling to zero empties every set.
        assert_eq!(proportional(0, 3, 13, &sets), vec![0, 0]);
        // Shrinking to 5 (surge 2): 7 of 13 split proportionally.
        assert_eq!(proportional(5, 2, 13, &sets), vec![4, 3]);
    }

    use super::*;

    #[test]
    fn fenceposts_round_as_upstream() {
        assert_eq!(fenceposts(None, None, 3), (1, 0));
        assert_eq!(fenceposts(None, None, 10), (3, 2));
        let zero = IntOrString::Int(0);
        assert_eq!(fenceposts(Some(&zero), Some(&zero), 3), (0, 1));
        let half = IntOrString::String("50%".into());
        assert_eq!(fenceposts(Some(&half), Some(&half), 3), (2, 1));
    }

    #[test]
    fn rolling_steps() {
        // 3 replicas, surge 1, unavailable 0: the new RS gets one more.
        assert_eq!(new_rs_replicas(3, 1, 3, 0), 1);
        assert_eq!(new_rs_replicas(3, 1, 4, 1), 1);
        // Nothing available: the old one only loses unhealthy pods beyond minAvailable.
        let old = [Old {
            spec_replicas: 3,
            available: 3,
        }];
        assert_eq!(scale_down_old(3, 0, 1, 0, &old), vec![3]);
        assert_eq!(scale_down_old(3, 0, 1, 1, &old), vec![2]);
        let unhealthy = [Old {
            spec_replicas: 3,
            available: 0,
        }];
        assert_eq!(scale_down_old(3, 1, 1, 0, &unhealthy), vec![2]);
    }

    #[test]
    fn hash_is_stable_and_ignores_its_label() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap_or_default();
        let mut labelled = t.clone();
        if let Some(l) = labelled.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(HASH_LABEL.into(), "x".into());
        }
        assert_eq!(template_hash(&t, None), template_hash(&labelled, None));
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
        assert!(equal_ignore_hash(&t, &labelled));
    }
}
