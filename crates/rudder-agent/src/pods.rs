//! Pods on this node, first cut: every pod bound here gets a sandbox and
//! its containers through CRI (command, args, workingDir, plain env
//! values), its status reported (phase, IPs, container states,
//! conditions), and on deletion its sandbox is stopped and removed before
//! the Pod object goes. Level-triggered: each pass compares the pods bound
//! here with the sandboxes the runtime has.
//!
//! Not yet: restarts and back-off, init containers, probes, volumes,
//! env from ConfigMaps/Secrets, resources, events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use rudder_cri::{Cri, api};
use serde_json::{Value, json};

const UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Pods' cgroups go under this parent.
pub const CGROUP_PARENT: &str = "/kubepods";
/// How often pods and sandboxes are compared.
const PASS_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Worker {
    pub(crate) pods: Api<Pod>,
    pub(crate) node: String,
    pub(crate) node_ip: String,
    pub(crate) socket: PathBuf,
    pub(crate) logs: PathBuf,
}

impl Worker {
    pub(crate) async fn run(self) {
        let mut reported: HashMap<String, Value> = HashMap::new();
        let mut cri = None;
        loop {
            // One connection for the worker's life (the channel reconnects
            // by itself if containerd restarts).
            if cri.is_none() {
                match Cri::connect(&self.socket).await {
                    Ok(c) => cri = Some(c),
                    Err(e) => tracing::warn!("pod worker: {e}"),
                }
            }
            if let Some(cri) = cri.as_mut()
                && let Err(e) = self.pass(cri, &mut reported).await
            {
                tracing::warn!("pod worker: {e}");
            }
            tokio::time::sleep(PASS_EVERY).await;
        }
    }

