//! What a Deployment does to its ReplicaSets: create the new one, keep its
//! annotations and revision current, resize them (with the
//! `ScalingReplicaSet` Events `kubectl describe` shows), spread a resize
//! proportionally mid-rollout, and prune the history.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::annotations::{
    self, DESIRED_REPLICAS, new_replicaset_annotations, replicas_annotation,
    set_replicas_annotations,
};
use super::claim::{controller_ref, tolerate};
use super::rollout::{self, Active, HASH_LABEL};
use super::{Error, revision};
use crate::events::{EventType, Recorder};
use crate::replicaset::pods::controller_of;

/// `spec.replicas` of a ReplicaSet.
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The outcome of creating the new ReplicaSet.
pub enum Created {
    New(Box<ReplicaSet>),
    /// The name is taken by a ReplicaSet with another template: the
    /// Deployment's `collisionCount` must grow and the hash change.
    Collision,
}

/// The ReplicaSet operations of one Deployment sync.
pub struct Actions<'a> {
    pub api: &'a Api<ReplicaSet>,
    pub deployment: &'a Deployment,
    pub spec: &'a DeploymentSpec,
    pub recorder: &'a Recorder,
}

impl Actions<'_> {
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    fn max_replicas(&self) -> i32 {
        self.replicas() + rollout::limits(self.spec).0
    }

    /// Resizes `rs` to `size` (and records the Deployment's size on it);
    /// with `annotate`, a changed Deployment size alone is written too.
    pub async fn scale(
        &self,
        rs: &ReplicaSet,
        size: i32,
        annotate: bool,
    ) -> Result<ReplicaSet, Error> {
        let old = spec_replicas(rs);
        let mut notes = rs.annotations().clone();
        let notes_changed =
            set_replicas_annotations(&mut notes, self.replicas(), self.max_replicas());
        if old == size && !(annotate && notes_changed) {
            return Ok(rs.clone());
        }
        let patch = json!({
            "metadata": {"annotations": {
                DESIRED_REPLICAS: notes.get(DESIRED_REPLICAS),
                annotations::MAX_REPLICAS: notes.get(annotations::MAX_REPLICAS),
            }},
            "spec": {"replicas": size},
        });
        let patched = tolerate(
            self.api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            &[404],
        )?;
        if old != size {
            let direction = if size > old { "up" } else { "down" };
            self.recorder.record(
                self.deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} to {size} from {old}",
                    rs.name_any()
                ),
            );
        }
        Ok(patched.unwrap_or_else(|| rs.clone()))
    }

    /// Brings the existing new ReplicaSet's annotations (revision,
    /// history, the Deployment's annotations) and `minReadySeconds` up to
    /// date.
    pub async fn sync_new(&self, rs: &ReplicaSet, new_revision: i64) -> Result<ReplicaSet, Error> {
        let notes = new_replicaset_annotations(self.deployment, rs, new_revision);
        let min_ready = self.spec.min_ready_seconds.unwrap_or(0);
        let rs_min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if &notes == rs.annotations() && min_ready == rs_min_ready {
            return Ok(rs.clone());
        }
        let patch = json!({
            "metadata": {"annotations": notes},
            "spec": {"minReadySeconds": min_ready},
        });
        let patched = tolerate(
            self.api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            &[404],
        )?;
        Ok(patched.unwrap_or_else(|| rs.clone()))
    }

    /// Creates the ReplicaSet for the Deployment's current template.
    pub async fn create_new(
        &self,
        replicas: i32,
        new_revision: i64,
        collision_count: Option<i32>,
    ) -> Result<Created, Error> {
        let d = self.deployment;
        let template = &self.spec.template;
        let hash = rollout::template_hash(template, collision_count);
        let mut t = template.clone();
        t.metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default()
            .insert(HASH_LABEL.to_owned(), hash.clone());
        let mut selector = self.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(HASH_LABEL.to_owned(), hash.clone());
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{}-{hash}", d.name_any()),
                "namespace": d.namespace(),
                "labels": t.metadata.as_ref().and_then(|m| m.labels.clone()),
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": self.spec.min_ready_seconds.unwrap_or(0),
                "selector": selector,
                "template": t,
            },
        }))
        .unwrap_or_default();
        let mut notes = new_replicaset_annotations(d, &rs, new_revision);
        set_replicas_annotations(&mut notes, self.replicas(), self.max_replicas());
        rs.metadata.annotations = Some(notes);
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if replicas > 0 {
                    self.recorder.record(
                        d,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!(
                            "Scaled up replica set {} from 0 to {replicas}",
                            created.name_any()
                        ),
                    );
                }
                Ok(Created::New(Box::new(created)))
            }
            Err(e) if crate::api_code(&e) == Some(409) => {
                // Ours but not yet in the cache (upstream's check), or
                // someone else's with the name: a hash collision.
                let existing = self.api.get_opt(&rs.name_any()).await?;
                let uid = d.uid().unwrap_or_default();
                let ours = existing.filter(|x| {
                    controller_of(&x.metadata).is_some_and(|r| r.uid == uid)
                        && x.spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| rollout::equal_ignore_hash(t, template))
                });
                Ok(ours.map_or(Created::Collision, |rs| Created::New(Box::new(rs))))
            }
            Err(e) => {
                self.recorder.record(
                    d,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Failed to create new replica set {}: {e}", rs.name_any()),
                );
                Err(e.into())
            }
        }
    }

    /// Upstream's `scale`: resizes the ReplicaSets after the Deployment's
    /// size changed (or while it is paused) without rolling out.
    pub async fn scale_without_rollout(
        &self,
        new: &mut Option<ReplicaSet>,
        olds: &mut [ReplicaSet],
    ) -> Result<(), Error> {
        let replicas = self.replicas();
        let active_count = new.iter().filter(|rs| spec_replicas(rs) > 0).count()
            + olds.iter().filter(|rs| spec_replicas(rs) > 0).count();
        // One active ReplicaSet (or none: the newest) simply takes the size.
        if active_count <= 1 {
            let target: Option<&mut ReplicaSet> = match new.as_mut() {
                Some(n) if spec_replicas(n) > 0 || active_count == 0 => Some(n),
                _ => {
                    let active = olds.iter().position(|rs| spec_replicas(rs) > 0);
                    match active {
                        Some(i) => olds.get_mut(i),
                        None => olds.last_mut(),
                    }
                }
            };
            if let Some(rs) = target
                && spec_replicas(rs) != replicas
            {
                *rs = self.scale(rs, replicas, false).await?;
            }
            return Ok(());
        }
        // A saturated new ReplicaSet: the old ones go.
        if let Some(n) = new.as_ref()
            && spec_replicas(n) == replicas
            && replicas_annotation(n, DESIRED_REPLICAS) == Some(replicas)
            && available(n) == replicas
        {
            for rs in olds.iter_mut().filter(|rs| spec_replicas(rs) > 0) {
                *rs = self.scale(rs, 0, false).await?;
            }
            return Ok(());
        }
        if !rollout::is_rolling(self.spec) {
            return Ok(());
        }
        // Several active: spread the change proportionally, oldest first.
        let mut active: Vec<&mut ReplicaSet> = olds
            .iter_mut()
            .chain(new.as_mut())
            .filter(|rs| spec_replicas(rs) > 0)
            .collect();
        active.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        let view: Vec<Active> = active
            .iter()
            .map(|rs| Active {
                spec_replicas: spec_replicas(rs),
                max_replicas: replicas_annotation(rs, annotations::MAX_REPLICAS),
            })
            .collect();
        let status_replicas = self
            .deployment
            .status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let sizes = rollout::proportional(
            replicas,
            rollout::limits(self.spec).0,
            status_replicas,
            &view,
        );
        for (rs, size) in active.into_iter().zip(sizes) {
            *rs = self.scale(rs, size, true).await?;
        }
        Ok(())
    }

    /// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit`, oldest
    /// revision first (upstream's cleanupDeployment).
    pub async fn prune_history(&self, olds: &[ReplicaSet]) -> Result<(), Error> {
        let limit = usize::try_from(self.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let mut cleanable: Vec<&ReplicaSet> = olds
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len().saturating_sub(limit);
        cleanable.sort_by_key(|rs| revision(rs));
        for rs in cleanable.into_iter().take(excess) {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation > status.observed_generation
            {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            tolerate(self.api.delete(&rs.name_any(), &params).await, &[404, 409])?;
        }
        Ok(())
    }
}

/// Whether the Deployment's size changed since its active ReplicaSets were
/// last sized (upstream's isScalingEvent).
pub fn is_scaling_event(
    spec: &DeploymentSpec,
    new: Option<&ReplicaSet>,
    olds: &[ReplicaSet],
) -> bool {
    let replicas = spec.replicas.unwrap_or(1);
    new.into_iter()
        .chain(olds)
        .filter(|rs| spec_replicas(rs) > 0)
        .filter_map(|rs| replicas_annotation(rs, DESIRED_REPLICAS))
        .any(|desired| desired != replicas)
}
