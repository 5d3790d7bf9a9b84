//! `rudder server`: opens the store and runs the control plane until
//! SIGTERM or SIGINT, then shuts down cleanly.

use rudder_runtime::leader::Election;
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
    /// Do not run the scheduler (pods then wait for another one to bind them).
    #[arg(long)]
    disable_scheduler: bool,
    /// Port of the HTTPS API.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Where to write the admin kubeconfig (also written to DIR/admin.kubeconfig).
    #[arg(
        long,
        default_value = "/etc/rudder/rudder.yaml",
        env = "RUDDER_KUBECONFIG_OUTPUT"
    )]
    write_kubeconfig: PathBuf,
    /// Service cluster IPs come from this range; its first address is the kubernetes Service's.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Pod IPs come from this range: each node gets a /24 of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[command(flatten)]
    node: crate::node::NodeArgs,
    /// How long a node may go without renewing its Lease or status before
    /// it is marked Unknown and tainted (kube-controller-manager's flag).
    #[arg(long, value_parser = parse_duration, default_value = "50s")]
    node_monitor_grace_period: std::time::Duration,
    /// How long events are kept after their last update (kube-apiserver's --event-ttl).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    event_ttl: std::time::Duration,
    /// Bearer tokens, in kube-apiserver's CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
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
    if let Err(e) = rudder_controllers::node_ipam::parse_cidr(&args.cluster_cidr) {
        compactor.abort();
        anyhow::bail!("--cluster-cidr: {e}");
    }

    let config = rudder_apiserver::Config {
        dir: args.data_dir.join("server"),
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], args.https_listen_port)),
        kubeconfigs: vec![
            args.write_kubeconfig.clone(),
            args.data_dir.join("admin.kubeconfig"),
        ],
        token_file: args.token_auth_file.clone(),
        extra_sans: host_names(),
        service_cidr: args.service_cidr.clone(),
        event_ttl: args.event_ttl,
    };
    let api = match rudder_apiserver::bind(config, store.clone()).await {
        Ok(api) => api,
        Err(e) => {
            compactor.abort();
            return Err(e.into());
        }
    };
    let controller_kubeconfig = api.controller_kubeconfig().to_string();
    let ca_pem = api.ca_pem().to_string();
    let node_name = args.node.name();
    let agent_setup = if args.disable_agent {
        None
    } else {
        let kubeconfig =
            api.kubeconfig_for(&format!("system:node:{node_name}"), Some("system:nodes"))?;
        let names = args.node.serving_names();
        let (ca_pem, serving) = api.agent_serving_cert(&names)?;
        Some((kubeconfig, rudder_agent::Tls { ca_pem, serving }))
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(api.run(async move {
        let _ = stop_rx.await;
    }));
    let config = rudder_controllers::Config {
        cluster_cidr: args.cluster_cidr.clone(),
        ca_pem,
        node_monitor_grace_period: args.node_monitor_grace_period,
    };
    let clients = match controller_client(&controller_kubeconfig, "kube-controller-manager").await {
        Ok(controllers) => controller_client(&controller_kubeconfig, "kube-scheduler")
            .await
            .map(|scheduler| (controllers, scheduler)),
        Err(e) => Err(e),
    };
    let controllers = match clients {
        Ok((client, scheduler_client)) => {
            // With several servers on one etcd, one runs the scheduler and
            // one the controllers, each elected through a Lease.
            let host = host_names().into_iter().next().unwrap_or_default();
            let identity = rudder_runtime::leader::identity(
                &host,
                &args.data_dir.join("server").join("identity"),
            )
            .unwrap_or_else(|e| {
                tracing::warn!("keeping the server identity: {e}");
                host.clone()
            });
            let scheduler = (!args.disable_scheduler).then(|| {
                let config = rudder_scheduler::scheduler::Config {
                    host: host.clone(),
                    ..Default::default()
                };
                let client = scheduler_client.clone();
                rudder_runtime::leader::run_elected(
                    client.clone(),
                    Election::new("kube-scheduler", &identity),
                    move || rudder_scheduler::run(client.clone(), config.clone()),
                )
            });
            let controllers = rudder_runtime::leader::run_elected(
                client.clone(),
                Election::new("kube-controller-manager", &identity),
                move || rudder_controllers::run(client.clone(), config.clone()),
            );
            tokio::spawn(async move {
                tokio::join!(controllers, async {
                    if let Some(s) = scheduler {
                        s.await;
                    }
                });
            })
        }
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = api.await;
            compactor.abort();
            return Err(e.context("connecting the controllers to the API server"));
        }
    };
    let mut agent = None;
    if let Some((kubeconfig, tls)) = agent_setup {
        let config = args.node.config(&args.data_dir, true, tls);
        let started = match controller_client(&kubeconfig, "kubelet").await {
            Ok(client) => rudder_agent::Agent::start(client, config)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match started {
            Ok(a) => agent = Some(a),
            Err(e) => {
                controllers.abort();
                let _ = stop_tx.send(());
                let _ = api.await;
                compactor.abort();
                return Err(e.context(
                    "starting the node agent (use --disable-agent to run the control plane alone)",
                ));
            }
        }
    }
    tracing::info!(
        "rudder server running; use it with: export KUBECONFIG={}; stop it with SIGTERM or Ctrl-C",
        args.write_kubeconfig.display()
    );

    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = sig, "shutting down");
    if let Some(agent) = agent {
        agent.stop().await;
    }
    controllers.abort();
    let _ = stop_tx.send(());
    let _ = api.await;
    compactor.abort();
    if let Some(store) = embedded {
        store.close().await;
    }
    drop(store);
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A client for an in-process component (controllers, node agent), from
/// a kubeconfig the API server made for it.
/// A client for one of the server's own components, which names itself in
/// its User-Agent as Kubernetes' do (`kube-controller-manager/v1.33.0 …`):
/// the API server takes a write's field manager from it.
async fn controller_client(kubeconfig: &str, component: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let options = kube::config::KubeConfigOptions::default();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    let agent = format!(
        "{component}/v1.33.0 ({}/{}) rudder/{}",
        std::env::consts::OS,
        if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            std::env::consts::ARCH
        },
        env!("CARGO_PKG_VERSION")
    );
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&agent)?,
    ));
    Ok(kube::Client::try_from(config)?)
}

/// This machine's host name and addresses, for the serving certificate.
pub(crate) fn host_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(h.trim().to_string());
    }
    // `hostname -I` lists every configured address (Debian's hostname).
    if let Ok(out) = std::process::Command::new("hostname").arg("-I").output() {
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from),
        );
    }
    names.retain(|n| !n.is_empty());
    names
}
