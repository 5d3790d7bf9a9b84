//! The scheduler's loop: watches pods, nodes and namespaces into the cache
//! and the queue, schedules one pod at a time against the cache, and binds
//! in the background (`pods/binding`), as kube-scheduler's `scheduleOne`
//! and its binding cycle do.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::relist::{Change, Relist};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::cache::Cache;
use crate::framework::labels::Selector;
use crate::framework::{
    ClusterEvent, DisruptionBudget, Framework, PodInfo, PostFilterResult, Snapshot,
};
use crate::queue::Queue;

/// How many bindings are in flight at once.
const BIND_CONCURRENCY: usize = 64;
/// How many status and event writes are in flight at once.
const WRITE_CONCURRENCY: usize = 8;
/// Watch events waiting for the loop.
const INPUT_BUFFER: usize = 4096;
/// How often the loop looks for unschedulable pods to retry anyway.
const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// What the scheduler needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods naming this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// Where it runs (events' `reportingInstance`).
    pub host: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheduler_name: crate::DEFAULT_SCHEDULER.into(),
            host: String::new(),
        }
    }
}

enum Input {
    Pod(Box<watcher::Event<Pod>>),
    Node(Box<watcher::Event<Node>>),
    Namespace(watcher::Event<Namespace>),
    Budget(watcher::Event<PodDisruptionBudget>),
}

struct Bound {
    pod: Arc<PodInfo>,
    node: String,
    result: Result<(), kube::Error>,
}

/// The scheduler: its cache, queue and plugins, and its API client.
pub struct Scheduler {
    client: kube::Client,
    config: Config,
    framework: Framework,
    cache: Cache,
    queue: Queue,
    next_start: usize,
    recorder: Recorder,
    writes: Arc<Semaphore>,
    binds: Arc<Semaphore>,
    bound_tx: mpsc::UnboundedSender<Bound>,
    bound_rx: mpsc::UnboundedReceiver<Bound>,
    /// Uids seen during a watch's initial list, to drop the rest after it.
    /// What each watch's relists have named (see `rudder_runtime::relist`).
    relists: Relists,
    synced: (bool, bool),
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.config)
            .field("queued", &self.queue.len())
            .finish()
    }
}

