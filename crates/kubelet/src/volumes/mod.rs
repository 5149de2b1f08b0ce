//! Pod volumes: everything a pod's `spec.volumes` needs on the node before
//! its containers start, and the CRI mounts that put them into containers.
//!
//! The layout is upstream's, so that operators find what they expect:
//! `<root>/pods/<uid>/volumes/<plugin>/<volume>` with the plugin directory
//! names `kubernetes.io~empty-dir`, `kubernetes.io~configmap`,
//! `kubernetes.io~secret`, `kubernetes.io~downward-api` and
//! `kubernetes.io~projected`. hostPath and persistentVolumeClaim volumes
//! (PVs with `hostPath` or `local`) are used where they are.
//!
//! Start with [`Volumes`]: `setup` before the sandbox, `mounts` per
//! container, `refresh` periodically, `teardown` after the pod is gone.
//! Each volume kind has its own module; configMap, secret, downwardAPI and
//! projected volumes are written by [`atomic_writer`] so that updates are
//! atomic for readers.

pub mod atomic_writer;
mod config_map;
mod downward_api;
mod empty_dir;
mod host_path;
mod mountinfo;
mod mounts;
mod projected;
mod pvc;
mod secret;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use atomic_writer::Payload;

/// Why a volume could not be prepared or mounted. The `Display` text is
/// what ends up in the pod's FailedMount event, so it names the missing
/// object or key the way upstream does.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// One volume of the pod failed (upstream's event wording).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    SetUp {
        volume: String,
        #[source]
        source: Box<VolumeError>,
    },
    /// A referenced object does not exist, e.g. `configmap "x" not found`.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// A key named in `items` is not in the configMap/secret.
    #[error("{0}")]
    MissingKey(String),
    #[error("persistentvolumeclaim {0:?} is not bound")]
    NotBound(String),
    #[error("unsupported volume source: {0}")]
    Unsupported(String),
    /// A hostPath `type` check failed.
    #[error("hostPath type check failed: {0}")]
    HostPathType(String),
    /// A subPath, item path or field path that cannot be used.
    #[error("{0}")]
    InvalidPath(String),
    /// A volumeMount that cannot be satisfied.
    #[error("{0}")]
    InvalidMount(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `mount`/`umount` failed.
    #[error("{0}")]
    Mount(String),
    #[error("the pod has no {0}")]
    PodField(&'static str),
}

/// Prepares, refreshes, mounts and removes pod volumes on this node.
pub struct Volumes {
    /// `<kubelet root>/pods`.
    pods_dir: PathBuf,
    client: kube::Client,
    /// Service account tokens by request, reused until 80% of their
    /// lifetime as upstream's token manager does.
    tokens: projected::TokenCache,
    /// The node's allocatable resources: what `resourceFieldRef` limits
    /// fall back to when a container sets none (as upstream).
    node_allocatable: Mutex<BTreeMap<String, Quantity>>,
}

/// What `setup` prepared for one pod: volume name → where it is on the
/// host and how it must be mounted.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    volumes: BTreeMap<String, PodVolume>,
}

/// One prepared volume.
#[derive(Debug, Clone)]
pub struct PodVolume {
    /// The directory (or file) on the host.
    pub host_path: PathBuf,
    /// Mounted read-only whatever the volumeMount says (configMap, secret,
    /// downwardAPI, projected, and PVCs with `readOnly`).
    pub read_only: bool,
    /// Written by the atomic writer from API data: `refresh` updates it.
    refreshable: bool,
}

