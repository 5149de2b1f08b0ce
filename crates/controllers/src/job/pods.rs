//! What the Job controller reads from and writes into pods: the tracking
//! finalizer, when a pod counts as failed and when it finished, completion
//! indexes, and pods from the Job's template.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// Held by every pod the controller creates until it has counted the pod
/// in the Job's status, so no finished pod goes uncounted (or counted
/// twice) across restarts.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// The annotation and label holding an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The environment variable that exposes the index to containers.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// Upstream's isPodFailed: the Failed phase, or — unless only failed pods
/// are replaced (`podReplacementPolicy: Failed` or a pod failure policy) —
/// being deleted before succeeding (so orphans count).
pub fn is_failed(pod: &Pod, only_replace_failed: bool) -> bool {
    match phase(pod) {
        Some("Failed") => true,
        Some("Succeeded") => false,
        _ => !only_replace_failed && pod.metadata.deletion_timestamp.is_some(),
    }
}

/// Deleted but not yet in a terminal phase.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// When the pod finished (upstream's getFinishedTime): its last container
/// termination, else when Ready turned false, else its deletion, else its
/// creation.
pub fn finish_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten();
    let from_containers = containers
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let ready_false = || {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")?
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
    };
    from_containers
        .or_else(ready_false)
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The completion index of an Indexed Job's pod (annotation, then label).
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.annotations()
        .get(COMPLETION_INDEX)
        .or_else(|| pod.labels().get(COMPLETION_INDEX))?
        .parse()
        .ok()
        .filter(|i| *i >= 0)
}

/// Sum of container restarts (what `restartPolicy: OnFailure` failures
/// count as toward the backoff limit).
pub fn restarts(pod: &Pod) -> i64 {
    let status = pod.status.as_ref();
    ["init", "main"]
        .iter()
        .flat_map(|kind| {
            let list = if *kind == "init" {
                status.and_then(|s| s.init_container_statuses.as_ref())
            } else {
                status.and_then(|s| s.container_statuses.as_ref())
            };
            list.into_iter().flatten()
        })
        .map(|c| i64::from(c.restart_count))
        .sum()
}

/// `<job>-<index>-`, the job name cut so that the generated name fits
/// (upstream's podGenerateNameWithIndex; 58 = 63 minus 5 random chars).
fn generate_name_with_index(job: &str, index: i32) -> String {
    const MAX_GENERATED_NAME_LENGTH: usize = 58;
    let suffix = format!("-{index}-");
    let keep = MAX_GENERATED_NAME_LENGTH
        .saturating_sub(suffix.len())
        .min(job.len());
    let cut = (0..=keep)
        .rev()
        .find(|n| job.is_char_boundary(*n))
        .unwrap_or(0);
    format!("{}{suffix}", &job[..cut])
}

/// What a new pod is for: its completion index (Indexed Jobs) and, with
/// `backoffLimitPerIndex`, the failures its index had so far (counted,
/// ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slot {
    pub index: Option<i32>,
    pub failures: Option<(i32, i32)>,
}

/// A pod for `job` (upstream's pod template plus the tracking finalizer;
/// for an Indexed Job also the index annotation and label, the hostname
/// `<job>-<index>` and the `JOB_COMPLETION_INDEX` variable).
pub fn pod_for(job: &Job, owner: OwnerReference, slot: Slot) -> Option<Pod> {
    let Slot { index, failures } = slot;
    let template = job.spec.as_ref()?.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let name = job.name_any();
    let mut finalizers = meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_owned());
    }
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut spec = template.spec?;
    let generate_name = match index {
        Some(i) => {
            annotations.insert(COMPLETION_INDEX.to_owned(), i.to_string());
            if let Some((counted, ignored)) = failures {
                annotations.insert(
                    super::per_index::FAILURE_COUNT.to_owned(),
                    counted.to_string(),
                );
                if ignored > 0 {
                    annotations.insert(
                        super::per_index::IGNORED_FAILURE_COUNT.to_owned(),
                        ignored.to_string(),
                    );
                }
            }
            labels.insert(COMPLETION_INDEX.to_owned(), i.to_string());
            spec.hostname = Some(format!("{name}-{i}"));
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            let all = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for c in all {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            generate_name_with_index(&name, i)
        }
        None => format!("{name}-"),
    };
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_generate_names_fit() {
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = "a".repeat(63);
        let name = generate_name_with_index(&long, 12);
        assert_eq!(name.len(), 58);
        assert!(name.ends_with("a-12-"));
    }
}
