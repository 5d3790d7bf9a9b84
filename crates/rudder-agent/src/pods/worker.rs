//! One pod's worker: runs its sandbox, init containers in order, then its
//! containers; pulls images as `imagePullPolicy` says; restarts containers
//! as `restartPolicy` says with the kubelet's back-off (10 s doubling to
//! 5 min, `CrashLoopBackOff`); enforces `activeDeadlineSeconds`; reports
//! the pod's status; and on deletion stops the containers within the
//! grace period, removes the sandbox and lets the Pod object go.
//!
//! Everything is level-triggered: each sync compares the spec with what
//! the runtime has, so a restarted agent adopts what is running.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use rudder_cri::{Cri, api};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::probes;
use super::status::{self, Observed};
use super::volumes::{self, Paths};
use super::{Context, UID_LABEL, container, env, normalize_image};
use rudder_runtime::events::Kind::{Normal, Warning};

/// How often a pod is compared with the runtime when nothing changes.
const RELIST: Duration = Duration::from_secs(1);
/// How often configMap, secret and downwardAPI volumes are refreshed.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The longest a postStart hook may run.
const POST_START_MAX: Duration = Duration::from_secs(120);
/// The kubelet's cap on termination messages.
const MESSAGE_MAX: usize = 4096;

pub(crate) struct Worker {
    ctx: Arc<Context>,
    uid: String,
    /// Restart back-off per container: the current delay.
    backoff: HashMap<String, Duration>,
    /// Image pull back-off per image: until when, and the delay.
    pull_backoff: HashMap<String, (Instant, Duration)>,
    /// Why a container is waiting, when the agent decided it.
    waiting: HashMap<String, (String, String)>,
    volumes: Option<(Paths, Instant)>,
    hosts: String,
    reported: Option<Value>,
    finished: bool,
    /// When this worker last changed something in the runtime: older
    /// snapshots do not show it.
    changed: Instant,
    /// Whether the current sync changed the runtime.
    mutated: bool,
    /// The sandbox's IP, once known.
    ip: Option<(String, String)>,
    /// Probe state per container instance: liveness, readiness, startup.
    probes: HashMap<String, [probes::Tracker; 3]>,
}

/// The instances of one container in the sandbox, newest first.
type Instances = Vec<api::ContainerStatus>;

impl Worker {
    pub(crate) fn new(ctx: Arc<Context>, uid: String) -> Self {
        Self {
            ctx,
            uid,
            backoff: HashMap::new(),
            pull_backoff: HashMap::new(),
            waiting: HashMap::new(),
            volumes: None,
            hosts: String::new(),
            reported: None,
            finished: false,
            changed: Instant::now(),
            mutated: false,
            ip: None,
            probes: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut updates: watch::Receiver<Option<Arc<Pod>>>) {
        let mut last: Option<Arc<Pod>> = None;
        loop {
            let current = updates.borrow_and_update().clone();
            match current {
                // Boxed: a worker at rest keeps only this loop's state, not
                // the largest state of a sync (tens of KiB per pod).
                Some(pod) if pod.metadata.deletion_timestamp.is_none() => {
                    Box::pin(self.sync(&pod)).await;
                    last = Some(pod);
                }
                Some(pod) => {
                    let grace = pod
                        .metadata
                        .deletion_grace_period_seconds
                        .or_else(|| {
                            pod.spec
                                .as_ref()
                                .and_then(|s| s.termination_grace_period_seconds)
                        })
                        .unwrap_or(30);
                    Box::pin(self.terminate(Some(&pod), grace)).await;
                    Box::pin(self.delete_object(&pod)).await;
                    return;
                }
                None => {
                    Box::pin(self.terminate(last.as_deref(), 0)).await;
                    return;
                }
            }
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(RELIST) => {}
            }
        }
    }

    fn cri(&self) -> Cri {
        self.ctx.cri.clone()
    }

    /// The latest relist if it shows everything this worker did.
    fn snapshot(&self) -> Option<Arc<super::Snapshot>> {
        let s = self.ctx.snapshot.borrow().clone();
        s.started.is_some_and(|t| t > self.changed).then_some(s)
    }

    /// Notes that the runtime is about to change.
    fn changing(&mut self) {
        self.changed = Instant::now();
        self.mutated = true;
    }

    async fn sandboxes(&self) -> Vec<api::PodSandbox> {
        if let Some(s) = self.snapshot() {
            return s.sandboxes.get(&self.uid).cloned().unwrap_or_default();
        }
        let filter = api::PodSandboxFilter {
            label_selector: HashMap::from([(UID_LABEL.to_string(), self.uid.clone())]),
            ..Default::default()
        };
        self.cri()
            .runtime
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .map(|r| r.into_inner().items)
            .unwrap_or_default()
    }

