//! `rudder agent --server URL --token TOKEN`: this machine joins a cluster
//! as a node. The token (`<data-dir>/server/node-token` on a server, in
//! k3s' `K10<CA sha256>::node:<secret>` form) authenticates the agent and
//! pins the cluster CA: the agent fetches the CA from the server's
//! `/cacerts` and uses it only if its hash matches. The agent serves logs
//! and exec with a self-signed certificate (the API server does not check
//! agents' certificates, as kube-apiserver without a kubelet CA) and only
//! accepts client certificates from the cluster CA.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The API server to join: https://HOST:PORT.
    #[arg(long, env = "RUDDER_URL")]
    server: String,
    /// The join token (a server writes it to <data-dir>/server/node-token).
    #[arg(long, env = "RUDDER_TOKEN")]
    token: String,
    /// Where the agent keeps its state (containerd, pods, logs).
    #[arg(long, default_value = "/var/lib/rudder", env = "RUDDER_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: crate::node::NodeArgs,
    #[command(flatten)]
    simulated: Simulated,
}

/// Simulated nodes (like kwok): Nodes and Leases through the API, pods
/// reported Running without containers, for scale tests.
#[derive(Debug, clap::Args)]
struct Simulated {
    /// Run simulated nodes instead of a real one (no containerd needed).
    #[arg(long)]
    simulated: bool,
    /// How many simulated nodes.
    #[arg(long, default_value_t = 1, requires = "simulated")]
    nodes: usize,
    /// Simulated nodes are named PREFIX-0, PREFIX-1, ….
    #[arg(long, default_value = "sim", requires = "simulated")]
    node_prefix: String,
    /// Each simulated node's CPU (capacity and allocatable).
    #[arg(long, default_value = "32", requires = "simulated")]
    sim_cpu: String,
    /// Each simulated node's memory.
    #[arg(long, default_value = "256Gi", requires = "simulated")]
    sim_memory: String,
    /// Each simulated node's pod capacity.
    #[arg(long, default_value_t = 110, requires = "simulated")]
    sim_pods: u32,
    /// Spread the nodes over this many zones (topology.kubernetes.io/zone=zone-I).
    #[arg(long, default_value_t = 0, requires = "simulated")]
    sim_zones: usize,
    /// Extra node labels, KEY=VALUE (repeatable).
    #[arg(long = "sim-label", requires = "simulated")]
    sim_labels: Vec<String>,
    /// How often each simulated node renews its Lease, in seconds.
    #[arg(long, default_value_t = 10, requires = "simulated")]
    sim_lease_seconds: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let Some((hash, secret)) = args
        .token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
    else {
        bail!(
            "the token is not a join token (K10<hash>::node:<secret>): copy it from the server's <data-dir>/server/node-token"
        );
    };
    let rest = args
        .server
        .strip_prefix("https://")
        .context("--server must be an https:// URL")?
        .trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().context("--server port")?),
        None => (rest.to_string(), 443),
    };
    let ca_pem = rudder_http::fetch_ca(&host, port, hash)
        .await
        .with_context(|| format!("fetching the cluster CA from {}", args.server))?;
    let mut config = kube::Config::new(args.server.parse().context("--server")?);
    config.root_cert = Some(rudder_http::pem_certs(&ca_pem)?);
    config.auth_info.token = Some(secret.to_string().into());
    let client = kube::Client::try_from(config)?;
    if args.simulated.simulated {
        return simulate(client, args.simulated, &mut term, &mut int).await;
    }
    let node_name = args.node.name();
    let names = args.node.serving_names();
    let serving = self_signed(&names)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let agent = rudder_agent::Agent::start(
        client,
        args.node
            .config(&args.data_dir, false, rudder_agent::Tls { ca_pem, serving }),
    )
    .await
    .context("starting the node agent")?;
    tracing::info!(node = %node_name, server = %args.server, "rudder agent running; stop it with SIGTERM or Ctrl-C");
    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = sig, "shutting down");
    agent.stop().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Runs simulated nodes until a signal.
async fn simulate(
    client: kube::Client,
    sim: Simulated,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    let labels = sim
        .sim_labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--sim-label {l:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = rudder_agent::simulated::SimConfig {
        prefix: sim.node_prefix,
        nodes: sim.nodes,
        cpu: sim.sim_cpu,
        memory: sim.sim_memory,
        pods: sim.sim_pods,
        labels,
        zones: sim.sim_zones,
        lease_interval: std::time::Duration::from_secs(sim.sim_lease_seconds.max(1)),
    };
    let run = rudder_agent::simulated::run(client, config);
    tokio::pin!(run);
    let sig = tokio::select! {
        r = &mut run => return r.context("simulated nodes"),
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = sig, "simulated nodes stopping");
    Ok(())
}

/// A self-signed serving certificate for the agent.
fn self_signed(names: &[String]) -> anyhow::Result<rudder_http::CertKey> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rudder-agent");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    Ok(rudder_http::CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
