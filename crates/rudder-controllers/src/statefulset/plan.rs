//! What a StatefulSet needs done, from what is (kube-controller-manager's
//! stateful set controller as a pure function): which ordinal's pod to
//! create (from which revision), which pods to delete (finished ones,
//! ordinals past the replicas, outdated ones in a rolling update), and its
//! status. OrderedReady goes one pod at a time and waits for each to be
//! Running and Ready; Parallel does all at once.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use crate::pods::{phase, ready_since};

/// The label naming the revision a pod runs (the revision's name).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label with a pod's own name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Pods created at once in Parallel mode at the most.
pub const BURST: usize = 500;

/// Which revision a new pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Current,
    Update,
}

/// The decisions for one StatefulSet.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Ordinals to create, with the revision each comes from.
    pub create: Vec<(i32, From)>,
    /// Pods to delete (names); `condemned` are those past the replicas.
    pub delete: Vec<String>,
    /// Ordinals of pods past the replicas among `delete` (their claims'
    /// owners change first, by the retention policy).
    pub condemned: Vec<i32>,
    pub status: StatefulSetStatus,
    /// Seconds until a ready pod becomes available (minReadySeconds).
    pub recheck_in: Option<i64>,
}

/// `<set>-<ordinal>`: a pod's ordinal if it is of the set `set`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The decisions for `set`, given the pods it controls, its current and
/// update revisions' names, at `now`.
pub fn plan(set: &StatefulSet, pods: &[Pod], current: &str, update: &str, now: i64) -> Plan {
    let mut plan = Plan::default();
    let name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy
        .type_
        .as_deref()
        .is_none_or(|t| t == "RollingUpdate");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    let revision = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned()
            .unwrap_or_default()
    };
    let deleting = |p: &Pod| p.metadata.deletion_timestamp.is_some();
    let running_ready = |p: &Pod| phase(p) == Some("Running") && ready_since(p).is_some();
    let available = |p: &Pod| {
        running_ready(p)
            && ready_since(p).is_some_and(|since| min_ready == 0 || since + min_ready <= now)
    };
    let healthy = |p: &Pod| !deleting(p) && available(p);

    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in pods {
        if let Some(o) = pod
            .metadata
            .name
            .as_deref()
            .and_then(|n| ordinal_of(&name, n))
        {
            by_ordinal.insert(o, pod);
        }
    }
    let end = start.saturating_add(replicas);
    let in_range = |o: i32| o >= start && o < end;

    // Status, over every pod of the set.
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        ..StatefulSetStatus::default()
    };
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let all: Vec<&Pod> = by_ordinal.values().copied().collect();
    status.replicas = count(all.len());
    status.ready_replicas = Some(count(all.iter().filter(|p| running_ready(p)).count()));
    status.available_replicas = Some(count(all.iter().filter(|p| available(p)).count()));
    status.current_replicas = Some(count(
        all.iter()
            .filter(|p| !deleting(p) && revision(p) == current)
            .count(),
    ));
    status.updated_replicas = Some(count(
        all.iter()
            .filter(|p| !deleting(p) && revision(p) == update)
            .count(),
    ));
    for p in &all {
        if let Some(since) = ready_since(p).filter(|_| min_ready > 0 && running_ready(p)) {
            let left = since + min_ready - now;
            if left > 0 {
                plan.recheck_in = Some(plan.recheck_in.map_or(left, |r: i64| r.min(left)));
            }
        }
    }
    // A finished rolling update: the update revision becomes current.
    if rolling
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.replicas == replicas
    {
        status.current_revision = Some(update.to_string());
        status.current_replicas = status.updated_replicas;
    }
    plan.status = status;
    if set.metadata.deletion_timestamp.is_some() {
        return plan;
    }

    // Replicas, lowest ordinal first.
    let mut stop = false;
    for o in start..end {
        match by_ordinal.get(&o) {
            Some(p) if matches!(phase(p), Some("Failed" | "Succeeded")) => {
                if !deleting(p) {
                    plan.delete.extend(p.metadata.name.clone());
                }
                if monotonic {
                    stop = true;
                    break;
                }
            }
            None => {
                let from = if rolling && o < start.saturating_add(partition) && current != update {
                    From::Current
                } else {
                    From::Update
                };
                plan.create.push((o, from));
                if monotonic || plan.create.len() >= BURST {
                    stop = true;
                    break;
                }
            }
            Some(p) if monotonic && !healthy(p) => {
                stop = true;
                break;
            }
            Some(_) => {}
        }
    }
    if stop || !plan.create.is_empty() || !plan.delete.is_empty() {
        return plan;
    }
    // Ordinals past the replicas, highest first.
    for (o, p) in by_ordinal.iter().rev().filter(|(o, _)| !in_range(**o)) {
        if deleting(p) {
            if monotonic {
                return plan;
            }
            continue;
        }
        plan.delete.extend(p.metadata.name.clone());
        plan.condemned.push(*o);
        if monotonic {
            return plan;
        }
    }
    if !plan.delete.is_empty() || !rolling {
        return plan;
    }
    // A rolling update: the highest outdated pod at or past the
    // partition goes (to come back at the update revision), one at a
    // time, each after the ones above it are healthy again.
    for o in (start.saturating_add(partition)..end).rev() {
        let Some(p) = by_ordinal.get(&o) else {
            return plan;
        };
        if revision(p) != update && !deleting(p) {
            plan.delete.extend(p.metadata.name.clone());
            return plan;
        }
        if !healthy(p) {
            return plan;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;

    fn set(spec: Value) -> StatefulSet {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "db"}});
        spec["serviceName"] = json!("db");
        spec["template"] =
            json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}});
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default", "generation": 1}, "spec": spec}))
            .unwrap()
    }

    fn pod(name: &str, revision: &str, ready: bool) -> Pod {
        let conditions = json!([{"type": "Ready", "status": if ready { "True" } else { "False" },
                                 "lastTransitionTime": "2023-11-14T00:00:00Z"}]);
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "db", REVISION_LABEL: revision}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "conditions": conditions},
        }))
        .unwrap()
    }

    fn names(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn ordinals_parse_as_kubernetes_parses_them() {
        assert_eq!(ordinal_of("db", "db-0"), Some(0));
        assert_eq!(ordinal_of("db", "db-12"), Some(12));
        assert_eq!(ordinal_of("db", "db-x"), None);
        assert_eq!(ordinal_of("db", "dbx-1"), None);
        assert_eq!(ordinal_of("db", "db-"), None);
    }

    #[test]
    fn ordered_ready_makes_one_pod_at_a_time_after_the_ready_ones() {
        let s = set(json!({"replicas": 3}));
        assert_eq!(
            plan(&s, &[], "r1", "r1", NOW).create,
            vec![(0, From::Update)]
        );
        let waiting = plan(&s, &[pod("db-0", "r1", false)], "r1", "r1", NOW);
        assert!(waiting.create.is_empty(), "db-0 is not ready yet");
        let next = plan(&s, &[pod("db-0", "r1", true)], "r1", "r1", NOW);
        assert_eq!(next.create, vec![(1, From::Update)]);
        assert_eq!(next.status.replicas, 1);
        assert_eq!(next.status.ready_replicas, Some(1));
    }

    #[test]
    fn parallel_makes_them_all_at_once() {
        let s = set(json!({"replicas": 3, "podManagementPolicy": "Parallel"}));
        let plan = plan(&s, &[pod("db-1", "r1", false)], "r1", "r1", NOW);
        assert_eq!(plan.create, vec![(0, From::Update), (2, From::Update)]);
    }

    #[test]
    fn scaling_down_removes_the_highest_ordinal_first() {
        let s = set(json!({"replicas": 1}));
        let pods = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r1", true),
        ];
        let plan = plan(&s, &pods, "r1", "r1", NOW);
        assert_eq!(names(&plan.delete), ["db-2"]);
        assert_eq!(plan.condemned, vec![2]);
    }

    #[test]
    fn a_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let s = set(
            json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
        );
        let old = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r1", true),
        ];
        let first = plan(&s, &old, "r1", "r2", NOW);
        assert_eq!(names(&first.delete), ["db-2"]);
        let pods = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r2", false),
        ];
        assert!(
            plan(&s, &pods, "r1", "r2", NOW).delete.is_empty(),
            "waits for db-2"
        );
        let pods = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r2", true),
        ];
        assert_eq!(names(&plan(&s, &pods, "r1", "r2", NOW).delete), ["db-1"]);
        let pods = [
            pod("db-0", "r1", true),
            pod("db-1", "r2", true),
            pod("db-2", "r2", true),
        ];
        let done = plan(&s, &pods, "r1", "r2", NOW);
        assert!(done.delete.is_empty(), "db-0 is below the partition");
        assert_eq!(
            done.status.current_revision.as_deref(),
            Some("r1"),
            "not all updated"
        );
        // Below the partition, a missing pod comes back at the current revision.
        let pods = [pod("db-1", "r2", true), pod("db-2", "r2", true)];
        assert_eq!(
            plan(&s, &pods, "r1", "r2", NOW).create,
            vec![(0, From::Current)]
        );
    }

    #[test]
    fn a_completed_update_makes_the_update_revision_current() {
        let s = set(json!({"replicas": 2}));
        let pods = [pod("db-0", "r2", true), pod("db-1", "r2", true)];
        let plan = plan(&s, &pods, "r1", "r2", NOW);
        assert_eq!(plan.status.current_revision.as_deref(), Some("r2"));
        assert_eq!(plan.status.current_replicas, Some(2));
        let on_delete = set(json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}));
        let pods = [pod("db-0", "r1", true), pod("db-1", "r1", true)];
        let plan = super::plan(&on_delete, &pods, "r1", "r2", NOW);
        assert!(plan.delete.is_empty(), "OnDelete waits for the user");
        assert_eq!(plan.status.current_revision.as_deref(), Some("r1"));
    }

    #[test]
    fn a_failed_pod_is_deleted_to_come_back_under_its_name() {
        let s = set(json!({"replicas": 2}));
        let mut failed = pod("db-0", "r1", false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let plan = plan(&s, &[failed, pod("db-1", "r1", true)], "r1", "r1", NOW);
        assert_eq!(names(&plan.delete), ["db-0"]);
        assert!(plan.create.is_empty());
    }
}
