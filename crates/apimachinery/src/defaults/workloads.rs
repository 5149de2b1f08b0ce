//! Workload defaults: Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ReplicationController, Job, CronJob, and the pod templates inside them.

use serde_json::{Map, Value, json};

use super::core_kinds::default_pvc_spec;
use super::pod::default_pod_spec;
use super::{child_object, each_object, existing_object, set_default};

/// Defaults the pod spec of the template found at `path` (e.g.
/// `["spec", "template"]`), if it exists.
pub(crate) fn default_template_at(obj: &mut Value, path: &[&str]) {
    if let Some(template) = existing_object(obj, path)
        && let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut)
    {
        default_pod_spec(spec);
    }
}

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut().and_then(|r| child_object(r, "spec"))
}

fn template_labels(obj: &Value, path: &[&str]) -> Option<Map<String, Value>> {
    let mut cur = obj;
    for key in path {
        cur = cur.get(*key)?;
    }
    cur.get("metadata")?
        .get("labels")?
        .as_object()
        .filter(|m| !m.is_empty())
        .cloned()
}

/// Copies the template's labels to `metadata.labels` when the object has
/// none (upstream does this for Jobs and ReplicationControllers).
fn labels_from_template(obj: &mut Value, path: &[&str]) {
    let Some(labels) = template_labels(obj, path) else {
        return;
    };
    let Some(meta) = obj
        .as_object_mut()
        .and_then(|r| child_object(r, "metadata"))
    else {
        return;
    };
    let empty = meta
        .get("labels")
        .is_none_or(|l| l.as_object().is_some_and(Map::is_empty) || l.is_null());
    if empty {
        meta.insert("labels".into(), Value::Object(labels));
    }
}

/// Deployment: 1 replica, RollingUpdate 25%/25%, 10 revisions, 600s
/// progress deadline.
pub(crate) fn default_deployment(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        if let Some(strategy) = child_object(spec, "strategy") {
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = child_object(strategy, "rollingUpdate")
            {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    default_template_at(obj, &["spec", "template"]);
}

/// ReplicaSet: 1 replica.
pub(crate) fn default_replica_set(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "replicas", json!(1));
    }
    default_template_at(obj, &["spec", "template"]);
}

/// StatefulSet: 1 replica, OrderedReady, RollingUpdate partition 0, 10
/// revisions, PVC retention Retain/Retain, claim template defaults.
pub(crate) fn default_stateful_set(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        set_default(spec, "revisionHistoryLimit", json!(10));
        if let Some(us) = child_object(spec, "updateStrategy") {
            let unset = us.get("type").is_none_or(Value::is_null);
            if unset {
                us.insert("type".into(), json!("RollingUpdate"));
                set_default(us, "rollingUpdate", json!({}));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut)
            {
                set_default(ru, "partition", json!(0));
            }
        }
        if let Some(policy) = child_object(spec, "persistentVolumeClaimRetentionPolicy") {
            set_default(policy, "whenDeleted", json!("Retain"));
            set_default(policy, "whenScaled", json!("Retain"));
        }
        each_object(spec, "volumeClaimTemplates", |t| {
            if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                default_pvc_spec(s);
            }
        });
    }
    default_template_at(obj, &["spec", "template"]);
}

/// DaemonSet: RollingUpdate with maxUnavailable 1 and maxSurge 0, 10
/// revisions.
pub(crate) fn default_daemon_set(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "revisionHistoryLimit", json!(10));
        if let Some(us) = child_object(spec, "updateStrategy") {
            set_default(us, "type", json!("RollingUpdate"));
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = child_object(us, "rollingUpdate")
            {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    default_template_at(obj, &["spec", "template"]);
}

/// ReplicationController: selector and labels from the template, 1
/// replica.
pub(crate) fn default_replication_controller(obj: &mut Value) {
    if let Some(labels) = template_labels(obj, &["spec", "template"])
        && let Some(spec) = spec_of(obj)
    {
        let empty = spec
            .get("selector")
            .is_none_or(|s| s.is_null() || s.as_object().is_some_and(Map::is_empty));
        if empty {
            spec.insert("selector".into(), Value::Object(labels));
        }
    }
    labels_from_template(obj, &["spec", "template"]);
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "replicas", json!(1));
    }
    default_template_at(obj, &["spec", "template"]);
}

