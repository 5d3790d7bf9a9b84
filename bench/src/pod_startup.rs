//! `bench/run pod-startup`: a real `rudder server --disable-agent` and a
//! `rudder agent` joined to it with the server's token (release builds,
//! the agent's own containerd, runc, CNI bridge) on this machine.
//!
//! Rows: 30 pods created one at a time, 30 created at once, and 110 (a
//! full node) at once; for each, the time from create to Running+Ready as
//! seen through a watch, p50/p99. In the same run, the raw CRI path
//! (RunPodSandbox + CreateContainer + StartContainer straight against the
//! agent's containerd, one at a time and 30 at once) is the floor, and the
//! ratio to it is printed. With 110 pods running: the RSS and CPU at rest
//! of the control plane, the agent and containerd. One `key: value` line
//! per figure.

#![allow(clippy::unwrap_used)] // a benchmark that hits an error should stop loudly

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rudder_cri::{Cri, api};
use serde_json::json;

#[path = "common.rs"]
#[allow(dead_code)] // this benchmark has no timed rows
mod common;
use common::{cpu_ticks, kube_client as client, rss_mib, selected, spawn_server, stop};

const NODE: &str = "bench-node";
const IMAGE: &str = "docker.io/local/busybox:v1";

/// The control plane (`rudder server --disable-agent`) and the node
/// (`rudder agent`, joined with the server's token) as two processes, so
/// that each one's memory and CPU show.
struct Server {
    child: Child,
    agent: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(self.agent.iter_mut().chain([&mut self.child]));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    println!("{name}_p50_ms: {p50:.1}");
    println!("{name}_p99_ms: {p99:.1}");
    p99
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pod-startup"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}],
        },
    }))
    .unwrap()
}

/// Records when each pod is first seen Running and Ready.
type ReadyAt = Arc<Mutex<HashMap<String, Instant>>>;

