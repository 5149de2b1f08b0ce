//! A container's volumeMounts as CRI mounts: the volume's host path (plus
//! `subPath`, or `subPathExpr` expanded from the container's env), read-only
//! when the mount or the volume says so, and the mount propagation.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_cri::v1::{Mount, MountPropagation};
use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};

use super::atomic_writer::io;
use super::{PodVolumes, VolumeError, downward_api};

pub(super) fn container_mounts(
    pod: &Pod,
    container: &Container,
    volumes: &PodVolumes,
) -> Result<Vec<Mount>, VolumeError> {
    let mut env = None;
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume = volumes.get(&vm.name).ok_or_else(|| {
            VolumeError::InvalidMount(format!(
                "cannot find volume {:?} to mount into container {:?}",
                vm.name, container.name
            ))
        })?;
        let sub_path = match (non_empty(&vm.sub_path), non_empty(&vm.sub_path_expr)) {
            (Some(_), Some(_)) => {
                return Err(VolumeError::InvalidMount(format!(
                    "volumeMount {:?}: subPath and subPathExpr are mutually exclusive",
                    vm.name
                )));
            }
            (Some(p), None) => Some(p.to_owned()),
            (None, Some(expr)) => {
                let env = env.get_or_insert_with(|| container_env(pod, container));
                Some(expand(expr, env))
            }
            (None, None) => None,
        };
        let host_path = match sub_path {
            Some(sub) => sub_path_on_host(&volume.host_path, &sub)?,
            None => volume.host_path.clone(),
        };
        mounts.push(Mount {
            container_path: vm.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: vm.read_only.unwrap_or(false) || volume.read_only,
            recursive_read_only: vm.recursive_read_only.as_deref() == Some("Enabled"),
            propagation: propagation(vm, container)? as i32,
            ..Default::default()
        });
    }
    Ok(mounts)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The host path of `<volume>/<sub>`, made as a dir (with the volume's
/// mode) when missing, like upstream. The resolved path must stay inside
/// the volume, so a symlink in the volume cannot expose the host.
pub(super) fn sub_path_on_host(volume: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    validate_sub_path(sub)?;
    let path = volume.join(sub);
    if std::fs::symlink_metadata(&path).is_err() {
        let mode = std::fs::metadata(volume)
            .map_err(io(volume))?
            .permissions()
            .mode();
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io(&path))?;
    }
    let resolved = std::fs::canonicalize(&path).map_err(io(&path))?;
    let base = std::fs::canonicalize(volume).map_err(io(volume))?;
    if !resolved.starts_with(&base) {
        return Err(VolumeError::InvalidPath(format!(
            "subpath {:?} not within volume path {:?}",
            resolved.display(),
            base.display()
        )));
    }
    Ok(resolved)
}

/// Upstream's rule: a subPath is relative and never goes up.
pub(super) fn validate_sub_path(sub: &str) -> Result<(), VolumeError> {
    let path = Path::new(sub);
    if path.is_absolute() {
        return Err(VolumeError::InvalidPath(format!(
            "subPath {sub:?} must be a relative path"
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(VolumeError::InvalidPath(format!(
            "subPath {sub:?} must not contain '..'"
        )));
    }
    Ok(())
}

fn propagation(vm: &VolumeMount, container: &Container) -> Result<MountPropagation, VolumeError> {
    match vm.mount_propagation.as_deref().unwrap_or("None") {
        "None" | "" => Ok(MountPropagation::PropagationPrivate),
        "HostToContainer" => Ok(MountPropagation::PropagationHostToContainer),
        "Bidirectional" => {
            let privileged = container
                .security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false);
            if privileged {
                Ok(MountPropagation::PropagationBidirectional)
            } else {
                Err(VolumeError::InvalidMount(
                    "Bidirectional mount propagation is available only to privileged containers"
                        .to_owned(),
                ))
            }
        }
        other => Err(VolumeError::InvalidMount(format!(
            "invalid MountPropagation mode: {other:?}"
        ))),
    }
}

/// The container env that `subPathExpr` can use: plain values and
/// downward API fields (what `$(POD_NAME)`-style expressions need).
/// configMap/secret references are not resolved here (that needs the API).
fn container_env(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            Some(expand(value, &env))
        } else {
            var.value_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .and_then(|f| downward_api::field_value(pod, &f.field_path).ok())
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    env
}

/// Upstream's `$(VAR)` expansion: known variables are replaced, unknown
/// references are kept verbatim, `$$` is a literal `$`.
pub(super) fn expand(input: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(')
            && let Some(end) = tail.find(')')
        {
            let name = &tail[..end];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::PodVolume;
    use super::*;
    use serde_json::json;

    #[test]
    fn sub_path_validation() {
        assert!(validate_sub_path("a/b").is_ok());
        assert!(validate_sub_path("a/..b").is_ok());
        for bad in ["/etc", "..", "a/../../b", "../x"] {
            let err = validate_sub_path(bad).unwrap_err();
            assert!(err.to_string().contains("subPath"), "{err}");
        }
    }

    #[test]
    fn sub_path_is_created_and_confined() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o750)).unwrap();
        let p = sub_path_on_host(&vol, "x/y").unwrap();
        assert!(p.is_dir());
        assert!(p.ends_with("vol/x/y"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o750
        );

        std::os::unix::fs::symlink("/etc", vol.join("escape")).unwrap();
        let err = sub_path_on_host(&vol, "escape").unwrap_err();
        assert!(err.to_string().contains("not within volume path"), "{err}");
    }

    #[test]
    fn expansion() {
        let env = HashMap::from([("A".to_owned(), "x".to_owned())]);
        assert_eq!(expand("$(A)/b", &env), "x/b");
        assert_eq!(expand("$(B)/$$(A)/$", &env), "$(B)/$(A)/$");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn container_mounts_resolve() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let cfg = tmp.path().join("cfg");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&cfg).unwrap();
        let mut volumes = PodVolumes::default();
        let vol = |p: &Path, ro| PodVolume {
            host_path: p.to_owned(),
            read_only: ro,
            refreshable: false,
        };
        volumes.volumes.insert("data".into(), vol(&data, false));
        volumes.volumes.insert("cfg".into(), vol(&cfg, true));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{
                "name": "c", "image": "i",
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data", "subPathExpr": "$(POD)/logs",
                     "mountPropagation": "HostToContainer"},
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "data", "mountPath": "/ro", "readOnly": true},
                ],
            }]},
        }))
        .unwrap();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let mounts = container_mounts(&pod, container, &volumes).unwrap();
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].container_path, "/data");
        assert!(mounts[0].host_path.ends_with("data/web-0/logs"));
        assert!(!mounts[0].readonly);
        assert_eq!(
            mounts[0].propagation,
            MountPropagation::PropagationHostToContainer as i32
        );
        assert!(mounts[1].readonly, "configMap-like volumes are read-only");
        assert!(mounts[2].readonly);

        let mut bad = container.clone();
        bad.volume_mounts = Some(vec![VolumeMount {
            name: "nope".into(),
            mount_path: "/x".into(),
            ..Default::default()
        }]);
        let err = container_mounts(&pod, &bad, &volumes).unwrap_err();
        assert!(
            err.to_string().contains("cannot find volume \"nope\""),
            "{err}"
        );

        bad.volume_mounts = Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/x".into(),
            mount_propagation: Some("Bidirectional".into()),
            ..Default::default()
        }]);
        assert!(container_mounts(&pod, &bad, &volumes).is_err());
    }
}
