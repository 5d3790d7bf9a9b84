//! The node lifecycle controller (kube-controller-manager's
//! `nodelifecycle` and `tainteviction`): a node whose Lease and status
//! have not been renewed for the grace period becomes Unknown, its pods
//! not Ready; nodes get the NoSchedule taints of their conditions and the
//! NoExecute taint of a node not ready or unreachable (one more every ten
//! seconds at the most, none while every node is down: kube's
//! full-disruption mode, which keeps a one-node cluster from evicting
//! everything when its agent restarts); and pods on a NoExecute-tainted
//! node are evicted once their toleration runs out (at once without one,
//! never with one that has no `tolerationSeconds`).
//!
//! It reads Nodes, Leases and pods from the shared informers, every
//! second; the decisions are in [`plan`] and [`eviction_due`].

pub mod plan;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use rudder_runtime::selectors::tolerates;
use serde_json::json;

/// How often nodes and taints are looked at.
const PERIOD: Duration = Duration::from_secs(1);
/// A node never heard from gets this long after it registered.
const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// NoExecute taints added one per this long (kube's node-eviction-rate
/// 0.1, burst 1).
const TAINT_EVERY: Duration = Duration::from_secs(10);

/// What the controller last heard of a node: its Lease's renew time, its
/// Ready heartbeat, and when either last changed (on its own clock).
#[derive(Debug)]
struct Heard {
    renew: Option<String>,
    heartbeat: Option<String>,
    at: Instant,
}

/// The controller; `grace` is kube's node-monitor-grace-period.
pub fn controller(informers: &Informers, recorder: Recorder, grace: Duration) -> crate::Run {
    let nodes = informers.store::<Node>();
    let leases = informers.store::<Lease>();
    let pods = informers.store::<Pod>();
    let client = informers.client().clone();
    Box::pin(async move {
        let mut heard: HashMap<String, Heard> = HashMap::new();
        let mut last_taint: Option<Instant> = None;
        loop {
            tokio::time::sleep(PERIOD).await;
            if let Err(e) = monitor(
                &client,
                &recorder,
                &nodes,
                &leases,
                &pods,
                grace,
                &mut heard,
                &mut last_taint,
            )
            .await
            {
                crate::retry("node-lifecycle", "nodes", &e);
            }
            if let Err(e) = evict(&client, &recorder, &nodes, &pods).await {
                crate::retry("taint-eviction", "pods", &e);
            }
        }
    })
}

/// One pass over the nodes: silent ones become Unknown, taints follow
/// conditions.
#[allow(clippy::too_many_arguments)]
async fn monitor(
    client: &kube::Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    pods: &Store<Pod>,
    grace: Duration,
    heard: &mut HashMap<String, Heard>,
    last_taint: &mut Option<Instant>,
) -> Result<(), crate::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = rudder_api::time::now();
    let all = nodes.state();
    heard.retain(|name, _| all.iter().any(|n| n.metadata.name.as_deref() == Some(name)));
    // Every node down: no NoExecute taints at all (full disruption).
    let all_down = !all.is_empty() && all.iter().all(|n| plan::ready(n) != Some("True"));
    for node in &all {
        let name = node.name_any();
        let renew = leases
            .get(&kube::runtime::reflector::ObjectRef::new(&name).within("kube-node-lease"))
            .and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        let heartbeat = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()));
        let entry = heard.entry(name.clone()).or_insert_with(|| Heard {
            renew: renew.clone(),
            heartbeat: heartbeat.clone(),
            at: Instant::now(),
        });
        if entry.renew != renew || entry.heartbeat != heartbeat {
            *entry = Heard {
                renew,
                heartbeat,
                at: Instant::now(),
            };
        }
        let limit = if plan::ready(node).is_none() {
            STARTUP_GRACE
        } else {
            grace
        };
        let mut node = (**node).clone();
        if entry.at.elapsed() > limit
            && let Some(conditions) = plan::unknown_conditions(&node, now)
        {
            let was_ready = plan::ready(&node) == Some("True");
            let patch = json!({"status": {"conditions": conditions}});
            node = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %name, "node stopped posting its status: Unknown");
            if was_ready {
                recorder.record_node(
                    &name,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                mark_pods_not_ready(client, recorder, pods, &name, now).await?;
            }
        }
        let may_taint = !all_down && last_taint.is_none_or(|t| t.elapsed() >= TAINT_EVERY);
        let keep_no_execute = has_no_execute(&node);
        let Some(taints) = plan::taints(&node, may_taint || keep_no_execute, now) else {
            continue;
        };
        let adds_no_execute = taints.iter().any(|t| t.effect == "NoExecute") && !keep_no_execute;
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                           "spec": {"taints": taints}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                if adds_no_execute {
                    *last_taint = Some(Instant::now());
                    tracing::info!(node = %name, "tainted NoExecute: its pods are evicted as their tolerations allow");
                }
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn has_no_execute(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter().any(|t| {
                t.effect == "NoExecute" && (t.key == plan::NOT_READY || t.key == plan::UNREACHABLE)
            })
        })
}