impl PodVolumes {
    pub fn get(&self, name: &str) -> Option<&PodVolume> {
        self.volumes.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PodVolume)> {
        self.volumes.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl Volumes {
    /// `root_dir` is the kubelet's root dir; pod volumes live under
    /// `root_dir/pods/<uid>/volumes`.
    pub fn new(root_dir: PathBuf, client: kube::Client) -> Self {
        Self {
            pods_dir: root_dir.join("pods"),
            client,
            tokens: projected::TokenCache::default(),
            node_allocatable: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the node's allocatable resources, used by downward API
    /// `resourceFieldRef` limits of containers that set none.
    pub fn set_node_allocatable(&self, allocatable: BTreeMap<String, Quantity>) {
        if let Ok(mut a) = self.node_allocatable.lock() {
            *a = allocatable;
        }
    }

    /// Prepares every volume of the pod on disk. An error names what is
    /// missing (e.g. `configmap "x" not found`) — the pod worker turns it
    /// into a FailedMount event and retries.
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod_uid(pod)?;
        let mut prepared = PodVolumes::default();
        for volume in pod_volumes(pod) {
            // The name becomes a path component: never let it climb out.
            if volume.name.is_empty() || volume.name.contains('/') || volume.name.starts_with('.') {
                return Err(VolumeError::InvalidPath(format!(
                    "invalid volume name {:?}",
                    volume.name
                )));
            }
            let prepared_volume = self
                .setup_one(pod, uid, volume)
                .await
                .map_err(|e| set_up_failed(&volume.name, e))?;
            prepared
                .volumes
                .insert(volume.name.clone(), prepared_volume);
        }
        Ok(prepared)
    }

    /// Re-reads configMaps/secrets/downwardAPI/projected sources and
    /// updates the files when changed (called periodically and on pod
    /// updates), atomically. Other volumes are left alone.
    pub async fn refresh(&self, pod: &Pod, volumes: &PodVolumes) -> Result<(), VolumeError> {
        // One failing source (a deleted configMap) must not freeze the
        // others: all are tried, the first error is returned.
        let mut first_error = None;
        for volume in pod_volumes(pod) {
            let Some(prepared) = volumes.get(&volume.name) else {
                continue;
            };
            if !prepared.refreshable {
                continue;
            }
            let refreshed = match self.payload(pod, volume).await {
                Ok(Some(payload)) => {
                    write_payload(prepared.host_path.clone(), payload, fs_group(pod))
                        .await
                        .map(|_| ())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = refreshed {
                first_error.get_or_insert(set_up_failed(&volume.name, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The CRI mounts of one container: its volumeMounts resolved to host
    /// paths (subPath/subPathExpr, readOnly, mountPropagation).
    pub fn mounts(
        &self,
        pod: &Pod,
        container: &Container,
        volumes: &PodVolumes,
    ) -> Result<Vec<k8s_cri::v1::Mount>, VolumeError> {
        mounts::container_mounts(pod, container, volumes)
    }

    /// Unmounts (tmpfs) and removes the pod's volume dirs after the pod is
    /// gone. Refuses to delete anything while a mount is still there, so a
    /// failed unmount never deletes the data of what is mounted.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Err(VolumeError::InvalidPath(format!(
                "invalid pod uid {pod_uid:?}"
            )));
        }
        self.tokens.forget_pod(pod_uid);
        let dir = self.pods_dir.join(pod_uid).join("volumes");
        match tokio::fs::symlink_metadata(&dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(atomic_writer::io(&dir)(e)),
            Ok(_) => {}
        }
        mountinfo::unmount_all_under(&dir).await?;
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(atomic_writer::io(&dir))
    }

    /// The uids of the pods that have volume dirs on this node: after a
    /// restart, those not bound here any more are torn down (upstream's
    /// orphaned pod dir cleanup).
    pub async fn pods_on_disk(&self) -> Result<Vec<String>, VolumeError> {
        let mut uids = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.pods_dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(uids),
            Err(e) => return Err(atomic_writer::io(&self.pods_dir)(e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(atomic_writer::io(&self.pods_dir))?
        {
            let volumes = entry.path().join("volumes");
            if tokio::fs::try_exists(&volumes).await.unwrap_or(false)
                && let Ok(uid) = entry.file_name().into_string()
            {
                uids.push(uid);
            }
        }
        uids.sort();
        Ok(uids)
    }

    /// `<pods>/<uid>/volumes/<plugin>/<name>`.
    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pods_dir
            .join(uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    }

    async fn setup_one(
        &self,
        pod: &Pod,
        uid: &str,
        volume: &Volume,
    ) -> Result<PodVolume, VolumeError> {
        if let Some(src) = &volume.empty_dir {
            let dir = self.volume_dir(uid, "kubernetes.io~empty-dir", &volume.name);
            let allocatable_memory = self
                .allocatable()
                .get("memory")
                .and_then(|q| skiff_apimachinery::quantity::parse_milli(&q.0))
                .map(|m| m / 1000);
            empty_dir::setup(&dir, src, pod, allocatable_memory, fs_group(pod)).await?;
            return Ok(PodVolume {
                host_path: dir,
                read_only: false,
                refreshable: false,
            });
        }
        if let Some(src) = &volume.host_path {
            let path = host_path::setup(src).await?;
            return Ok(PodVolume {
                host_path: path,
                read_only: false,
                refreshable: false,
            });
        }
        if let Some(src) = &volume.persistent_volume_claim {
            let ns = pod_namespace(pod);
            return pvc::setup(&self.client, ns, src).await;
        }
        let Some(plugin) = refreshable_plugin(volume) else {
            return Err(VolumeError::Unsupported(format!(
                "volume {:?} uses {}",
                volume.name,
                source_kind(volume)
            )));
        };
        let dir = self.volume_dir(uid, plugin, &volume.name);
        // Secrets (and projected volumes, which usually hold tokens) stay
        // off the disk as upstream: a tmpfs when we may mount one.
        if matches!(plugin, SECRET_PLUGIN | PROJECTED_PLUGIN) {
            empty_dir::setup_memory_if_root(&dir).await?;
        }
        let payload = self.payload(pod, volume).await?.unwrap_or_default();
        write_payload(dir.clone(), payload, fs_group(pod)).await?;
        Ok(PodVolume {
            host_path: dir,
            read_only: true,
            refreshable: true,
        })
    }

    /// The files of a configMap/secret/downwardAPI/projected volume; `None`
    /// for other kinds.
    async fn payload(&self, pod: &Pod, volume: &Volume) -> Result<Option<Payload>, VolumeError> {
        let ns = pod_namespace(pod);
        if let Some(src) = &volume.config_map {
            return config_map::payload(&self.client, ns, src).await.map(Some);
        }
        if let Some(src) = &volume.secret {
            return secret::payload(&self.client, ns, src).await.map(Some);
        }
        if let Some(src) = &volume.downward_api {
            let allocatable = self.allocatable();
            return downward_api::payload(pod, src, &allocatable).map(Some);
        }
        if let Some(src) = &volume.projected {
            let allocatable = self.allocatable();
            let ctx = projected::Context {
                client: &self.client,
                tokens: &self.tokens,
                allocatable: &allocatable,
            };
            return projected::payload(&ctx, pod, src).await.map(Some);
        }
        Ok(None)
    }

    fn allocatable(&self) -> BTreeMap<String, Quantity> {
        self.node_allocatable
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }
}

const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
const SECRET_PLUGIN: &str = "kubernetes.io~secret";
const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// The plugin dir of a volume written by the atomic writer.
fn refreshable_plugin(volume: &Volume) -> Option<&'static str> {
    if volume.config_map.is_some() {
        Some(CONFIG_MAP_PLUGIN)
    } else if volume.secret.is_some() {
        Some(SECRET_PLUGIN)
    } else if volume.downward_api.is_some() {
        Some(DOWNWARD_API_PLUGIN)
    } else if volume.projected.is_some() {
        Some(PROJECTED_PLUGIN)
    } else {
        None
    }
}

/// The name of the source field a volume uses (`nfs`, `csi`, ...), for
/// the "unsupported" error.
fn source_kind(volume: &Volume) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(volume) else {
        return "an unknown source".to_owned();
    };
    fields
        .keys()
        .find(|k| k.as_str() != "name")
        .cloned()
        .unwrap_or_else(|| "no source".to_owned())
}

/// Runs the (blocking) atomic writer off the async workers.
async fn write_payload(
    dir: PathBuf,
    payload: Payload,
    fs_group: Option<u32>,
) -> Result<bool, VolumeError> {
    let task_dir = dir.clone();
    tokio::task::spawn_blocking(move || atomic_writer::write(&task_dir, &payload, fs_group))
        .await
        .map_err(|e| VolumeError::Io {
            path: dir,
            source: std::io::Error::other(e),
        })?
}

fn set_up_failed(volume: &str, source: VolumeError) -> VolumeError {
    VolumeError::SetUp {
        volume: volume.to_owned(),
        source: Box::new(source),
    }
}

fn pod_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten())
}

fn pod_uid(pod: &Pod) -> Result<&str, VolumeError> {
    pod.metadata
        .uid
        .as_deref()
        .filter(|u| !u.is_empty() && !u.contains('/') && !u.starts_with('.'))
        .ok_or(VolumeError::PodField("metadata.uid"))
}

/// The pod's `securityContext.fsGroup`: the group that owns its writable
/// and API-backed volumes, so non-root containers can use them.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()?
        .security_context
        .as_ref()?
        .fs_group
        .and_then(|g| u32::try_from(g).ok())
}

fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Items of a configMap/secret: which keys go to which paths with which
/// mode; all keys at their own name when `items` is absent. A key named in
/// `items` but missing is an error unless the source is optional.
fn project_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing: impl Fn(&str) -> String,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items {
        None => {
            for (key, value) in data {
                payload.insert(
                    key.clone(),
                    atomic_writer::FileProjection {
                        data: value.clone(),
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(VolumeError::MissingKey(missing(&item.key)));
                };
                payload.insert(
                    item.path.clone(),
                    atomic_writer::FileProjection {
                        data: value.clone(),
                        mode: mode_bits(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// An API mode (`int32`, 0–0777) as permission bits, `default` when unset.
fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o7777)
}

/// Upstream's default file mode for API-backed volumes (0644).
const DEFAULT_MODE: u32 = 0o644;

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