    /// Every container instance in `sandbox`, by container name.
    async fn instances(&self, sandbox: &str) -> HashMap<String, Instances> {
        if let Some(s) = self.snapshot() {
            let mut by_name: HashMap<String, Instances> = HashMap::new();
            for c in s.containers.get(sandbox).into_iter().flatten() {
                let name = c
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                by_name.entry(name).or_default().push(c.clone());
            }
            for list in by_name.values_mut() {
                list.sort_by_key(|s| {
                    std::cmp::Reverse(s.metadata.as_ref().map_or(0, |m| m.attempt))
                });
            }
            return by_name;
        }
        let mut cri = self.cri();
        let listed = cri
            .runtime
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    pod_sandbox_id: sandbox.into(),
                    ..Default::default()
                }),
            })
            .await
            .map(|r| r.into_inner().containers)
            .unwrap_or_default();
        let mut by_name: HashMap<String, Instances> = HashMap::new();
        for c in listed {
            let status = cri
                .runtime
                .container_status(api::ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().status);
            if let Some(s) = status {
                let name = s
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                by_name.entry(name).or_default().push(s);
            }
        }
        for list in by_name.values_mut() {
            list.sort_by_key(|s| std::cmp::Reverse(s.metadata.as_ref().map_or(0, |m| m.attempt)));
        }
        by_name
    }

    async fn sync(&mut self, pod: &Pod) {
        self.sync_once(pod).await;
        // A relist that began while the runtime was changing may have
        // missed the change: only later ones are trusted.
        if self.mutated {
            self.mutated = false;
            self.changed = Instant::now();
        }
    }

    async fn sync_once(&mut self, pod: &Pod) {
        if self.finished {
            return;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let terminal = |p: Option<&str>| matches!(p, Some("Succeeded" | "Failed"));
        if terminal(pod.status.as_ref().and_then(|s| s.phase.as_deref())) {
            // Finished pods keep their containers (for logs) but not their
            // sandbox's network.
            self.stop_sandboxes().await;
            self.finished = true;
            return;
        }
        if let Some(deadline) = spec.active_deadline_seconds
            && let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref())
            && rudder_api::time::now() - start.0.as_second() >= deadline
        {
            self.deadline_exceeded(pod, &spec).await;
            return;
        }
        let sandboxes = self.sandboxes().await;
        let ready = sandboxes
            .iter()
            .find(|s| s.state == api::PodSandboxState::SandboxReady as i32);
        let sandbox = match ready {
            Some(s) => s.id.clone(),
            None => {
                self.changing();
                if !sandboxes.is_empty() {
                    // The sandbox died (its pause process, or the node
                    // restarted): start the pod again in a new one.
                    for s in &sandboxes {
                        remove_sandbox(&mut self.cri(), &s.id).await;
                    }
                }
                let attempt = sandboxes
                    .iter()
                    .filter_map(|s| s.metadata.as_ref())
                    .map(|m| m.attempt + 1)
                    .max()
                    .unwrap_or(0);
                match self.start_sandbox(pod, attempt).await {
                    Ok(id) => id,
                    Err(status) => {
                        self.report(pod, status).await;
                        return;
                    }
                }
            }
        };
        let ip = self.sandbox_ip(&sandbox).await;
        let ip = if spec.host_network == Some(true) {
            self.ctx.node_ip.clone()
        } else {
            ip
        };
        let hosts = volumes::hosts_file(pod, &ip);
        if hosts != self.hosts {
            let file = self.ctx.pod_dir(&self.uid).join("etc-hosts");
            if std::fs::write(&file, &hosts).is_ok() {
                self.hosts = hosts;
            }
        }
        if self
            .volumes
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= VOLUME_REFRESH)
        {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let mut sources = env::Sources::new(self.ctx.client.clone(), &ns);
            let dir = self.ctx.pod_dir(&self.uid).join("volumes");
            match volumes::prepare(pod, &dir, &mut sources, self.ctx.resources).await {
                Ok(paths) => self.volumes = Some((paths, Instant::now())),
                Err(message) => {
                    tracing::debug!(pod = ?pod.metadata.name, "{message}");
                    self.ctx
                        .events
                        .record(pod, None, Warning, "FailedMount", message);
                }
            }
        }
        let mut instances = self.instances(&sandbox).await;
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let mut pod_with_ip = pod.clone();
        if let Some(status) = pod_with_ip.status.as_mut()
            && !ip.is_empty()
        {
            status.pod_ip = Some(ip.clone());
            status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]);
        } else if pod_with_ip.status.is_none() && !ip.is_empty() {
            pod_with_ip.status = Some(k8s_openapi::api::core::v1::PodStatus {
                pod_ip: Some(ip.clone()),
                pod_ips: Some(vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]),
                ..Default::default()
            });
        }
        let pod = &pod_with_ip;

        // Init containers, one at a time, each to success.
        let inits = spec.init_containers.clone().unwrap_or_default();
        let mut initialized = self.volumes.is_some();
        if initialized {
            for c in &inits {
                let list = instances.get(&c.name).cloned().unwrap_or_default();
                match list.first() {
                    None => {
                        self.start_container(pod, &sandbox, c, 0, &list).await;
                        initialized = false;
                        break;
                    }
                    Some(s) if s.state == api::ContainerState::ContainerExited as i32 => {
                        if s.exit_code == 0 {
                            self.waiting.remove(&c.name);
                            continue;
                        }
                        initialized = false;
                        if policy != "Never" {
                            self.restart(pod, &sandbox, c, &list).await;
                        }
                        break;
                    }
                    Some(s) => {
                        self.resume_created(s).await;
                        initialized = false;
                        break;
                    }
                }
            }
        }
        if initialized {
            for c in &spec.containers {
                let list = instances.get(&c.name).cloned().unwrap_or_default();
                match list.first() {
                    None => self.start_container(pod, &sandbox, c, 0, &list).await,
                    Some(s) if s.state == api::ContainerState::ContainerExited as i32 => {
                        if restarts(&policy, s.exit_code, false) {
                            self.restart(pod, &sandbox, c, &list).await;
                        } else {
                            self.waiting.remove(&c.name);
                        }
                    }
                    Some(s) => self.resume_created(s).await,
                }
            }
            instances = self.instances(&sandbox).await;
        } else if !inits.is_empty() {
            instances = self.instances(&sandbox).await;
        }
        if self.probe(pod, &spec, &instances, &ip).await {
            instances = self.instances(&sandbox).await;
        }
        let status = self.status(pod, &spec, &instances, initialized, &ip, &policy);
        self.report(pod, status).await;
    }

    /// Starts a container that was created but never started (the agent
    /// stopped between the two calls).
    async fn resume_created(&mut self, s: &api::ContainerStatus) {
        if s.state != api::ContainerState::ContainerCreated as i32 {
            return;
        }
        let name = s
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        tracing::info!(container = %name, pod = %self.uid, "starting a container created before the agent restarted");
        self.changing();
        if let Err(e) = self
            .cri()
            .runtime
            .start_container(api::StartContainerRequest {
                container_id: s.id.clone(),
            })
            .await
        {
            self.waiting
                .insert(name, ("RunContainerError".into(), e.message().to_string()));
        }
    }

    /// Runs the probes that are due for the running containers; kills
    /// those whose liveness or startup probe failed. Returns whether it
    /// killed any.
    async fn probe(
        &mut self,
        pod: &Pod,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        instances: &HashMap<String, Instances>,
        ip: &str,
    ) -> bool {
        let running: Vec<(&Container, &api::ContainerStatus)> = spec
            .containers
            .iter()
            .filter_map(|c| {
                let latest = instances.get(&c.name)?.first()?;
                (latest.state == api::ContainerState::ContainerRunning as i32)
                    .then_some((c, latest))
            })
            .collect();
        self.probes
            .retain(|id, _| running.iter().any(|(_, s)| &s.id == id));
        let mut due = Vec::new();
        for (c, s) in &running {
            let trackers = self.probes.entry(s.id.clone()).or_default();
            let since_start = Duration::from_nanos(
                (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64)
                    - s.started_at)
                    .max(0) as u64,
            );
            let started = Instant::now()
                .checked_sub(since_start)
                .unwrap_or_else(Instant::now);
            let startup_done = c.startup_probe.is_none() || trackers[2].healthy == Some(true);
            let kinds: [(usize, Option<&k8s_openapi::api::core::v1::Probe>); 3] = [
                (2, c.startup_probe.as_ref().filter(|_| !startup_done)),
                (0, c.liveness_probe.as_ref().filter(|_| startup_done)),
                (1, c.readiness_probe.as_ref().filter(|_| startup_done)),
            ];
            for (kind, probe) in kinds {
                if let Some(probe) = probe
                    && trackers[kind].due(probe, started)
                {
                    due.push((kind, (*c).clone(), (*s).clone(), probe.clone()));
                }
            }
        }
        let cri = self.cri();
        let runs = due.into_iter().map(|(kind, c, s, probe)| {
            let cri = cri.clone();
            async move {
                let target = probes::Target {
                    cri,
                    container_id: &s.id,
                    container: &c,
                    pod_ip: ip,
                };
                let outcome = probes::run(&probe, target).await;
                (kind, c, s, probe, outcome)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut killed = false;
        for (kind, c, s, probe, outcome) in results {
            let Some(trackers) = self.probes.get_mut(&s.id) else {
                continue;
            };
            let what = ["Liveness", "Readiness", "Startup"][kind];
            let path = Some(field_path(pod, &c.name));
            if let Err(message) = &outcome {
                self.ctx.events.record(
                    pod,
                    path.clone(),
                    Warning,
                    "Unhealthy",
                    format!("{what} probe failed: {message}"),
                );
            }
            let verdict = trackers[kind].record(&probe, outcome.is_ok());
            if verdict == Some(false) && kind != 1 {
                self.ctx.events.record(
                    pod,
                    path,
                    Normal,
                    "Killing",
                    format!(
                        "Container {} failed {} probe, will be restarted",
                        c.name,
                        what.to_lowercase()
                    ),
                );
                let grace = probe
                    .termination_grace_period_seconds
                    .or(spec.termination_grace_period_seconds)
                    .unwrap_or(30);
                self.changing();
                let _ = self
                    .cri()
                    .runtime
                    .stop_container(api::StopContainerRequest {
                        container_id: s.id.clone(),
                        timeout: grace.max(0),
                    })
                    .await;
                killed = true;
            }
        }
        killed
    }

    /// Whether a running instance counts as started and ready: its
    /// startup probe succeeded (or it has none), and its readiness probe.
    fn probed(&self, c: &Container, id: &str) -> (bool, bool) {
        let trackers = self.probes.get(id);
        let ok = |kind: usize, probe: Option<&k8s_openapi::api::core::v1::Probe>| {
            probe.is_none() || trackers.is_some_and(|t| t[kind].healthy == Some(true))
        };
        let started = ok(2, c.startup_probe.as_ref());
        (started, started && ok(1, c.readiness_probe.as_ref()))
    }

    /// Prepares the pod's directories and volumes and runs its sandbox.
    /// The error is the status to report.
    async fn start_sandbox(&mut self, pod: &Pod, attempt: u32) -> Result<String, Value> {
        let node_ip = self.ctx.node_ip.clone();
        let pending = |reason: &str, message: &str| {
            json!({"phase": "Pending", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": pod.spec.iter().flat_map(|s| s.containers.iter()).map(|c| {
                    json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "started": false,
                        "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}})
                }).collect::<Vec<_>>()})
        };
        let dir = self.ctx.pod_dir(&self.uid);
        std::fs::create_dir_all(&dir).map_err(|e| pending("ContainerCreating", &e.to_string()))?;
        let config = self.sandbox_config(pod, attempt);
        std::fs::create_dir_all(&config.log_directory)
            .map_err(|e| pending("ContainerCreating", &e.to_string()))?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut sources = env::Sources::new(self.ctx.client.clone(), &ns);
        match volumes::prepare(pod, &dir.join("volumes"), &mut sources, self.ctx.resources).await {
            Ok(paths) => self.volumes = Some((paths, Instant::now())),
            Err(message) => {
                self.ctx
                    .events
                    .record(pod, None, Warning, "FailedMount", message);
                return Err(pending("ContainerCreating", ""));
            }
        }
        let handler = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone())
            .and_then(|name| if name == "crun" { Some(name) } else { None })
            .unwrap_or_default();
        self.changing();
        let started = self
            .cri()
            .runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler,
            })
            .await;
        match started {
            Ok(r) => Ok(r.into_inner().pod_sandbox_id),
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {}", e.message());
                self.ctx.events.record(
                    pod,
                    None,
                    Warning,
                    "FailedCreatePodSandBox",
                    message.clone(),
                );
                Err(pending("ContainerCreating", ""))
            }
        }
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> api::PodSandboxConfig {
        let meta = &pod.metadata;
        let spec = pod.spec.clone().unwrap_or_default();
        let (name, ns) = (
            meta.name.clone().unwrap_or_default(),
            meta.namespace.clone().unwrap_or_default(),
        );
        // With the node's network the pod has the node's hostname too.
        let hostname = if spec.host_network == Some(true) {
            String::new()
        } else {
            spec.hostname.clone().unwrap_or_else(|| name.clone())
        };
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.is_some_and(|h| h > 0))
            .map(|p| api::PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => api::Protocol::Udp as i32,
                    Some("SCTP") => api::Protocol::Sctp as i32,
                    _ => api::Protocol::Tcp as i32,
                },
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
            .collect();
        let pod_sc = spec.security_context.clone().unwrap_or_default();
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.clone(),
                uid: self.uid.clone(),
                namespace: ns.clone(),
                attempt,
            }),
            hostname,
            log_directory: self
                .ctx
                .log_dir(&ns, &name, &self.uid)
                .to_string_lossy()
                .into_owned(),
            port_mappings: ports,
            labels: HashMap::from([
                (UID_LABEL.into(), self.uid.clone()),
                ("io.kubernetes.pod.name".into(), name),
                ("io.kubernetes.pod.namespace".into(), ns),
            ]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: self.ctx.cgroup_parent.clone(),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(container::namespaces(pod)),
                    run_as_user: pod_sc.run_as_user.map(|value| api::Int64Value { value }),
                    run_as_group: pod_sc.run_as_group.map(|value| api::Int64Value { value }),
                    supplemental_groups: pod_sc.supplemental_groups.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                sysctls: pod_sc
                    .sysctls
                    .iter()
                    .flatten()
                    .map(|s| (s.name.clone(), s.value.clone()))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn sandbox_ip(&mut self, sandbox: &str) -> String {
        if let Some((id, ip)) = &self.ip
            && id == sandbox
        {
            return ip.clone();
        }
        let ip = self
            .cri()
            .runtime
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.into(),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status)
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        self.ip = Some((sandbox.to_string(), ip.clone()));
        ip
    }

    /// Starts `c` again if its back-off allows, else reports it waiting in
    /// `CrashLoopBackOff`.
    async fn restart(&mut self, pod: &Pod, sandbox: &str, c: &Container, list: &Instances) {
        let Some(last) = list.first() else { return };
        let finished = last.finished_at / 1_000_000_000;
        let now = rudder_api::time::now();
        if let Some(delay) = self.backoff.get(&c.name).copied()
            && now < finished + delay.as_secs() as i64
        {
            let meta = &pod.metadata;
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                human(delay),
                c.name,
                meta.name.as_deref().unwrap_or_default(),
                meta.namespace.as_deref().unwrap_or_default(),
                self.uid
            );
            if self.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                self.ctx.events.record(
                    pod,
                    Some(field_path(pod, &c.name)),
                    Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        c.name,
                        meta.name.as_deref().unwrap_or_default(),
                        meta.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    ),
                );
            }
            self.waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
            return;
        }
        let next = match self.backoff.get(&c.name) {
            None => BACKOFF_START,
            Some(d) => (*d * 2).min(BACKOFF_MAX),
        };
        self.backoff.insert(c.name.clone(), next);
        let attempt = last.metadata.as_ref().map_or(0, |m| m.attempt) + 1;
        self.start_container(pod, sandbox, c, attempt, list).await;
    }

    /// Pulls the image if needed, creates and starts one instance of `c`,
    /// and removes instances older than the one before it.
    async fn start_container(
        &mut self,
        pod: &Pod,
        sandbox: &str,
        c: &Container,
        attempt: u32,
        older: &Instances,
    ) {
        let path = field_path(pod, &c.name);
        let image_user = match self.ensure_image(pod, c, sandbox).await {
            Ok(user) => user,
            Err((reason, message)) => {
                self.waiting.insert(c.name.clone(), (reason, message));
                return;
            }
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut sources = env::Sources::new(self.ctx.client.clone(), &ns);
        let env = match env::environment(pod, c, &mut sources, self.ctx.resources).await {
            Ok(env) => env,
            Err(message) => {
                return self.container_failed(pod, c, "CreateContainerConfigError", message);
            }
        };
        let Some((volumes, _)) = &self.volumes else {
            return;
        };
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let config = container::config(container::Inputs {
            pod,
            container: c,
            attempt,
            env,
            volumes,
            pod_dir: &pod_dir,
            image: normalize_image(c.image.as_deref().unwrap_or_default()),
            image_user,
        });
        let config = match config {
            Ok(config) => config,
            Err(message) => {
                return self.container_failed(pod, c, "CreateContainerConfigError", message);
            }
        };
        let sandbox_config = self.sandbox_config(pod, 0);
        let mut cri = self.cri();
        self.changing();
        let created = cri
            .runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let message = e.message().to_string();
                self.container_failed(pod, c, "CreateContainerError", message);
                return;
            }
        };
        self.ctx.events.record(
            pod,
            Some(path.clone()),
            Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        // Keep the instance before this one (lastState, `logs --previous`).
        for old in older.iter().skip(1) {
            let _ = cri
                .runtime
                .remove_container(api::RemoveContainerRequest {
                    container_id: old.id.clone(),
                })
                .await;
        }
        match cri
            .runtime
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            Ok(_) => {
                self.waiting.remove(&c.name);
                self.ctx.events.record(
                    pod,
                    Some(path.clone()),
                    Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    let pod_ip = self.ip.clone().map(|(_, ip)| ip).unwrap_or_default();
                    let target = probes::Target {
                        cri: cri.clone(),
                        container_id: &id,
                        container: c,
                        pod_ip: &pod_ip,
                    };
                    if let Err(e) = probes::hook(handler, target, POST_START_MAX).await {
                        let meta = &pod.metadata;
                        self.ctx.events.record(
                            pod,
                            Some(path),
                            Warning,
                            "FailedPostStartHook",
                            format!(
                                "PostStartHook failed for Container {:?} in Pod \"{}_{}({})\": {e}",
                                c.name,
                                meta.name.as_deref().unwrap_or_default(),
                                meta.namespace.as_deref().unwrap_or_default(),
                                self.uid
                            ),
                        );
                        let grace = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        let _ = cri
                            .runtime
                            .stop_container(api::StopContainerRequest {
                                container_id: id.clone(),
                                timeout: grace.max(0),
                            })
                            .await;
                    }
                }
            }
            Err(e) => {
                let message = e.message().to_string();
                self.container_failed(pod, c, "RunContainerError", message);
            }
        }
    }

    /// A container that could not be created or started: a Failed event
    /// and the waiting reason.
    fn container_failed(&mut self, pod: &Pod, c: &Container, reason: &str, message: String) {
        self.ctx.events.record(
            pod,
            Some(field_path(pod, &c.name)),
            Warning,
            "Failed",
            format!("Error: {message}"),
        );
        self.waiting
            .insert(c.name.clone(), (reason.into(), message));
    }

    /// Makes sure `c`'s image is present as its pull policy asks. Returns
    /// the image's user; the error is the waiting reason and message.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        sandbox: &str,
    ) -> Result<Option<String>, (String, String)> {
        let spec_image = c.image.clone().unwrap_or_default();
        let image = normalize_image(&spec_image);
        let path = Some(field_path(pod, &c.name));
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if image.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let mut cri = self.cri();
        let present = cri
            .images
            .image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().image);
        let user = |i: &api::Image| {
            i.uid
                .as_ref()
                .map(|u| u.value.to_string())
                .or_else(|| Some(i.username.clone()).filter(|u| !u.is_empty()))
        };
        match (policy.as_str(), &present) {
            ("Never", Some(i)) | ("IfNotPresent", Some(i)) => {
                self.ctx.events.record(
                    pod,
                    path,
                    Normal,
                    "Pulled",
                    format!("Container image {spec_image:?} already present on machine"),
                );
                return Ok(user(i));
            }
            ("Never", None) => {
                let message = format!(
                    "Container image {spec_image:?} is not present with pull policy of Never"
                );
                self.ctx
                    .events
                    .record(pod, path, Warning, "ErrImageNeverPull", message.clone());
                return Err(("ErrImageNeverPull".into(), message));
            }
            _ => {}
        }
        if let Some((until, _)) = self.pull_backoff.get(&image)
            && Instant::now() < *until
        {
            let message = format!("Back-off pulling image {spec_image:?}");
            if self.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("ImagePullBackOff") {
                self.ctx
                    .events
                    .record(pod, path, Normal, "BackOff", message.clone());
            }
            return Err(("ImagePullBackOff".into(), message));
        }
        self.ctx.events.record(
            pod,
            path.clone(),
            Normal,
            "Pulling",
            format!("Pulling image {spec_image:?}"),
        );
        let started = Instant::now();
        let mut result = Err(String::new());
        for auth in self.credentials(pod, &image).await {
            result = cri
                .images
                .pull_image(api::PullImageRequest {
                    image: Some(api::ImageSpec {
                        image: image.clone(),
                        ..Default::default()
                    }),
                    auth,
                    sandbox_config: Some(self.sandbox_config(pod, 0)),
                })
                .await
                .map(drop)
                .map_err(|e| e.message().to_string());
            if result.is_ok() {
                break;
            }
        }
        let _ = sandbox;
        match result {
            Ok(()) => {
                self.pull_backoff.remove(&image);
                self.ctx.events.record(
                    pod,
                    path,
                    Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image {spec_image:?} in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                let pulled = cri
                    .images
                    .image_status(api::ImageStatusRequest {
                        image: Some(api::ImageSpec {
                            image,
                            ..Default::default()
                        }),
                        verbose: false,
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().image);
                Ok(pulled.as_ref().and_then(user))
            }
            Err(message) => {
                let delay = match self.pull_backoff.get(&image) {
                    None => BACKOFF_START,
                    Some((_, d)) => (*d * 2).min(BACKOFF_MAX),
                };
                self.pull_backoff
                    .insert(image, (Instant::now() + delay, delay));
                self.ctx.events.record(
                    pod,
                    path.clone(),
                    Warning,
                    "Failed",
                    format!("Failed to pull image {spec_image:?}: {message}"),
                );
                self.ctx
                    .events
                    .record(pod, path, Warning, "Failed", "Error: ErrImagePull".into());
                Err(("ErrImagePull".into(), message))
            }
        }
    }

    /// The credentials to try for `image`: those of the pod's
    /// imagePullSecrets for its registry, then none.
    async fn credentials(&self, pod: &Pod, image: &str) -> Vec<Option<api::AuthConfig>> {
        let mut out = Vec::new();
        let registry = image.split('/').next().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        for reference in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            let Ok(Some(secret)) = secrets.get_opt(&reference.name).await else {
                continue;
            };
            let data = secret.data.unwrap_or_default();
            let auths = if let Some(v) = data.get(".dockerconfigjson") {
                serde_json::from_slice::<Value>(&v.0)
                    .ok()
                    .map(|v| v["auths"].clone())
            } else {
                data.get(".dockercfg")
                    .and_then(|v| serde_json::from_slice::<Value>(&v.0).ok())
            };
            let Some(Value::Object(auths)) = auths else {
                continue;
            };
            for (server, entry) in auths {
                let host = server
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let matches = host == registry
                    || (registry == "docker.io"
                        && matches!(host.as_str(), "index.docker.io" | "registry-1.docker.io"));
                if !matches {
                    continue;
                }
                let text = |k: &str| entry[k].as_str().unwrap_or_default().to_string();
                out.push(Some(api::AuthConfig {
                    username: text("username"),
                    password: text("password"),
                    auth: text("auth"),
                    // Matched to the image's registry above; containerd
                    // 1.6 parses this as a URL and drops the credentials
                    // of a bare `host:port`.
                    ..Default::default()
                }));
            }
        }
        out.push(None);
        out
    }

    /// The pod's status from its containers' instances.
    fn status(
        &self,
        pod: &Pod,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        instances: &HashMap<String, Instances>,
        initialized: bool,
        ip: &str,
        policy: &str,
    ) -> Value {
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let observe = |c: &Container, init: bool| {
            let list = instances.get(&c.name);
            let latest = list.and_then(|l| l.first()).cloned();
            let previous = list.and_then(|l| l.get(1)).cloned();
            // Only a terminated instance has a message: running ones cost
            // no file read on each sync.
            let message = |s: &Option<api::ContainerStatus>| {
                let s = s
                    .as_ref()
                    .filter(|s| s.state == api::ContainerState::ContainerExited as i32)?;
                let attempt = s.metadata.as_ref().map_or(0, |m| m.attempt);
                let file = container::termination_file(&pod_dir, &c.name, attempt);
                let mut text = std::fs::read(file).ok()?;
                text.truncate(MESSAGE_MAX);
                Some(String::from_utf8_lossy(&text).into_owned())
            };
            // A container that will not run again is not waiting.
            let done = latest.as_ref().is_some_and(|s| {
                s.state == api::ContainerState::ContainerExited as i32
                    && !restarts(policy, s.exit_code, init)
            });
            let (started, ready) = latest
                .as_ref()
                .map_or((false, false), |s| self.probed(c, &s.id));
            Observed {
                messages: [message(&latest), message(&previous)],
                latest,
                previous,
                waiting: self.waiting.get(&c.name).cloned().filter(|_| !done),
                started,
                ready,
            }
        };
        let inits = spec.init_containers.clone().unwrap_or_default();
        let init_observed: Vec<Observed> = inits.iter().map(|c| observe(c, true)).collect();
        let observed: Vec<Observed> = spec.containers.iter().map(|c| observe(c, false)).collect();
        let phase = status::phase(policy, &init_observed, &observed, initialized);
        let blocked = if inits.is_empty() || initialized {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let not_initialized: Vec<String> = inits
            .iter()
            .zip(&init_observed)
            .filter(|(_, o)| o.exited().is_none_or(|s| s.exit_code != 0))
            .map(|(c, _)| c.name.clone())
            .collect();
        let not_ready: Vec<String> = spec
            .containers
            .iter()
            .zip(&observed)
            .filter(|(_, o)| !(o.running() && o.waiting.is_none() && o.ready))
            .map(|(c, _)| c.name.clone())
            .collect();
        let mut status = json!({
            "phase": phase,
            "hostIP": self.ctx.node_ip,
            "hostIPs": [{"ip": self.ctx.node_ip}],
            "containerStatuses": spec.containers.iter().zip(&observed)
                .map(|(c, o)| status::container_status(c, o, blocked)).collect::<Vec<_>>(),
            "conditions": status::conditions(pod, !ip.is_empty(), &not_initialized, &not_ready, phase),
            "qosClass": qos_class(spec),
        });
        if !inits.is_empty() {
            status["initContainerStatuses"] = inits
                .iter()
                .zip(&init_observed)
                .map(|(c, o)| {
                    let mut s = status::container_status(c, o, "PodInitializing");
                    // A finished init container is not "ready".
                    if o.exited().is_some() {
                        s["ready"] = json!(o.exited().is_some_and(|s| s.exit_code == 0));
                    }
                    s
                })
                .collect();
        }
        if !ip.is_empty() {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{ "ip": ip }]);
        }
        status
    }

    /// Writes `status` if what it says changed (times aside).
    async fn report(&mut self, pod: &Pod, mut status: Value) {
        let mut key = status::comparable(&status);
        // A static pod's new mirror gets the status again.
        key["mirror"] = json!(
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::static_pods::MIRROR_UID))
        );
        if self.reported.as_ref() == Some(&key) {
            return;
        }
        if pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_none()
        {
            status["startTime"] = json!(rudder_api::time::rfc3339_now());
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({ "status": status });
        let _slot = Arc::clone(&self.ctx.api_slots).acquire_owned().await;
        match self
            .namespaced(pod)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.reported = Some(key),
            Err(e) => tracing::debug!(pod = %name, "status: {e}"),
        }
    }

    fn namespaced(&self, pod: &Pod) -> Api<Pod> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        Api::namespaced(self.ctx.client.clone(), &ns)
    }

    /// Kills the pod's containers (`activeDeadlineSeconds` passed) and
    /// reports it Failed with DeadlineExceeded.
    async fn deadline_exceeded(&mut self, pod: &Pod, spec: &k8s_openapi::api::core::v1::PodSpec) {
        let message = "Pod was active on the node longer than the specified deadline";
        self.ctx
            .events
            .record(pod, None, Warning, "DeadlineExceeded", message.into());
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        self.stop_containers(Some(pod), grace).await;
        self.stop_sandboxes().await;
        let mut status =
            json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": message});
        let mut sandboxes = self.sandboxes().await;
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        if let Some(s) = sandboxes.first() {
            let instances = self.instances(&s.id).await;
            let policy = "Never";
            let mut full = self.status(pod, spec, &instances, true, "", policy);
            full["phase"] = json!("Failed");
            full["reason"] = status["reason"].take();
            full["message"] = json!(message);
            if let Some(old) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                full["podIP"] = json!(old);
            }
            status = full;
        }
        self.report(pod, status).await;
        self.finished = true;
    }

    /// Stops every running container of the pod within `grace` seconds
    /// (SIGTERM, then SIGKILL), all at once.
    async fn stop_containers(&mut self, pod: Option<&Pod>, grace: i64) {
        let mut stops = Vec::new();
        for s in self.sandboxes().await {
            for (name, list) in self.instances(&s.id).await {
                for instance in list
                    .into_iter()
                    .filter(|i| i.state == api::ContainerState::ContainerRunning as i32)
                {
                    if let Some(pod) = pod {
                        self.ctx.events.record(
                            pod,
                            Some(field_path(pod, &name)),
                            Normal,
                            "Killing",
                            format!("Stopping container {name}"),
                        );
                    }
                    let mut cri = self.cri();
                    let spec = pod.and_then(|p| p.spec.as_ref()).and_then(|s| {
                        s.containers
                            .iter()
                            .chain(s.init_containers.iter().flatten())
                            .find(|c| c.name == name)
                            .cloned()
                    });
                    let pod_ip = self.ip.clone().map(|(_, ip)| ip).unwrap_or_default();
                    let name = name.clone();
                    stops.push(async move {
                        let started = Instant::now();
                        let pre_stop = spec
                            .as_ref()
                            .and_then(|c| c.lifecycle.as_ref())
                            .and_then(|l| l.pre_stop.as_ref());
                        if let (Some(handler), Some(c)) = (pre_stop, spec.as_ref())
                            && grace > 0
                        {
                            let target = probes::Target {
                                cri: cri.clone(),
                                container_id: &instance.id,
                                container: c,
                                pod_ip: &pod_ip,
                            };
                            let limit = Duration::from_secs(grace as u64);
                            if let Err(e) = probes::hook(handler, target, limit).await {
                                tracing::debug!(container = %name, "preStop hook: {e}");
                            }
                        }
                        // What is left of the grace period, at least 2 s
                        // once a hook ran (as the kubelet gives).
                        let left = if pre_stop.is_some() && grace > 0 {
                            (grace - started.elapsed().as_secs() as i64).max(2)
                        } else {
                            grace.max(0)
                        };
                        let _ = cri
                            .runtime
                            .stop_container(api::StopContainerRequest {
                                container_id: instance.id,
                                timeout: left,
                            })
                            .await;
                    });
                }
            }
        }
        self.changing();
        futures_util::future::join_all(stops).await;
    }

    async fn stop_sandboxes(&mut self) {
        let sandboxes = self.sandboxes().await;
        self.changing();
        for s in sandboxes {
            if s.state == api::PodSandboxState::SandboxReady as i32 {
                let _ = self
                    .cri()
                    .runtime
                    .stop_pod_sandbox(api::StopPodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await;
            }
        }
    }

    /// Stops everything the pod runs and removes its sandboxes, volumes
    /// and logs.
    async fn terminate(&mut self, pod: Option<&Pod>, grace: i64) {
        self.stop_containers(pod, grace).await;
        for s in self.sandboxes().await {
            self.changing();
            remove_sandbox(&mut self.cri(), &s.id).await;
        }
        volumes::clean_up(&self.ctx.pod_dir(&self.uid));
        if let Some(pod) = pod {
            let meta = &pod.metadata;
            let _ = std::fs::remove_dir_all(self.ctx.log_dir(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                &self.uid,
            ));
        }
    }

    /// Lets the Pod object go once its containers are stopped.
    async fn delete_object(&self, pod: &Pod) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Err(e) = self.namespaced(pod).delete(&name, &params).await {
            tracing::debug!(pod = %name, "deleting: {e}");
        }
    }
}

/// Whether a container that exited with `exit_code` runs again under the
/// pod's restart policy (init containers only rerun after failures).
fn restarts(policy: &str, exit_code: i32, init: bool) -> bool {
    match policy {
        "Never" => false,
        "Always" if !init => true,
        _ => exit_code != 0,
    }
}

/// The Pod's QoS class, as Kubernetes computes it.
fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> &'static str {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.clone()).unwrap_or_default();
        let requests = r.and_then(|r| r.requests.clone()).unwrap_or_default();
        for name in ["cpu", "memory"] {
            let limit = limits.get(name);
            let request = requests.get(name).or(limit);
            if limit.is_some() || request.is_some() {
                any = true;
            }
            match (limit, request) {
                (Some(l), Some(r)) if l == r => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `spec.containers{name}` or `spec.initContainers{name}`.
fn field_path(pod: &Pod, name: &str) -> String {
    let init = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == name);
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// A back-off delay as Go prints a Duration (`10s`, `1m20s`, `5m0s`).
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

pub(crate) async fn remove_sandbox(cri: &mut Cri, id: &str) {
    let _ = cri
        .runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await;
    let _ = cri
        .runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await;
}
