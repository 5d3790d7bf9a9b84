//! What a container's environment, downward API files and `$(VAR)`
//! references resolve to, with the kubelet's messages for what is missing.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;
use rudder_api::quantity;

/// ConfigMaps and Secrets read during one sync of a pod, each read once.
pub(crate) struct Sources {
    client: kube::Client,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

/// A ConfigMap's or Secret's data as bytes.
pub(crate) type Data = BTreeMap<String, Vec<u8>>;

impl Sources {
    pub(crate) fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    /// A ConfigMap's data and binaryData; `Ok(None)` if it does not exist.
    pub(crate) async fn config_map(&mut self, name: &str) -> Result<Option<Data>, String> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading configmap {name:?}: {e}"))?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps[name].as_ref().map(|cm| {
            let mut data: Data = cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.iter().flatten() {
                data.insert(k.clone(), v.0.clone());
            }
            data
        }))
    }

    /// A Secret's data (and stringData); `Ok(None)` if it does not exist.
    pub(crate) async fn secret(&mut self, name: &str) -> Result<Option<Data>, String> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading secret {name:?}: {e}"))?;
            self.secrets.insert(name.to_string(), secret);
        }
        Ok(self.secrets[name].as_ref().map(|s| {
            let mut data: Data = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            for (k, v) in s.string_data.iter().flatten() {
                data.insert(k.clone(), v.clone().into_bytes());
            }
            data
        }))
    }
}

/// The node's allocatable CPU (milli) and memory (bytes): what
/// `resourceFieldRef` reports for limits a container does not set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeResources {
    pub(crate) cpu_milli: i128,
    pub(crate) memory: i128,
}

/// The container's environment: `envFrom` first, then `env` (which wins),
/// with `$(VAR)` references expanded. Errors are the kubelet's
/// CreateContainerConfigError messages.
pub(crate) async fn environment(
    pod: &Pod,
    c: &Container,
    sources: &mut Sources,
    node: NodeResources,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(name, _)| *name == k)
    {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, kind, name, optional) = if let Some(r) = &from.config_map_ref {
            (
                sources.config_map(&r.name).await?,
                "configmap",
                &r.name,
                r.optional,
            )
        } else if let Some(r) = &from.secret_ref {
            (
                sources.secret(&r.name).await?,
                "secret",
                &r.name,
                r.optional,
            )
        } else {
            continue;
        };
        let Some(data) = data else {
            if optional == Some(true) {
                continue;
            }
            return Err(format!("{kind} {name:?} not found"));
        };
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if valid_env_name(&key) {
                set(&mut env, key, String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    for var in c.env.iter().flatten() {
        let value = if let Some(v) = &var.value {
            expand(v, &env)
        } else if let Some(from) = &var.value_from {
            let key_ref = if let Some(r) = &from.config_map_key_ref {
                let data = sources.config_map(&r.name).await?;
                Some(("ConfigMap", &r.name, &r.key, r.optional, data))
            } else if let Some(r) = &from.secret_key_ref {
                let data = sources.secret(&r.name).await?;
                Some(("Secret", &r.name, &r.key, r.optional, data))
            } else {
                None
            };
            if let Some((kind, name, key, optional, data)) = key_ref {
                match data.map(|d| d.get(key).cloned()) {
                    Some(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                    _ if optional == Some(true) => continue,
                    Some(None) => {
                        return Err(format!("couldn't find key {key} in {kind} {ns}/{name}"));
                    }
                    None => {
                        return Err(format!("{} {name:?} not found", kind.to_lowercase()));
                    }
                }
            } else if let Some(r) = &from.field_ref {
                field(pod, &r.field_path)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    None | Some("") => c,
                    Some(name) => find_container(pod, name)
                        .ok_or_else(|| format!("container {name:?} not found in the pod"))?,
                };
                resource(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    node,
                )?
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

fn find_container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// A C identifier-like name, as envFrom requires (others are skipped).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Expands `$(NAME)` from `env` (unknown names stay as written) and
/// `$$` to `$`, as Kubernetes' expansion does.
pub(crate) fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A downward API `fieldRef` value.
pub(crate) fn field(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath {path:?}"));
            }
        }
    };
    Ok(value)
}

/// Labels or annotations as the downward API writes them: `k="v"` lines,
/// sorted, with Go's quoting.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `resourceFieldRef` value: the container's limit or request divided
/// by `divisor` and rounded up; unset limits are the node's allocatable.
pub(crate) fn resource(
    c: &Container,
    name: &str,
    divisor: Option<&str>,
    node: NodeResources,
) -> Result<String, String> {
    let (kind, resource) = name
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource {name:?}"))?;
    let r = c.resources.as_ref();
    let map = match kind {
        "limits" => r.and_then(|r| r.limits.as_ref()),
        "requests" => r.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource {name:?}")),
    };
    let set = map
        .and_then(|m| m.get(resource))
        .and_then(|q| quantity::parse_milli(&q.0));
    let milli = match (kind, resource, set) {
        (_, _, Some(v)) => v,
        ("limits", "cpu", None) => node.cpu_milli,
        ("limits", "memory", None) => node.memory * 1000,
        (_, "cpu" | "memory" | "ephemeral-storage", None) => 0,
        _ => return Err(format!("unsupported container resource {name:?}")),
    };
    let divisor = match divisor.filter(|d| !d.is_empty()) {
        Some(d) => quantity::parse_milli(d)
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("invalid divisor {d:?}"))?,
        None => 1000,
    };
    // Rounded up, at least 1 for a non-zero CPU (as the kubelet does).
    let mut value = (milli + divisor - 1).div_euclid(divisor);
    if resource == "cpu" && milli > 0 {
        value = value.max(1);
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_as_in_kubernetes() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)", &env), "x-$(B)");
        assert_eq!(expand("$$(A) $ $", &env), "$(A) $ $");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn resource_values_are_rounded_up_to_the_divisor() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}
        }))
        .unwrap_or_default();
        let node = NodeResources {
            cpu_milli: 2000,
            memory: 1 << 30,
        };
        assert_eq!(resource(&c, "limits.cpu", None, node).as_deref(), Ok("1"));
        assert_eq!(
            resource(&c, "limits.cpu", Some("1m"), node).as_deref(),
            Ok("250")
        );
        assert_eq!(
            resource(&c, "limits.memory", Some("1Mi"), node).as_deref(),
            Ok("64")
        );
        assert_eq!(
            resource(&c, "requests.memory", None, node).as_deref(),
            Ok("0")
        );
        let bare = Container::default();
        assert_eq!(
            resource(&bare, "limits.cpu", Some("1m"), node).as_deref(),
            Ok("2000")
        );
    }
}
