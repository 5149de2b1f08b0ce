//! One pass of upstream's StatefulSet update algorithm over the pods the
//! cache shows: create missing ordinals (claims first), replace failed
//! pods, delete condemned ordinals from the highest, then roll pods at an
//! old revision from the highest ordinal down to `partition`.
//!
//! OrderedReady (monotonic) stops at the first pod it acts on or that is
//! not yet healthy; Parallel acts on all of them at once. A stale cache
//! only repeats a create (409) or a delete (uid precondition, 404).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::pods::{is_finished, is_healthy, is_terminating};
use super::{claims, identity};
use crate::deployment::rollout::scaled;
use crate::events::{EventType, Recorder};

/// The revisions a pass creates pods from.
pub struct Revisions<'a> {
    pub current_name: &'a str,
    pub current_template: &'a PodTemplateSpec,
    pub update_name: &'a str,
    pub update_template: &'a PodTemplateSpec,
}

/// Everything one pass works with.
pub struct Pass<'a> {
    pub set: &'a StatefulSet,
    pub owner: OwnerReference,
    pub pods: &'a Api<Pod>,
    pub claims: &'a Api<PersistentVolumeClaim>,
    pub existing_claims: &'a HashMap<String, PersistentVolumeClaim>,
    pub recorder: &'a Recorder,
    pub revisions: Revisions<'a>,
    /// Index `i` holds ordinal `start + i`.
    pub replicas: Vec<Option<Arc<Pod>>>,
    pub start: i32,
    /// Pods at ordinals beyond the replicas, highest first.
    pub condemned: Vec<(i32, Arc<Pod>)>,
    pub now: Timestamp,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Pass<'_> {
    fn spec(&self) -> Option<&k8s_openapi::api::apps::v1::StatefulSetSpec> {
        self.set.spec.as_ref()
    }

    fn monotonic(&self) -> bool {
        self.spec().and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel")
    }

    fn rolling(&self) -> bool {
        self.spec()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            != Some("OnDelete")
    }

    fn partition(&self) -> usize {
        let p = self
            .spec()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        usize::try_from(p).unwrap_or(0)
    }

    /// `maxUnavailable` of the replicas (rounded down, at least 1), if set.
    fn max_unavailable(&self) -> Option<i32> {
        let v = self
            .spec()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())?;
        let replicas = i32::try_from(self.replicas.len()).unwrap_or(i32::MAX);
        Some(scaled(Some(v), "1", replicas, false).max(1))
    }

    fn min_ready(&self) -> i64 {
        i64::from(self.spec().and_then(|s| s.min_ready_seconds).unwrap_or(0))
    }

    fn healthy(&self, pod: &Pod) -> bool {
        is_healthy(pod, self.min_ready(), self.now)
    }

    fn ordinal(&self, index: usize) -> i32 {
        self.start + i32::try_from(index).unwrap_or(i32::MAX)
    }

    fn describe(&self, verb: &str, pod: &str, outcome: &str) -> String {
        format!(
            "{verb} Pod {pod} in StatefulSet {} {outcome}",
            self.set.name_any()
        )
    }

    /// Runs the pass; `Ok(true)`: it acted or is waiting on a pod.
    pub async fn run(&mut self) -> Result<bool, kube::Error> {
        let monotonic = self.monotonic();
        for index in 0..self.replicas.len() {
            let ordinal = self.ordinal(index);
            let Some(pod) = self.replicas[index].clone() else {
                self.create(index, ordinal).await?;
                if monotonic {
                    return Ok(true);
                }
                continue;
            };
            if is_finished(&pod) && !is_terminating(&pod) {
                self.delete(&pod, "Failed").await?;
                if monotonic {
                    return Ok(true);
                }
                continue;
            }
            if !is_terminating(&pod) {
                self.fix_identity(&pod, ordinal).await?;
                claims::create_missing(self.claims, self.set, ordinal, self.existing_claims)
                    .await?;
                claims::apply_retention(
                    self.claims,
                    self.set,
                    &pod,
                    ordinal,
                    false,
                    self.existing_claims,
                )
                .await?;
            }
            if monotonic && !self.healthy(&pod) {
                return Ok(true);
            }
        }
        let condemned = std::mem::take(&mut self.condemned);
        for (ordinal, pod) in &condemned {
            if is_terminating(pod) {
                if monotonic {
                    return Ok(true);
                }
                continue;
            }
            claims::apply_retention(
                self.claims,
                self.set,
                pod,
                *ordinal,
                true,
                self.existing_claims,
            )
            .await?;
            self.delete(pod, "").await?;
            if monotonic {
                return Ok(true);
            }
        }
        if !self.rolling() {
            return Ok(false);
        }
        self.roll().await
    }

    /// Replaces pods at an old revision from the highest ordinal down to
    /// the partition: one at a time, waiting at the first unhealthy pod
    /// (upstream's default), or with `maxUnavailable` set, as many as keep
    /// no more than that many replicas unhealthy (upstream's
    /// MaxUnavailableStatefulSet).
    async fn roll(&mut self) -> Result<bool, kube::Error> {
        let update = self.revisions.update_name.to_owned();
        let partition = self.partition();
        let stale =
            |pod: &Pod| identity::revision_of(pod) != Some(update.as_str()) && !is_terminating(pod);
        if self.max_unavailable().is_none() {
            for index in (partition..self.replicas.len()).rev() {
                let Some(pod) = self.replicas[index].clone() else {
                    return Ok(true);
                };
                if stale(&pod) {
                    self.delete(&pod, "").await?;
                    return Ok(true);
                }
                if !self.healthy(&pod) {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let max = i64::from(self.max_unavailable().unwrap_or(1));
        let unavailable = self
            .replicas
            .iter()
            .filter(|p| p.as_ref().is_none_or(|p| !self.healthy(p)))
            .count();
        let mut budget = max - i64::try_from(unavailable).unwrap_or(i64::MAX);
        for index in (partition..self.replicas.len()).rev() {
            let Some(pod) = self.replicas[index].clone() else {
                continue;
            };
            if !stale(&pod) {
                continue;
            }
            let healthy = self.healthy(&pod);
            if healthy && budget <= 0 {
                return Ok(true);
            }
            self.delete(&pod, "").await?;
            if healthy {
                budget -= 1;
            }
        }
        Ok(false)
    }

    /// Restores the identity labels of a pod (an adopted one, or one a
    /// user relabelled), as upstream's updateStatefulPod.
    async fn fix_identity(&self, pod: &Pod, ordinal: i32) -> Result<(), kube::Error> {
        let labels = pod.labels();
        let name = pod.name_any();
        let index = ordinal.to_string();
        if labels.get(identity::POD_NAME_LABEL) == Some(&name)
            && labels.get(identity::POD_INDEX_LABEL) == Some(&index)
        {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "labels": {(identity::POD_NAME_LABEL): name, (identity::POD_INDEX_LABEL): index},
            "resourceVersion": pod.metadata.resource_version,
        }});
        match self
            .pods
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn create(&mut self, index: usize, ordinal: i32) -> Result<(), kube::Error> {
        let r = &self.revisions;
        let (template, revision) =
            if self.rolling() && index < self.partition() && r.current_name != r.update_name {
                (r.current_template, r.current_name)
            } else {
                (r.update_template, r.update_name)
            };
        let pod = identity::new_pod(self.set, template, revision, ordinal, self.owner.clone());
        let name = pod.name_any();
        let created = match claims::create_missing(
            self.claims,
            self.set,
            ordinal,
            self.existing_claims,
        )
        .await
        {
            Ok(created) => created,
            Err(e) => {
                self.recorder.record(
                    self.set,
                    EventType::Warning,
                    "FailedCreate",
                    format!(
                        "create Claim for Pod {name} in StatefulSet {} failed error: {e}",
                        self.set.name_any()
                    ),
                );
                return Err(e);
            }
        };
        for claim in created {
            self.recorder.record(
                self.set,
                EventType::Normal,
                "SuccessfulCreate",
                format!(
                    "create Claim {claim} Pod {name} in StatefulSet {} success",
                    self.set.name_any()
                ),
            );
        }
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.recorder.record(
                    self.set,
                    EventType::Normal,
                    "SuccessfulCreate",
                    self.describe("create", &name, "successful"),
                );
                self.replicas[index] = Some(Arc::new(created));
                Ok(())
            }
            // The cache has not shown it yet.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                self.recorder.record(
                    self.set,
                    EventType::Warning,
                    "FailedCreate",
                    self.describe("create", &name, &format!("failed error: {e}")),
                );
                Err(e)
            }
        }
    }

    async fn delete(&self, pod: &Pod, why: &str) -> Result<(), kube::Error> {
        let name = pod.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.pods.delete(&name, &params).await {
            Ok(_) => {
                let outcome = if why.is_empty() {
                    "successful".to_owned()
                } else {
                    format!("successful ({why})")
                };
                self.recorder.record(
                    self.set,
                    EventType::Normal,
                    "SuccessfulDelete",
                    self.describe("delete", &name, &outcome),
                );
                Ok(())
            }
            Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                Ok(())
            }
            Err(e) => {
                self.recorder.record(
                    self.set,
                    EventType::Warning,
                    "FailedDelete",
                    self.describe("delete", &name, &format!("failed error: {e}")),
                );
                Err(e)
            }
        }
    }
}
