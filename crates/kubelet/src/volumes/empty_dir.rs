//! emptyDir volumes: a directory in the pod's dir, or a tmpfs for
//! `medium: Memory`, sized as upstream: the smallest of the node's
//! allocatable memory, the pod's memory limit and the volume's
//! `sizeLimit`. Also the tmpfs that keeps secret and projected volumes off
//! the disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod};
use skiff_apimachinery::quantity::parse_milli;

use super::atomic_writer::io;
use super::{VolumeError, is_root, mountinfo};

/// Upstream makes emptyDirs world-writable so that any container user can
/// use them.
const EMPTY_DIR_MODE: u32 = 0o777;

pub(super) async fn setup(
    dir: &Path,
    src: &EmptyDirVolumeSource,
    pod: &Pod,
    allocatable_memory: Option<i128>,
    fs_group: Option<u32>,
) -> Result<(), VolumeError> {
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    match src.medium.as_deref().unwrap_or_default() {
        "" => {}
        "Memory" => {
            let size_limit = match &src.size_limit {
                Some(q) => Some(parse_milli(&q.0).map(|m| m / 1000).ok_or_else(|| {
                    VolumeError::InvalidPath(format!("invalid emptyDir sizeLimit {:?}", q.0))
                })?),
                None => None,
            };
            let size = memory_size(allocatable_memory, pod_memory_limit(pod), size_limit);
            if !is_root() {
                return Err(VolumeError::Mount(format!(
                    "emptyDir with medium Memory needs root to mount a tmpfs on {}",
                    dir.display()
                )));
            }
            mountinfo::mount_tmpfs(dir, size).await?;
        }
        other => {
            return Err(VolumeError::Unsupported(format!(
                "emptyDir medium {other:?}"
            )));
        }
    }
    match fs_group {
        // Owned by the pod's fsGroup, setgid so new files are too.
        Some(gid) => {
            let owned = dir.to_owned();
            tokio::task::spawn_blocking(move || std::os::unix::fs::lchown(&owned, None, Some(gid)))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map_err(io(dir))?;
            set_mode(dir, EMPTY_DIR_MODE | 0o2000).await
        }
        None => set_mode(dir, EMPTY_DIR_MODE).await,
    }
}

/// Upstream's `calculateEmptyDirMemorySize`: start from the node's
/// allocatable memory; a positive pod limit or `sizeLimit` that is not
/// larger replaces it. `None`: the kernel's default (half the RAM).
fn memory_size(
    allocatable: Option<i128>,
    pod_limit: Option<i128>,
    size_limit: Option<i128>,
) -> Option<i128> {
    let mut size = allocatable;
    for limit in [pod_limit, size_limit].into_iter().flatten() {
        if limit > 0 && size.is_none_or(|s| limit <= s) {
            size = Some(limit);
        }
    }
    size
}

/// The pod's memory limit in bytes as its cgroup gets it: the sum of the
/// app containers' limits (at least the largest init container's), and
/// none when any container has no limit.
fn pod_memory_limit(pod: &Pod) -> Option<i128> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")
            .and_then(|q| parse_milli(&q.0))
            .map(|m| m / 1000)
    };
    let mut sum = 0;
    for c in &spec.containers {
        sum += limit(c)?;
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(limit(c)?);
    }
    Some(sum)
}

/// A dir for a secret/projected volume: a tmpfs when running as root (so
/// secrets never reach the disk), a plain dir otherwise (unprivileged
/// development runs).
pub(super) async fn setup_memory_if_root(dir: &Path) -> Result<(), VolumeError> {
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    if is_root() {
        mountinfo::mount_tmpfs(dir, None).await?;
    } else {
        tracing::debug!(dir = %dir.display(), "not root: secret volume on disk instead of a tmpfs");
    }
    set_mode(dir, 0o755).await
}

async fn set_mode(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const MI: i128 = 1 << 20;

    #[test]
    fn tmpfs_size_is_the_smallest_bound() {
        assert_eq!(memory_size(None, None, None), None);
        assert_eq!(memory_size(Some(8 * MI), None, None), Some(8 * MI));
        assert_eq!(memory_size(Some(8 * MI), Some(4 * MI), None), Some(4 * MI));
        assert_eq!(memory_size(Some(8 * MI), Some(4 * MI), Some(MI)), Some(MI));
        assert_eq!(memory_size(Some(8 * MI), None, Some(16 * MI)), Some(8 * MI));
        assert_eq!(memory_size(None, None, Some(MI)), Some(MI));
    }

    #[test]
    fn pod_limit_needs_every_container_limited() {
        let pod = |containers: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": containers}})).unwrap()
        };
        let limited =
            |m: &str| json!({"name": m, "image": "i", "resources": {"limits": {"memory": m}}});
        assert_eq!(
            pod_memory_limit(&pod(json!([limited("64Mi"), limited("32Mi")]))),
            Some(96 * MI)
        );
        assert_eq!(
            pod_memory_limit(&pod(json!([limited("64Mi"), {"name": "x", "image": "i"}]))),
            None
        );
    }
}