fn is_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_ready(ready: &ReadyAt, names: &[String]) {
    loop {
        if names.iter().all(|n| ready.lock().unwrap().contains_key(n)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates `count` pods (`prefix-N`), one at a time or all at once, and
/// returns each one's create-to-ready time in ms.
async fn run_pods(
    pods: &Api<Pod>,
    ready: &ReadyAt,
    prefix: &str,
    count: usize,
    at_once: bool,
) -> Vec<f64> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let mut started = HashMap::new();
    if at_once {
        let creates = names.iter().map(|n| {
            let pods = pods.clone();
            let n = n.clone();
            async move {
                let t = Instant::now();
                pods.create(&PostParams::default(), &pod(&n)).await.unwrap();
                (n, t)
            }
        });
        started.extend(futures_util::future::join_all(creates).await);
        wait_ready(ready, &names).await;
    } else {
        for n in &names {
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod(n)).await.unwrap();
            started.insert(n.clone(), t);
            wait_ready(ready, std::slice::from_ref(n)).await;
        }
    }
    let at = ready.lock().unwrap();
    names
        .iter()
        .map(|n| (at[n] - started[n]).as_secs_f64() * 1000.0)
        .collect()
}

/// Deletes the benchmark's pods and waits until the agent has removed
/// their sandboxes too.
async fn delete_all(pods: &Api<Pod>, socket: &Path) {
    let params = ListParams::default().labels("bench=pod-startup");
    pods.delete_collection(&DeleteParams::default(), &params)
        .await
        .unwrap();
    let mut cri = Cri::connect(socket).await.unwrap();
    loop {
        let sandboxes = cri
            .runtime
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .items;
        let agents = sandboxes
            .iter()
            .filter(|s| s.labels.contains_key("io.kubernetes.pod.uid"))
            .count();
        if agents == 0 && pods.list(&params).await.unwrap().items.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The raw CRI path for one pod: sandbox, container, start.
async fn raw_pod(mut cri: Cri, name: String, logs: PathBuf) -> (f64, String) {
    let t = Instant::now();
    let config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("raw-{name}"),
            namespace: "raw".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: logs.join(&name).to_string_lossy().into_owned(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = cri
        .runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let container = cri
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: id.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "main".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "3600".into()],
                log_path: "main/0.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    cri.runtime
        .start_container(api::StartContainerRequest {
            container_id: container,
        })
        .await
        .unwrap();
    (t.elapsed().as_secs_f64() * 1000.0, id)
}

async fn raw_cleanup(cri: &mut Cri, ids: Vec<String>) {
    for id in ids {
        let _ = cri
            .runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await;
        let _ = cri
            .runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await;
    }
}

/// The raw floor: `count` pods one at a time, then `count` at once.
async fn raw_floor(socket: &Path, logs: &Path, count: usize) -> (f64, f64) {
    let mut cri = Cri::connect(socket).await.unwrap();
    let mut ms = Vec::new();
    let mut ids = Vec::new();
    for i in 0..count {
        let (t, id) = raw_pod(cri.clone(), format!("raw-seq-{i}"), logs.to_path_buf()).await;
        ms.push(t);
        ids.push(id);
    }
    let seq = report("raw_cri_sequential", ms);
    raw_cleanup(&mut cri, std::mem::take(&mut ids)).await;
    let all = (0..count).map(|i| raw_pod(cri.clone(), format!("raw-par-{i}"), logs.to_path_buf()));
    let results = futures_util::future::join_all(all).await;
    let (ms, ids): (Vec<f64>, Vec<String>) = results.into_iter().unzip();
    let par = report("raw_cri_at_once", ms);
    raw_cleanup(&mut cri, ids).await;
    (seq, par)
}

fn start_server(binary: &Path) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let images = dir.path().join("node/agent/images");
    std::fs::create_dir_all(&images)?;
    let busybox = rudder_cri::oci::busybox_image(IMAGE)
        .context("/bin/busybox: install the Debian package busybox-static")?;
    std::fs::write(images.join("busybox.tar"), busybox)?;
    let port_number = rudder_testing::free_port()?;
    let child = spawn_server(binary, dir.path(), port_number)?;
    Ok(Server {
        child,
        agent: None,
        port: port_number,
        dir,
    })
}

/// Joins this machine as the node, with the server's token.
fn start_agent(binary: &Path, server: &mut Server, port: u16) -> Result<()> {
    let token = std::fs::read_to_string(server.dir.path().join("data/server/node-token"))
        .context("the server's node token")?;
    let kubelet_port = rudder_testing::free_port()?.to_string();
    let agent = Command::new(binary)
        .args(["agent", "--server", &format!("https://127.0.0.1:{port}")])
        .args(["--token", token.trim(), "--kubelet-port", &kubelet_port])
        .args(["--node-name", NODE, "--node-ip", "127.0.0.1"])
        .arg("--data-dir")
        .arg(server.dir.path().join("node"))
        .env("RUDDER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    server.agent = Some(agent);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let binary =
        PathBuf::from(std::env::var("RUDDER_BIN").unwrap_or("target/release/rudder".into()));
    let mut server = start_server(&binary)?;
    let kubeconfig = server.dir.path().join("kubeconfig");
    let started = Instant::now();
    while !kubeconfig.exists() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not write its kubeconfig within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = server.port;
    start_agent(&binary, &mut server, port)?;
    let client = client(&kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let ready = nodes.get_opt(NODE).await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("node {NODE} did not turn Ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "bench: node ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let data = server.dir.path().join("node");
    let socket = data.join("agent/containerd/containerd.sock");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ready: ReadyAt = Arc::default();
    let seen = ready.clone();
    let watch = tokio::spawn(async move {
        let config = watcher::Config::default().labels("bench=pod-startup");
        let mut events = watcher(Api::<Pod>::namespaced(client, "default"), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(p)) = events.next().await {
            if is_ready(&p) {
                let now = Instant::now();
                let name = p.metadata.name.clone().unwrap_or_default();
                seen.lock().unwrap().entry(name).or_insert(now);
            }
        }
    });
    // Warm up: the first pod pays for the image's first unpack.
    let _ = run_pods(&pods, &ready, "warmup", 1, false).await;
    delete_all(&pods, &socket).await;

    let (raw_seq, raw_par) = raw_floor(&socket, &data.join("agent/logs"), 30).await;
    if selected("sequential") {
        let p99 = report(
            "pods_30_sequential",
            run_pods(&pods, &ready, "seq", 30, false).await,
        );
        println!(
            "pods_30_sequential_p99_ratio_to_raw_cri: {:.2}",
            p99 / raw_seq
        );
        delete_all(&pods, &socket).await;
    }
    if selected("at_once") {
        let p99 = report(
            "pods_30_at_once",
            run_pods(&pods, &ready, "par", 30, true).await,
        );
        println!("pods_30_at_once_p99_ratio_to_raw_cri: {:.2}", p99 / raw_par);
        delete_all(&pods, &socket).await;
    }
    if selected("full") {
        report(
            "pods_110_at_once",
            run_pods(&pods, &ready, "full", 110, true).await,
        );
        // At rest with a full node.
        let server_pid = server.child.id();
        let containerd_pid = Command::new("pgrep")
            .args(["-f", &format!("containerd --config {}", data.display())])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()?
                    .trim()
                    .parse::<u32>()
                    .ok()
            });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let window = Duration::from_secs(10);
        let processes: Vec<(&str, u32)> = [
            ("server", Some(server_pid)),
            ("agent", server.agent.as_ref().map(Child::id)),
            ("containerd", containerd_pid),
        ]
        .into_iter()
        .filter_map(|(name, pid)| Some((name, pid?)))
        .collect();
        let before: Vec<u64> = processes.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
        tokio::time::sleep(window).await;
        // Linux reports 100 ticks per second.
        for ((name, pid), t0) in processes.iter().zip(before) {
            let percent = (cpu_ticks(*pid) - t0) as f64 / window.as_secs_f64();
            println!("{name}_rss_mib_110_pods: {:.1}", rss_mib(*pid));
            println!("{name}_cpu_percent_110_pods_idle: {percent:.1}");
        }
        delete_all(&pods, &socket).await;
    }
    watch.abort();
    drop(server);
    Ok(())
}
