//! The node agent, Rudder's kubelet: registers its Node (labels, capacity,
//! addresses, node info, conditions), renews its Lease in
//! `kube-node-lease` every 10 s, starts its own containerd once the
//! control plane has given the node a podCIDR, and keeps the Ready
//! condition true to the runtime's health; [`pods`] runs the pods bound to
//! the node. Like every component it is an API client (the `kube` crate).

pub mod pods;
mod server;
pub mod simulated;

pub use server::Tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rudder_cri::Cri;
use rudder_cri::containerd::{Containerd, Options};
use serde_json::{Value, json};

/// The version the agent reports as its kubelet version.
pub const KUBELET_VERSION: &str = "v1.33.0+rudder";

/// How many pod status writes are in flight at once (the kubelet bounds
/// its API traffic too, by QPS).
const STATUS_CONCURRENCY: usize = 8;
/// How many event writes are in flight at once. Events have slots of their
/// own so that a burst of them never delays a pod's status.
const EVENT_CONCURRENCY: usize = 4;
/// The sandbox image the agent makes and imports itself.
pub const PAUSE_IMAGE: &str = "localhost/pause:3.10";
/// How often the Lease is renewed (kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long the Lease holds (kubelet's default).
const LEASE_SECONDS: i32 = 40;
/// How often the runtime's health is checked and the Node status updated.
const STATUS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Runtime(#[from] rudder_cri::Error),
    #[error(
        "the control plane gave node {0} no podCIDR within 60 s (is the node IPAM controller running?)"
    )]
    NoPodCidr(String),
    #[error("the agent's server: {0}")]
    Serve(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The agent keeps its state in `<data_dir>/agent`.
    pub data_dir: PathBuf,
    pub node_name: String,
    pub node_ip: String,
    /// A server's node carries the control-plane role label.
    pub control_plane: bool,
    /// The port of the agent's HTTPS server (logs, exec, …; the
    /// kubelet's is 10250) and its TLS material.
    pub port: u16,
    pub tls: Tls,
    /// Container logs are rotated beyond this size (the kubelet's
    /// containerLogMaxSize, 10 MiB), keeping this many files
    /// (containerLogMaxFiles, 5).
    pub container_log_max_bytes: u64,
    pub container_log_max_files: usize,
    /// An existing CRI socket to use instead of starting containerd (the
    /// kubelet's --container-runtime-endpoint).
    pub runtime_endpoint: Option<PathBuf>,
    /// Pods' cgroups go under `<cgroup_root>/kubepods` (the kubelet's
    /// --cgroup-root; "/" by default).
    pub cgroup_root: String,
    /// The Linux bridge pods attach to (CNI bridge plugin).
    pub pod_bridge: String,
}

