//! Pods on this node. A watch on the pods bound here feeds one worker per
//! pod ([`worker`]), as the kubelet's pod workers: each syncs its pod
//! against the runtime when the pod changes and every second (the
//! kubelet's relist period), and tears it down when it is deleted. A
//! sweep removes sandboxes and directories of pods the API no longer has
//! (the agent was down while they were deleted).

mod container;
mod env;
mod probes;
mod static_pods;
mod status;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use rudder_cri::{Cri, api};
use tokio::sync::watch;

pub(crate) use env::NodeResources;

use rudder_runtime::events::Recorder;

pub(crate) const UID_LABEL: &str = "io.kubernetes.pod.uid";
/// How often the static pod manifests are read (the kubelet's
/// fileCheckFrequency).
const STATIC_EVERY: Duration = Duration::from_secs(20);
/// How often sandboxes and directories of unknown pods are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// What every pod worker shares.
pub(crate) struct Context {
    pub(crate) client: kube::Client,
    pub(crate) cri: Cri,
    pub(crate) node: String,
    pub(crate) node_ip: String,
    /// `<data-dir>/agent`: pods' directories under `pods/`, their logs
    /// under `logs/`.
    pub(crate) dir: PathBuf,
    pub(crate) events: Recorder,
    /// Bounds the writes in flight to the API.
    pub(crate) api_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) resources: NodeResources,
    /// Pods' cgroups go under this parent (`<cgroup-root>/kubepods`).
    pub(crate) cgroup_parent: String,
    /// The runtime as the last relist saw it.
    pub(crate) snapshot: watch::Sender<Arc<Snapshot>>,
}

/// Every sandbox and container the runtime has, listed at once every
/// second (the kubelet's PLEG relist), so idle pods cost no CRI calls of
/// their own. Container details are fetched again only when a
/// container's state changes.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// When listing began: a worker trusts the snapshot only if it began
    /// after the worker last changed something.
    pub(crate) started: Option<std::time::Instant>,
    /// Sandboxes by pod uid.
    pub(crate) sandboxes: HashMap<String, Vec<api::PodSandbox>>,
    /// Container details by sandbox id.
    pub(crate) containers: HashMap<String, Vec<api::ContainerStatus>>,
}

/// How often the runtime is relisted.
const RELIST_EVERY: Duration = Duration::from_secs(1);

/// Relists the runtime forever, publishing each snapshot.
pub(crate) async fn relist(ctx: Arc<Context>) {
    let mut cri = ctx.cri.clone();
    let mut details: HashMap<String, api::ContainerStatus> = HashMap::new();
    loop {
        let started = std::time::Instant::now();
        let (mut a, mut b) = (cri.clone(), cri.clone());
        let listed = tokio::try_join!(
            a.runtime
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
            b.runtime
                .list_containers(api::ListContainersRequest { filter: None }),
        );
        match listed {
            Ok((sandboxes, containers)) => {
                let mut snapshot = Snapshot {
                    started: Some(started),
                    ..Default::default()
                };
                for s in sandboxes.into_inner().items {
                    if let Some(uid) = s.labels.get(UID_LABEL) {
                        snapshot.sandboxes.entry(uid.clone()).or_default().push(s);
                    }
                }
                let containers = containers.into_inner().containers;
                details.retain(|id, _| containers.iter().any(|c| &c.id == id));
                for c in containers {
                    let known = details.get(&c.id).is_some_and(|d| d.state == c.state);
                    if !known
                        && let Ok(r) = cri
                            .runtime
                            .container_status(api::ContainerStatusRequest {
                                container_id: c.id.clone(),
                                verbose: false,
                            })
                            .await
                        && let Some(status) = r.into_inner().status
                    {
                        details.insert(c.id.clone(), status);
                    }
                    if let Some(d) = details.get(&c.id) {
                        snapshot
                            .containers
                            .entry(c.pod_sandbox_id.clone())
                            .or_default()
                            .push(d.clone());
                    }
                }
                ctx.snapshot.send_replace(Arc::new(snapshot));
            }
            Err(e) => tracing::debug!("relisting the runtime: {e}"),
        }
        tokio::time::sleep(RELIST_EVERY.saturating_sub(started.elapsed())).await;
    }
}

impl Context {
    pub(crate) fn pod_dir(&self, uid: &str) -> PathBuf {
        self.dir.join("pods").join(uid)
    }

    pub(crate) fn log_dir(&self, ns: &str, name: &str, uid: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{ns}_{name}_{uid}"))
    }
}

type Slot = watch::Sender<Option<Arc<Pod>>>;

