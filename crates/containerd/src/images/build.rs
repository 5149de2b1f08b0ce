//! Docker-archive tarballs (`docker save` format, which `ctr images import`
//! reads) built from the host's busybox-static. The output is
//! byte-for-byte deterministic: sorted entries, mtime 0, owner root, so the
//! same busybox always gives the same image digests.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{BUSYBOX_IMAGE, ImageError, PAUSE_IMAGE};

/// Where Debian's busybox-static installs busybox.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// The PATH of both images (the one container runtimes default to).
const PATH_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// PID 1 of the pause image: ash reaps every child (it waits for any pid),
/// so orphans re-parented to it never stay zombies, and the trap makes it
/// exit 0 at once on SIGTERM/SIGINT, where an untrapped PID 1 would ignore
/// them.
const PAUSE_SCRIPT: &str = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done";

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// Writes the pause (sandbox) image [`PAUSE_IMAGE`] to `out`: busybox with
/// `sh` and `sleep`, running [`PAUSE_SCRIPT`].
pub fn build_pause(busybox: &Path, out: &Path) -> Result<(), ImageError> {
    let binary = read_static_busybox(busybox)?;
    let mut layer = Layer::default();
    layer.dir("bin", 0o755);
    layer.file("bin/busybox", 0o755, binary);
    layer.symlink("bin/sh", "/bin/busybox");
    layer.symlink("bin/sleep", "/bin/busybox");
    let config = json!({
        "Env": [PATH_ENV],
        "Entrypoint": ["/bin/sh", "-c", PAUSE_SCRIPT],
        "WorkingDir": "/",
        "Labels": { "io.skiff.image": "pause" },
    });
    write_archive(out, PAUSE_IMAGE, config, &layer.into_tar()?)
}

/// Writes the busybox image [`BUSYBOX_IMAGE`] to `out`: /bin/busybox, a
/// symlink for every applet it lists, root and nobody in /etc/passwd and
/// /etc/group, and a world-writable /tmp; `Cmd ["sh"]`.
pub fn build_busybox(busybox: &Path, out: &Path) -> Result<(), ImageError> {
    let binary = read_static_busybox(busybox)?;
    let applets = applets(busybox)?;
    let mut layer = Layer::default();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var",
    ] {
        layer.dir(dir, 0o755);
    }
    layer.dir("root", 0o700);
    layer.dir("tmp", 0o1777);
    layer.file("bin/busybox", 0o755, binary);
    layer.file("etc/passwd", 0o644, PASSWD.as_bytes().to_vec());
    layer.file("etc/group", 0o644, GROUP.as_bytes().to_vec());
    for applet in applets {
        if applet != "bin/busybox" {
            layer.symlink(&applet, "/bin/busybox");
        }
    }
    let config = json!({
        "Env": [PATH_ENV],
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "Labels": { "io.skiff.image": "busybox" },
    });
    write_archive(out, BUSYBOX_IMAGE, config, &layer.into_tar()?)
}

/// Reads busybox, refusing a missing or dynamically linked binary.
fn read_static_busybox(path: &Path) -> Result<Vec<u8>, ImageError> {
    let binary = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::BusyboxMissing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(ImageError::io("reading", path, e)),
    };
    if let Err(reason) = check_static_elf(&binary) {
        return Err(ImageError::BusyboxNotStatic {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(binary)
}

/// Ok when `binary` is an ELF file without a program interpreter
/// (`PT_INTERP`), i.e. it runs without a dynamic loader.
pub fn check_static_elf(binary: &[u8]) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    if binary.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF executable".into());
    }
    let is64 = match binary.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF class".into()),
    };
    let little = match binary.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err("unknown ELF byte order".into()),
    };
    let truncated = || "truncated ELF header".to_string();
    let read = |at: usize, len: usize| -> Result<u64, String> {
        let bytes = binary.get(at..at + len).ok_or_else(truncated)?;
        let mut value = 0u64;
        for i in 0..len {
            let b = if little { bytes[len - 1 - i] } else { bytes[i] };
            value = (value << 8) | u64::from(b);
        }
        Ok(value)
    };
    let (phoff, phentsize, phnum) = if is64 {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    let phoff = usize::try_from(phoff).map_err(|_| truncated())?;
    let phentsize = usize::try_from(phentsize).map_err(|_| truncated())?;
    for i in 0..usize::try_from(phnum).map_err(|_| truncated())? {
        let p_type = read(phoff + i * phentsize, 4)?;
        if p_type == u64::from(PT_INTERP) {
            return Err("it needs a dynamic loader (PT_INTERP)".into());
        }
    }
    Ok(())
}

