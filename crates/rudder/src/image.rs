//! `rudder image import FILE…`: imports image archives (OCI layout or
//! `docker save` tar) into the running node agent's containerd, where pods
//! on this node find them (as `k3s ctr images import` does).

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Import image archives into this node's containerd.
    Import(Import),
}

#[derive(Debug, clap::Args)]
struct Import {
    /// The data directory of the server or agent running on this machine.
    #[arg(long, default_value = "/var/lib/rudder", env = "RUDDER_DATA_DIR")]
    data_dir: PathBuf,
    /// Archives to import (OCI layout or docker save tar files).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let Command::Import(args) = args.command;
    let socket = args.data_dir.join("agent/containerd/containerd.sock");
    if !socket.exists() {
        bail!(
            "no node agent runs with data dir {} (no {}): start `rudder server` first, or pass --data-dir",
            args.data_dir.display(),
            socket.display()
        );
    }
    for file in &args.files {
        if !file.is_file() {
            bail!("{}: no such file", file.display());
        }
        eprintln!("importing {}", file.display());
        rudder_cri::containerd::import(&socket, file)
            .await
            .with_context(|| format!("importing {}", file.display()))?;
    }
    eprintln!(
        "imported {} archive(s); pods on this node can use them now",
        args.files.len()
    );
    Ok(())
}