/// A running agent; [`Agent::stop`] stops it and its containerd.
#[derive(Debug)]
pub struct Agent {
    containerd: Arc<tokio::sync::Mutex<Option<Containerd>>>,
    socket: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Registers the node, waits for its podCIDR, starts containerd and
    /// the heartbeat and status loops.
    pub async fn start(client: kube::Client, config: Config) -> Result<Self, Error> {
        let nodes: Api<Node> = Api::all(client.clone());
        register(&nodes, &config).await?;
        let pod_cidr = wait_for_pod_cidr(&nodes, &config.node_name).await?;
        tracing::info!(node = %config.node_name, %pod_cidr, "node registered");
        let dir = config.data_dir.join("agent");
        let options = Options {
            dir: dir.join("containerd"),
            pod_subnet: pod_cidr,
            sandbox_image: PAUSE_IMAGE.into(),
            bridge: config.pod_bridge.clone(),
        };
        let (down_tx, mut down) = tokio::sync::watch::channel(None::<String>);
        let (containerd, socket, supervisor) = match &config.runtime_endpoint {
            Some(socket) => {
                tracing::info!(socket = %socket.display(), "using an existing container runtime");
                let mut cri = Cri::connect(socket).await?;
                cri.version().await?;
                if let Err(e) = import_images(socket, &dir).await {
                    tracing::warn!(
                        "importing images into the existing runtime (needs containerd's ctr): {e}"
                    );
                }
                // Nobody reports the runtime down: the health check does.
                let keep = tokio::spawn(async move {
                    let _down = down_tx;
                    std::future::pending::<()>().await
                });
                (
                    Arc::new(tokio::sync::Mutex::new(None)),
                    socket.clone(),
                    keep,
                )
            }
            None => {
                let containerd = Containerd::start(&options).await?;
                import_images(containerd.socket(), &dir).await?;
                let socket = containerd.socket().to_path_buf();
                let containerd = Arc::new(tokio::sync::Mutex::new(Some(containerd)));
                let supervisor = tokio::spawn(supervise(containerd.clone(), options, down_tx));
                (containerd, socket, supervisor)
            }
        };
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let name = config.node_name.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                if let Err(e) = renew_lease(&leases, &name).await {
                    tracing::warn!("renewing the node lease: {e}");
                }
                tokio::time::sleep(LEASE_RENEW).await;
            }
        });
        let name = config.node_name.clone();
        let status_socket = socket.clone();
        // Pod status and event writes use a few connections: a burst of
        // pods starting would otherwise open (and keep) one each.
        let api_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(STATUS_CONCURRENCY));
        let event_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(EVENT_CONCURRENCY));
        let recorder = rudder_runtime::events::Recorder::new(
            client.clone(),
            "kubelet",
            config.node_name.clone(),
            event_slots,
        );
        let node_events = recorder.clone();
        let status = tokio::spawn(async move {
            let mut last: Option<(bool, String)> = None;
            let mut cri = None;
            loop {
                let reason = down.borrow_and_update().clone();
                let (ready, runtime) = match reason {
                    Some(reason) => (false, reason),
                    None => runtime_health(&mut cri, &status_socket).await,
                };
                // Reported again when it changed, or when the API says
                // otherwise (the node lifecycle controller marked the node
                // Unknown while this agent could not reach the server).
                if last.as_ref() != Some(&(ready, runtime.clone()))
                    || !api_agrees(&nodes, &name, ready).await
                {
                    match report_ready(&nodes, &name, ready, &runtime).await {
                        Ok(()) => {
                            if last.as_ref().is_none_or(|(r, _)| *r != ready) {
                                let status = if ready { "NodeReady" } else { "NodeNotReady" };
                                node_events.record_node(
                                    &name,
                                    status,
                                    format!("Node {name} status is now: {status}"),
                                );
                            }
                            last = Some((ready, runtime));
                        }
                        Err(e) => tracing::warn!("updating the node status: {e}"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(STATUS_EVERY) => {}
                    _ = down.changed() => {}
                }
            }
        });
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let context = pods::Context {
            cri: Cri::connect(&socket).await?,
            events: recorder,
            api_slots,
            client,
            node: config.node_name.clone(),
            node_ip: config.node_ip.clone(),
            dir,
            resources: pods::NodeResources {
                cpu_milli: cpus as i128 * 1000,
                memory: memory_kib() as i128 * 1024,
            },
            snapshot: tokio::sync::watch::Sender::new(Default::default()),
            cgroup_parent: format!("{}/kubepods", config.cgroup_root.trim_end_matches('/')),
        };
        let streaming = server::serve(
            std::net::SocketAddr::from(([0, 0, 0, 0], config.port)),
            &config.tls,
            context.cri.clone(),
            config.node_name.clone(),
        )
        .await?;
        let context = std::sync::Arc::new(context);
        let relist = tokio::spawn(pods::relist(context.clone()));
        let rotate = tokio::spawn(pods::rotate_logs(
            context.clone(),
            config.container_log_max_bytes,
            config.container_log_max_files,
        ));
        let pods = tokio::spawn(pods::run(context));
        Ok(Self {
            containerd,
            socket,
            tasks: vec![
                supervisor, heartbeat, status, relist, rotate, pods, streaming,
            ],
        })
    }

    /// The CRI socket of the agent's containerd.
    pub fn cri_socket(&self) -> &std::path::Path {
        &self.socket
    }

    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(containerd) = self.containerd.lock().await.take() {
            containerd.stop().await;
        }
    }
}