/// Watches the pods bound to the node and keeps one worker per pod.
pub(crate) async fn run(ctx: Arc<Context>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node));
    let mut events = watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, Slot> = HashMap::new();
    let mut listed = HashSet::new();
    let mut synced = false;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut static_check = tokio::time::interval(Duration::from_secs(1));
    let manifests = ctx.dir.join("pod-manifests");
    let _ = std::fs::create_dir_all(&manifests);
    let mut statics: HashMap<String, Pod> = HashMap::new();
    // Static pods first: the first sweep must not take their sandboxes.
    let mut dir_modified = std::fs::metadata(&manifests)
        .and_then(|m| m.modified())
        .ok();
    let mut last_read = std::time::Instant::now();
    sync_statics(&ctx, &mut workers, &mut statics, &manifests);
    static_check.tick().await;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return };
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::debug!("pod watch: {e}");
                        continue;
                    }
                };
                workers.retain(|_, slot| !slot.is_closed());
                match event {
                    watcher::Event::Init => listed.clear(),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod)
                        if static_pods::is_mirror(&pod) =>
                    {
                        // A mirror pod runs as its static pod; a stale one
                        // goes.
                        // A deleted mirror goes at once and comes back (the
                        // static pod runs on); a stale one just goes.
                        if pod.metadata.deletion_timestamp.is_some()
                            || !static_pods::mirror_of(&pod).is_some_and(|h| statics.contains_key(h))
                        {
                            tokio::spawn(static_pods::delete_mirror(ctx.client.clone(), pod));
                        } else if let Some(hash) = static_pods::mirror_of(&pod).map(str::to_string)
                            && let Some(static_pod) = statics.get_mut(&hash)
                            && static_pods::note_mirror(static_pod, &pod)
                        {
                            // A new mirror: the worker reports its status there.
                            dispatch(&ctx, &mut workers, hash, Some(Arc::new(static_pod.clone())));
                        }
                    }
                    watcher::Event::Delete(pod) if static_pods::is_mirror(&pod) => {
                        if let Some(p) = static_pods::mirror_of(&pod).and_then(|h| statics.get(h)) {
                            tokio::spawn(static_pods::ensure_mirror(ctx.client.clone(), p.clone()));
                        }
                    }
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        listed.insert(uid.clone());
                        dispatch(&ctx, &mut workers, uid, Some(Arc::new(pod)));
                    }
                    watcher::Event::Delete(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(slot) = workers.get(&uid) {
                            slot.send_replace(None);
                        }
                    }
                    watcher::Event::InitDone => {
                        for (uid, slot) in &workers {
                            if !listed.contains(uid) && !statics.contains_key(uid) {
                                slot.send_replace(None);
                            }
                        }
                        if !synced {
                            synced = true;
                            sweep_orphans(&ctx, &workers).await;
                        }
                    }
                }
            }
            _ = static_check.tick() => {
                // Every STATIC_EVERY, and as soon as a manifest is added or
                // removed (the directory changes).
                let modified = std::fs::metadata(&manifests).and_then(|m| m.modified()).ok();
                if modified != dir_modified || last_read.elapsed() >= STATIC_EVERY {
                    dir_modified = modified;
                    last_read = std::time::Instant::now();
                    workers.retain(|_, slot| !slot.is_closed());
                    sync_statics(&ctx, &mut workers, &mut statics, &manifests);
                }
            }
            _ = sweep.tick() => {
                workers.retain(|_, slot| !slot.is_closed());
                if synced {
                    sweep_orphans(&ctx, &workers).await;
                }
            }
        }
    }
}

/// Starts workers for new static pods, stops those whose manifest is
/// gone, and keeps their mirror pods.
fn sync_statics(
    ctx: &Arc<Context>,
    workers: &mut HashMap<String, Slot>,
    statics: &mut HashMap<String, Pod>,
    manifests: &std::path::Path,
) {
    let now = static_pods::read(manifests, &ctx.node);
    for (uid, pod) in statics.iter() {
        if !now.contains_key(uid) {
            tracing::info!(pod = ?pod.metadata.name, "static pod manifest removed; stopping it");
            if let Some(slot) = workers.get(uid) {
                slot.send_replace(None);
            }
            tokio::spawn(static_pods::delete_mirror(ctx.client.clone(), pod.clone()));
        }
    }
    for (uid, pod) in &now {
        if !statics.contains_key(uid) || !workers.contains_key(uid) {
            dispatch(ctx, workers, uid.clone(), Some(Arc::new(pod.clone())));
        }
        tokio::spawn(static_pods::ensure_mirror(ctx.client.clone(), pod.clone()));
    }
    *statics = now;
}

