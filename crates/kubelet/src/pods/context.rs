//! What every pod worker shares: the runtime, the API, the node's facts.

use std::path::PathBuf;

use crate::cri::Cri;
use crate::events::Recorder;
use crate::volumes::Volumes;

use super::sandbox::ClusterDns;

pub struct Context {
    pub cri: Cri,
    pub client: kube::Client,
    pub recorder: Recorder,
    pub volumes: Volumes,
    pub node_name: String,
    pub node_ip: String,
    pub node_memory: u64,
    pub pod_log_dir: PathBuf,
    pub dns: Option<ClusterDns>,
    pub host_resolv_conf: String,
    /// `containerd`, from the runtime's Version: container ids are
    /// reported as `containerd://<id>`.
    pub runtime_name: String,
    /// Where static pod manifests live (`--pod-manifest-path`).
    pub manifest_dir: Option<PathBuf>,
    /// The kubelet's root dir (its filesystem is `nodefs` for eviction).
    pub root_dir: PathBuf,
    /// The pressures the eviction manager last saw, for the Node status.
    pub pressure: tokio::sync::watch::Sender<crate::node::pressure::Pressure>,
    pub eviction_hard: crate::node::pressure::Thresholds,
}
