//! Container log rotation, as upstream's container log manager: a running
//! container's log above `max_size` is renamed with a timestamp and the
//! runtime reopens a fresh file; at most `max_files` files are kept per
//! container (the live one included). Rotated files stay plain text
//! (upstream gzips older ones).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ListContainersRequest,
    ReopenContainerLogRequest,
};
use tokio_util::sync::CancellationToken;

use super::labels;
use crate::cri::Cri;

/// Upstream's `containerLogMaxSize` and `containerLogMaxFiles` defaults.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Checks every running container's log every 10 s until `shutdown`.
pub async fn run(mut cri: Cri, pod_log_dir: PathBuf, limits: Limits, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let running = match cri
            .runtime
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    state: Some(ContainerStateValue {
                        state: ContainerState::ContainerRunning as i32,
                    }),
                    ..Default::default()
                }),
            })
            .await
        {
            Ok(resp) => resp.into_inner().containers,
            Err(e) => {
                tracing::debug!(error = %e.message(), "listing containers for log rotation");
                continue;
            }
        };
        for c in running {
            let (Some(ns), Some(name), Some(uid), Some(meta)) = (
                c.labels.get(labels::POD_NAMESPACE),
                c.labels.get(labels::POD_NAME),
                c.labels.get(labels::POD_UID),
                c.metadata.as_ref(),
            ) else {
                continue;
            };
            let path = pod_log_dir
                .join(format!("{ns}_{name}_{uid}"))
                .join(&meta.name)
                .join(format!("{}.log", meta.attempt));
            match rotate_if_needed(&path, limits) {
                Ok(true) => {
                    if let Err(e) = cri
                        .runtime
                        .reopen_container_log(ReopenContainerLogRequest {
                            container_id: c.id.clone(),
                        })
                        .await
                    {
                        tracing::warn!(error = %e.message(), container = %c.id, "reopening a rotated log");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, path = %path.display(), "rotating a log"),
            }
        }
    }
}

/// Renames `path` when it is over the limit (true: the runtime must reopen
/// it) and removes the oldest rotated files beyond the limit.
pub fn rotate_if_needed(path: &Path, limits: Limits) -> std::io::Result<bool> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut rotated = false;
    if size > limits.max_size {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let mut target = path.with_file_name(format!(
            "{}.{stamp}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("0.log")
        ));
        // Two rotations within a second get distinct names.
        let mut n = 1;
        while target.exists() {
            target = path.with_file_name(format!(
                "{}.{stamp}.{n}",
                path.file_name().and_then(|f| f.to_str()).unwrap_or("0.log")
            ));
            n += 1;
        }
        std::fs::rename(path, &target)?;
        rotated = true;
    }
    prune(path, limits.max_files.max(1) - 1)?;
    Ok(rotated)
}

/// Keeps the newest `keep` rotated files of `path`.
fn prune(path: &Path, keep: usize) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let prefix = format!("{base}.");
    let mut rotated: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    rotated.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    for (_, old) in rotated.into_iter().skip(keep) {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_logs_rotate_and_old_files_are_pruned() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let log = dir.path().join("0.log");
        let limits = Limits {
            max_size: 10,
            max_files: 3,
        };
        std::fs::write(&log, "short").unwrap_or_default();
        assert!(!rotate_if_needed(&log, limits).unwrap_or(true));
        for i in 0..4 {
            std::fs::write(&log, format!("a long line number {i}")).unwrap_or_default();
            assert!(rotate_if_needed(&log, limits).unwrap_or(false));
            assert!(!log.exists());
            std::thread::sleep(Duration::from_millis(20));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("0.log.")));
    }
}
