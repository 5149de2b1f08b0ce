//! skiff's node agent (kubelet): runs the pods bound to its node through a
//! CRI runtime.

pub mod cri;
pub mod server;
pub mod volumes;

use std::path::PathBuf;

/// What the node agent runs with.
#[derive(Clone)]
pub struct Config {
    /// The agent's API client.
    pub client: kube::Client,
    /// The Node this agent registers and runs pods for.
    pub node_name: String,
    /// The CRI runtime's unix socket.
    pub runtime_endpoint: PathBuf,
    /// The kubelet's own state: `pods/<uid>/volumes/...`, `pods/<uid>/etc-hosts`.
    pub root_dir: PathBuf,
    /// Where containers' logs are written (`/var/log/pods` as upstream).
    pub pod_log_dir: PathBuf,
}