/// Whether a pod no longer uses its node's resources.
fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Scheduler {
    pub fn new(client: kube::Client, config: Config, framework: Framework) -> Self {
        let events = framework
            .plugins()
            .iter()
            .map(|p| (p.name(), p.events()))
            .collect();
        let writes = Arc::new(Semaphore::new(WRITE_CONCURRENCY));
        let recorder = Recorder::new(
            client.clone(),
            crate::DEFAULT_SCHEDULER,
            config.host.clone(),
            writes.clone(),
        );
        let (bound_tx, bound_rx) = mpsc::unbounded_channel();
        Self {
            client,
            config,
            framework,
            cache: Cache::default(),
            queue: Queue::new(events),
            next_start: 0,
            recorder,
            writes,
            binds: Arc::new(Semaphore::new(BIND_CONCURRENCY)),
            bound_tx,
            bound_rx,
            relists: Relists::default(),
            synced: (false, false),
        }
    }

    /// Watches and schedules until the task is dropped.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel(INPUT_BUFFER);
        let pods: Api<Pod> = Api::all(self.client.clone());
        let nodes: Api<Node> = Api::all(self.client.clone());
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let budgets: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        let config = watcher::Config::default;
        let _watches = AbortOnDrop(vec![
            tokio::spawn(forward(watcher(pods, config()), tx.clone(), |e| {
                Input::Pod(Box::new(e))
            })),
            tokio::spawn(forward(watcher(nodes, config()), tx.clone(), |e| {
                Input::Node(Box::new(e))
            })),
            tokio::spawn(forward(
                watcher(namespaces, config()),
                tx.clone(),
                Input::Namespace,
            )),
            tokio::spawn(forward(watcher(budgets, config()), tx, Input::Budget)),
        ]);
        tracing::info!(scheduler = %self.config.scheduler_name, "scheduler started");
        loop {
            // Take in everything that happened before scheduling the next pod.
            while let Ok(input) = rx.try_recv() {
                self.handle(input);
            }
            while let Ok(bound) = self.bound_rx.try_recv() {
                self.bound(bound);
            }
            let now = Instant::now();
            self.queue.flush(now);
            if self.synced == (true, true)
                && let Some(queued) = self.queue.pop()
            {
                self.schedule_one(queued.info).await;
                continue;
            }
            let wake = self
                .queue
                .next_backoff()
                .map_or(now + FLUSH_INTERVAL, |t| t.min(now + FLUSH_INTERVAL));
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.handle(input),
                    None => return,
                },
                Some(bound) = self.bound_rx.recv() => self.bound(bound),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn handle(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Pod(e) => {
                let queue = &self.queue;
                let cache = &self.cache;
                let held = || queue.uids().into_iter().chain(cache.pod_uids());
                match self.relists.pods.follow(*e, uid_of, held) {
                    Change::Upsert(p) => self.pod_changed(p, now),
                    Change::Remove(p) => self.pod_deleted(&p, now),
                    Change::Gone(uids) => {
                        // Pods gone while the watch was down are dropped;
                        // the queue keeps only pods listed again.
                        for uid in uids {
                            self.queue.delete(&uid);
                            self.cache.remove_pod(&uid);
                        }
                        self.synced.0 = true;
                    }
                    Change::Nothing => {}
                }
            }
            Input::Node(e) => {
                let cache = &self.cache;
                match self
                    .relists
                    .nodes
                    .follow(*e, name_of, || cache.node_names())
                {
                    Change::Upsert(n) => {
                        for event in self.cache.upsert_node(Arc::new(n)) {
                            self.queue.on_event(event, now);
                        }
                    }
                    Change::Remove(n) => self.cache.remove_node(&name_of(&n)),
                    Change::Gone(names) => {
                        for name in names {
                            self.cache.remove_node(&name);
                        }
                        self.synced.1 = true;
                    }
                    Change::Nothing => {}
                }
            }
            Input::Namespace(e) => {
                let cache = &self.cache;
                match self
                    .relists
                    .namespaces
                    .follow(e, name_of, || cache.namespace_names())
                {
                    Change::Upsert(ns) => {
                        let labels = ns.metadata.labels.clone().unwrap_or_default();
                        if self.cache.set_namespace(&name_of(&ns), labels) {
                            self.queue.on_event(ClusterEvent::NamespaceChange, now);
                        }
                    }
                    Change::Remove(ns) => self.cache.remove_namespace(&name_of(&ns)),
                    Change::Gone(names) => {
                        for name in names {
                            self.cache.remove_namespace(&name);
                        }
                    }
                    Change::Nothing => {}
                }
            }
            Input::Budget(e) => {
                let cache = &self.cache;
                let key = |b: &PodDisruptionBudget| {
                    (b.metadata.namespace.clone().unwrap_or_default(), name_of(b))
                };
                match self.relists.budgets.follow(e, key, || cache.budget_names()) {
                    Change::Upsert(b) => {
                        let budget = DisruptionBudget {
                            namespace: b.metadata.namespace.clone().unwrap_or_default(),
                            selector: Selector::from_label_selector(
                                b.spec.as_ref().and_then(|s| s.selector.as_ref()),
                            ),
                            disruptions_allowed: b
                                .status
                                .as_ref()
                                .map_or(0, |s| s.disruptions_allowed),
                        };
                        self.cache.set_budget(&name_of(&b), budget);
                    }
                    Change::Remove(b) => {
                        let (ns, name) = key(&b);
                        self.cache.remove_budget(&ns, &name);
                    }
                    Change::Gone(keys) => {
                        for (ns, name) in keys {
                            self.cache.remove_budget(&ns, &name);
                        }
                    }
                    Change::Nothing => {}
                }
            }
        }
    }

    fn pod_changed(&mut self, pod: Pod, now: Instant) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        if let Some(node) = node {
            // Bound: it counts on its node until it finishes or goes.
            self.queue.delete(&uid);
            self.cache.clear_nomination(&uid);
            if is_terminal(&pod) {
                if self.cache.remove_pod(&uid) {
                    self.queue.on_event(ClusterEvent::AssignedPodDelete, now);
                }
                return;
            }
            let known = self.cache.node_of(&uid).is_some() && !self.cache.is_assumed(&uid);
            let info = Arc::new(PodInfo::new(Arc::new(pod)));
            self.cache.add_pod(info, &node);
            self.queue.on_event(
                if known {
                    ClusterEvent::AssignedPodUpdate
                } else {
                    ClusterEvent::AssignedPodAdd
                },
                now,
            );
            return;
        }
        let ours = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::DEFAULT_SCHEDULER)
            == self.config.scheduler_name;
        if !ours
            || is_terminal(&pod)
            || pod.metadata.deletion_timestamp.is_some()
            || self.cache.is_assumed(&uid)
        {
            self.queue.delete(&uid);
            return;
        }
        let info = Arc::new(PodInfo::new(Arc::new(pod)));
        // A nomination made before a restart, or by another scheduler instance.
        if let Some(node) = info.nominated_node_name()
            && self.cache.nomination(&uid).is_none()
        {
            self.cache.nominate(info.clone(), node);
        }
        let gated = !self.framework.run_pre_enqueue(&info).is_success();
        if self.queue.contains(&uid) {
            self.queue.update(info.clone(), gated, now);
        } else {
            self.queue.add(info.clone(), gated, now);
        }
        if gated {
            self.set_condition(
                &info,
                "SchedulingGated",
                "Scheduling is blocked due to non-empty scheduling gates",
                None,
            );
        }
    }

    fn pod_deleted(&mut self, pod: &Pod, now: Instant) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.queue.delete(&uid);
        self.cache.clear_nomination(&uid);
        if self.cache.remove_pod(&uid) {
            self.queue.on_event(ClusterEvent::AssignedPodDelete, now);
        }
    }

    async fn schedule_one(&mut self, pod: Arc<PodInfo>) {
        let (result, state, next) = self.framework.schedule(&pod, &self.cache, self.next_start);
        self.next_start = next;
        match result {
            Ok(r) => {
                tracing::debug!(pod = %pod.key, node = %r.node, evaluated = r.evaluated, feasible = r.feasible, "scheduled");
                self.cache.clear_nomination(&pod.uid);
                self.cache.assume(pod.clone(), &r.node);
                self.queue.done(&pod.uid);
                let Ok(permit) = self.binds.clone().acquire_owned().await else {
                    return;
                };
                let client = self.client.clone();
                let tx = self.bound_tx.clone();
                tokio::spawn(async move {
                    let result = bind(client, &pod, &r.node).await;
                    drop(permit);
                    let _ = tx.send(Bound {
                        pod,
                        node: r.node,
                        result,
                    });
                });
            }
            Err(mut fit) => {
                let post = self.framework.run_post_filter(
                    &state,
                    &pod,
                    &self.cache,
                    &fit.diagnosis.statuses,
                );
                fit.diagnosis.post_filter_message = post.message.clone();
                let message = fit.to_string();
                tracing::debug!(pod = %pod.key, "unschedulable: {message}");
                self.recorder.record(
                    &pod.pod,
                    None,
                    Kind::Warning,
                    "FailedScheduling",
                    message.clone(),
                );
                self.set_condition(
                    &pod,
                    "Unschedulable",
                    &message,
                    post.nominated_node.as_deref(),
                );
                if post.nominated_node.is_some() {
                    self.preempt(&pod, post);
                }
                self.queue.unschedulable(
                    &pod.uid,
                    fit.diagnosis.unschedulable_plugins,
                    Instant::now(),
                );
            }
        }
    }

    fn bound(&mut self, b: Bound) {
        match b.result {
            Ok(()) => self.recorder.record(
                &b.pod.pod,
                None,
                Kind::Normal,
                "Scheduled",
                format!("Successfully assigned {} to {}", b.pod.key, b.node),
            ),
            Err(e) => {
                self.cache.forget(&b.pod.uid);
                if let kube::Error::Api(s) = &e
                    && (s.code == 404 || s.code == 409)
                {
                    // Gone, or bound by someone else: the watch tells.
                    tracing::debug!(pod = %b.pod.key, "binding: {}", s.message);
                    return;
                }
                tracing::warn!(pod = %b.pod.key, node = %b.node, "binding failed: {e}");
                self.recorder.record(
                    &b.pod.pod,
                    None,
                    Kind::Warning,
                    "FailedScheduling",
                    format!("Binding rejected: {e}"),
                );
                let gated = !self.framework.run_pre_enqueue(&b.pod).is_success();
                let now = Instant::now();
                self.queue.add(b.pod.clone(), gated, now);
                self.queue.retry(&b.pod.uid, now);
            }
        }
    }

    /// Writes `PodScheduled=False` with `reason` and `message` (and the
    /// nominated node) unless the pod already says so.
    fn set_condition(&self, pod: &PodInfo, reason: &str, message: &str, nominated: Option<&str>) {
        let status = pod.pod.status.as_ref();
        let current = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        }) && (nominated.is_none()
            || status.and_then(|s| s.nominated_node_name.as_deref()) == nominated);
        if same {
            return;
        }
        let mut patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": rudder_api::time::rfc3339_now(),
        }]}});
        if let Some(node) = nominated {
            patch["status"]["nominatedNodeName"] = json!(node);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.key.namespace);
        let name = pod.key.name.clone();
        let writes = self.writes.clone();
        tokio::spawn(async move {
            let _slot = writes.acquire_owned().await;
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::debug!(pod = %name, "status: {e}");
            }
        });
    }

    /// Carries out a preemption: clears lower nominations, evicts the
    /// victims (gracefully) with an event on each.
    fn preempt(&mut self, pod: &Arc<PodInfo>, post: PostFilterResult) {
        let node = post.nominated_node.unwrap_or_default();
        self.cache.nominate(pod.clone(), &node);
        for victim in post.victims {
            self.recorder.record(
                &victim.pod,
                None,
                Kind::Normal,
                "Preempted",
                format!("Preempted by pod {} on node {node}", pod.uid),
            );
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &victim.key.namespace);
            let writes = self.writes.clone();
            tokio::spawn(async move {
                let _slot = writes.acquire_owned().await;
                let dp = DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        uid: Some(victim.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&victim.key.name, &dp).await {
                    Ok(_) => {}
                    // Already gone (its node finished it, or a repeat).
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => tracing::warn!(pod = %victim.key, "preempting: {e}"),
                }
            });
        }
        for other in post.nominations_to_clear {
            self.cache.clear_nomination(&other.uid);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &other.key.namespace);
            let writes = self.writes.clone();
            tokio::spawn(async move {
                let _slot = writes.acquire_owned().await;
                let patch = json!({"status": {"nominatedNodeName": null}});
                let _ = api
                    .patch_status(
                        &other.key.name,
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await;
            });
        }
    }
}

/// `POST pods/{name}/binding`.
async fn bind(client: kube::Client, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client, &pod.key.namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.key.name, "namespace": pod.key.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &pod.key.name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(drop)
}

/// Sends a watch's events to the loop until either ends.
async fn forward<K, S>(stream: S, tx: mpsc::Sender<Input>, wrap: fn(watcher::Event<K>) -> Input)
where
    S: futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    K: Send,
{
    let stream = stream.default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(e) => {
                if tx.send(wrap(e)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("scheduler watch: {e}"),
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// One relist follower per watched kind.
#[derive(Debug, Default)]
struct Relists {
    pods: Relist<String>,
    nodes: Relist<String>,
    namespaces: Relist<String>,
    budgets: Relist<(String, String)>,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn name_of<K: kube::Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}
