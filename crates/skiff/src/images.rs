//! `skiff images`: importing image archives into the node's containerd
//! (for air-gapped nodes and locally built images) and writing the built-in
//! offline images.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use skiff_containerd::images::{self, DEFAULT_BUSYBOX};

use crate::server::default_data_dir;

/// `skiff images ...`
#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Import docker-archive or OCI-layout tarballs (plain or gzip) into the
    /// node's containerd (namespace k8s.io, where pods find them).
    Import(ImportArgs),
    /// Write the built-in images (skiff.local/pause, skiff.local/busybox)
    /// as docker-archive tarballs, built from the host's busybox-static.
    Build(BuildArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The tarballs to import.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The data directory whose containerd receives the images.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// containerd's socket [default: <data-dir>/agent/containerd/containerd.sock].
    #[arg(long)]
    address: Option<PathBuf>,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The directory the tarballs (pause.tar, busybox.tar) are written to.
    #[arg(long)]
    out: PathBuf,
    /// The static busybox to build from.
    #[arg(long, default_value = DEFAULT_BUSYBOX)]
    busybox: PathBuf,
}

pub async fn run(command: ImagesCommand) -> anyhow::Result<()> {
    match command {
        ImagesCommand::Import(args) => import(args).await,
        ImagesCommand::Build(args) => build(args).await,
    }
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let socket = args.address.unwrap_or_else(|| {
        let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
        skiff_containerd::ContainerdConfig::new(&data_dir.join("agent")).socket()
    });
    if !socket.exists() {
        anyhow::bail!(
            "no containerd socket at {}; is the skiff agent running (or pass --address)?",
            socket.display()
        );
    }
    for file in &args.files {
        eprintln!("importing {}", file.display());
        let refs = images::import(&socket, file, |line| eprintln!("  {line}"))
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        for r in refs {
            println!("imported {r}");
        }
    }
    Ok(())
}

async fn build(args: BuildArgs) -> anyhow::Result<()> {
    let out = args.out;
    let busybox = args.busybox;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        type Builder = fn(&Path, &Path) -> Result<(), images::ImageError>;
        let builders: [(&str, &str, Builder); 2] = [
            ("pause.tar", images::PAUSE_IMAGE, images::build_pause),
            ("busybox.tar", images::BUSYBOX_IMAGE, images::build_busybox),
        ];
        for (name, image, build) in builders {
            let path = out.join(name);
            build(&busybox, &path).with_context(|| format!("building {image}"))?;
            println!("wrote {image} to {}", path.display());
        }
        Ok(())
    })
    .await?
}
