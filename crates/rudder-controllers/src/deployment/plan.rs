//! The Deployment controller's decisions (kube-controller-manager's
//! `pkg/controller/deployment`), as pure functions: which ReplicaSet holds
//! the current template, how far each is scaled in a rolling update or a
//! recreate, and the Deployment's status and conditions.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";

pub fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// A percentage or a count of `total` (kube's
/// `GetScaledValueFromIntOrPercent`): percentages round up or down.
pub fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = i64::from(total) * percent;
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge and maxUnavailable as pod counts; both 0 would never make
/// progress, so maxUnavailable is then 1 (kube's `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let replicas = spec_replicas(d);
    let surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), replicas, true);
    let unavailable = scaled(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// A template without its `pod-template-hash` label, for comparing.
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    t
}

/// Whether the ReplicaSet runs the Deployment's current template.
pub fn is_current(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = d.spec.as_ref().map(|s| without_hash(&s.template));
    let have = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(without_hash);
    want.is_some() && want == have
}

/// The hash that names a template's ReplicaSet: FNV-1a of its JSON and
/// the collision count, in Kubernetes' safe alphabet (no vowels, no
/// look-alikes), as `pod-template-hash` values look.
pub fn template_hash(template: &PodTemplateSpec, collisions: i32) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in json.iter().chain(collisions.to_le_bytes().iter()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    crate::history::safe_encode(h)
}

/// The replicas the new ReplicaSet should have now in a rolling update
/// (kube's `NewRSNewReplicas`).
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> i32 {
    let replicas = spec_replicas(d);
    let current = new.map_or(0, rs_replicas);
    if current >= replicas {
        return replicas;
    }
    let (surge, _) = fenceposts(d);
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let room = replicas + surge - total;
    if room <= 0 {
        return current;
    }
    current + room.min(replicas - current)
}

/// How far to scale the old ReplicaSets down now in a rolling update
/// (kube's `reconcileOldReplicaSets`): first their unavailable pods, then
/// available ones while the Deployment keeps its minimum availability.
/// Returns (name, new replicas) for those that change, oldest first.
pub fn old_rs_scale_down(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    old: &[&ReplicaSet],
) -> Vec<(String, i32)> {
    let old_pods: i32 = old.iter().map(|rs| rs_replicas(rs)).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let replicas = spec_replicas(d);
    let (_, unavailable) = fenceposts(d);
    let min_available = replicas - unavailable;
    let new_replicas = new.map_or(0, rs_replicas);
    let new_unavailable = new_replicas - new.map_or(0, rs_available);
    let all_pods = old_pods + new_replicas;
    let mut budget = all_pods - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&ReplicaSet> = old.to_vec();
    sorted.sort_by_key(|rs| {
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second())
    });
    let mut target: Vec<(String, i32)> = sorted
        .iter()
        .map(|rs| {
            (
                rs.metadata.name.clone().unwrap_or_default(),
                rs_replicas(rs),
            )
        })
        .collect();
    // Unavailable pods first: removing them costs no availability.
    for (i, rs) in sorted.iter().enumerate() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (rs_replicas(rs) - rs_available(rs)).max(0);
        let cut = unhealthy.min(budget);
        target[i].1 -= cut;
        budget -= cut;
    }
    // Then available ones, as long as enough stay available.
    let available: i32 = old
        .iter()
        .map(|rs| rs_available(rs))
        .chain(new.map(rs_available))
        .sum();
    let mut spare = (available - min_available).max(0);
    for entry in &mut target {
        if spare <= 0 {
            break;
        }
        let cut = entry.1.min(spare);
        entry.1 -= cut;
        spare -= cut;
    }
    sorted
        .iter()
        .zip(target)
        .filter(|(rs, (_, n))| rs_replicas(rs) != *n)
        .map(|(_, t)| t)
        .collect()
}

/// The next revision: one more than any of the ReplicaSets'.
pub fn next_revision(sets: &[&ReplicaSet]) -> i64 {
    sets.iter().filter_map(|rs| revision(rs)).max().unwrap_or(0) + 1
}

pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION)?
        .parse()
        .ok()
}

/// The Deployment's status from its ReplicaSets (kube's
/// `calculateStatus`), with the Available and Progressing conditions.
pub fn status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: &str,
    now_seconds: i64,
) -> DeploymentStatus {
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let replicas = sum(&|rs| rs.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(&|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    });
    let available = sum(&rs_available);
    let updated = new
        .and_then(|rs| rs.status.as_ref())
        .map_or(0, |s| s.replicas);
    let wanted = spec_replicas(d);
    let (_, max_unavailable) = fenceposts(d);
    let old = d.status.as_ref();
    let mut conditions: Vec<DeploymentCondition> =
        old.and_then(|s| s.conditions.clone()).unwrap_or_default();
    let min_available = available >= wanted - max_unavailable;
    set_condition(
        &mut conditions,
        "Available",
        if min_available { "True" } else { "False" },
        if min_available {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if min_available {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        },
        now,
    );
    let name = new
        .and_then(|rs| rs.metadata.name.clone())
        .unwrap_or_default();
    let complete = new.is_some()
        && updated == wanted
        && replicas == wanted
        && available == wanted
        && rs_replicas_all_new(all, new);
    let progressing = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned();
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .map(i64::from);
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    if complete {
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{name}\" has successfully progressed."),
            now,
        );
    } else if !paused {
        let last = progressing
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map_or(now_seconds, |t| t.0.as_second());
        let timed_out = deadline.is_some_and(|dl| now_seconds - last > dl)
            && progressing
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() != Some("NewReplicaSetAvailable"));
        if timed_out {
            set_condition(
                &mut conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{name}\" has timed out progressing."),
                now,
            );
        } else if progressing.as_ref().and_then(|c| c.reason.as_deref())
            != Some("ReplicaSetUpdated")
        {
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{name}\" is progressing."),
                now,
            );
        }
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((wanted - available).max(0)),
        conditions: Some(conditions),
        collision_count: old.and_then(|s| s.collision_count),
        terminating_replicas: None,
    }
}