/// How often the supervisor checks that containerd still runs.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Starts containerd again whenever it exits, with back-off, telling the
/// status loop (`down`) while it is down.
async fn supervise(
    containerd: Arc<tokio::sync::Mutex<Option<Containerd>>>,
    options: Options,
    down: tokio::sync::watch::Sender<Option<String>>,
) {
    loop {
        tokio::time::sleep(SUPERVISE_EVERY).await;
        let mut slot = containerd.lock().await;
        let Some(status) = slot.as_mut().and_then(|c| c.exited()) else {
            continue;
        };
        let reason = format!("container runtime is down: containerd exited ({status})");
        tracing::warn!("{reason}; starting it again");
        down.send_replace(Some(reason));
        let mut delay = Duration::from_secs(1);
        loop {
            match Containerd::start(&options).await {
                Ok(c) => {
                    *slot = Some(c);
                    tracing::info!("containerd is running again");
                    break;
                }
                Err(e) => {
                    tracing::warn!("starting containerd again: {e}; next try in {delay:?}");
                    down.send_replace(Some(format!("container runtime is down: {e}")));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        down.send_replace(None);
    }
}

/// Imports the agent's pause image and every archive in
/// `<dir>/images/` (as k3s does with its images directory).
async fn import_images(socket: &std::path::Path, dir: &std::path::Path) -> Result<(), Error> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(|source| Error::Io {
        what: "creating",
        path: images.clone(),
        source,
    })?;
    let pause = dir.join("pause.tar");
    std::fs::write(&pause, rudder_cri::oci::pause_image(PAUSE_IMAGE)).map_err(|source| {
        Error::Io {
            what: "writing",
            path: pause.clone(),
            source,
        }
    })?;
    rudder_cri::containerd::import(socket, &pause).await?;
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&images)
        .map_err(|source| Error::Io {
            what: "reading",
            path: images.clone(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    for archive in archives {
        tracing::info!(archive = %archive.display(), "importing image archive");
        rudder_cri::containerd::import(socket, &archive).await?;
    }
    Ok(())
}

/// Creates the Node, or brings an existing one's labels and status up to
/// date (the agent restarted, or the node came back).
async fn register(nodes: &Api<Node>, config: &Config) -> Result<(), Error> {
    let mut labels = json!({
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch(),
    });
    if config.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name, "labels": labels},
    }))
    .map_err(|e| Error::Api(kube::Error::SerdeError(e)))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            nodes
                .patch(
                    &config.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let status = node_status(config, false, "container runtime is starting");
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Strategic(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}

async fn wait_for_pod_cidr(nodes: &Api<Node>, name: &str) -> Result<String, Error> {
    for _ in 0..300 {
        let node = nodes.get(name).await?;
        if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
            return Ok(cidr);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::NoPodCidr(name.into()))
}

/// This machine's architecture as Kubernetes names it (GOARCH).
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node's status: capacity, addresses, node info, conditions.
fn node_status(config: &Config, ready: bool, message: &str) -> Value {
    let now = rfc3339_now();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory_kib = memory_kib();
    let storage = disk_bytes(&config.data_dir).unwrap_or(0);
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{memory_kib}Ki"),
        "pods": "110",
        "ephemeral-storage": storage.to_string(),
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let os_image = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let condition = |kind: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": if status { "True" } else { "False" },
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        })
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.port}},
        "nodeInfo": {
            "machineID": read("/etc/machine-id"),
            "systemUUID": read("/sys/class/dmi/id/product_uuid"),
            "bootID": read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read("/proc/sys/kernel/osrelease"),
            "osImage": os_image,
            "containerRuntimeVersion": "containerd",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
        "conditions": [
            condition("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            if ready {
                condition("Ready", true, "KubeletReady", "kubelet is posting ready status")
            } else {
                condition("Ready", false, "KubeletNotReady", message)
            },
        ],
    })
}

/// The machine's memory in KiB (`MemTotal`).
fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// The size in bytes of the filesystem holding `dir` (`df`).
fn disk_bytes(dir: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Whether the runtime answers and is ready, and its version string.
/// `cri` is kept between checks; a failed connection is tried again.
async fn runtime_health(cri: &mut Option<Cri>, socket: &std::path::Path) -> (bool, String) {
    if cri.is_none() {
        *cri = Cri::connect(socket).await.ok();
    }
    let Some(cri) = cri.as_mut() else {
        return (false, "container runtime is down: cannot connect".into());
    };
    let version = match cri.version().await {
        Ok(v) => format!("{}://{}", v.runtime_name, v.runtime_version),
        Err(e) => return (false, format!("container runtime is down: {e}")),
    };
    match cri.conditions().await {
        Ok(conditions) => {
            let not_ready: Vec<String> = conditions
                .iter()
                .filter(|c| !c.status)
                .map(|c| format!("{} is false: {}", c.r#type, c.message))
                .collect();
            if not_ready.is_empty() {
                (true, version)
            } else {
                (
                    false,
                    format!("container runtime not ready: {}", not_ready.join("; ")),
                )
            }
        }
        Err(e) => (false, format!("container runtime status check failed: {e}")),
    }
}

/// Whether the API shows the node's Ready condition as `ready` (an
/// unreadable node counts as agreeing: the next pass tries again).
async fn api_agrees(nodes: &Api<Node>, name: &str, ready: bool) -> bool {
    let Ok(node) = nodes.get_status(name).await else {
        return true;
    };
    let shown = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    shown == Some(ready)
}

async fn report_ready(
    nodes: &Api<Node>,
    name: &str,
    ready: bool,
    runtime: &str,
) -> Result<(), Error> {
    let now = rfc3339_now();
    let current = nodes.get_status(name).await?;
    let was_ready = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status == "True", c.last_transition_time.clone()));
    let transition = match was_ready {
        Some((r, Some(t))) if r == ready => serde_json::to_value(t).unwrap_or(json!(now)),
        _ => json!(now),
    };
    let (status, reason, message) = if ready {
        (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        )
    } else {
        ("False", "KubeletNotReady", runtime.to_string())
    };
    let mut patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": transition,
    }]}});
    if ready {
        patch["status"]["nodeInfo"] = json!({"containerRuntimeVersion": runtime});
    }
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    tracing::info!(node = name, ready, "node status: {}", message);
    Ok(())
}

/// Renews the node's Lease (a merge patch of its spec, cheap for the API
/// server), creating it the first time.
async fn renew_lease(leases: &Api<Lease>, name: &str) -> Result<(), Error> {
    let now = rudder_api::time::micro_now();
    let spec =
        json!({"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now});
    match leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": spec,
            }))
            .map_err(|e| Error::Api(kube::Error::SerdeError(e)))?;
            match leases.create(&PostParams::default(), &lease).await {
                // Made meanwhile by another renewal: it is renewed.
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn rfc3339_now() -> String {
    rudder_api::time::rfc3339_now()
}
