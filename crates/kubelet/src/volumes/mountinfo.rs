//! The mounts this module makes (tmpfs for memory-backed emptyDirs and
//! secrets) and how they are found again: `/proc/self/mountinfo`, so that
//! setup is idempotent and teardown unmounts everything under a pod's
//! volumes before deleting it.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::VolumeError;

/// The mount points of this process's mount namespace.
async fn mount_points() -> Result<Vec<PathBuf>, VolumeError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(super::atomic_writer::io(path))?;
    Ok(parse(&text))
}

/// The 5th field of each line (the mount point), with the kernel's octal
/// escapes (`\040` for a space) undone.
fn parse(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) async fn is_mount_point(dir: &Path) -> Result<bool, VolumeError> {
    Ok(mount_points().await?.iter().any(|p| p == dir))
}

/// Mounts a tmpfs on `dir` (limited to `size` bytes when given) unless one
/// is there already.
pub(super) async fn mount_tmpfs(dir: &Path, size: Option<i128>) -> Result<(), VolumeError> {
    if is_mount_point(dir).await? {
        return Ok(());
    }
    let mut cmd = Command::new("mount");
    cmd.arg("-t").arg("tmpfs");
    if let Some(size) = size {
        cmd.arg("-o").arg(format!("size={size}"));
    }
    cmd.arg("tmpfs").arg(dir);
    run(cmd, &format!("mounting a tmpfs on {}", dir.display())).await
}

/// Unmounts every mount point under `dir` (deepest first), then checks
/// that none is left.
pub(super) async fn unmount_all_under(dir: &Path) -> Result<(), VolumeError> {
    let mut under: Vec<PathBuf> = mount_points()
        .await?
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    under.dedup();
    for point in &under {
        let mut cmd = Command::new("umount");
        cmd.arg(point);
        run(cmd, &format!("unmounting {}", point.display())).await?;
    }
    if let Some(left) = mount_points().await?.iter().find(|p| p.starts_with(dir)) {
        return Err(VolumeError::Mount(format!(
            "{} is still mounted; not removing {}",
            left.display(),
            dir.display()
        )));
    }
    Ok(())
}

async fn run(mut cmd: Command, what: &str) -> Result<(), VolumeError> {
    let output = cmd
        .output()
        .await
        .map_err(|e| VolumeError::Mount(format!("{what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(VolumeError::Mount(format!(
        "{what}: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mount_points() {
        let text = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                    40 22 0:35 / /var/lib/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse(text),
            vec![PathBuf::from("/"), PathBuf::from("/var/lib/with space")]
        );
    }
}
