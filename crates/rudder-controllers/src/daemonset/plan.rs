//! What a DaemonSet needs done, from what is (kube-controller-manager's
//! daemon set controller as a pure function): the nodes that get a pod,
//! the pods to delete (on nodes that should not run one, finished ones,
//! extras, and old ones in a rolling update), its status and events.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rudder_runtime::events::Kind;
use rudder_runtime::selectors::{RequiredNodeAffinity, untolerated};

use crate::pods::{is_terminal, phase, ready_since};

/// The label naming the revision a daemon pod runs (its hash).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The label with the template generation a daemon pod was made from.
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation the API server keeps the template generation in.
pub const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Pods created or deleted in one reconcile at the most (kube's
/// `BurstReplicas`).
pub const BURST: usize = 250;

/// An event to record on the DaemonSet.
pub type Event = (Kind, &'static str, String);

/// The decisions for one DaemonSet.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that get a new pod.
    pub create: Vec<String>,
    /// Pods to delete (names).
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
    pub events: Vec<Event>,
    /// Seconds until a ready pod becomes available (minReadySeconds).
    pub recheck_in: Option<i64>,
}

/// The tolerations every daemon pod gets (kube's
/// `AddOrUpdateDaemonPodTolerations`): it stays on nodes that are not
/// ready, unreachable, under pressure or cordoned; with host networking
/// also on nodes whose network is not ready.
pub fn tolerations(spec: Option<&PodSpec>) -> Vec<Toleration> {
    let mut out: Vec<Toleration> = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let mut add = |key: &str, effect: &str| {
        out.retain(|t| !(t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect)));
        out.push(Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            value: None,
            toleration_seconds: None,
        });
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add("node.kubernetes.io/unschedulable", "NoSchedule");
    if spec.and_then(|s| s.host_network) == Some(true) {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
    out
}

/// Whether a daemon pod should run on `node`, and whether one there may
/// go on running (kube's `NodeShouldRunDaemonPod`): the template's node
/// name, node selector and required affinity must match; an untolerated
/// NoSchedule taint stops new pods, an untolerated NoExecute one also
/// the running pod.
pub fn should_run(spec: Option<&PodSpec>, tolerations: &[Toleration], node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(wanted) = spec.and_then(|s| s.node_name.as_deref())
        && !wanted.is_empty()
        && wanted != name
    {
        return (false, false);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !RequiredNodeAffinity::of(spec).matches(name, &labels) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if untolerated(&taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return (true, true);
    }
    (
        false,
        untolerated(&taints, tolerations, &["NoExecute"]).is_none(),
    )
}

/// The node a daemon pod is for: its `nodeName`, or the single name its
/// required affinity's `metadata.name In` field names (kube's
/// `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        let f = t
            .match_fields
            .iter()
            .flatten()
            .find(|f| f.key == "metadata.name" && f.operator == "In")?;
        match f.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        }
    })
}

/// The template generation the API server keeps on the DaemonSet.
pub fn template_generation(ds: &DaemonSet) -> Option<String> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GENERATION_ANNOTATION))
        .cloned()
}

