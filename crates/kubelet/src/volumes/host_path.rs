//! hostPath volumes: a path on the node, checked against the volume's
//! `type` as upstream does (`DirectoryOrCreate` creates a 0755 dir,
//! `FileOrCreate` an empty 0644 file; the other types must exist as that
//! kind of file; no type means no check).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::VolumeError;
use super::atomic_writer::io;

pub(super) async fn setup(src: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    let path = PathBuf::from(&src.path);
    let kind = src.type_.clone().unwrap_or_default();
    let checked = path.clone();
    tokio::task::spawn_blocking(move || check_type(&checked, &kind))
        .await
        .map_err(|e| VolumeError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })??;
    Ok(path)
}

/// Checks (and for the `...OrCreate` types makes) `path` per `kind`.
pub(super) fn check_type(path: &Path, kind: &str) -> Result<(), VolumeError> {
    if !path.is_absolute() {
        return Err(VolumeError::InvalidPath(format!(
            "hostPath {:?} is not absolute",
            path.display()
        )));
    }
    let meta = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(path)(e)),
    };
    let failed = |what: &str| VolumeError::HostPathType(format!("{} {what}", path.display()));
    let not_found = || failed("does not exist");
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            None => {
                fs::create_dir_all(path).map_err(io(path))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io(path))
            }
            Some(m) if m.is_dir() => Ok(()),
            Some(_) => Err(failed("is not a directory")),
        },
        "FileOrCreate" => match meta {
            None => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io(parent))?;
                }
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(io(path))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io(path))
            }
            Some(m) if m.is_file() => Ok(()),
            Some(_) => Err(failed("is not a file")),
        },
        "Directory" => match meta {
            None => Err(not_found()),
            Some(m) if m.is_dir() => Ok(()),
            Some(_) => Err(failed("is not a directory")),
        },
        "File" => match meta {
            None => Err(not_found()),
            Some(m) if m.is_file() => Ok(()),
            Some(_) => Err(failed("is not a file")),
        },
        "Socket" => match meta {
            None => Err(not_found()),
            Some(m) if m.file_type().is_socket() => Ok(()),
            Some(_) => Err(failed("is not a socket file")),
        },
        "CharDevice" => match meta {
            None => Err(not_found()),
            Some(m) if m.file_type().is_char_device() => Ok(()),
            Some(_) => Err(failed("is not a character device")),
        },
        "BlockDevice" => match meta {
            None => Err(not_found()),
            Some(m) if m.file_type().is_block_device() => Ok(()),
            Some(_) => Err(failed("is not a block device")),
        },
        other => Err(VolumeError::HostPathType(format!(
            "{other} is an invalid volume type"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn or_create_types_create() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        check_type(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o755);
        check_type(&dir, "DirectoryOrCreate").unwrap();

        let file = tmp.path().join("c/f");
        check_type(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert_eq!(mode(&file), 0o644);
        fs::write(&file, "keep").unwrap();
        check_type(&file, "FileOrCreate").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep");

        let err = check_type(&file, "DirectoryOrCreate").unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn existing_types_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "").unwrap();
        let sock_path = tmp.path().join("s");
        let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();

        check_type(tmp.path(), "Directory").unwrap();
        check_type(&file, "File").unwrap();
        check_type(&sock_path, "Socket").unwrap();
        check_type(Path::new("/dev/null"), "CharDevice").unwrap();
        check_type(&tmp.path().join("missing"), "").unwrap();

        let err = check_type(&tmp.path().join("missing"), "Directory").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(check_type(&file, "Directory").is_err());
        assert!(check_type(tmp.path(), "File").is_err());
        assert!(check_type(&file, "Socket").is_err());
        assert!(check_type(&file, "CharDevice").is_err());
        assert!(check_type(&file, "BlockDevice").is_err());
        assert!(check_type(&file, "Weird").is_err());
        assert!(check_type(Path::new("rel"), "").is_err());
    }
}