/// Whether no old ReplicaSet has pods left.
fn rs_replicas_all_new(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> bool {
    all.iter()
        .filter(|rs| new.is_none_or(|n| n.metadata.uid != rs.metadata.uid))
        .all(|rs| rs.status.as_ref().map_or(0, |s| s.replicas) == 0)
}

/// Sets a condition, keeping its transition time when the status stays.
fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> =
        serde_json::from_value(serde_json::Value::String(now.into())).ok();
    let existing = conditions.iter_mut().find(|c| c.type_ == kind);
    match existing {
        Some(c) if c.status == status && c.reason.as_deref() == Some(reason) => {
            if c.message.as_deref() != Some(message) {
                c.message = Some(message.into());
                c.last_update_time = time;
            }
        }
        Some(c) => {
            if c.status != status {
                c.last_transition_time = time.clone();
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_update_time = time;
        }
        None => conditions.push(DeploymentCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: time.clone(),
            last_transition_time: time,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "v2"}]}}}
        }))
        .unwrap()
    }

    fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name,
                         "creationTimestamp": rudder_api::time::rfc3339(created)},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
        }))
        .unwrap()
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        let d = deployment(10, json!("25%"), json!("25%"));
        assert_eq!(fenceposts(&d), (3, 2), "surge rounds up, unavailable down");
        let d = deployment(3, json!(0), json!(0));
        assert_eq!(fenceposts(&d), (0, 1), "never both zero");
        assert_eq!(
            scaled(Some(&IntOrString::String("50%".into())), 5, false),
            2
        );
    }

    #[test]
    fn a_rolling_update_surges_then_scales_old_down_keeping_availability() {
        // 4 replicas, surge 1, unavailable 1: the new set may go to 1 at once.
        let d = deployment(4, json!(1), json!(1));
        let old = rs("old", 1, 4, 4);
        assert_eq!(new_rs_replicas(&d, &[&old], None), 1);
        let new = rs("new", 2, 1, 0);
        // 5 pods, 4 available, min 3: one old pod may go.
        assert_eq!(
            old_rs_scale_down(&d, Some(&new), &[&old]),
            [("old".to_string(), 3)]
        );
        // The new pod available: the old set may go down further.
        let new = rs("new", 2, 2, 2);
        let old = rs("old", 1, 3, 3);
        // 5 pods, all available, min 3: two old pods may go.
        assert_eq!(
            old_rs_scale_down(&d, Some(&new), &[&old]),
            [("old".to_string(), 1)]
        );
        // At full size the new set stays put.
        let new = rs("new", 2, 4, 4);
        assert_eq!(new_rs_replicas(&d, &[&new], Some(&new)), 4);
    }

    #[test]
    fn unavailable_old_pods_go_first() {
        let d = deployment(2, json!(0), json!(1));
        let broken = rs("broken", 1, 2, 0);
        let new = rs("new", 2, 1, 1);
        // 3 pods, 1 available, min 1: both broken pods may go.
        assert_eq!(
            old_rs_scale_down(&d, Some(&new), &[&broken]),
            [("broken".to_string(), 0)]
        );
    }

    #[test]
    fn status_sums_its_sets_and_says_when_the_rollout_is_done() {
        let d = deployment(2, json!(1), json!(0));
        let new = rs("web-abc", 2, 2, 2);
        let s = status(
            &d,
            &[&new],
            Some(&new),
            "2024-01-01T00:00:00Z",
            1_704_067_200,
        );
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(2), Some(2), Some(2), Some(0))
        );
        assert_eq!(s.observed_generation, Some(3));
        let conditions = s.conditions.unwrap();
        let progressing = conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        let available = conditions.iter().find(|c| c.type_ == "Available").unwrap();
        assert_eq!(available.status, "True");
    }

    #[test]
    fn templates_compare_without_their_hash_and_hash_stably() {
        let d = deployment(1, json!(1), json!(0));
        let mut template = d.spec.clone().unwrap().template;
        let hash = template_hash(&template, 0);
        assert_eq!(hash, template_hash(&template, 0));
        assert_ne!(hash, template_hash(&template, 1));
        assert!(
            hash.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), hash);
        let set: ReplicaSet = serde_json::from_value(
            json!({"metadata": {"name": "x"}, "spec": {"selector": {}, "template": template}}),
        )
        .unwrap();
        assert!(is_current(&d, &set));
        assert_eq!(next_revision(&[&set]), 1);
    }
}
