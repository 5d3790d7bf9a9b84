//! Static pods: manifests in `<data-dir>/agent/pod-manifests/` (YAML or
//! JSON, one Pod each) that the agent runs by itself, as the kubelet runs
//! its `staticPodPath`. Each is named `<name>-<node>`, its uid is a hash
//! of the manifest and the node, and a mirror pod in the API shows it
//! (annotation `kubernetes.io/config.mirror`, owned by the Node).
//! Deleting the mirror pod does not stop the static pod: the agent makes
//! the mirror again. Removing the manifest stops the pod.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

pub(crate) const MIRROR: &str = "kubernetes.io/config.mirror";
/// On the in-memory static pod only: the uid of its current mirror pod,
/// so that its worker reports its status again to a new mirror.
pub(crate) const MIRROR_UID: &str = "rudder.io/mirror-uid";
const HASH: &str = "kubernetes.io/config.hash";
const SOURCE: &str = "kubernetes.io/config.source";

/// Whether the API pod is the mirror of a static pod.
pub(crate) fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR))
}

/// The static pod a mirror pod stands for (its config hash).
pub(crate) fn mirror_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(MIRROR)
        .map(String::as_str)
}

/// Records `mirror` as the static pod's current mirror; returns whether
/// it is a new one.
pub(crate) fn note_mirror(static_pod: &mut Pod, mirror: &Pod) -> bool {
    let uid = mirror.metadata.uid.clone().unwrap_or_default();
    let annotations = static_pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    if annotations.get(MIRROR_UID) == Some(&uid) {
        return false;
    }
    annotations.insert(MIRROR_UID.into(), uid);
    true
}

/// A stable 128-bit FNV-1a hash, hex: the static pod's uid.
fn hash(parts: &[&[u8]]) -> String {
    let mut out = String::new();
    for offset in [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142] {
        let mut h = offset;
        for part in parts {
            for b in *part {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The static pods the directory defines now, by uid.
pub(crate) fn read(dir: &Path, node: &str) -> HashMap<String, Pod> {
    let mut pods = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return pods;
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let mut pod: Pod = match serde_saphyr::from_str(&text) {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(file = %file.display(), "not a Pod manifest: {e}");
                continue;
            }
        };
        let Some(name) = pod.metadata.name.clone().filter(|n| !n.is_empty()) else {
            tracing::warn!(file = %file.display(), "the static pod has no metadata.name");
            continue;
        };
        let uid = hash(&[text.as_bytes(), node.as_bytes()]);
        let meta = &mut pod.metadata;
        meta.name = Some(format!("{name}-{node}"));
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some("default".into());
        }
        meta.uid = Some(uid.clone());
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        annotations.insert(HASH.into(), uid.clone());
        annotations.insert(SOURCE.into(), "file".into());
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name = Some(node.to_string());
        pods.insert(uid, pod);
    }
    pods
}

/// Creates the mirror pod of `pod` unless the API has it already; a
/// stale mirror (another hash) is replaced.
pub(crate) async fn ensure_mirror(client: kube::Client, pod: Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api.get_opt(&name).await {
        Ok(Some(existing)) if mirror_of(&existing) == Some(uid.as_str()) => return,
        Ok(Some(_)) => {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(pod = %name, "reading the mirror pod: {e}");
            return;
        }
    }
    let node_uid = Api::<Node>::all(client)
        .get_opt(&node)
        .await
        .ok()
        .flatten()
        .and_then(|n| n.metadata.uid);
    let mut mirror = pod;
    mirror.metadata.uid = None;
    let annotations = mirror
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.remove(MIRROR_UID);
    annotations.insert(MIRROR.into(), uid);
    if let Some(node_uid) = node_uid {
        mirror.metadata.owner_references = serde_json::from_value(json!([{
            "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": true,
        }]))
        .ok();
    }
    match api.create(&PostParams::default(), &mirror).await {
        Ok(_) => tracing::info!(pod = %name, "created the mirror pod of a static pod"),
        Err(e) => tracing::debug!(pod = %name, "creating the mirror pod: {e}"),
    }
}

/// Deletes the mirror pod of a static pod that is gone.
pub(crate) async fn delete_mirror(client: kube::Client, pod: Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    if let Ok(Some(existing)) = api.get_opt(&name).await
        && is_mirror(&existing)
    {
        let mut params = DeleteParams::default().grace_period(0);
        params.preconditions = Some(kube::api::Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: None,
        });
        let _ = api.delete(&name, &params).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_static_pods_named_after_the_node() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("broken.yaml"), "not: [a pod")
            .unwrap_or_else(|e| panic!("{e}"));
        let pods = read(dir.path(), "n1");
        assert_eq!(pods.len(), 1);
        let (uid, pod) = pods.iter().next().unwrap_or_else(|| panic!("no pod"));
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(uid.len(), 32);
        assert_eq!(read(dir.path(), "n1").keys().next(), Some(uid), "stable");
        assert_ne!(read(dir.path(), "n2").keys().next(), Some(uid));
    }
}