/// Hands `pod` to its worker, starting one if it has none.
fn dispatch(
    ctx: &Arc<Context>,
    workers: &mut HashMap<String, Slot>,
    uid: String,
    pod: Option<Arc<Pod>>,
) {
    if let Some(slot) = workers.get(&uid)
        && !slot.is_closed()
    {
        slot.send_replace(pod);
        return;
    }
    let (slot, updates) = watch::channel(pod);
    workers.insert(uid.clone(), slot);
    tokio::spawn(worker::Worker::new(ctx.clone(), uid).run(updates));
}

/// Removes sandboxes, pod directories and logs of pods that no worker
/// owns.
async fn sweep_orphans(ctx: &Context, workers: &HashMap<String, Slot>) {
    let mut cri = ctx.cri.clone();
    let sandboxes = match cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
    {
        Ok(r) => r.into_inner().items,
        Err(e) => {
            tracing::debug!("listing sandboxes: {e}");
            return;
        }
    };
    // Only sandboxes the agent made (they carry the pod's uid): others on
    // the same containerd are not the agent's to remove.
    for s in sandboxes {
        let Some(uid) = s.labels.get(UID_LABEL) else {
            continue;
        };
        if !workers.contains_key(uid) {
            tracing::info!(sandbox = %s.id, pod = ?s.metadata.as_ref().map(|m| &m.name), "removing the sandbox of a pod that is gone");
            worker::remove_sandbox(&mut cri, &s.id).await;
        }
    }
    for entry in std::fs::read_dir(ctx.dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if !workers.contains_key(&uid) {
            volumes::clean_up(&entry.path());
        }
    }
    for entry in std::fs::read_dir(ctx.dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let uid = name.rsplit('_').next().unwrap_or_default();
        if !workers.contains_key(uid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `busybox` → `docker.io/library/busybox:latest`, `local/x:v1` →
/// `docker.io/local/x:v1`, as Kubernetes and containerd name images.
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    };
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_domain {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// How often container logs are checked for rotation.
const ROTATE_EVERY: Duration = Duration::from_secs(10);

/// Rotates container logs larger than `max_bytes`, as the kubelet does:
/// the file is renamed with a time suffix, the runtime reopens it, and
/// only the newest `max_files - 1` rotated files are kept.
pub(crate) async fn rotate_logs(ctx: Arc<Context>, max_bytes: u64, max_files: usize) {
    let mut snapshots = ctx.snapshot.subscribe();
    let mut cri = ctx.cri.clone();
    loop {
        tokio::time::sleep(ROTATE_EVERY).await;
        let snapshot = snapshots.borrow_and_update().clone();
        for c in snapshot.containers.values().flatten() {
            if c.state != api::ContainerState::ContainerRunning as i32 || c.log_path.is_empty() {
                continue;
            }
            let path = std::path::Path::new(&c.log_path);
            if std::fs::metadata(path).map_or(0, |m| m.len()) <= max_bytes {
                continue;
            }
            let stamp = rudder_api::time::rfc3339_now()
                .replace(['-', ':'], "")
                .replace('T', "-")
                .trim_end_matches('Z')
                .to_string();
            let rotated = format!("{}.{stamp}", c.log_path);
            if let Err(e) = std::fs::rename(path, &rotated) {
                tracing::warn!(log = %c.log_path, "rotating a container log: {e}");
                continue;
            }
            if let Err(e) = cri
                .runtime
                .reopen_container_log(api::ReopenContainerLogRequest {
                    container_id: c.id.clone(),
                })
                .await
            {
                tracing::warn!(log = %c.log_path, "reopening a rotated container log: {e}");
            }
            // The newest max_files - 1 rotated files stay.
            let mut old = rotated_logs(&c.log_path);
            let keep = max_files.saturating_sub(1);
            while old.len() > keep {
                let _ = std::fs::remove_file(old.remove(0));
            }
        }
    }
}

/// The rotated files of a container log (`<log>.<time>`), oldest first.
pub(crate) fn rotated_logs(path: &str) -> Vec<std::path::PathBuf> {
    let path = std::path::Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_named_as_kubernetes_names_them() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_image("local/busybox:v1"),
            "docker.io/local/busybox:v1"
        );
        assert_eq!(
            normalize_image("localhost/pause:3.10"),
            "localhost/pause:3.10"
        );
        assert_eq!(
            normalize_image("127.0.0.1:5000/x/y:1"),
            "127.0.0.1:5000/x/y:1"
        );
        assert_eq!(normalize_image("quay.io/a/b"), "quay.io/a/b:latest");
    }
}