/// Job: completions/parallelism 1, backoffLimit 6, NonIndexed, not
/// suspended, podReplacementPolicy, labels from the template.
pub(crate) fn default_job(obj: &mut Value) {
    labels_from_template(obj, &["spec", "template"]);
    if let Some(spec) = spec_of(obj) {
        let unset = |s: &Map<String, Value>, k: &str| s.get(k).is_none_or(Value::is_null);
        if unset(spec, "completions") && unset(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        let per_index = !unset(spec, "backoffLimitPerIndex");
        set_default(
            spec,
            "backoffLimit",
            json!(if per_index { i64::from(i32::MAX) } else { 6 }),
        );
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        let has_failure_policy = !unset(spec, "podFailurePolicy");
        set_default(
            spec,
            "podReplacementPolicy",
            json!(if has_failure_policy {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }),
        );
        if let Some(pfp) = spec
            .get_mut("podFailurePolicy")
            .and_then(Value::as_object_mut)
        {
            each_object(pfp, "rules", |r| {
                each_object(r, "onPodConditions", |c| {
                    set_default(c, "status", json!("True"));
                });
            });
        }
    }
    default_template_at(obj, &["spec", "template"]);
}

/// What the server does when creating a Job without `manualSelector:
/// true` (upstream's `generateSelector`): label the pod template with the
/// job's name and uid, and select on the uid. Labels the user already set
/// are kept (validation then reports conflicts). Afterwards, like a read
/// back from storage upstream, an unlabeled Job takes its template labels.
pub fn generate_job_selector(obj: &mut Value, uid: &str) {
    let manual = obj
        .get("spec")
        .and_then(|s| s.get("manualSelector"))
        .and_then(Value::as_bool)
        == Some(true);
    if manual {
        return;
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = spec_of(obj) else {
        return;
    };
    if let Some(labels) = child_object(spec, "template")
        .and_then(|t| child_object(t, "metadata"))
        .and_then(|m| child_object(m, "labels"))
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            set_default(labels, key, json!(name));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            set_default(labels, key, json!(uid));
        }
    }
    if let Some(match_labels) =
        child_object(spec, "selector").and_then(|s| child_object(s, "matchLabels"))
    {
        set_default(
            match_labels,
            "batch.kubernetes.io/controller-uid",
            json!(uid),
        );
    }
    labels_from_template(obj, &["spec", "template"]);
}

/// CronJob: Allow, not suspended, keep 3 successful and 1 failed job.
pub(crate) fn default_cron_job(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
    }
    default_template_at(obj, &["spec", "jobTemplate", "spec", "template"]);
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply;
    use serde_json::{Value, json};

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}})
    }

    fn templated_pod_spec() -> Value {
        json!({"containers": [{"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent", "resources": {},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {}, "terminationGracePeriodSeconds": 30})
    }

    #[test]
    fn deployment() {
        let mut d =
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        // templates get pod-spec defaults but not the Pod-only ones
        assert_eq!(d["spec"]["template"]["spec"], templated_pod_spec());
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["replicas"], 0);
    }

    #[test]
    fn replica_set_and_rc() {
        let mut rs = json!({"spec": {"template": template()}});
        apply("apps", "ReplicaSet", &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"], templated_pod_spec());
        let mut rc = json!({"metadata": {"name": "x"}, "spec": {"template": template()}});
        apply("", "ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn stateful_set() {
        let mut s = json!({"spec": {"template": template(), "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}});
        apply("apps", "StatefulSet", &mut s);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(s["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        let mut s = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        apply("apps", "StatefulSet", &mut s);
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn daemon_set() {
        let mut d = json!({"spec": {"template": template()}});
        apply("apps", "DaemonSet", &mut d);
        assert_eq!(
            d["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert!(d["spec"].get("replicas").is_none());
    }

    #[test]
    fn job() {
        let mut j = json!({"metadata": {"name": "j"}, "spec": {"template": template()}});
        apply("batch", "Job", &mut j);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["suspend"], false);
        assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(j["metadata"]["labels"], json!({"app": "web"}));
        let mut j = json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [{"onPodConditions": [{"type": "DisruptionTarget"}]}]}}});
        apply("batch", "Job", &mut j);
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(j["spec"]["parallelism"], 3);
        assert_eq!(j["spec"]["backoffLimit"], 2147483647);
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            j["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );
    }

    #[test]
    fn job_selector_generation() {
        let mut j = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {}}}});
        super::generate_job_selector(&mut j, "u-1");
        let want = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1", "job-name": "pi"});
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], want);
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(j["metadata"]["labels"], want);
        let errs = crate::validation::validate_create("batch", "Job", &j);
        assert!(
            !errs
                .iter()
                .any(|e| e.field.starts_with("spec.selector") || e.field.contains("labels")),
            "{errs:?}"
        );
        let mut j =
            json!({"metadata": {"name": "pi"}, "spec": {"manualSelector": true, "template": {}}});
        super::generate_job_selector(&mut j, "u-1");
        assert!(j["spec"].get("selector").is_none());
    }

    #[test]
    fn cron_job() {
        let mut c = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template()}}}});
        apply("batch", "CronJob", &mut c);
        assert_eq!(c["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(c["spec"]["suspend"], false);
        assert_eq!(c["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(c["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            c["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            templated_pod_spec()
        );
        // job-level defaults are not applied inside the template
        assert!(
            c["spec"]["jobTemplate"]["spec"]
                .get("backoffLimit")
                .is_none()
        );
    }
}
