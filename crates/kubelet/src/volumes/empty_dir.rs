//! emptyDir volumes: a directory in the pod's dir, or a tmpfs for
//! `medium: Memory` (its `sizeLimit` as the tmpfs size). Also the tmpfs
//! that keeps secret and projected volumes off the disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
use skiff_apimachinery::quantity::parse_milli;

use super::atomic_writer::io;
use super::{VolumeError, is_root, mountinfo};

/// Upstream makes emptyDirs world-writable so that any container user can
/// use them.
const EMPTY_DIR_MODE: u32 = 0o777;

pub(super) async fn setup(
    dir: &Path,
    src: &EmptyDirVolumeSource,
    fs_group: Option<u32>,
) -> Result<(), VolumeError> {
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    match src.medium.as_deref().unwrap_or_default() {
        "" => {}
        "Memory" => {
            let size = match &src.size_limit {
                Some(q) => Some(parse_milli(&q.0).map(|m| m / 1000).ok_or_else(|| {
                    VolumeError::InvalidPath(format!("invalid emptyDir sizeLimit {:?}", q.0))
                })?),
                None => None,
            };
            if !is_root() {
                return Err(VolumeError::Mount(format!(
                    "emptyDir with medium Memory needs root to mount a tmpfs on {}",
                    dir.display()
                )));
            }
            mountinfo::mount_tmpfs(dir, size.filter(|s| *s > 0)).await?;
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
