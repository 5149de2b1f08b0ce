//! Offline images. A node never needs a registry for what skiff itself runs:
//! the sandbox (pause) image and a busybox image for tests and debugging are
//! built from the host's busybox-static ([`build`]), and air-gap tarballs in
//! `<agent-dir>/images/` are imported at start, like k3s does ([`import`]).

mod build;
mod import;

use std::path::PathBuf;

pub use build::{DEFAULT_BUSYBOX, build_busybox, build_pause, check_static_elf, sha256_digest};
pub use import::{ensure_images, import, list_images};

/// The sandbox image every pod runs first; built locally, never pulled.
pub const PAUSE_IMAGE: &str = "skiff.local/pause:latest";
/// A busybox image with every applet, built locally from busybox-static.
pub const BUSYBOX_IMAGE: &str = "skiff.local/busybox:latest";

/// The Debian package whose static busybox the images are built from.
pub const BUSYBOX_HINT: &str = "apt-get install busybox-static";

/// Why an image could not be built or imported.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The busybox binary is missing.
    #[error("{} not found; install it with `{BUSYBOX_HINT}`", path.display())]
    BusyboxMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The busybox binary needs a dynamic loader, so it would not run in an
    /// image that has nothing else.
    #[error(
        "{} is not statically linked ({reason}); install the static build with `{BUSYBOX_HINT}`",
        path.display()
    )]
    BusyboxNotStatic {
        /// The binary.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// `ctr` is not installed.
    #[error("`ctr` not found on PATH; install it with `{}`", crate::PACKAGES_HINT)]
    MissingCtr,
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
    /// The file is not an image archive skiff can import.
    #[error("{}: not an image archive: {reason}", path.display())]
    BadArchive {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `ctr` failed.
    #[error("`ctr {args}` failed ({status}){output}")]
    Ctr {
        /// The arguments after `ctr --address S`.
        args: String,
        /// How it exited.
        status: String,
        /// Its last output lines, each after a newline (may be empty).
        output: String,
    },
}

impl ImageError {
    fn io(context: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}
