//! Upstream defaulting: fills in the fields a real cluster fills in, so
//! `kubectl get -o yaml` shows the same object it would upstream and
//! controllers can rely on them being set.
//!
//! Defaulting never fails: parts of an object with the wrong JSON type are
//! left alone for validation to report. Allocation (cluster IPs, node
//! ports), generated names, uids and timestamps are the server's job.

mod core_kinds;
mod pod;
mod workloads;

pub use pod::{default_pod_spec, image_pull_policy};
pub use workloads::generate_job_selector;

use serde_json::{Map, Value};

/// Applies upstream's defaults for the kind to `obj` in place. Unknown
/// kinds are left unchanged. `group` is `""` for the core group.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => pod::default_pod(obj),
        ("", "PodTemplate") => workloads::default_template_at(obj, &["template"]),
        ("", "Service") => core_kinds::default_service(obj),
        ("", "Secret") => core_kinds::default_secret(obj),
        ("", "Namespace") => core_kinds::default_namespace(obj),
        ("", "PersistentVolumeClaim") => core_kinds::default_pvc(obj),
        ("", "Endpoints") => core_kinds::default_endpoints(obj),
        ("", "ReplicationController") => workloads::default_replication_controller(obj),
        ("apps", "Deployment") => workloads::default_deployment(obj),
        ("apps", "ReplicaSet") => workloads::default_replica_set(obj),
        ("apps", "StatefulSet") => workloads::default_stateful_set(obj),
        ("apps", "DaemonSet") => workloads::default_daemon_set(obj),
        ("batch", "Job") => workloads::default_job(obj),
        ("batch", "CronJob") => workloads::default_cron_job(obj),
        _ => {}
    }
}

/// Sets `key` to `value` when it is absent or null.
pub(crate) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_string(), value);
        }
        Some(_) => {}
    }
}

/// The object at `key`, created empty when absent or null; `None` when
/// something else (a wrong type) is there.
pub(crate) fn child_object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    set_default(map, key, Value::Object(Map::new()));
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at a path of keys, if every step is an object (nothing is
/// created).
pub(crate) fn existing_object<'a>(
    v: &'a mut Value,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        cur = cur.get_mut(*key)?;
    }
    cur.as_object_mut()
}

/// Every object item of the list at `key`.
pub(crate) fn each_object(
    map: &mut Map<String, Value>,
    key: &str,
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    if let Some(items) = map.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            if let Some(m) = item.as_object_mut() {
                f(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_kinds_and_non_objects_are_untouched() {
        let mut v = json!({"spec": {}});
        apply("example.com", "Widget", &mut v);
        assert_eq!(v, json!({"spec": {}}));
        let mut v = json!("x");
        apply("", "Pod", &mut v);
        assert_eq!(v, json!("x"));
    }
}
