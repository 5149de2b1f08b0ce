//! Writes a volume's files the way upstream's `AtomicWriter` does, so that a
//! container reading a configMap/secret/downwardAPI/projected volume never
//! sees half of an update:
//!
//! ```text
//! <volume>/..2026_11_23_22_00_00.123456789/   the data, one dir per version
//! <volume>/..data -> ..2026_11_23_22_00_00.123456789
//! <volume>/<key>  -> ..data/<key>              what the user sees
//! ```
//!
//! A new version goes into a fresh timestamped dir; `..data` is switched to
//! it with one `rename(2)` of a symlink (atomic), then the old dir and the
//! user-visible links of keys that disappeared are removed. When the content
//! and modes are unchanged nothing is rewritten, so refreshing every minute
//! costs only reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::VolumeError;

/// The symlink naming the current version.
const DATA_DIR: &str = "..data";
/// The name `..data` is built under before it is renamed into place.
const DATA_DIR_TMP: &str = "..data_tmp";
/// What an `fsGroup` adds to files (group read) and dirs (setgid, group
/// read and search) of a read-only volume.
const FS_GROUP_FILE_BITS: u32 = 0o440;
const FS_GROUP_DIR_BITS: u32 = 0o2550;
/// Upstream's limits on a path and on one of its components.
const MAX_PATH_LEN: usize = 4096;
const MAX_NAME_LEN: usize = 255;

/// One file of a volume: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path (`key` or `dir/key`).
pub type Payload = BTreeMap<String, FileProjection>;

/// Makes `target` hold exactly `payload`. Returns whether a new version was
/// written (`false` when the content and modes were already current).
///
/// With the pod's `fsGroup`, files and dirs of a new version belong to that
/// group and are group-readable (dirs setgid), as upstream's
/// `SetVolumeOwnership` does for read-only volumes — before the swap, so
/// readers never see a version they cannot read.
pub fn write(target: &Path, payload: &Payload, fs_group: Option<u32>) -> Result<bool, VolumeError> {
    let mut payload = clean_payload(payload)?;
    if fs_group.is_some() {
        for (_, mode) in payload.values_mut() {
            *mode |= FS_GROUP_FILE_BITS;
        }
    }
    fs::create_dir_all(target).map_err(io(target))?;

    let data_link = target.join(DATA_DIR);
    let old_dir = match fs::read_link(&data_link) {
        Ok(name) => Some(target.join(name)),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(&data_link)(e)),
    };
    let old_files = match &old_dir {
        Some(dir) => read_tree(dir)?,
        None => BTreeMap::new(),
    };
    let changed = old_dir.is_none() || old_files != payload;

    if changed {
        let new_dir = new_version_dir(target)?;
        let written = write_files(&new_dir, &payload)
            .and_then(|()| fs_group.map_or(Ok(()), |gid| set_group(&new_dir, gid)))
            .and_then(|()| swap(target, &new_dir));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&new_dir);
            return Err(e);
        }
    }

    let new_top = top_level(payload.keys());
    for name in &new_top {
        ensure_visible_link(target, name)?;
    }
    for name in top_level(old_files.keys()).difference(&new_top) {
        remove_visible_link(target, name)?;
    }
    if changed && let Some(old_dir) = old_dir {
        match fs::remove_dir_all(&old_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&old_dir)(e)),
        }
    }
    Ok(changed)
}

/// Checks every path the way upstream does (relative, no `..`, not too
/// long) and normalizes it (`a//b/` → `a/b`), so that the comparison with
/// what is on disk is exact.
fn clean_payload(payload: &Payload) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let mut clean = BTreeMap::new();
    for (path, file) in payload {
        let path = validate_path(path)?;
        clean.insert(path, (file.data.clone(), file.mode & 0o7777));
    }
    Ok(clean)
}

/// `path` normalized, or why it cannot name a file inside a volume.
pub fn validate_path(path: &str) -> Result<String, VolumeError> {
    let invalid = |why: &str| VolumeError::InvalidPath(format!("invalid path {path:?}: {why}"));
    if path.len() > MAX_PATH_LEN {
        return Err(invalid("too long"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be a relative path"));
    }
    if path.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("must not contain '..'")),
            p if p.len() > MAX_NAME_LEN => return Err(invalid("a path element is too long")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(invalid("must not be empty"));
    }
    Ok(parts.join("/"))
}

/// The first component of each path: the names that get a link in the
/// volume's root.
fn top_level<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    paths
        .filter_map(|p| p.split('/').next())
        .map(str::to_owned)
        .collect()
}

/// Every regular file under `dir` with its content and mode, by relative
/// path.
fn read_tree(dir: &Path) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let abs = dir.join(&rel);
        let entries = match fs::read_dir(&abs) {
            Ok(entries) => entries,
            // A dangling `..data` (a crash between steps): rewrite all.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io(&abs)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&abs))?;
            let rel = rel.join(entry.file_name());
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                pending.push(rel);
            } else {
                let data = fs::read(&path).map_err(io(&path))?;
                let key = rel
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => s.to_str(),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                files.insert(key, (data, meta.permissions().mode() & 0o7777));
            }
        }
    }
    Ok(files)
}

/// Creates `..<UTC timestamp with nanoseconds>` in `target` (upstream's
/// name, so that tools that know the layout recognize it).
fn new_version_dir(target: &Path) -> Result<PathBuf, VolumeError> {
    loop {
        let now = jiff::Timestamp::now();
        let name = format!(
            "{}.{:09}",
            now.strftime("..%Y_%m_%d_%H_%M_%S"),
            now.subsec_nanosecond()
        );
        let dir = target.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io(&dir))?;
                return Ok(dir);
            }
            // Two versions within the clock's resolution: take the next tick.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&dir)(e)),
        }
    }
}

