//! What every benchmark binary shares: run length and row selection, and
//! a server with simulated nodes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// How long each timed row runs: `BENCH_SECONDS` (default 3).
pub(crate) fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// `BENCH_ROWS=write_64,watch` runs only the rows whose names contain one
/// of the words.
pub(crate) fn selected(name: &str) -> bool {
    match std::env::var("BENCH_ROWS") {
        Ok(rows) => rows.split(',').any(|r| name.contains(r.trim())),
        Err(_) => true,
    }
}

/// A process's resident memory in MiB (0 if it is gone).
#[allow(dead_code)] // not every benchmark reports memory
pub(crate) fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[allow(dead_code)] // not every benchmark reports CPU
/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields after ")": state is 0, utime is 11, stime 12.
    get(11) + get(12)
}

/// A `kube` client from a kubeconfig file the server wrote.
#[allow(dead_code)] // not every benchmark talks to a server through kube
pub(crate) async fn kube_client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let yaml = std::fs::read_to_string(kubeconfig)?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// `rudder server` (control plane only) on `port`, its data under `dir`,
/// writing its kubeconfig to `dir/kubeconfig`; warnings go to stderr.
#[allow(dead_code)] // not every benchmark starts a server
pub(crate) fn spawn_server(
    binary: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> std::io::Result<std::process::Child> {
    std::process::Command::new(binary)
        .args(["server", "--disable-agent", "--https-listen-port"])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--write-kubeconfig")
        .arg(dir.join("kubeconfig"))
        .env("RUDDER_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
}

/// Stops processes as a user would (SIGTERM) and waits for them.
#[allow(dead_code)] // not every benchmark starts processes
pub(crate) fn stop<'a>(children: impl IntoIterator<Item = &'a mut std::process::Child>) {
    for child in children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

#[allow(dead_code)] // not every benchmark runs simulated nodes
/// The server and its simulated nodes, stopped when dropped.
pub(crate) struct Cluster {
    pub(crate) server: Child,
    pub(crate) sim: Option<Child>,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop(self.sim.iter_mut().chain([&mut self.server]));
    }
}

/// `n` times `BENCH_SCALE` (default 1), at least 1.
#[allow(dead_code)] // not every benchmark scales its rows
pub(crate) fn scale(n: usize) -> usize {
    let f: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * f).round() as usize).max(1)
}

/// Starts a server and `nodes` simulated nodes; waits until all are Ready.
#[allow(dead_code)] // not every benchmark runs simulated nodes
pub(crate) async fn start(
    binary: &Path,
    nodes: usize,
    sim_args: &[&str],
) -> Result<(Cluster, kube::Client)> {
    let dir = tempfile::tempdir()?;
    let port = rudder_testing::free_port()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let server = spawn_server(binary, dir.path(), port)?;
    let mut cluster = Cluster {
        server,
        sim: None,
        port,
        dir,
    };
    let started = Instant::now();
    while !kubeconfig.exists() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not write its kubeconfig within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = std::fs::read_to_string(cluster.dir.path().join("data/server/node-token"))
        .context("the server's node token")?;
    let sim = Command::new(binary)
        .args([
            "agent",
            "--simulated",
            "--server",
            &format!("https://127.0.0.1:{}", cluster.port),
        ])
        .args(["--token", token.trim(), "--nodes", &nodes.to_string()])
        .args(sim_args)
        .env("RUDDER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    cluster.sim = Some(sim);
    let client = kube_client(&kubeconfig).await?;
    let api: Api<Node> = Api::all(client.clone());
    loop {
        let list = api.list_metadata(&ListParams::default()).await?;
        if list.items.len() >= nodes {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "{} of {nodes} simulated nodes registered within 600 s",
                list.items.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Registration writes the status right after the Node: give the last
    // ones a moment, then check every node is Ready.
    loop {
        let list = api.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "bench: {nodes} simulated nodes ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((cluster, client))
}
