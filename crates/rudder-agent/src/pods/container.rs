//! A container's CRI configuration from its spec: mounts (volumes,
//! subPath, `/etc/hosts`, the termination message file), resources as
//! cgroup settings, and the security context.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use rudder_api::quantity;
use rudder_cri::api;

use super::volumes::Paths;

/// The CFS period the kubelet uses (100 ms).
const CPU_PERIOD: i64 = 100_000;

/// What [`config`] needs besides the spec.
pub(crate) struct Inputs<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) container: &'a Container,
    pub(crate) attempt: u32,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) volumes: &'a Paths,
    /// `<agent>/pods/<uid>`.
    pub(crate) pod_dir: &'a Path,
    pub(crate) image: String,
    /// The image's user (uid or name), to check `runAsNonRoot`.
    pub(crate) image_user: Option<String>,
}

/// The container's CRI config; the error is a CreateContainerConfigError
/// message.
pub(crate) fn config(i: Inputs<'_>) -> Result<api::ContainerConfig, String> {
    let c = i.container;
    let spec = i.pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = i.volumes.get(&m.name).ok_or_else(|| {
            format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, c.name
            )
        })?;
        let mut host = base.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                ));
            }
            host = base.join(sub);
            if std::fs::symlink_metadata(&host).is_err() {
                std::fs::create_dir_all(&host).map_err(|e| e.to_string())?;
            }
        }
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => api::MountPropagation::PropagationBidirectional,
            _ => api::MountPropagation::PropagationPrivate,
        };
        mounts.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false),
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    let mounts_at = |mounts: &[api::Mount], p: &str| mounts.iter().any(|m| m.container_path == p);
    if !host_network && !mounts_at(&mounts, "/etc/hosts") {
        mounts.push(api::Mount {
            container_path: "/etc/hosts".into(),
            host_path: i.pod_dir.join("etc-hosts").to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let message_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !message_path.is_empty() && !mounts_at(&mounts, &message_path) {
        let file = termination_file(i.pod_dir, &c.name, i.attempt);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&file, b"").map_err(|e| e.to_string())?;
        // Writable by any user the container runs as, as the kubelet
        // makes it.
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| e.to_string())?;
        mounts.push(api::Mount {
            container_path: message_path,
            host_path: file.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| super::env::expand(s, &i.env))
            .collect()
    };
    let pod_security = spec.and_then(|s| s.security_context.as_ref());
    let security = security_context(
        i.pod,
        c,
        pod_security,
        c.security_context.as_ref(),
        i.image_user.as_deref(),
    )?;
    let meta = &i.pod.metadata;
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: i.attempt,
        }),
        image: Some(api::ImageSpec {
            image: i.image,
            ..Default::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: i
            .env
            .iter()
            .map(|(k, v)| api::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels: HashMap::from([
            ("io.kubernetes.container.name".into(), c.name.clone()),
            (
                super::UID_LABEL.into(),
                meta.uid.clone().unwrap_or_default(),
            ),
            (
                "io.kubernetes.pod.name".into(),
                meta.name.clone().unwrap_or_default(),
            ),
            (
                "io.kubernetes.pod.namespace".into(),
                meta.namespace.clone().unwrap_or_default(),
            ),
        ]),
        log_path: format!("{}/{}.log", c.name, i.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources(c)),
            security_context: Some(security),
        }),
        ..Default::default()
    })
}

/// Where the container's termination message file is on the node.
pub(crate) fn termination_file(
    pod_dir: &Path,
    container: &str,
    attempt: u32,
) -> std::path::PathBuf {
    pod_dir
        .join("containers")
        .join(container)
        .join(format!("termination-log-{attempt}"))
}

/// Limits and requests as cgroup settings, as the kubelet converts them.
pub(crate) fn resources(c: &Container) -> api::LinuxContainerResources {
    let r = c.resources.as_ref();
    let get = |map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
               name: &str| {
        map.and_then(|m| m.get(name))
            .and_then(|q| quantity::parse_milli(&q.0))
    };
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let cpu_limit = get(limits, "cpu");
    // Requests default to limits.
    let cpu_request = get(requests, "cpu").or(cpu_limit);
    let memory_limit = get(limits, "memory").map(|m| (m / 1000) as i64);
    let shares = match cpu_request {
        Some(milli) => ((milli * 1024) / 1000).max(2) as i64,
        None => 2,
    };
    let quota = cpu_limit.map_or(0, |milli| ((milli as i64) * CPU_PERIOD / 1000).max(1000));
    api::LinuxContainerResources {
        cpu_period: if quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit.unwrap_or(0),
        // No swap beyond the limit, as the kubelet sets when swap is off.
        memory_swap_limit_in_bytes: memory_limit.unwrap_or(0),
        ..Default::default()
    }
}

fn security_context(
    pod: &Pod,
    c: &Container,
    pod_sc: Option<&PodSecurityContext>,
    sc: Option<&SecurityContext>,
    image_user: Option<&str>,
) -> Result<api::LinuxContainerSecurityContext, String> {
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if non_root {
        let who = format!(
            "pod: \"{}_{}({})\", container: {}",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default(),
            c.name
        );
        match run_as_user {
            Some(0) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy ({who})"
                ));
            }
            Some(_) => {}
            None => {
                let user = image_user.unwrap_or("").split(':').next().unwrap_or("");
                match user.parse::<i64>() {
                    Ok(0) => {
                        return Err(format!(
                            "container has runAsNonRoot and image will run as root ({who})"
                        ));
                    }
                    Ok(_) => {}
                    Err(_) if user.is_empty() || user == "root" => {
                        return Err(format!(
                            "container has runAsNonRoot and image will run as root ({who})"
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root ({who})"
                        ));
                    }
                }
            }
        }
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    Ok(api::LinuxContainerSecurityContext {
        capabilities: caps.map(|caps| api::Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        privileged,
        namespace_options: Some(namespaces(pod)),
        run_as_user: run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups: pod_sc
            .and_then(|s| s.supplemental_groups.clone())
            .unwrap_or_default(),
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        ..Default::default()
    })
}

/// The pod's namespaces: its own, or the node's with hostNetwork,
/// hostPID and hostIPC.
pub(crate) fn namespaces(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.as_ref();
    let mode = |host: Option<bool>| {
        if host.unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    let pid = if spec.and_then(|s| s.host_pid).unwrap_or(false) {
        api::NamespaceMode::Node as i32
    } else if spec
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false)
    {
        api::NamespaceMode::Pod as i32
    } else {
        api::NamespaceMode::Container as i32
    };
    api::NamespaceOption {
        network: mode(spec.and_then(|s| s.host_network)),
        pid,
        ipc: mode(spec.and_then(|s| s.host_ipc)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_cgroup_settings_as_the_kubelet_converts_them() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}
        }))
        .unwrap_or_default();
        let r = resources(&c);
        assert_eq!(
            (
                r.cpu_period,
                r.cpu_quota,
                r.cpu_shares,
                r.memory_limit_in_bytes
            ),
            (100_000, 50_000, 256, 64 << 20)
        );
        let r = resources(&Container::default());
        assert_eq!(
            (r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes),
            (0, 2, 0)
        );
    }
}
