//! What a ReplicaSet needs done, from what is (kube-controller-manager's
//! replica set controller, as a pure function): which pods it adopts or
//! lets go, how many it creates, which it deletes, and its status.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use rudder_api::selector::{LabelSelector, selector_string};
use serde_json::{Map, Value};

use crate::pods::{controller_uid, deletion_rank, is_active, labels_of, ready_since};

/// Pods created in one reconcile at the most (kube's burstReplicas).
pub const BURST: usize = 500;

/// The decisions for one ReplicaSet.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphans matching the selector, to take as its own.
    pub adopt: Vec<String>,
    /// Its pods whose labels no longer match, to let go.
    pub release: Vec<String>,
    /// Pods to create.
    pub create: usize,
    /// Pods to delete, the first to go first.
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
    /// Seconds until a ready pod becomes available (minReadySeconds).
    pub recheck_in: Option<i64>,
}

/// The decisions for `rs`, given the pods of its namespace, at `now`
/// (seconds since the epoch).
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: i64) -> Plan {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let selector = spec
        .and_then(|s| serde_json::to_value(&s.selector).ok())
        .map(|s| selector_string(&s))
        .and_then(|s| LabelSelector::parse(&s).ok());
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut plan = Plan::default();
    let mut mine: Vec<&Pod> = Vec::new();
    for pod in pods {
        let labels = labels_of(pod);
        // An empty selector selects nothing (validation refuses it).
        let matches = selector
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.matches(Some(&labels)));
        let name = pod.metadata.name.clone().unwrap_or_default();
        match controller_uid(pod) {
            Some(owner) if owner == uid => {
                if matches {
                    mine.push(pod);
                } else if !deleting {
                    plan.release.push(name);
                }
            }
            Some(_) => {}
            None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                plan.adopt.push(name);
                mine.push(pod);
            }
            None => {}
        }
    }
    let active: Vec<&Pod> = mine.iter().copied().filter(|p| is_active(p)).collect();
    let wanted = usize::try_from(spec.and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
    if !deleting {
        if active.len() < wanted {
            plan.create = (wanted - active.len()).min(BURST);
        } else if active.len() > wanted {
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            plan.delete = ranked
                .iter()
                .take(active.len() - wanted)
                .filter_map(|p| p.metadata.name.clone())
                .collect();
        }
    }
    let template_labels: Map<String, Value> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| serde_json::to_value(&m.labels).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let min_ready = i64::from(spec.and_then(|s| s.min_ready_seconds).unwrap_or(0));
    let mut ready = 0;
    let mut available = 0;
    for pod in &active {
        if let Some(since) = ready_since(pod) {
            ready += 1;
            let left = since + min_ready - now;
            if min_ready == 0 || left <= 0 {
                available += 1;
            } else {
                plan.recheck_in = Some(plan.recheck_in.map_or(left, |r: i64| r.min(left)));
            }
        }
    }
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = labels_of(p);
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    plan.status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(available)),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}}
        }))
        .unwrap()
    }

    fn pod(name: &str, owner: Option<&str>, labels: Value, status: Value) -> Pod {
        let owners: Vec<Value> = owner
            .map(|uid| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": uid, "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "ownerReferences": owners,
                         "creationTimestamp": "2023-11-14T00:00:00Z"},
            "spec": {"containers": []},
            "status": status,
        }))
        .unwrap()
    }

    fn ready(at: i64) -> Value {
        let t = rudder_api::time::rfc3339(at);
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]})
    }

    #[test]
    fn creates_what_is_missing_and_counts_its_pods() {
        let pods = [
            pod(
                "a",
                Some("rs-uid"),
                json!({"app": "web", "tier": "front"}),
                ready(NOW - 100),
            ),
            pod(
                "b",
                Some("rs-uid"),
                json!({"app": "web"}),
                json!({"phase": "Pending"}),
            ),
            pod(
                "gone",
                Some("rs-uid"),
                json!({"app": "web"}),
                json!({"phase": "Failed"}),
            ),
            pod(
                "other",
                Some("other-uid"),
                json!({"app": "web"}),
                ready(NOW),
            ),
        ];
        let p = plan(&rs(4, 0), &pods, NOW);
        assert_eq!(p.create, 2, "two active of four");
        assert!(p.delete.is_empty() && p.adopt.is_empty() && p.release.is_empty());
        assert_eq!(p.status.replicas, 2);
        assert_eq!(p.status.fully_labeled_replicas, Some(1));
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(2));
    }

    #[test]
    fn adopts_matching_orphans_and_releases_pods_that_stopped_matching() {
        let pods = [
            pod("orphan", None, json!({"app": "web"}), ready(NOW)),
            pod("stray", Some("rs-uid"), json!({"app": "db"}), ready(NOW)),
            pod("unrelated", None, json!({"app": "db"}), ready(NOW)),
        ];
        let p = plan(&rs(1, 0), &pods, NOW);
        assert_eq!(p.adopt, ["orphan"]);
        assert_eq!(p.release, ["stray"]);
        assert_eq!((p.create, p.delete.len()), (0, 0));
    }

    #[test]
    fn scales_down_in_kubernetes_order() {
        let unscheduled = pod(
            "unscheduled",
            Some("rs-uid"),
            json!({"app": "web"}),
            json!({"phase": "Pending"}),
        );
        let mut old = pod(
            "old-ready",
            Some("rs-uid"),
            json!({"app": "web"}),
            ready(NOW - 1000),
        );
        let mut new = pod(
            "new-ready",
            Some("rs-uid"),
            json!({"app": "web"}),
            ready(NOW - 10),
        );
        let mut not_ready = pod(
            "not-ready",
            Some("rs-uid"),
            json!({"app": "web"}),
            json!({"phase": "Running"}),
        );
        for p in [&mut old, &mut new, &mut not_ready] {
            p.spec.as_mut().unwrap().node_name = Some("n".into());
        }
        let pods = [old, new, not_ready, unscheduled];
        let p = plan(&rs(1, 0), &pods, NOW);
        assert_eq!(p.delete, ["unscheduled", "not-ready", "new-ready"]);
    }

    #[test]
    fn min_ready_seconds_hold_availability_back() {
        let pods = [pod(
            "a",
            Some("rs-uid"),
            json!({"app": "web"}),
            ready(NOW - 5),
        )];
        let p = plan(&rs(1, 30), &pods, NOW);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(0));
        assert_eq!(p.recheck_in, Some(25));
    }

    #[test]
    fn a_replica_set_being_deleted_neither_creates_nor_adopts() {
        let mut set = rs(3, 0);
        set.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap(),
            ));
        let pods = [pod("orphan", None, json!({"app": "web"}), ready(NOW))];
        let p = plan(&set, &pods, NOW);
        assert_eq!((p.create, p.adopt.len()), (0, 0));
    }
}