/// The pods on a node gone Unknown are not Ready (kube's
/// `MarkPodsNotReady`).
async fn mark_pods_not_ready(
    client: &kube::Client,
    recorder: &Recorder,
    pods: &Store<Pod>,
    node: &str,
    now: i64,
) -> Result<(), crate::Error> {
    for pod in pods.state().iter().filter(|p| on_node(p, node)) {
        let Some(mut conditions) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let Some(ready) = conditions
            .iter_mut()
            .find(|c| c.type_ == "Ready" && c.status != "False")
        else {
            continue;
        };
        ready.status = "False".into();
        ready.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default(),
        ));
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": conditions}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => recorder.record_object(
                &pod.object_ref(&()),
                Kind::Warning,
                "NodeNotReady",
                "Node is not ready".into(),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn on_node(pod: &Pod, node: &str) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

/// When a pod on a node with `taints` is to be evicted (seconds since the
/// epoch): at once if a NoExecute taint is not tolerated, after the
/// least `tolerationSeconds` of the tolerations that match (each taint's
/// first), counted from when the newest taint was added; never when none
/// of them has a limit (kube's `getMinTolerationTime`).
pub fn eviction_due(taints: &[Taint], tolerations: &[Toleration], now: i64) -> Option<i64> {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return None;
    }
    let mut used = Vec::new();
    for taint in &no_execute {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return Some(now),
        }
    }
    let since = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(|t| t.0.as_second()))
        .max()
        .unwrap_or(now);
    let seconds: Vec<i64> = used.iter().filter_map(|t| t.toleration_seconds).collect();
    if seconds.is_empty() {
        return None;
    }
    let least = seconds.into_iter().min().unwrap_or(0).max(0);
    Some(since + least)
}

/// Evicts the pods whose tolerations of their node's NoExecute taints ran
/// out: `DisruptionTarget` (DeletionByTaintManager), then a delete with
/// the pod's own grace period.
async fn evict(
    client: &kube::Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
) -> Result<(), crate::Error> {
    let now = rudder_api::time::now();
    let tainted: HashMap<String, Vec<Taint>> = nodes
        .state()
        .iter()
        .filter_map(|n| {
            let taints = n.spec.as_ref()?.taints.clone()?;
            taints
                .iter()
                .any(|t| t.effect == "NoExecute")
                .then(|| (n.name_any(), taints))
        })
        .collect();
    if tainted.is_empty() {
        return Ok(());
    }
    for pod in pods.state() {
        let Some(taints) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| tainted.get(n))
        else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() || crate::pods::is_terminal(&pod) {
            continue;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        if eviction_due(taints, &tolerations, now).is_none_or(|due| due > now) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        recorder.record_object(
            &pod.object_ref(&()),
            Kind::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        );
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                               "message": "Taint manager: deleting due to NoExecute taint",
                               "lastTransitionTime": rudder_api::time::rfc3339(now)});
        let patch = json!({"status": {"conditions": [condition]}});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await;
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %name, namespace = %ns, "evicted from a NoExecute-tainted node")
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

    const NOW: i64 = 1_700_000_000;

    fn taints(v: Value) -> Vec<Taint> {
        serde_json::from_value(v).unwrap()
    }

    fn tolerations(v: Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pods_are_evicted_when_their_tolerations_run_out() {
        let added = rudder_api::time::rfc3339(NOW - 100);
        let t =
            taints(json!([{"key": plan::UNREACHABLE, "effect": "NoExecute", "timeAdded": added}]));
        // The default 300 s toleration: due 300 s after the taint.
        let default = tolerations(
            json!([{"key": plan::UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(eviction_due(&t, &default, NOW), Some(NOW + 200));
        // No toleration: at once; one without seconds: never.
        assert_eq!(eviction_due(&t, &[], NOW), Some(NOW));
        let forever = tolerations(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_due(&t, &forever, NOW), None);
        // The first matching toleration of each taint counts.
        let two = tolerations(
            json!([{"key": plan::UNREACHABLE, "operator": "Exists", "tolerationSeconds": 5},
                                     {"operator": "Exists", "tolerationSeconds": 1000}]),
        );
        assert_eq!(eviction_due(&t, &two, NOW), Some(NOW - 95));
        assert_eq!(
            eviction_due(
                &taints(json!([{"key": "k", "effect": "NoSchedule"}])),
                &[],
                NOW
            ),
            None
        );
    }
}
