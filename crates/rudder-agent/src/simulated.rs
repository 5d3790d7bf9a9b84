//! Simulated nodes (as kwok or kubemark's hollow nodes): many Nodes with
//! the capacity asked for, heartbeating through Leases, whose bound pods
//! are reported Running and Ready without any container. They go through
//! the API server as a real agent does, so the scheduler and controllers
//! are exercised at a scale one machine cannot run for real. Each Node is
//! labelled `rudder.dev/simulated=true`.
//!
//! # Caveats
//! Nothing runs: probes, logs, exec and volumes do not exist for these
//! pods; a deleted pod is finalised at once (as if its containers stopped
//! immediately).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::Error;

/// The label simulated Nodes carry.
pub const SIMULATED_LABEL: &str = "rudder.dev/simulated";
/// API writes in flight at once (registration, status, leases).
const CONCURRENCY: usize = 32;

/// What the simulated nodes look like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes are named `<prefix>-<i>`.
    pub prefix: String,
    pub nodes: usize,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Extra labels on every node (`topology.kubernetes.io/zone` gets
    /// `zone-<i % zones>` when `zones` is set).
    pub labels: Vec<(String, String)>,
    pub zones: usize,
    /// How often each node's Lease is renewed.
    pub lease_interval: Duration,
}

impl SimConfig {
    fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }
}

/// Registers the nodes, then heartbeats them and runs their pods until
/// the task is dropped.
pub async fn run(client: kube::Client, config: SimConfig) -> Result<(), Error> {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let names: Arc<HashSet<String>> = Arc::new((0..config.nodes).map(|i| config.name(i)).collect());
    tracing::info!(nodes = config.nodes, prefix = %config.prefix, "registering simulated nodes");
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..config.nodes {
        let (client, config, slots) = (client.clone(), config.clone(), slots.clone());
        joins.spawn(async move {
            let _slot = slots.acquire_owned().await;
            register(&client, &config, i).await
        });
    }
    while let Some(r) = joins.join_next().await {
        r.map_err(|e| Error::Serve(format!("registering a simulated node: {e}")))??;
    }
    tracing::info!(nodes = config.nodes, "simulated nodes registered");
    let leases = tokio::spawn(heartbeat(client.clone(), config.clone(), slots.clone()));
    let _leases = AbortOnDrop(leases);
    run_pods(client, names, slots).await;
    Ok(())
}

async fn register(client: &kube::Client, config: &SimConfig, i: usize) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = config.name(i);
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        SIMULATED_LABEL: "true",
    });
    for (k, v) in &config.labels {
        labels[k] = json!(v);
    }
    if config.zones > 0 {
        labels["topology.kubernetes.io/zone"] = json!(format!("zone-{}", i % config.zones));
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0", "rudder.dev/simulated": "true"}},
    }))
    .map_err(|e| Error::Api(kube::Error::SerdeError(e)))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            nodes
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"labels": labels}})),
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let now = rudder_api::time::rfc3339_now();
    let resources = json!({
        "cpu": config.cpu, "memory": config.memory, "pods": config.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let status = json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": sim_ip(i, 0)}, {"type": "Hostname", "address": name}],
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "simulated node is posting ready status"),
        ],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "simulated",
            "osImage": "simulated", "containerRuntimeVersion": "simulated://0",
            "kubeletVersion": crate::KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    });
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// An address in 10.200.0.0/16 for node `i` (host 0) or its pod `k`.
fn sim_ip(i: usize, k: usize) -> String {
    let n = (i * 256 + k) % (1 << 16);
    format!("10.200.{}.{}", n / 256, n % 256)
}

/// Renews every node's Lease each interval, spread over the interval.
async fn heartbeat(client: kube::Client, config: SimConfig, slots: Arc<Semaphore>) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let pause = config.lease_interval / config.nodes.max(1) as u32;
    loop {
        let round = tokio::time::Instant::now();
        for i in 0..config.nodes {
            let name = config.name(i);
            let (leases, slots) = (leases.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                if let Err(e) = crate::renew_lease(&leases, &name).await {
                    tracing::debug!(node = %name, "simulated lease: {e}");
                }
            });
            tokio::time::sleep(pause).await;
        }
        tokio::time::sleep_until(round + config.lease_interval).await;
    }
}

/// Reports pods bound to the simulated nodes Running and Ready, and
/// finalises deleted ones.
async fn run_pods(client: kube::Client, names: Arc<HashSet<String>>, slots: Arc<Semaphore>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    // Pods already reported running, so a status echo is not written again.
    let mut running: HashSet<String> = HashSet::new();
    let mut index = 0usize;
    while let Some(event) = events.next().await {
        let Ok(pod) = event else { continue };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !names.contains(&node) {
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let slots = slots.clone();
        if pod.metadata.deletion_timestamp.is_some() {
            running.remove(&uid);
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(&name, &dp).await {
                    tracing::debug!(pod = %name, "finalising a simulated pod: {e}");
                }
            });
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running") || !running.insert(uid) {
            continue;
        }
        index += 1;
        let now = rudder_api::time::rfc3339_now();
        let node_index = node
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(0);
        let host_ip = sim_ip(node_index, 0);
        let pod_ip = sim_ip(index / 250 + 1, index % 250 + 1);
        let containers: Vec<_> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true,
                    "restartCount": 0, "containerID": format!("simulated://{}-{}", name, c.name),
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let condition = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
                           condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": containers,
        }});
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                tracing::debug!(pod = %name, "simulated pod status: {e}");
            }
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