    async fn pass(
        &self,
        cri: &mut Cri,
        reported: &mut HashMap<String, Value>,
    ) -> Result<(), String> {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let pods = self
            .pods
            .list(&params)
            .await
            .map_err(|e| e.to_string())?
            .items;
        let sandboxes = cri
            .runtime
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .items;
        let mut by_uid: HashMap<String, Vec<api::PodSandbox>> = HashMap::new();
        for s in sandboxes {
            let uid = s.labels.get(UID_LABEL).cloned().unwrap_or_default();
            by_uid.entry(uid).or_default().push(s);
        }
        for pod in &pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let mine = by_uid.remove(&uid).unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                for s in &mine {
                    remove_sandbox(cri, &s.id).await;
                }
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                let api = self.namespaced(pod);
                if let Err(e) = api.delete(&name, &params).await {
                    tracing::debug!(pod = %name, "deleting: {e}");
                }
                reported.remove(&uid);
                continue;
            }
            let sandbox = match mine
                .iter()
                .find(|s| s.state == api::PodSandboxState::SandboxReady as i32)
            {
                Some(s) => Some(s.id.clone()),
                None if mine.is_empty() => match self.start(cri, pod).await {
                    Ok(id) => Some(id),
                    Err(e) => {
                        tracing::warn!(pod = ?pod.metadata.name, "starting: {e}");
                        self.report(pod, reported, json!({"phase": "Pending", "message": e, "reason": "CreatePodSandboxError"})).await;
                        None
                    }
                },
                // A sandbox that is not ready (its pod ended): keep it for
                // logs until the pod is deleted.
                None => mine.first().map(|s| s.id.clone()),
            };
            if let Some(id) = sandbox {
                let status = self.status(cri, pod, &id).await;
                self.report(pod, reported, status).await;
            }
        }
        // Sandboxes whose pods are gone.
        for s in by_uid.into_values().flatten() {
            remove_sandbox(cri, &s.id).await;
        }
        Ok(())
    }

    fn namespaced(&self, pod: &Pod) -> Api<Pod> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        Api::namespaced(self.pods.clone().into_client(), &ns)
    }

    fn sandbox_config(&self, pod: &Pod) -> api::PodSandboxConfig {
        let meta = &pod.metadata;
        let (name, ns, uid) = (
            meta.name.clone().unwrap_or_default(),
            meta.namespace.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
        );
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name.clone());
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.clone(),
                uid: uid.clone(),
                namespace: ns.clone(),
                attempt: 0,
            }),
            hostname,
            log_directory: self
                .logs
                .join(format!("{ns}_{name}_{uid}"))
                .to_string_lossy()
                .into_owned(),
            labels: HashMap::from([
                (UID_LABEL.into(), uid),
                ("io.kubernetes.pod.name".into(), name),
                ("io.kubernetes.pod.namespace".into(), ns),
            ]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: CGROUP_PARENT.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Runs the pod's sandbox and starts its containers.
    async fn start(&self, cri: &mut Cri, pod: &Pod) -> Result<String, String> {
        let config = self.sandbox_config(pod);
        std::fs::create_dir_all(&config.log_directory).map_err(|e| e.to_string())?;
        let id = cri
            .runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .pod_sandbox_id;
        for c in pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
        {
            let image = normalize_image(c.image.as_deref().unwrap_or_default());
            let envs = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| {
                    Some(api::KeyValue {
                        key: e.name.clone(),
                        value: e.value.clone()?,
                    })
                })
                .collect();
            let created = cri
                .runtime
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: id.clone(),
                    config: Some(api::ContainerConfig {
                        metadata: Some(api::ContainerMetadata {
                            name: c.name.clone(),
                            attempt: 0,
                        }),
                        image: Some(api::ImageSpec {
                            image,
                            ..Default::default()
                        }),
                        command: c.command.clone().unwrap_or_default(),
                        args: c.args.clone().unwrap_or_default(),
                        working_dir: c.working_dir.clone().unwrap_or_default(),
                        envs,
                        labels: HashMap::from([
                            ("io.kubernetes.container.name".into(), c.name.clone()),
                            (
                                UID_LABEL.into(),
                                config
                                    .metadata
                                    .as_ref()
                                    .map(|m| m.uid.clone())
                                    .unwrap_or_default(),
                            ),
                        ]),
                        log_path: format!("{}/0.log", c.name),
                        ..Default::default()
                    }),
                    sandbox_config: Some(config.clone()),
                })
                .await;
            // A container that cannot be created shows in the status as
            // waiting; the others still start.
            let Ok(created) = created else { continue };
            let _ = cri
                .runtime
                .start_container(api::StartContainerRequest {
                    container_id: created.into_inner().container_id,
                })
                .await;
        }
        Ok(id)
    }

    /// The pod's status as the runtime has it.
    async fn status(&self, cri: &mut Cri, pod: &Pod, sandbox: &str) -> Value {
        let ip = cri
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
        let mut statuses = Vec::new();
        let (mut running, mut exited, mut failed) = (0, 0, 0);
        let spec_containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        for c in &spec_containers {
            let found = listed
                .iter()
                .find(|x| x.metadata.as_ref().is_some_and(|m| m.name == c.name));
            let status = match found {
                Some(x) => cri
                    .runtime
                    .container_status(api::ContainerStatusRequest {
                        container_id: x.id.clone(),
                        verbose: false,
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().status),
                None => None,
            };
            let image = c.image.clone().unwrap_or_default();
            let entry = match status {
                Some(s) if s.state == api::ContainerState::ContainerRunning as i32 => {
                    running += 1;
                    json!({"name": c.name, "image": image, "imageID": s.image_ref, "containerID": format!("containerd://{}", s.id),
                        "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": time(s.started_at)}}})
                }
                Some(s) if s.state == api::ContainerState::ContainerExited as i32 => {
                    exited += 1;
                    if s.exit_code != 0 {
                        failed += 1;
                    }
                    let reason = if s.reason.is_empty() {
                        if s.exit_code == 0 {
                            "Completed".to_string()
                        } else {
                            "Error".to_string()
                        }
                    } else {
                        s.reason.clone()
                    };
                    json!({"name": c.name, "image": image, "imageID": s.image_ref, "containerID": format!("containerd://{}", s.id),
                        "ready": false, "started": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": s.exit_code, "reason": reason,
                            "startedAt": time(s.started_at), "finishedAt": time(s.finished_at)}}})
                }
                _ => {
                    json!({"name": c.name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": if found.is_some() { "ContainerCreating" } else { "CreateContainerError" }}}})
                }
            };
            statuses.push(entry);
        }
        let total = spec_containers.len();
        let phase = if total > 0 && exited == total {
            if failed > 0 { "Failed" } else { "Succeeded" }
        } else if running + exited == total && running > 0 {
            "Running"
        } else {
            "Pending"
        };
        let ready = total > 0 && running == total;
        let now = rudder_api::time::rfc3339_now();
        let cond = |kind: &str, ok: bool| json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
        let mut status = json!({
            "phase": phase,
            "hostIP": self.node_ip,
            "hostIPs": [{"ip": self.node_ip}],
            "containerStatuses": statuses,
            "conditions": [cond("PodReadyToStartContainers", true), cond("Initialized", true), cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", true)],
        });
        if !ip.is_empty() {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        status
    }

    /// Writes `status` if what it says changed (condition times aside).
    async fn report(&self, pod: &Pod, reported: &mut HashMap<String, Value>, mut status: Value) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = comparable(&status);
        if reported.get(&uid) == Some(&key) {
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
        match self
            .namespaced(pod)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                reported.insert(uid, key);
            }
            Err(e) => tracing::debug!(pod = %name, "status: {e}"),
        }
    }
}

/// The status without times, to tell real changes from a pass's rewrite.
fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conditions) = s["conditions"].as_array_mut() {
        for c in conditions {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
            }
        }
    }
    s
}

async fn remove_sandbox(cri: &mut Cri, id: &str) {
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

/// CRI timestamps (nanoseconds) as RFC 3339.
fn time(nanos: i64) -> Value {
    if nanos <= 0 {
        return Value::Null;
    }
    json!(rudder_api::time::rfc3339(nanos / 1_000_000_000))
}

/// `busybox` → `docker.io/library/busybox:latest`, `local/x:v1` →
/// `docker.io/local/x:v1`, as Kubernetes and containerd name images.
pub fn normalize_image(image: &str) -> String {
    let (name, tagged) = match image.rsplit_once('/') {
        Some((_, last)) => (image.to_string(), last.contains(':') || last.contains('@')),
        None => (
            image.to_string(),
            image.contains(':') || image.contains('@'),
        ),
    };
    let name = if tagged {
        name
    } else {
        format!("{name}:latest")
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
