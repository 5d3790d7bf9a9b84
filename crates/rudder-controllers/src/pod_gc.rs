//! The pod garbage collector (kube-controller-manager's `podgc`), every
//! 20 seconds: finished pods past the threshold go (evicted ones first,
//! then the oldest); pods bound to a node that has been gone for 40
//! seconds are failed (`DisruptionTarget`: DeletionByPodGC) and deleted;
//! pods being deleted that never got a node are deleted. Every deletion is
//! forced (grace period 0): no kubelet is left to finish them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use rudder_runtime::informers::Informers;
use serde_json::json;

/// How often pods are looked at.
const PERIOD: Duration = Duration::from_secs(20);
/// How long a node must be gone before its pods are.
const QUARANTINE: Duration = Duration::from_secs(40);
/// Finished pods kept at the most (kube's terminated-pod-gc-threshold).
pub const THRESHOLD: usize = 12_500;

/// Why a pod goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Finished, past the threshold.
    Terminated,
    /// Its node is gone.
    Orphaned,
    /// Being deleted, never scheduled.
    Unscheduled,
}

/// The pods to delete (namespace, name, uid, why), given the pods, the
/// nodes that exist, and the nodes gone long enough (`gone`).
pub fn plan(
    pods: &[&Pod],
    nodes: &std::collections::BTreeSet<String>,
    gone: &std::collections::BTreeSet<String>,
    threshold: usize,
) -> Vec<(String, String, Option<String>, Reason)> {
    let id = |p: &Pod, why| {
        (
            p.namespace().unwrap_or_default(),
            p.name_any(),
            p.metadata.uid.clone(),
            why,
        )
    };
    let mut out = Vec::new();
    let mut finished: Vec<&&Pod> = pods
        .iter()
        .filter(|p| {
            !matches!(
                crate::pods::phase(p),
                Some("Pending" | "Running" | "Unknown")
            )
        })
        .collect();
    if finished.len() > threshold {
        finished.sort_by_key(|p| {
            let status = p.status.as_ref();
            let evicted = status.and_then(|s| s.phase.as_deref()) == Some("Failed")
                && status.and_then(|s| s.reason.as_deref()) == Some("Evicted");
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second());
            (!evicted, created, p.metadata.name.clone())
        });
        let extra = finished.len() - threshold;
        out.extend(
            finished
                .iter()
                .take(extra)
                .map(|p| id(p, Reason::Terminated)),
        );
    }
    for p in pods {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        match node {
            Some(n) if !nodes.contains(n) && gone.contains(n) => out.push(id(p, Reason::Orphaned)),
            None if p.metadata.deletion_timestamp.is_some() => out.push(id(p, Reason::Unscheduled)),
            _ => {}
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

/// The controller.
pub fn controller(informers: &Informers) -> crate::Run {
    let pods = informers.store::<Pod>();
    let nodes = informers.store::<Node>();
    let client = informers.client().clone();
    Box::pin(async move {
        // Nodes pods are bound to that do not exist, since when.
        let mut missing: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(PERIOD).await;
            if let Err(e) = pass(&client, &pods, &nodes, &mut missing).await {
                crate::retry("pod-garbage-collector", "pods", &e);
            }
        }
    })
}

async fn pass(
    client: &kube::Client,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    missing: &mut HashMap<String, Instant>,
) -> Result<(), crate::Error> {
    let all = pods.state();
    let existing: std::collections::BTreeSet<String> =
        nodes.state().iter().map(|n| n.name_any()).collect();
    let bound: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .filter(|n| !n.is_empty() && !existing.contains(n))
        .collect();
    missing.retain(|n, _| bound.contains(n));
    for n in &bound {
        missing.entry(n.clone()).or_insert_with(Instant::now);
    }
    // Gone for the quarantine, and still gone on a fresh read.
    let api: Api<Node> = Api::all(client.clone());
    let mut gone = std::collections::BTreeSet::new();
    for (n, since) in missing.iter() {
        if since.elapsed() >= QUARANTINE
            && matches!(api.get(n).await, Err(kube::Error::Api(ref e)) if e.code == 404)
        {
            gone.insert(n.clone());
        }
    }
    let refs: Vec<&Pod> = all.iter().map(AsRef::as_ref).collect();
    for (ns, name, uid, why) in plan(&refs, &existing, &gone, THRESHOLD) {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if why == Reason::Orphaned {
            let now = rudder_api::time::rfc3339_now();
            let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                                   "message": "PodGC: node no longer exists", "lastTransitionTime": now});
            let patch = json!({"status": {"phase": "Failed", "conditions": [condition]}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await;
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %name, namespace = %ns, reason = ?why, "pod garbage collector deleted a pod")
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(name: &str, node: Option<&str>, phase: &str, extra: Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2023-11-14T00:00:00Z"},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase},
        });
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn pods_go_past_the_threshold_with_their_node_or_unscheduled() {
        let mut old = pod("old", Some("n1"), "Succeeded", json!({}));
        old.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap(),
            ));
        let evicted = pod(
            "evicted",
            Some("n1"),
            "Failed",
            json!({"status": {"phase": "Failed", "reason": "Evicted"}}),
        );
        let new = pod("new", Some("n1"), "Succeeded", json!({}));
        let orphan = pod("orphan", Some("gone"), "Running", json!({}));
        let young = pod("young", Some("recent"), "Running", json!({}));
        let mut stuck = pod("stuck", None, "Pending", json!({}));
        stuck.metadata.deletion_timestamp = old.metadata.creation_timestamp.clone();
        let running = pod("running", Some("n1"), "Running", json!({}));
        let pods = [&old, &evicted, &new, &orphan, &young, &stuck, &running];
        let nodes = ["n1".to_string()].into();
        let gone = ["gone".to_string()].into();
        let names: Vec<(String, Reason)> = plan(&pods, &nodes, &gone, 1)
            .into_iter()
            .map(|(_, n, _, r)| (n, r))
            .collect();
        assert_eq!(
            names,
            [
                ("evicted".to_string(), Reason::Terminated),
                ("old".to_string(), Reason::Terminated),
                ("orphan".to_string(), Reason::Orphaned),
                ("stuck".to_string(), Reason::Unscheduled),
            ]
        );
    }
}
