//! skiff's container runtime: containerd run as a supervised child process,
//! like k3s does, plus the offline images every node needs.
//!
//! A node must work without a registry, so skiff never pulls its own
//! images: [`images`] builds `skiff.local/pause` and `skiff.local/busybox`
//! from the host's busybox-static and imports them, together with any
//! air-gap tarballs dropped into `<agent-dir>/images/`.
//!
//! Start reading at [`start`]: it writes `config.toml` ([`config`]), spawns
//! containerd and hands back a [`Managed`] whose supervisor restarts it when
//! it dies and stops it on shutdown.
//!
//! Tests: `cargo nextest run -p skiff-containerd`. `tests/runtime.rs` runs a
//! real containerd and needs root (CI runs as root); without root it fails
//! unless `SKIFF_SKIP_ROOT_TESTS=1` is set, which skips it explicitly.

pub mod config;
pub mod images;
mod supervise;

use std::path::{Path, PathBuf};

pub use config::ContainerdConfig;
pub use images::{BUSYBOX_IMAGE, ImageError, PAUSE_IMAGE};
pub use supervise::{Managed, start};

/// The Debian packages that provide what a node runs; named in every error
/// about a missing program so the fix is one copy-paste away.
pub const PACKAGES_HINT: &str = "apt-get install containerd runc containernetworking-plugins";

/// Why the managed containerd could not be started or configured.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// A program the node needs is not installed.
    #[error("`{program}` not found on PATH; install it with `{hint}`")]
    MissingProgram {
        /// The program looked for.
        program: String,
        /// The command that installs it.
        hint: &'static str,
    },
    /// No CNI plugin directory was found.
    #[error("no CNI plugins found (looked in {looked_in}); install them with `{PACKAGES_HINT}`")]
    MissingCni {
        /// The directories searched.
        looked_in: String,
    },
    /// A file operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another containerd answers on the socket in our directory.
    #[error(
        "another containerd is already serving {}{}; stop it first (two daemons must not share one root)",
        socket.display(),
        pid.map(|p| format!(" (pid {p}, perhaps left by a skiff that was killed: `kill {p}`)")).unwrap_or_default()
    )]
    AlreadyRunning {
        /// The socket that answered.
        socket: PathBuf,
        /// The process started with our config file, if one was found.
        pid: Option<u32>,
    },
    /// Shutdown was requested before containerd was ready.
    #[error("shutdown requested while containerd was starting")]
    Cancelled,
    /// containerd exited or did not answer in time.
    #[error("containerd did not start: {reason}; see {}{tail}", log.display())]
    NotReady {
        /// What went wrong.
        reason: String,
        /// containerd's log file.
        log: PathBuf,
        /// The last lines of the log, prefixed by a newline (may be empty).
        tail: String,
    },
}

impl ContainerdError {
    fn io(context: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Finds `program` in the directories of `$PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