/// The decisions for `ds`, whose current revision has `hash`, given the
/// cluster's nodes and the pods it controls, at `now`.
pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], hash: &str, now: i64) -> Plan {
    let mut plan = Plan::default();
    let spec = ds.spec.clone().unwrap_or_default();
    let template = spec.template.spec.as_ref();
    let tolerations = tolerations(template);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let generation = template_generation(ds);
    let updated = |p: &Pod| {
        let labels = p.metadata.labels.as_ref();
        labels.and_then(|l| l.get(HASH_LABEL)).map(String::as_str) == Some(hash)
            || (generation.is_some()
                && labels.and_then(|l| l.get(GENERATION_LABEL)) == generation.as_ref())
    };
    let available =
        |p: &Pod| ready_since(p).is_some_and(|since| min_ready == 0 || since + min_ready < now);

    // Pods by node, leaving out finished pods already being deleted.
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let known: std::collections::BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    for pod in pods {
        if is_terminal(pod) && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match target_node(pod) {
            Some(node) if known.contains(node.as_str()) => {
                by_node.entry(node).or_default().push(pod)
            }
            // Pinned to a node that is gone, and not running anywhere.
            _ if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
                && pod.metadata.deletion_timestamp.is_none() =>
            {
                plan.delete.extend(pod.metadata.name.clone());
            }
            _ => {}
        }
    }
    let sorted = |pods: &mut Vec<&Pod>| {
        pods.sort_by_key(|p| {
            let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            (!scheduled, created, p.metadata.name.clone())
        });
    };

    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let rolling_update = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let mut desired = 0;
    let eligible: Vec<(&str, bool, bool)> = nodes
        .iter()
        .map(|n| {
            let (run, keep) = should_run(template, &tolerations, n);
            (n.metadata.name.as_deref().unwrap_or_default(), run, keep)
        })
        .collect();
    desired += eligible.iter().filter(|(_, run, _)| *run).count();
    let scale = |v: Option<&IntOrString>, default: i32| -> i32 {
        match v {
            Some(IntOrString::Int(n)) => *n,
            Some(IntOrString::String(s)) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .map_or(default, |p| {
                    i32::try_from((p * desired as i64 + 99) / 100).unwrap_or(i32::MAX)
                }),
            None => default,
        }
    };
    let max_surge = scale(rolling_update.and_then(|r| r.max_surge.as_ref()), 0).max(0);
    let mut max_unavailable =
        scale(rolling_update.and_then(|r| r.max_unavailable.as_ref()), 1).max(0);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let surge = rolling && max_surge > 0;

    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let mut unavailable = 0;
    let mut surging = 0;
    let mut candidates: Vec<(&str, &Pod)> = Vec::new();
    for (node, run, keep) in &eligible {
        let mut here: Vec<&Pod> = by_node.get(*node).cloned().unwrap_or_default();
        sorted(&mut here);
        let live: Vec<&Pod> = here
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let scheduled = !here.is_empty();
        if *run {
            if scheduled {
                status.current_number_scheduled += 1;
                let oldest = here[0];
                if ready_since(oldest).is_some() {
                    status.number_ready += 1;
                    if available(oldest) {
                        status.number_available = Some(status.number_available.unwrap_or(0) + 1);
                    } else if let Some(since) = ready_since(oldest) {
                        let left = since + min_ready - now + 1;
                        plan.recheck_in = Some(plan.recheck_in.map_or(left, |r: i64| r.min(left)));
                    }
                }
                if updated(oldest) {
                    status.updated_number_scheduled =
                        Some(status.updated_number_scheduled.unwrap_or(0) + 1);
                }
            }
        } else if scheduled {
            status.number_misscheduled += 1;
        }

        if !keep {
            plan.delete
                .extend(live.iter().filter_map(|p| p.metadata.name.clone()));
            continue;
        }
        let mut running: Vec<&Pod> = Vec::new();
        for pod in &live {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            match phase(pod) {
                Some("Failed") => {
                    plan.events.push((
                        Kind::Warning,
                        "FailedDaemonPod",
                        format!("Found failed daemon pod {ns}/{name} on node {node}, will try to kill it"),
                    ));
                    plan.delete.push(name);
                }
                Some("Succeeded") => {
                    plan.events.push((
                        Kind::Normal,
                        "SucceededDaemonPod",
                        format!("Found succeeded daemon pod {ns}/{name} on node {node}, will try to delete it"),
                    ));
                    plan.delete.push(name);
                }
                _ => running.push(pod),
            }
        }
        if *run
            && running.is_empty()
            && here.iter().all(|p| p.metadata.deletion_timestamp.is_none())
        {
            plan.create.push((*node).to_string());
            if rolling {
                unavailable += 1;
            }
            continue;
        }
        // Too many: keep the oldest (and, surging, the oldest new one).
        let (new, old): (Vec<&Pod>, Vec<&Pod>) = running.iter().copied().partition(|p| updated(p));
        let keep_pods: Vec<&Pod> = if surge {
            new.first()
                .into_iter()
                .chain(old.first())
                .copied()
                .collect()
        } else {
            running.first().into_iter().copied().collect()
        };
        for p in &running {
            if !keep_pods.iter().any(|k| std::ptr::eq(*k, *p)) {
                plan.delete.extend(p.metadata.name.clone());
            }
        }
        if !rolling || !*run {
            continue;
        }
        let new_pod = keep_pods.iter().copied().find(|p| updated(p));
        let old_pod = keep_pods.iter().copied().find(|p| !updated(p));
        match (old_pod, new_pod) {
            (None, Some(n)) if !available(n) => unavailable += 1,
            (None, _) => {}
            (Some(o), None) if surge => {
                if !available(o) {
                    plan.create.push((*node).to_string());
                } else {
                    candidates.push((node, o));
                }
            }
            (Some(o), None) => {
                if available(o) {
                    candidates.push((node, o));
                } else {
                    plan.delete.extend(o.metadata.name.clone());
                    unavailable += 1;
                }
            }
            (Some(o), Some(n)) => {
                if available(n) {
                    plan.delete.extend(o.metadata.name.clone());
                } else {
                    surging += 1;
                    unavailable += 1;
                }
            }
        }
    }
    if rolling {
        if surge {
            let room = usize::try_from(max_surge - surging).unwrap_or(0);
            plan.create
                .extend(candidates.iter().take(room).map(|(n, _)| (*n).to_string()));
        } else {
            let room = usize::try_from(max_unavailable - unavailable).unwrap_or(0);
            plan.delete.extend(
                candidates
                    .iter()
                    .take(room)
                    .filter_map(|(_, p)| p.metadata.name.clone()),
            );
        }
    }
    plan.delete.dedup();
    plan.create.truncate(BURST);
    plan.delete.truncate(BURST);

    status.desired_number_scheduled = i32::try_from(desired).unwrap_or(i32::MAX);
    let available_n = status.number_available.unwrap_or(0);
    status.number_unavailable =
        Some(status.desired_number_scheduled - available_n).filter(|n| *n > 0);
    status.number_available = Some(available_n).filter(|n| *n > 0);
    plan.status = status;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;

    fn ds(spec: Value) -> DaemonSet {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "agent"}});
        if spec.get("template").is_none() {
            spec["template"] =
                json!({"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": []}});
        }
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 2},
            "spec": spec,
        }))
        .unwrap()
    }

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    fn pod(name: &str, node: &str, hash: &str, phase: &str, ready: bool) -> Pod {
        let conditions = if ready {
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T00:00:00Z"}])
        } else {
            json!([])
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"app": "agent", HASH_LABEL: hash},
                         "creationTimestamp": "2023-11-14T00:00:00Z"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn pods_go_where_selector_affinity_and_taints_allow() {
        let nodes = [
            node("a", json!({"role": "web"}), json!([])),
            node(
                "b",
                json!({"role": "web"}),
                json!([{"key": "dedicated", "effect": "NoSchedule"}]),
            ),
            node("c", json!({"role": "db"}), json!([])),
            node(
                "d",
                json!({"role": "web"}),
                json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            ),
        ];
        let mut set = ds(json!({}));
        set.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .node_selector = Some([("role".to_string(), "web".to_string())].into());
        let plan = plan(&set, &nodes, &[], "h1", NOW);
        assert_eq!(
            plan.create,
            vec!["a".to_string(), "d".to_string()],
            "a cordoned node runs daemons"
        );
        assert_eq!(plan.status.desired_number_scheduled, 2);
        assert_eq!(plan.status.number_unavailable, Some(2));
    }

    #[test]
    fn an_untolerated_no_execute_taint_evicts_a_no_schedule_one_keeps() {
        let nodes = [
            node(
                "a",
                json!({}),
                json!([{"key": "dedicated", "effect": "NoSchedule"}]),
            ),
            node(
                "b",
                json!({}),
                json!([{"key": "dedicated", "effect": "NoExecute"}]),
            ),
        ];
        let pods = [
            pod("p-a", "a", "h1", "Running", true),
            pod("p-b", "b", "h1", "Running", true),
        ];
        let plan = plan(&ds(json!({})), &nodes, &pods, "h1", NOW);
        assert_eq!(plan.delete, vec!["p-b".to_string()]);
        assert!(plan.create.is_empty());
        assert_eq!(plan.status.desired_number_scheduled, 0);
        assert_eq!(plan.status.number_misscheduled, 2);
    }

    #[test]
    fn finished_and_extra_pods_are_deleted() {
        let nodes = [
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
        ];
        let mut newer = pod("p-a2", "a", "h1", "Running", true);
        newer.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap(),
            ));
        let pods = [
            pod("p-a", "a", "h1", "Running", true),
            newer,
            pod("p-b", "b", "h1", "Failed", false),
        ];
        let plan = plan(
            &ds(json!({"updateStrategy": {"type": "OnDelete"}})),
            &nodes,
            &pods,
            "h1",
            NOW,
        );
        assert_eq!(
            plan.delete,
            vec!["p-a2".to_string(), "p-b".to_string()],
            "the oldest stays"
        );
        assert_eq!(plan.events[0].1, "FailedDaemonPod");
        assert_eq!(
            plan.events[0].2,
            "Found failed daemon pod kube-system/p-b on node b, will try to kill it"
        );
    }

    #[test]
    fn a_rolling_update_replaces_max_unavailable_nodes_at_a_time() {
        let nodes: Vec<Node> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| node(n, json!({}), json!([])))
            .collect();
        let old: Vec<Pod> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| pod(&format!("p-{n}"), n, "h1", "Running", true))
            .collect();
        let set = ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}}),
        );
        let plan1 = plan(&set, &nodes, &old, "h2", NOW);
        assert_eq!(plan1.delete, vec!["p-a".to_string(), "p-b".to_string()]);
        assert_eq!(plan1.status.updated_number_scheduled, None);

        // a's new pod is not ready yet, b's old one is gone: nothing more.
        let mut pods = vec![pod("n-a", "a", "h2", "Running", false)];
        pods.extend(old[2..].iter().cloned());
        let plan2 = plan(&set, &nodes, &pods, "h2", NOW);
        assert_eq!(plan2.create, vec!["b".to_string()]);
        assert!(plan2.delete.is_empty(), "{:?}", plan2.delete);

        // OnDelete leaves old pods alone.
        let on_delete = ds(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert!(plan(&on_delete, &nodes, &old, "h2", NOW).delete.is_empty());
    }

    #[test]
    fn a_surging_update_starts_the_new_pod_before_the_old_goes() {
        let nodes = [node("a", json!({}), json!([]))];
        let set = ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}),
        );
        let old = pod("p-a", "a", "h1", "Running", true);
        let first = plan(&set, &nodes, std::slice::from_ref(&old), "h2", NOW);
        assert_eq!(first.create, vec!["a".to_string()]);
        assert!(first.delete.is_empty());
        let waiting = plan(
            &set,
            &nodes,
            &[old.clone(), pod("n-a", "a", "h2", "Running", false)],
            "h2",
            NOW,
        );
        assert!(waiting.create.is_empty() && waiting.delete.is_empty());
        let done = plan(
            &set,
            &nodes,
            &[old, pod("n-a", "a", "h2", "Running", true)],
            "h2",
            NOW,
        );
        assert_eq!(done.delete, vec!["p-a".to_string()]);
    }

    #[test]
    fn daemon_pods_tolerate_what_kubernetes_lets_them() {
        let t = tolerations(None);
        let keys: Vec<&str> = t.iter().filter_map(|t| t.key.as_deref()).collect();
        assert_eq!(keys.len(), 6);
        assert!(keys.contains(&"node.kubernetes.io/unreachable"));
        let host: PodSpec =
            serde_json::from_value(json!({"containers": [], "hostNetwork": true})).unwrap();
        assert_eq!(tolerations(Some(&host)).len(), 7);
    }
}
