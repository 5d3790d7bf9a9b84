//! What controllers read of pods, as kube-controller-manager's
//! `controller_utils.go` and `pod_util` do.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value};

pub(crate) fn labels_of(pod: &Pod) -> Map<String, Value> {
    pod.metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// The uid of the pod's controller, if it has one.
pub(crate) fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// Not finished and not being deleted (kube's `IsPodActive`).
pub(crate) fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod became Ready, if it is.
pub(crate) fn ready_since(pod: &Pod) -> Option<i64> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        ready
            .last_transition_time
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
    )
}

/// Kubernetes' order for scaling down (`ActivePodsWithRanks`): pods not
/// on a node first, then pending before unknown before running, not ready
/// before ready, lower `controller.kubernetes.io/pod-deletion-cost` first,
/// ready for less time first, more restarts first, newer first.
pub(crate) fn deletion_rank(pod: &Pod) -> (bool, u8, bool, i64, i64, i64, i64) {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let assigned = spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = ready_since(pod);
    let cost = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or(0);
    let restarts: i64 = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| i64::from(c.restart_count))
        .sum();
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    (
        assigned,
        phase,
        ready.is_some(),
        cost,
        // Ready longer sorts later: the negated time since.
        -ready.unwrap_or(i64::MAX),
        -restarts,
        -created,
    )
}

/// Ended: `Succeeded` or `Failed`.
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// The pod's phase, if it has one.
pub(crate) fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether `pod` carries `finalizer`.
pub(crate) fn has_finalizer(pod: &Pod, finalizer: &str) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == finalizer)
}

/// What `owner` still waits for the pod cache to show: pods it created
/// that the cache lacks, pods it deleted that the cache still shows live.
pub(crate) fn pending(
    expectations: &rudder_runtime::expectations::Expectations,
    store: &kube::runtime::reflector::Store<Pod>,
    ns: &str,
    owner: &str,
) -> rudder_runtime::expectations::Pending {
    use kube::runtime::reflector::ObjectRef;
    let get = |name: &str| store.get(&ObjectRef::new(name).within(ns));
    expectations.pending(
        owner,
        |name| get(name).is_some(),
        |name| get(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
    )
}

/// Deletes the pod `name` of `listed`, its uid a precondition (a pod made
/// again under the name is left alone); whether it was deleted now
/// (`false`: it was gone already).
pub(crate) async fn delete(
    api: &kube::Api<Pod>,
    listed: &[Pod],
    name: &str,
) -> Result<bool, crate::Error> {
    let uid = listed
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| p.metadata.uid.clone());
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid,
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates `made` in batches of 1, 2, 4, … (kube's slow start: a template
/// that cannot run fails once, not five hundred times), each expected for
/// `owner` and told as kube tells it (`SuccessfulCreate` "Created pod:
/// X", `FailedCreate` "Error creating: …"); stops at the first failure.
pub(crate) async fn create_slow_start<S>(
    cx: &crate::Context<S>,
    api: &kube::Api<Pod>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    owner: &str,
    made: Vec<Pod>,
) -> Result<(), crate::Error> {
    use kube::ResourceExt;
    use rudder_runtime::events::Kind;
    let params = kube::api::PostParams::default();
    let mut left = made.as_slice();
    let mut batch = 1;
    while !left.is_empty() {
        let (now, rest) = left.split_at(batch.min(left.len()));
        let results =
            futures_util::future::join_all(now.iter().map(|p| api.create(&params, p))).await;
        for result in results {
            match result {
                Ok(created) => {
                    cx.expectations.created(owner, &created.name_any());
                    cx.recorder.record_object(
                        reference,
                        Kind::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.name_any()),
                    );
                }
                Err(e) => {
                    cx.recorder.record_object(
                        reference,
                        Kind::Warning,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    return Err(e.into());
                }
            }
        }
        left = rest;
        batch *= 2;
    }
    Ok(())
}