/// The applets as paths relative to `/` (`bin/sh`, `usr/bin/wget`), from
/// `busybox --list-full`, or `--list` placed in `bin/` for builds without it.
fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let run = |flag: &str| -> Result<Option<String>, ImageError> {
        let out = std::process::Command::new(busybox)
            .arg(flag)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| ImageError::io("running", busybox, e))?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    };
    let mut list: Vec<String> = if let Some(full) = run("--list-full")? {
        full.lines()
            .map(|l| l.trim().trim_start_matches('/').to_string())
            .collect()
    } else if let Some(names) = run("--list")? {
        names.lines().map(|l| format!("bin/{}", l.trim())).collect()
    } else {
        return Err(ImageError::BusyboxNotStatic {
            path: busybox.to_path_buf(),
            reason: "`busybox --list` failed".into(),
        });
    };
    // Only plain names in the usual directories: nothing may escape the
    // layer or collide with a directory.
    list.retain(|p| {
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        matches!(dir, "bin" | "sbin" | "usr/bin" | "usr/sbin")
            && !name.is_empty()
            && name != "."
            && name != ".."
    });
    list.sort();
    list.dedup();
    Ok(list)
}

enum Content {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// A filesystem layer being assembled; written sorted by path.
#[derive(Default)]
struct Layer {
    entries: Vec<(String, u32, Content)>,
}

impl Layer {
    fn dir(&mut self, path: &str, mode: u32) {
        self.entries.push((path.to_string(), mode, Content::Dir));
    }

    fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.entries
            .push((path.to_string(), mode, Content::File(data)));
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.entries.push((
            path.to_string(),
            0o777,
            Content::Symlink(target.to_string()),
        ));
    }

    fn into_tar(mut self) -> Result<Vec<u8>, ImageError> {
        // Byte order puts every directory before what it holds.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tar = tar::Builder::new(Vec::new());
        for (path, mode, content) in &self.entries {
            let mut header = header(*mode);
            let result = match content {
                Content::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Content::File(data) => {
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                }
                Content::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    tar.append_link(&mut header, path, target)
                }
            };
            result.map_err(|e| ImageError::io("building layer entry", Path::new(path), e))?;
        }
        tar.into_inner()
            .map_err(|e| ImageError::io("building layer", Path::new("layer.tar"), e))
    }
}

/// A tar header with the fixed metadata of every entry.
fn header(mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    header
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in hash {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("sha256:{hex}")
}

/// The image architecture name (GOARCH) of this host.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Writes a one-layer docker-archive to `out` (via a temporary file and a
/// rename, so a crash never leaves half an archive under the final name).
fn write_archive(
    out: &Path,
    repo_tag: &str,
    container_config: serde_json::Value,
    layer: &[u8],
) -> Result<(), ImageError> {
    let diff_id = sha256_digest(layer);
    let layer_hex = diff_id.trim_start_matches("sha256:");
    let config = json!({
        "architecture": go_arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": container_config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "skiff images build" }],
    });
    let config = serde_json::to_vec(&config)
        .map_err(|e| ImageError::io("encoding image config", out, e.into()))?;
    let config_name = format!(
        "{}.json",
        sha256_digest(&config).trim_start_matches("sha256:")
    );
    let layer_name = format!("{layer_hex}/layer.tar");
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": [layer_name],
    }]);
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| ImageError::io("encoding manifest", out, e.into()))?;

    let mut files: Vec<(String, &[u8])> = vec![
        (config_name, &config),
        (layer_name, layer),
        ("manifest.json".to_string(), &manifest),
    ];
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = header(0o755);
    dir.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut dir, format!("{layer_hex}/"), std::io::empty())
        .map_err(|e| ImageError::io("building archive", out, e))?;
    for (name, data) in files {
        let mut h = header(0o644);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, name, data)
            .map_err(|e| ImageError::io("building archive", out, e))?;
    }
    let bytes = tar
        .into_inner()
        .map_err(|e| ImageError::io("building archive", out, e))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ImageError::io("creating", parent, e))?;
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).map_err(|e| ImageError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| ImageError::io("renaming to", out, e))
}
