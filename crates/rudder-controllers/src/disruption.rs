//! The disruption controller (kube-controller-manager's `disruption`):
//! a PodDisruptionBudget's status — expectedPods, desiredHealthy,
//! currentHealthy, disruptionsAllowed, the `DisruptionAllowed` condition —
//! from the pods it selects and their controllers' scale, which the
//! eviction API then spends (`checkAndDecrement`). Evictions it has not
//! seen carried out within two minutes are forgotten.
//!
//! Wiring: kube-runtime's `Controller` over PodDisruptionBudgets, woken by
//! any pod its selector matches; the decision is [`status`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use rudder_runtime::selectors::Selector;

use crate::{Context, Error};

/// How long an eviction the budget counted may take to show as a
/// deletion before it is forgotten (kube's `DeletionTimeout`).
pub const DELETION_TIMEOUT: i64 = 120;

/// The stores a budget's reconcile reads.
type Stores = (
    Store<Pod>,
    Store<ReplicaSet>,
    Store<Deployment>,
    Store<StatefulSet>,
);

/// The controller.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let budgets = informers.store::<PodDisruptionBudget>();
    let stores = (
        informers.store::<Pod>(),
        informers.store::<ReplicaSet>(),
        informers.store::<Deployment>(),
        informers.store::<StatefulSet>(),
    );
    let context = Context::new(informers, recorder, stores);
    let matching = budgets.clone();
    crate::drive(
        Controller::for_stream(informers.subscribe::<PodDisruptionBudget>(), budgets)
            .watches_stream(informers.subscribe::<Pod>(), move |pod| {
                budgets_of(&pod, &matching)
            }),
        "disruption",
        reconcile,
        error_policy,
        context,
    )
}

/// The budgets of a pod's namespace whose selector matches it.
fn budgets_of(
    pod: &Pod,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    budgets
        .state()
        .iter()
        .filter(|b| b.metadata.namespace == pod.metadata.namespace)
        .filter(|b| {
            Selector::from_label_selector(b.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .matches(&labels)
        })
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// `value` (a number, or a percentage of `total` rounded up).
fn scaled(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| {
                i32::try_from((p * i64::from(total) + 99) / 100).unwrap_or(i32::MAX)
            }),
    }
}

/// A budget's status, given its pods, the summed scale of their
/// controllers (`None` when it is not needed or not known), at `now`.
pub fn status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale: Option<i32>,
    now: i64,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let (expected, desired) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = scale.unwrap_or(count(pods.len()));
            (expected, (expected - scaled(max, expected)).max(0))
        }
        (None, Some(IntOrString::Int(n))) => (count(pods.len()), *n),
        (None, Some(min)) => {
            let expected = scale.unwrap_or(count(pods.len()));
            (expected, scaled(min, expected))
        }
        (None, None) => (count(pods.len()), 0),
    };
    // Evictions still in progress, and not yet too old.
    let live = |name: &str| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name) && p.metadata.deletion_timestamp.is_none()
        })
    };
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| live(name) && at.0.as_second() + DELETION_TIMEOUT >= now)
        .collect();
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| crate::pods::ready_since(p).is_some())
        .count();
    let current = count(healthy);
    let allowed = if expected <= 0 {
        0
    } else {
        (current - desired).max(0)
    };
    let (state, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == state)
        .map(|c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != "DisruptionAllowed");
    conditions.push(Condition {
        type_: "DisruptionAllowed".into(),
        status: state.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: transition.unwrap_or_else(|| {
            Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default())
        }),
    });
    PodDisruptionBudgetStatus {
        current_healthy: current,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: Some(conditions),
    }
}

