//! `rudder server`: opens the store and runs the control plane until
//! SIGTERM or SIGINT, then shuts down cleanly.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rudder_store::{Compactor, EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Store};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the server keeps its state (the embedded store lives in DIR/server/db).
    #[arg(long, default_value = "/var/lib/rudder", env = "RUDDER_DATA_DIR")]
    data_dir: PathBuf,
    /// Use etcd instead of the embedded store: http(s)://host:2379[,…].
    #[arg(long, env = "RUDDER_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
    /// CA bundle for the etcd server certificates.
    #[arg(long, requires = "datastore_endpoint")]
    datastore_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, requires = "datastore_keyfile")]
    datastore_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long, requires = "datastore_certfile")]
    datastore_keyfile: Option<PathBuf>,
    /// Run the control plane only, without a node agent on this machine.
    #[arg(long)]
    disable_agent: bool,
    /// How often old store history is compacted (kube-apiserver's default: 5m).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    compaction_interval: std::time::Duration,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s, 5m or 1h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    // Register signal handlers first so a TERM during start-up is not lost.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let (store, embedded): (Arc<dyn Store>, Option<EmbeddedStore>) = match &args.datastore_endpoint
    {
        Some(list) => {
            let opts = EtcdOptions {
                ca_file: args.datastore_cafile.clone(),
                cert_file: args.datastore_certfile.clone(),
                key_file: args.datastore_keyfile.clone(),
                ..EtcdOptions::from_endpoint_list(list)
            };
            (Arc::new(EtcdStore::connect(opts).await?), None)
        }
        None => {
            let opts = EmbeddedOptions::in_dir(args.data_dir.join("server").join("db"));
            let store = EmbeddedStore::open(opts)?;
            (Arc::new(store.clone()), Some(store))
        }
    };
    let revision = store.current_revision().await?;
    let compactor = tokio::spawn(Compactor::new(store.clone()).run(args.compaction_interval));

    tracing::info!(data_dir = %args.data_dir.display(), revision, "store ready");
    if !args.disable_agent {
        tracing::info!("no node agent yet: this build runs the control plane only");
    }
    tracing::warn!(
        "the API server is not part of this build yet: the control plane holds the store and compacts it, \
         and serves no requests"
    );
    tracing::info!("rudder server running; stop it with SIGTERM or Ctrl-C");

    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = sig, "shutting down");
    compactor.abort();
    if let Some(store) = embedded {
        store.close().await;
    }
    drop(store);
    tracing::info!("stopped cleanly");
    Ok(())
}