fn write_files(dir: &Path, payload: &BTreeMap<String, (Vec<u8>, u32)>) -> Result<(), VolumeError> {
    for (rel, (data, mode)) in payload {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::write(&path, data).map_err(io(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).map_err(io(&path))?;
    }
    Ok(())
}

/// Gives `dir` and everything under it to group `gid` (dirs setgid, so
/// that files created later inherit it).
fn set_group(dir: &Path, gid: u32) -> Result<(), VolumeError> {
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, None, Some(gid)).map_err(io(&path))?;
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            let mode = meta.permissions().mode() | FS_GROUP_DIR_BITS;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io(&path))?;
            for entry in fs::read_dir(&path).map_err(io(&path))? {
                pending.push(entry.map_err(io(&path))?.path());
            }
        }
    }
    Ok(())
}

/// Points `..data` at `new_dir` atomically: a symlink under a temporary
/// name, renamed over the old one.
fn swap(target: &Path, new_dir: &Path) -> Result<(), VolumeError> {
    let tmp = target.join(DATA_DIR_TMP);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let name = new_dir.file_name().ok_or_else(|| {
        VolumeError::InvalidPath(format!("{} has no file name", new_dir.display()))
    })?;
    std::os::unix::fs::symlink(name, &tmp).map_err(io(&tmp))?;
    let data = target.join(DATA_DIR);
    fs::rename(&tmp, &data).map_err(io(&data))
}

/// Makes `<target>/<name>` the link `..data/<name>` (it is already, except
/// on the first write or after a crash).
fn ensure_visible_link(target: &Path, name: &str) -> Result<(), VolumeError> {
    let link = target.join(name);
    let want = Path::new(DATA_DIR).join(name);
    match fs::read_link(&link) {
        Ok(current) if current == want => return Ok(()),
        Ok(_) => fs::remove_file(&link).map_err(io(&link))?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        // Something that is not a link (e.g. a subPath dir made before the
        // key existed): leave it rather than delete what we did not write.
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            return Err(VolumeError::InvalidPath(format!(
                "{} exists and is not a link into {DATA_DIR}",
                link.display()
            )));
        }
        Err(e) => return Err(io(&link)(e)),
    }
    std::os::unix::fs::symlink(&want, &link).map_err(io(&link))
}

/// Removes the link of a key that is gone (only if it is one of our links).
fn remove_visible_link(target: &Path, name: &str) -> Result<(), VolumeError> {
    let link = target.join(name);
    match fs::read_link(&link) {
        Ok(current) if current.starts_with(DATA_DIR) => fs::remove_file(&link).map_err(io(&link)),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => Ok(()),
        Err(e) => Err(io(&link)(e)),
    }
}

/// An I/O error naming its path.
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(k, v, m)| {
                (
                    (*k).to_owned(),
                    FileProjection {
                        data: v.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn version_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("..2"))
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_links_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let p = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]);
        assert!(write(&dir, &p, None).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(
            fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(mode(&dir.join("a")), 0o644);
        assert_eq!(mode(&dir.join("sub/b")), 0o400);
        let versions = version_dirs(&dir);
        assert_eq!(versions.len(), 1);
        assert_eq!(
            fs::read_link(dir.join("..data")).unwrap(),
            Path::new(&versions[0])
        );
    }

    #[test]
    fn unchanged_content_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1", 0o644)]);
        assert!(write(tmp.path(), &p, None).unwrap());
        let before = version_dirs(tmp.path());
        assert!(!write(tmp.path(), &p, None).unwrap());
        assert_eq!(version_dirs(tmp.path()), before);
    }

    #[test]
    fn swaps_and_removes_stale_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, &payload(&[("a", "1", 0o644), ("b", "2", 0o644)]), None).unwrap();
        let first = version_dirs(dir);
        assert!(write(dir, &payload(&[("a", "3", 0o644), ("c", "4", 0o644)]), None).unwrap());
        let second = version_dirs(dir);
        assert_eq!(second.len(), 1);
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "4");
        assert!(fs::symlink_metadata(dir.join("b")).is_err());
        assert!(fs::symlink_metadata(dir.join("..data_tmp")).is_err());
    }

    #[test]
    fn a_mode_change_is_a_change() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &payload(&[("a", "1", 0o644)]), None).unwrap();
        assert!(write(tmp.path(), &payload(&[("a", "1", 0o600)]), None).unwrap());
        assert_eq!(mode(&tmp.path().join("a")), 0o600);
    }

    #[test]
    fn empty_payload_is_an_empty_version() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &payload(&[("a", "1", 0o644)]), None).unwrap();
        assert!(write(tmp.path(), &Payload::new(), None).unwrap());
        assert!(fs::symlink_metadata(tmp.path().join("a")).is_err());
        assert!(fs::read_link(tmp.path().join("..data")).is_ok());
    }

    #[test]
    fn fs_group_owns_and_reads() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let gid = fs::metadata(tmp.path()).unwrap().gid();
        let p = payload(&[("sub/a", "1", 0o400)]);
        assert!(write(tmp.path(), &p, Some(gid)).unwrap());
        let file = tmp.path().join("sub/a");
        assert_eq!(mode(&file), 0o440);
        assert_eq!(fs::metadata(&file).unwrap().gid(), gid);
        assert_eq!(mode(&tmp.path().join("sub")) & 0o2000, 0o2000);
        assert!(!write(tmp.path(), &p, Some(gid)).unwrap(), "unchanged");
    }

    #[test]
    fn rejects_escaping_paths() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "..data", "", "."] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_path("a//b/").unwrap(), "a/b");
        let tmp = tempfile::tempdir().unwrap();
        assert!(write(tmp.path(), &payload(&[("../x", "1", 0o644)]), None).is_err());
    }
}
