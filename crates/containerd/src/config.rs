//! containerd's `config.toml`: everything (root, state, socket) lives under
//! one directory so a node's runtime state is as easy to find and wipe as
//! k3s's `agent/containerd`, and nothing clashes with a system containerd.

use std::path::{Path, PathBuf};

use crate::ContainerdError;
use crate::images::PAUSE_IMAGE;

/// Where the CNI plugins usually are when the package manager cannot say.
const CNI_FALLBACK_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

/// The longest container log line containerd keeps in one piece (its
/// default; longer lines are split).
pub const MAX_CONTAINER_LOG_LINE_SIZE: u32 = 16 * 1024;

/// Snapshotter plugins skiff never uses; disabling them keeps containerd's
/// startup log free of their "not supported" noise.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// How the managed containerd is set up. The kubelet and `skiff` fill it
/// from their flags; [`ContainerdConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// Holds config.toml, root, state, the socket and the log:
    /// `<data-dir>/agent/containerd`.
    pub dir: PathBuf,
    /// Where the CNI network configuration is read from (the kubelet
    /// writes it).
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugin binaries are; `None` finds the Debian package's
    /// directory.
    pub cni_bin_dir: Option<PathBuf>,
    /// The image every pod sandbox runs; offline by default.
    pub sandbox_image: String,
}

impl ContainerdConfig {
    /// The defaults for an agent directory (`<data-dir>/agent`), laid out
    /// like k3s's.
    pub fn new(agent_dir: &Path) -> Self {
        Self {
            dir: agent_dir.join("containerd"),
            cni_conf_dir: agent_dir.join("etc/cni/net.d"),
            cni_bin_dir: None,
            sandbox_image: PAUSE_IMAGE.to_string(),
        }
    }

    /// The gRPC socket containerd serves (the CRI endpoint).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's stdout and stderr.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The config file written by [`crate::start`].
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Renders config.toml for the given CNI plugin directory and
    /// snapshotter (`overlayfs`, or `native` where overlay mounts fail).
    pub fn render(&self, cni_bin_dir: &Path, snapshotter: &str) -> String {
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        let disabled = DISABLED_PLUGINS
            .iter()
            .map(|p| toml_string(p))
            .collect::<Vec<_>>()
            .join(", ");
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        format!(
            "# Written by skiff on every start; edits are overwritten.\n\
             version = 2\n\
             root = {root}\n\
             state = {state}\n\
             disabled_plugins = [{disabled}]\n\
             \n\
             [grpc]\n\
             \x20 address = {socket}\n\
             \n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n\
             \x20 path = {opt}\n\
             \n\
             [{cri}]\n\
             \x20 sandbox_image = {sandbox}\n\
             \x20 max_container_log_line_size = {MAX_CONTAINER_LOG_LINE_SIZE}\n\
             \x20 restrict_oom_score_adj = {restrict_oom}\n\
             \n\
             [{cri}.containerd]\n\
             \x20 snapshotter = {snapshotter}\n\
             \x20 default_runtime_name = \"runc\"\n\
             \n\
             [{cri}.containerd.runtimes.runc]\n\
             \x20 runtime_type = \"io.containerd.runc.v2\"\n\
             \n\
             [{cri}.containerd.runtimes.runc.options]\n\
             \x20 SystemdCgroup = false\n\
             \n\
             [{cri}.cni]\n\
             \x20 bin_dir = {cni_bin}\n\
             \x20 conf_dir = {cni_conf}\n",
            root = q(&self.dir.join("root")),
            state = q(&self.dir.join("state")),
            socket = q(&self.socket()),
            opt = q(&self.dir.join("opt")),
            restrict_oom = !can_lower_oom_score(),
            sandbox = toml_string(&self.sandbox_image),
            snapshotter = toml_string(snapshotter),
            cni_bin = q(cni_bin_dir),
            cni_conf = q(&self.cni_conf_dir),
        )
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The snapshotter named in a config.toml written by [`ContainerdConfig::render`],
/// so `ctr` unpacks images where the CRI plugin looks for them.
pub fn snapshotter_of(config_toml: &str) -> Option<String> {
    config_toml.lines().find_map(|line| {
        let value = line.trim().strip_prefix("snapshotter")?.trim_start();
        let value = value.strip_prefix('=')?.trim();
        Some(value.trim_matches('"').to_string())
    })
}

/// The CNI plugin directory: the one Debian's containernetworking-plugins
/// installed (asked from dpkg), else the usual places.
pub fn detect_cni_bin_dir() -> Result<PathBuf, ContainerdError> {
    if let Ok(out) = std::process::Command::new("dpkg")
        .args(["-L", "containernetworking-plugins"])
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
    {
        let listing = String::from_utf8_lossy(&out.stdout);
        let from_dpkg = listing
            .lines()
            .filter_map(|l| l.strip_suffix("/bridge"))
            .map(PathBuf::from)
            .find(|dir| dir.join("bridge").is_file());
        if let Some(dir) = from_dpkg {
            return Ok(dir);
        }
    }
    CNI_FALLBACK_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("bridge").is_file())
        .ok_or_else(|| ContainerdError::MissingCni {
            looked_in: format!(
                "dpkg -L containernetworking-plugins, {}",
                CNI_FALLBACK_DIRS.join(", ")
            ),
        })
}

/// Whether the host runs the unified cgroup v2 hierarchy (only logged: the
/// cgroupfs driver works on both).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Tries an overlay mount inside `dir` (which may itself sit on overlayfs
/// or another filesystem overlay cannot use as upper dir); containerd's own
/// check only looks at the kernel, so a failing mount would otherwise show
/// up first at container start.
pub fn overlay_works(dir: &Path) -> bool {
    let probe = dir.join("overlay-probe");
    let result = try_overlay_mount(&probe);
    if let Err(e) = &result {
        tracing::debug!(dir = %dir.display(), error = %e, "overlay mount test failed");
    }
    let _ = std::fs::remove_dir_all(&probe);
    result.is_ok()
}

fn try_overlay_mount(probe: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(probe);
    for sub in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(probe.join(sub))?;
    }
    std::fs::write(probe.join("lower/file"), b"lower")?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        probe.join("lower").display(),
        probe.join("upper").display(),
        probe.join("work").display()
    );
    let data = std::ffi::CString::new(data).map_err(std::io::Error::other)?;
    let merged = probe.join("merged");
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )?;
    let written = std::fs::write(merged.join("file"), b"upper");
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH)?;
    written
}

/// Whether this process may lower OOM scores (CAP_SYS_RESOURCE). Without
/// it (some sandboxes and VMs drop it), runc fails to start any pod sandbox
/// at containerd's -998, so containerd must clamp scores instead.
pub fn can_lower_oom_score() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}
