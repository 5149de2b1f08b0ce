//! Importing image archives into containerd's `k8s.io` namespace (the one
//! the CRI plugin serves) with `ctr images import`, which reads both the
//! docker-archive (`docker save`) and the OCI-layout formats.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{BUSYBOX_IMAGE, DEFAULT_BUSYBOX, ImageError, PAUSE_IMAGE, build_busybox, build_pause};

/// The containerd namespace the CRI plugin uses.
const NAMESPACE: &str = "k8s.io";
/// What is remembered about imported air-gap files, beside the socket.
const MARKER: &str = "imported-images.json";
/// Output lines of a failed `ctr` kept for the error.
const ERROR_LINES: usize = 15;

/// Imports a docker-archive or OCI-layout tarball (plain or gzip) into the
/// `k8s.io` namespace, unpacked for the snapshotter containerd was
/// configured with, passing each output line of `ctr` to `progress`.
/// Returns the image references imported.
pub async fn import(
    socket: &Path,
    tarball: &Path,
    mut progress: impl FnMut(&str),
) -> Result<Vec<String>, ImageError> {
    let meta = std::fs::metadata(tarball).map_err(|e| ImageError::io("reading", tarball, e))?;
    if !meta.is_file() {
        return Err(ImageError::BadArchive {
            path: tarball.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    // Reading the archive first turns a wrong file into a clear error (ctr
    // would only say "unexpected EOF") and names the images for the result.
    let path = tarball.to_path_buf();
    let (expected, gzip) = tokio::task::spawn_blocking(move || archive_refs(&path))
        .await
        .map_err(|e| ImageError::io("reading", tarball, std::io::Error::other(e)))??;

    let mut args: Vec<String> = vec![
        "--namespace".into(),
        NAMESPACE.into(),
        "images".into(),
        "import".into(),
    ];
    if let Some(snapshotter) = configured_snapshotter(socket) {
        args.push("--snapshotter".into());
        args.push(snapshotter);
    }
    // ctr reads plain tar only; a gzip archive is decompressed into its stdin.
    args.push(if gzip {
        "-".into()
    } else {
        tarball.to_string_lossy().into_owned()
    });
    let output = run_ctr(socket, &args, gzip.then_some(tarball), &mut progress).await?;
    let mut refs: Vec<String> = output
        .iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("unpacking ")?;
            Some(
                rest.split_once(" (")
                    .map_or(rest, |(r, _)| r)
                    .trim()
                    .to_string(),
            )
        })
        .collect();
    if refs.is_empty() {
        refs = expected;
    }
    refs.sort();
    refs.dedup();
    Ok(refs)
}

/// The image references in the `k8s.io` namespace (`ctr images ls -q`).
pub async fn list_images(socket: &Path) -> Result<BTreeSet<String>, ImageError> {
    let args: Vec<String> = ["--namespace", NAMESPACE, "images", "ls", "-q"]
        .map(String::from)
        .to_vec();
    let lines = run_ctr(socket, &args, None, &mut |_: &str| {}).await?;
    Ok(lines.into_iter().filter(|l| !l.is_empty()).collect())
}

/// Makes sure the node has its offline images: imports every `*.tar`,
/// `*.tar.gz` and `*.tgz` in `<agent_dir>/images/` (the k3s air-gap
/// convention) not yet imported in its current version, then builds and
/// imports [`PAUSE_IMAGE`] and [`BUSYBOX_IMAGE`] if containerd lacks them.
pub async fn ensure_images(
    socket: &Path,
    agent_dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<(), ImageError> {
    let state_dir = socket.parent().unwrap_or(Path::new("/")).to_path_buf();
    let marker_path = state_dir.join(MARKER);
    let mut marker = read_marker(&marker_path);
    let mut present = list_images(socket).await?;

    for file in airgap_files(&agent_dir.join("images"))? {
        let key = file.to_string_lossy().into_owned();
        let stamp = stamp(&file)?;
        if let Some(done) = marker.get(&key)
            && done.stamp == stamp
            && done.refs.iter().all(|r| present.contains(r))
        {
            tracing::debug!(file = %file.display(), "already imported");
            continue;
        }
        progress(&format!("importing {}", file.display()));
        let refs = import(socket, &file, &mut progress).await?;
        for r in &refs {
            tracing::info!(image = %r, file = %file.display(), "imported image");
            present.insert(r.clone());
        }
        marker.insert(key, Imported { stamp, refs });
        write_marker(&marker_path, &marker)?;
    }

    type Builder = fn(&Path, &Path) -> Result<(), ImageError>;
    let builtin: [(&str, Builder); 2] =
        [(PAUSE_IMAGE, build_pause), (BUSYBOX_IMAGE, build_busybox)];
    for (image, build) in builtin {
        if present.contains(image) {
            continue;
        }
        progress(&format!("building {image} from {DEFAULT_BUSYBOX}"));
        let out = state_dir.join(format!(
            "build-{}.tar",
            image.trim_start_matches("skiff.local/").replace(':', "-")
        ));
        let busybox = PathBuf::from(DEFAULT_BUSYBOX);
        let out2 = out.clone();
        tokio::task::spawn_blocking(move || build(&busybox, &out2))
            .await
            .map_err(|e| ImageError::io("building", &out, std::io::Error::other(e)))??;
        let result = import(socket, &out, &mut progress).await;
        let _ = std::fs::remove_file(&out);
        for r in result? {
            tracing::info!(image = %r, "imported built-in image");
            present.insert(r);
        }
    }
    Ok(())
}

/// The air-gap archives in `dir`, sorted; none when it does not exist.
fn airgap_files(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ImageError::io("listing", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| ImageError::io("listing", dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let archive = [".tar", ".tar.gz", ".tgz"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if archive && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A file's version, as far as re-importing is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
}

fn stamp(file: &Path) -> Result<Stamp, ImageError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).map_err(|e| ImageError::io("reading", file, e))?;
    Ok(Stamp {
        size: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

struct Imported {
    stamp: Stamp,
    refs: Vec<String>,
}

/// The marker; an unreadable one only means importing again.
fn read_marker(path: &Path) -> BTreeMap<String, Imported> {
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    let Ok(serde_json::Value::Object(files)) = serde_json::from_slice(&bytes) else {
        tracing::warn!(marker = %path.display(), "unreadable import marker; importing again");
        return BTreeMap::new();
    };
    files
        .into_iter()
        .filter_map(|(file, v)| {
            let size = v.get("size")?.as_u64()?;
            let mtime_ns = v.get("mtimeNs")?.as_str()?.parse().ok()?;
            let refs = v
                .get("refs")?
                .as_array()?
                .iter()
                .filter_map(|r| r.as_str().map(String::from))
                .collect();
            Some((
                file,
                Imported {
                    stamp: Stamp { size, mtime_ns },
                    refs,
                },
            ))
        })
        .collect()
}

fn write_marker(path: &Path, marker: &BTreeMap<String, Imported>) -> Result<(), ImageError> {
    let value: serde_json::Map<String, serde_json::Value> = marker
        .iter()
        .map(|(file, i)| {
            let entry = serde_json::json!({
                "size": i.stamp.size,
                "mtimeNs": i.stamp.mtime_ns.to_string(),
                "refs": i.refs,
            });
            (file.clone(), entry)
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&value)
        .map_err(|e| ImageError::io("encoding", path, e.into()))?;
    std::fs::write(path, bytes).map_err(|e| ImageError::io("writing", path, e))
}

/// The snapshotter in the config.toml beside the socket, if skiff wrote one.
fn configured_snapshotter(socket: &Path) -> Option<String> {
    let config = std::fs::read_to_string(socket.parent()?.join("config.toml")).ok()?;
    crate::config::snapshotter_of(&config)
}

/// Reads the image references an archive names (docker `manifest.json`
/// RepoTags or OCI `index.json` ref annotations) and whether it is gzip.
fn archive_refs(path: &Path) -> Result<(Vec<String>, bool), ImageError> {
    let bad = |reason: String| ImageError::BadArchive {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    let mut refs = None;
    let mut saw_entry = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            if saw_entry {
                bad(format!("broken tar: {e}"))
            } else {
                bad("not a tar file (plain or gzip)".into())
            }
        })?;
        saw_entry = true;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
            .unwrap_or_default();
        if name != "manifest.json" && name != "index.json" {
            continue;
        }
        let mut json = Vec::new();
        entry
            .read_to_end(&mut json)
            .map_err(|e| bad(format!("broken tar: {e}")))?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| bad(format!("{name}: {e}")))?;
        let found = if name == "manifest.json" {
            docker_refs(&value)
        } else {
            oci_refs(&value)
        };
        refs.get_or_insert_with(Vec::new).extend(found);
    }
    if !saw_entry {
        return Err(bad("empty or not a tar file".into()));
    }
    let refs = refs
        .ok_or_else(|| bad("it has neither manifest.json (docker) nor index.json (OCI)".into()))?;
    Ok((refs, gzip))
}

fn docker_refs(manifest: &serde_json::Value) -> Vec<String> {
    manifest
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("RepoTags")?.as_array())
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

fn oci_refs(index: &serde_json::Value) -> Vec<String> {
    index
        .get("manifests")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let annotations = m.get("annotations")?;
            annotations
                .get("io.containerd.image.name")
                .or_else(|| annotations.get("org.opencontainers.image.ref.name"))?
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Runs `ctr --address <socket> <args>`, feeding `stdin_gzip` decompressed
/// to its stdin when given, passing every output line to `progress`, and
/// returning stdout's lines.
async fn run_ctr(
    socket: &Path,
    args: &[String],
    stdin_gzip: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, ImageError> {
    let ctr = crate::find_on_path("ctr").ok_or(ImageError::MissingCtr)?;
    let mut child = Command::new(&ctr)
        .arg("--address")
        .arg(socket)
        .args(args)
        .stdin(if stdin_gzip.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ImageError::io("running", &ctr, e))?;

    let feeder = match (stdin_gzip, child.stdin.take()) {
        (Some(gz), Some(stdin)) => {
            let gz = gz.to_path_buf();
            Some(tokio::spawn(
                async move { feed_gunzipped(&gz, stdin).await },
            ))
        }
        _ => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((true, line));
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((false, line));
            }
        });
    }
    drop(tx);
    let mut stdout = Vec::new();
    let mut all = Vec::new();
    while let Some((is_stdout, line)) = rx.recv().await {
        let line = line.trim_end_matches('\r').to_string();
        if !line.trim().is_empty() && !args.iter().any(|a| a == "ls") {
            progress(line.trim());
        }
        all.push(line.clone());
        if is_stdout {
            stdout.push(line);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| ImageError::io("running", &ctr, e))?;
    let fed = match feeder {
        Some(task) => task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r),
        None => Ok(()),
    };
    if !status.success() {
        let start = all.len().saturating_sub(ERROR_LINES);
        return Err(ImageError::Ctr {
            args: args.join(" "),
            status: status.to_string(),
            output: all[start..].iter().map(|l| format!("\n  {l}")).collect(),
        });
    }
    if let (Err(e), Some(gz)) = (fed, stdin_gzip) {
        return Err(ImageError::io("decompressing", gz, e));
    }
    Ok(stdout)
}

/// Streams the decompressed `gz` into `stdin` (decompressing on a blocking
/// thread, a chunk at a time).
async fn feed_gunzipped(gz: &Path, mut stdin: tokio::process::ChildStdin) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let gz = gz.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let file = match std::fs::File::open(&gz) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            match decoder.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        stdin.write_all(&chunk?).await?;
    }
    stdin.shutdown().await?;
    drop(stdin);
    reader
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}