/// The summed scale of the pods' controllers (kube's `getExpectedScale`):
/// a ReplicaSet's (or its Deployment's), a StatefulSet's, a
/// ReplicationController's; the pods with no controller are returned.
async fn expected_scale(
    cx: &Context<Stores>,
    ns: &str,
    pods: &[&Pod],
) -> Result<(i32, Vec<String>), String> {
    let (_, sets, deployments, stateful) = &cx.stores;
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
        else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let find = |kind: &str| -> Option<(String, i32)> {
            match kind {
                "ReplicaSet" => {
                    let rs = sets.get(&ObjectRef::new(&owner.name).within(ns))?;
                    if let Some(d) = rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|r| r.controller == Some(true) && r.kind == "Deployment")
                    {
                        let d = deployments.get(&ObjectRef::new(&d.name).within(ns))?;
                        return Some((
                            rs.metadata.uid.clone()?,
                            d.spec.as_ref()?.replicas.unwrap_or(1),
                        ));
                    }
                    Some((
                        rs.metadata.uid.clone()?,
                        rs.spec.as_ref()?.replicas.unwrap_or(1),
                    ))
                }
                "StatefulSet" => {
                    let s = stateful.get(&ObjectRef::new(&owner.name).within(ns))?;
                    Some((
                        s.metadata.uid.clone()?,
                        s.spec.as_ref()?.replicas.unwrap_or(1),
                    ))
                }
                _ => None,
            }
        };
        let found = match owner.kind.as_str() {
            "ReplicationController" => {
                let rcs: Api<ReplicationController> = Api::namespaced(cx.client.clone(), ns);
                rcs.get(&owner.name).await.ok().and_then(|rc| {
                    Some((
                        rc.metadata.uid.clone()?,
                        rc.spec.as_ref()?.replicas.unwrap_or(1),
                    ))
                })
            }
            kind => find(kind),
        };
        match found {
            Some((uid, replicas)) if uid == owner.uid => {
                scales.insert(uid, replicas);
            }
            _ => return Err(format!("found no controllers for pod {:?}", pod.name_any())),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    cx: Arc<Context<Stores>>,
) -> Result<Action, Error> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let selector =
        Selector::from_label_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()));
    let all = cx.stores.0.state();
    let pods: Vec<&Pod> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
        .collect();
    let pdb_ref = pdb.object_ref(&());
    if pods.is_empty() {
        cx.recorder.record_object(
            &pdb_ref,
            Kind::Normal,
            "NoPods",
            "No matching pods found".into(),
        );
    }
    let spec = pdb.spec.clone().unwrap_or_default();
    let needs_scale = spec.max_unavailable.is_some()
        || matches!(spec.min_available, Some(IntOrString::String(_)));
    let now = rudder_api::time::now();
    let mut status = if needs_scale {
        match expected_scale(&cx, &ns, &pods).await {
            Ok((scale, unmanaged)) => {
                if !unmanaged.is_empty() {
                    cx.recorder.record_object(
                        &pdb_ref,
                        Kind::Warning,
                        "UnmanagedPods",
                        format!("Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.", rudder_api::selector::selector_string(&serde_json::to_value(&spec.selector).unwrap_or_default())),
                    );
                }
                status(&pdb, &pods, Some(scale), now)
            }
            Err(e) => {
                // Fail safe: no disruption allowed, the reason said.
                let mut s = pdb.status.clone().unwrap_or_default();
                s.disruptions_allowed = 0;
                let mut conditions = s.conditions.take().unwrap_or_default();
                conditions.retain(|c| c.type_ != "DisruptionAllowed");
                conditions.push(Condition {
                    type_: "DisruptionAllowed".into(),
                    status: "False".into(),
                    reason: "SyncFailed".into(),
                    message: e,
                    observed_generation: s.observed_generation,
                    last_transition_time: Time(
                        k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default(),
                    ),
                });
                s.conditions = Some(conditions);
                s
            }
        }
    } else {
        status(&pdb, &pods, None, now)
    };
    if pdb.status.as_ref() != Some(&status) {
        let api: Api<PodDisruptionBudget> = Api::namespaced(cx.client.clone(), &ns);
        let mut updated = (*pdb).clone();
        // An unchanged transition time is kept as written.
        if let (Some(old), Some(new)) = (
            pdb.status.as_ref().and_then(|s| s.conditions.as_ref()),
            status.conditions.as_mut(),
        ) {
            for c in new.iter_mut() {
                if let Some(o) = old
                    .iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
                {
                    c.last_transition_time = o.last_transition_time.clone();
                }
            }
        }
        updated.status = Some(status.clone());
        api.replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    // Look again when the oldest eviction in progress expires.
    let next = status
        .disrupted_pods
        .iter()
        .flatten()
        .map(|(_, at)| at.0.as_second() + DELETION_TIMEOUT - now + 1)
        .min();
    Ok(match next {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1).unsigned_abs())),
        None => Action::await_change(),
    })
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, error: &Error, _: Arc<Context<Stores>>) -> Action {
    crate::retry("disruption", &pdb.name_any(), error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;

    fn pdb(spec: Value, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "b", "generation": 3}, "spec": spec, "status": status}),
        )
        .unwrap()
    }

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn budgets_count_as_kubernetes_counts() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let s = status(
            &pdb(json!({"minAvailable": 1}), json!({})),
            &refs,
            None,
            NOW,
        );
        assert_eq!(
            (
                s.expected_pods,
                s.desired_healthy,
                s.current_healthy,
                s.disruptions_allowed
            ),
            (3, 1, 2, 1)
        );
        assert_eq!(s.observed_generation, Some(3));
        let c = &s.conditions.unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );

        // 50% of a scale of 4, rounded up: 2 wanted healthy.
        let s = status(
            &pdb(json!({"minAvailable": "50%"}), json!({})),
            &refs,
            Some(4),
            NOW,
        );
        assert_eq!(
            (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
            (4, 2, 0)
        );
        assert_eq!(s.conditions.unwrap()[0].reason, "InsufficientPods");
        // maxUnavailable 1 of 3: 2 wanted.
        let s = status(
            &pdb(json!({"maxUnavailable": 1}), json!({})),
            &refs,
            Some(3),
            NOW,
        );
        assert_eq!((s.desired_healthy, s.disruptions_allowed), (2, 0));
    }

    #[test]
    fn an_eviction_in_progress_is_not_healthy_until_it_expires() {
        let pods = [pod("a", true), pod("b", true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let recent = json!({"disruptedPods": {"a": rudder_api::time::rfc3339(NOW - 10)}});
        let s = status(&pdb(json!({"minAvailable": 1}), recent), &refs, None, NOW);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (1, 0));
        assert!(s.disrupted_pods.is_some());
        let old = json!({"disruptedPods": {"a": rudder_api::time::rfc3339(NOW - 200)}});
        let s = status(&pdb(json!({"minAvailable": 1}), old), &refs, None, NOW);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (2, 1));
        assert!(s.disrupted_pods.is_none());
    }
}
