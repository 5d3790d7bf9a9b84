//! Simulated nodes (as kwok or kubemark's hollow nodes): many Nodes with
//! the capacity asked for, heartbeating through Leases, whose bound pods
//! are reported Running and Ready without any container. They go through
//! the API server as a real agent does, so the scheduler and controllers
//! are exercised at a scale one machine cannot run for real. Each Node is
//! labelled `rudder.dev/simulated=true`.
//!
//! # Stages (as kwok's)
//! A pod annotated [`EXIT_AFTER`] (a duration: `500ms`, `2s`, `1m`) has its
//! containers exit that long after it starts, with the code in
//! [`EXIT_CODE`] (0 unless given): with `restartPolicy: Never`, or
//! `OnFailure` and code 0, the pod ends `Succeeded` (code 0) or `Failed`;
//! otherwise its containers restart (restartCount goes up) and exit again
//! after the same time. This lets Jobs finish on simulated nodes.
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
/// The annotation that makes a simulated pod's containers exit after a
/// duration.
pub const EXIT_AFTER: &str = "sim.rudder.dev/exit-after";
/// The exit code of a simulated pod's containers (default 0).
pub const EXIT_CODE: &str = "sim.rudder.dev/exit-code";
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
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        if finished || phase == Some("Running") || !running.insert(uid.clone()) {
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
        let stage = Stage::of(&pod);
        tokio::spawn(async move {
            {
                let _slot = slots.acquire().await;
                if let Err(e) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                {
                    tracing::debug!(pod = %name, "simulated pod status: {e}");
                    return;
                }
            }
            if let Some(stage) = stage {
                stage.run(&api, &name, &uid, &slots).await;
            }
        });
    }
}

/// A pod's exit stage: its containers exit `after` their start with
/// `code`, and `restart` says whether the kubelet would start them again.
#[derive(Debug, Clone, PartialEq)]
struct Stage {
    after: Duration,
    code: i32,
    restart: bool,
}

impl Stage {
    /// The stage a pod's annotations ask for, if any (a malformed one is
    /// ignored, with a log line).
    fn of(pod: &Pod) -> Option<Stage> {
        let annotations = pod.metadata.annotations.as_ref()?;
        let after = annotations.get(EXIT_AFTER)?;
        let Some(after) = parse_duration(after) else {
            tracing::warn!(pod = ?pod.metadata.name, "ignoring {EXIT_AFTER}={after:?}: not a duration such as 500ms, 2s or 1m");
            return None;
        };
        let code = annotations
            .get(EXIT_CODE)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
        let restart = match policy {
            Some("Never") => false,
            Some("OnFailure") => code != 0,
            _ => true,
        };
        Some(Stage {
            after,
            code,
            restart,
        })
    }

    /// Waits out the stage and writes what the kubelet would: a terminal
    /// phase, or (restarting) the containers' new restart count.
    async fn run(&self, api: &Api<Pod>, name: &str, uid: &str, slots: &Semaphore) {
        let Ok(pod) = api.get(name).await else { return };
        let mut restarts = 0;
        loop {
            let started = rudder_api::time::rfc3339_now();
            tokio::time::sleep(self.after).await;
            let finished = rudder_api::time::rfc3339_now();
            let reason = if self.code == 0 { "Completed" } else { "Error" };
            let terminated = json!({"exitCode": self.code, "reason": reason,
                                    "startedAt": started, "finishedAt": finished});
            let containers: Vec<_> = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .map(|c| {
                    let mut status = json!({
                        "name": c.name, "image": c.image, "imageID": "",
                        "containerID": format!("simulated://{name}-{}", c.name),
                        "restartCount": restarts,
                    });
                    if self.restart {
                        status["ready"] = true.into();
                        status["started"] = true.into();
                        status["state"] = json!({"running": {"startedAt": finished}});
                        status["lastState"] = json!({ "terminated": terminated });
                        status["restartCount"] = (restarts + 1).into();
                    } else {
                        status["ready"] = false.into();
                        status["started"] = false.into();
                        status["state"] = json!({ "terminated": terminated });
                    }
                    status
                })
                .collect();
            let mut status = json!({"containerStatuses": containers});
            if !self.restart {
                let phase = if self.code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                };
                let not_ready = |t: &str| {
                    json!({"type": t, "status": "False", "reason": "PodCompleted",
                                                 "lastProbeTime": null, "lastTransitionTime": finished})
                };
                let ready = |t: &str| {
                    json!({"type": t, "status": "True", "lastProbeTime": null,
                                             "lastTransitionTime": finished})
                };
                status["phase"] = phase.into();
                status["conditions"] = json!([
                    ready("PodReadyToStartContainers"),
                    ready("Initialized"),
                    not_ready("Ready"),
                    not_ready("ContainersReady"),
                    ready("PodScheduled")
                ]);
            }
            let patch = json!({"metadata": {"uid": uid}, "status": status});
            {
                let _slot = slots.acquire().await;
                if let Err(e) = api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(pod = %name, "simulated pod exit: {e}");
                    return;
                }
            }
            if !self.restart {
                return;
            }
            restarts += 1;
        }
    }
}

/// `500ms`, `2s`, `1.5s`, `1m`, `1h`: a duration of Go's simplest forms.
fn parse_duration(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)], policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": annotations.iter().copied().collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]},
        }))
        .expect("a pod")
    }

    #[test]
    fn durations_of_go_simplest_forms() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("3d"), None);
    }

    #[test]
    fn a_stage_ends_or_restarts_by_the_restart_policy() {
        let stage = |a: &[(&str, &str)], policy| Stage::of(&pod(a, policy));
        assert_eq!(stage(&[], "Never"), None);
        assert_eq!(stage(&[(EXIT_AFTER, "soon")], "Never"), None);
        let ends = stage(&[(EXIT_AFTER, "1s")], "Never").expect("a stage");
        assert_eq!((ends.code, ends.restart), (0, false));
        let fails = stage(&[(EXIT_AFTER, "1s"), (EXIT_CODE, "3")], "Never").expect("a stage");
        assert_eq!((fails.code, fails.restart), (3, false));
        let retried = stage(&[(EXIT_AFTER, "1s"), (EXIT_CODE, "3")], "OnFailure").expect("a stage");
        assert!(retried.restart);
        let done = stage(&[(EXIT_AFTER, "1s")], "OnFailure").expect("a stage");
        assert!(!done.restart);
        assert!(
            stage(&[(EXIT_AFTER, "1s")], "Always")
                .expect("a stage")
                .restart
        );
    }
}
