//! Upstream's ServiceAccount admission on pod create: the pod runs as a
//! service account (`default` unless named), which must exist, takes its
//! `imagePullSecrets` when it names none, and unless automounting is
//! turned off gets the `kube-api-access-*` projected
//! volume (a bound token, the cluster CA, the namespace) mounted in every
//! container.
//!
//! One deviation: when the `default` service account does not exist (yet)
//! the pod is admitted without the token volume instead of refused —
//! skiff's service account controller creates it asynchronously after the
//! namespace, and servers run without controllers (tests) never get one.
//! A named service account that is missing is refused as upstream.

use serde_json::{Map, Value, json};

use super::Registry;
use crate::status::ApiError;

/// Where the token, CA and namespace files appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The lifetime of an automounted token (upstream's 1 h + 7 s, which
/// marks it as one).
const TOKEN_SECONDS: i64 = 3607;

fn mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
}

/// The projected volume upstream adds.
fn access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Mounts `volume` at [`MOUNT_PATH`] in containers that mount nothing
/// there yet.
fn mount_everywhere(spec: &mut Map<String, Value>, volume: &str) {
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH));
            if !taken {
                mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            }
        }
    }
}

/// Adds a `kube-api-access-<suffix>` volume to a pod spec and mounts it
/// read-only in the containers that mount nothing at [`MOUNT_PATH`].
pub fn add_access_volume(spec: &mut Map<String, Value>) {
    let name = format!("kube-api-access-{}", crate::object::random_suffix());
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    let Some(volumes) = volumes.as_array_mut() else {
        return;
    };
    volumes.push(access_volume(&name));
    mount_everywhere(spec, &name);
}

impl Registry {
    /// The admission of a new pod in `ns`.
    pub(super) async fn admit_service_account(
        &self,
        ns: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        if mirror_pod(pod) {
            return Ok(());
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let name = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .or_else(|| spec.get("serviceAccount").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        spec.insert("serviceAccountName".into(), json!(name));
        spec.insert("serviceAccount".into(), json!(name));
        let Some(sa) = self.lookup("serviceaccounts", Some(ns), &name).await else {
            if name == "default" {
                return Ok(());
            }
            return Err(ApiError::forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found",
                pod_name(pod)
            )));
        };
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let has_pull_secrets = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_pull_secrets
            && let Some(secrets) = sa
                .get("imagePullSecrets")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
        {
            spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
        }
        let automount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                sa.get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        if automount {
            add_access_volume(spec);
        }
        Ok(())
    }
}

fn pod_name(pod: &Value) -> &str {
    crate::object::name(pod)
        .or_else(|| {
            pod.pointer("/metadata/generateName")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_mounted_in_every_container_once() {
        let mut pod = json!({
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            ],
        });
        let spec = pod.as_object_mut().unwrap();
        add_access_volume(spec);
        let volume = spec["volumes"][0]["name"].as_str().unwrap().to_owned();
        assert!(volume.starts_with("kube-api-access-") && volume.len() == 21);
        assert_eq!(
            spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(spec["initContainers"][0]["volumeMounts"][0]["name"], volume);
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
        let b = spec["containers"][1]["volumeMounts"].as_array().unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0]["name"], "mine");
    }
}
