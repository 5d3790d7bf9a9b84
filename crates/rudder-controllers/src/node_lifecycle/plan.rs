//! What the node lifecycle controller decides for a node (kube's
//! `nodelifecycle` as pure functions): its conditions once it stopped
//! heartbeating, and the taints its conditions call for.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The conditions a silent node's heartbeat vouched for.
const WATCHED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The NoSchedule taints a condition calls for (kube's
/// `nodeConditionToTaintKeyStatusMap`).
const BY_CONDITION: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];

fn time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

/// The node's Ready status (`None` without a Ready condition).
pub fn ready(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// A node not heard from: its watched conditions become Unknown
/// (`NodeStatusUnknown`, "Kubelet stopped posting node status."), missing
/// ones are added as never posted; `None` when nothing changes.
pub fn unknown_conditions(node: &Node, now: i64) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for kind in WATCHED {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The node's taints as its conditions call for: the NoSchedule taints
/// of its conditions and cordon, and (if `no_execute`) the NoExecute
/// taint of a node not ready or unreachable. Other taints are kept, and
/// so are the times of those already there; `None` when nothing changes.
pub fn taints(node: &Node, no_execute: bool, now: i64) -> Option<Vec<Taint>> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut wanted: BTreeSet<(&str, &str)> = BY_CONDITION
        .iter()
        .filter(|(kind, status, _)| {
            conditions
                .iter()
                .any(|c| c.type_ == *kind && c.status == *status)
        })
        .map(|(_, _, key)| (*key, "NoSchedule"))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.insert((UNSCHEDULABLE, "NoSchedule"));
    }
    if no_execute {
        match ready(node) {
            Some("False") => {
                wanted.insert((NOT_READY, "NoExecute"));
            }
            Some("Unknown") | None => {
                wanted.insert((UNREACHABLE, "NoExecute"));
            }
            _ => {}
        }
    }
    let managed = |t: &Taint| {
        let key = t.key.as_str();
        match t.effect.as_str() {
            "NoSchedule" => key == UNSCHEDULABLE || BY_CONDITION.iter().any(|(_, _, k)| *k == key),
            "NoExecute" => key == NOT_READY || key == UNREACHABLE,
            _ => false,
        }
    };
    let old = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut new: Vec<Taint> = old
        .iter()
        .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !new.iter().any(|t| t.key == *key && t.effect == *effect) {
            new.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                value: None,
                time_added: Some(time(now)),
            });
        }
    }
    (new != old).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;

    fn node(conditions: Value, taints: Value, unschedulable: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T00:00:00Z"},
            "spec": {"taints": taints, "unschedulable": unschedulable},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn ready_true() -> Value {
        json!([{"type": "Ready", "status": "True", "reason": "KubeletReady"},
               {"type": "MemoryPressure", "status": "False"}])
    }

    #[test]
    fn a_silent_node_s_conditions_become_unknown_once() {
        let n = node(ready_true(), json!([]), false);
        let conditions = unknown_conditions(&n, NOW).unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let never = conditions
            .iter()
            .find(|c| c.type_ == "PIDPressure")
            .unwrap();
        assert_eq!(never.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        let again = node(serde_json::to_value(&conditions).unwrap(), json!([]), false);
        assert_eq!(unknown_conditions(&again, NOW), None);
    }

    #[test]
    fn taints_follow_the_conditions_and_keep_the_others() {
        let unknown = json!([{"type": "Ready", "status": "Unknown"}, {"type": "DiskPressure", "status": "True"}]);
        let n = node(
            unknown,
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            true,
        );
        let t = taints(&n, true, NOW).unwrap();
        let keys: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                (UNREACHABLE, "NoExecute"),
                (UNREACHABLE, "NoSchedule"),
                (UNSCHEDULABLE, "NoSchedule"),
            ]
        );
        assert!(t[1].time_added.is_some());
        // Ready again: the controller's taints go, the user's stays.
        let back = node(ready_true(), serde_json::to_value(&t).unwrap(), false);
        let t = taints(&back, true, NOW).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "dedicated");
        assert_eq!(
            taints(
                &node(ready_true(), serde_json::to_value(&t).unwrap(), false),
                true,
                NOW
            ),
            None
        );
    }

    #[test]
    fn no_execute_taints_wait_when_told_to() {
        let n = node(
            json!([{"type": "Ready", "status": "False"}]),
            json!([]),
            false,
        );
        let t = taints(&n, false, NOW).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].key.as_str(), t[0].effect.as_str()),
            (NOT_READY, "NoSchedule")
        );
        let t = taints(&n, true, NOW).unwrap();
        assert!(
            t.iter()
                .any(|t| t.key == NOT_READY && t.effect == "NoExecute")
        );
    }
}
