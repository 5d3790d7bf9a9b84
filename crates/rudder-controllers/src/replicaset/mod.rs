//! The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet
//! running, adopting matching orphans and letting go of pods whose labels
//! no longer match, and writes its status (what `kubectl get rs` and the
//! Deployment controller read).
//!
//! Wiring only: the decisions are [`plan::plan`]. It runs on kube-runtime's
//! `Controller`: ReplicaSets are its objects, and a pod's change wakes the
//! ReplicaSet that controls it, or (an orphan) those whose selector it
//! matches. It reads pods from the shared informer's store; its
//! expectations (what it created or deleted that the store does not show
//! yet) keep a stale cache from making it create or delete twice.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use rudder_runtime::selectors::Selector;
use serde_json::json;

use crate::{Context, Error};

/// The controller, reading ReplicaSets and pods from the shared informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let sets = informers.store::<ReplicaSet>();
    let pods = informers.store::<Pod>();
    let controller = Controller::for_stream(informers.subscribe::<ReplicaSet>(), sets.clone())
        .watches_stream(informers.subscribe::<Pod>(), move |pod| {
            owners_of(&pod, &sets)
        });
    let context = Context::new(informers, recorder, pods);
    crate::drive(controller, "replicaset", reconcile, error_policy, context)
}

/// The ReplicaSets a pod's change concerns: its controller, or for an
/// orphan every ReplicaSet of its namespace (each decides by its selector).
fn owners_of(pod: &Pod, cache: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
    {
        if owner.kind == "ReplicaSet" && owner.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    cache
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

async fn reconcile(rs: Arc<ReplicaSet>, cx: Arc<Context<Store<Pod>>>) -> Result<Action, Error> {
    let owner = Owner {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        reference: rs.object_ref(&()),
    };
    let plan = sync(&cx, &rs, &owner).await?;
    if rs.status.as_ref() != Some(&plan.status) {
        let sets: Api<ReplicaSet> =
            Api::namespaced(cx.client.clone(), &rs.namespace().unwrap_or_default());
        let status = json!({"status": plan.status});
        sets.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
    }
    Ok(next(&plan))
}

/// When to look again: when a ready pod becomes available.
pub(crate) fn next(plan: &plan::Plan) -> Action {
    match plan.recheck_in {
        Some(secs) => Action::requeue(Duration::from_secs(secs.unsigned_abs().max(1))),
        None => Action::await_change(),
    }
}

/// Whose replicas these are: a ReplicaSet's, or a ReplicationController's
/// seen as one.
pub(crate) struct Owner {
    pub(crate) api_version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) reference: k8s_openapi::api::core::v1::ObjectReference,
}

/// Adopts, releases, creates and deletes pods as `rs` needs; returns the
/// plan (its status is the caller's to write).
pub(crate) async fn sync(
    cx: &Context<Store<Pod>>,
    rs: &ReplicaSet,
    owner: &Owner,
) -> Result<plan::Plan, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), &ns);
    // Its own pods, and the orphans it may adopt: only these are copied.
    let selector = Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector));
    let listed: Vec<Pod> = cx
        .stores
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| match crate::pods::controller_uid(p) {
            Some(owner) => owner == uid,
            None => selector.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default())),
        })
        .map(|p| (**p).clone())
        .collect();
    let now = rudder_api::time::now();
    let mut plan = plan::plan(rs, &listed, now);
    // Until the cache shows what this controller did, it does no more.
    if !crate::pods::pending(&cx.expectations, &cx.stores, &ns, &uid).is_empty() {
        plan.create = 0;
        plan.delete.clear();
    }
    let controller_ref = json!({
        "apiVersion": owner.api_version, "kind": owner.kind, "name": name,
        "uid": rs.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    });
    for pod in &plan.adopt {
        set_controller(&pods, &listed, pod, Some(&controller_ref)).await?;
    }
    for pod in &plan.release {
        set_controller(&pods, &listed, pod, None).await?;
    }
    if plan.create > 0 {
        create(
            cx,
            rs,
            &owner.reference,
            &pods,
            plan.create,
            &controller_ref,
        )
        .await?;
    }
    for pod in &plan.delete {
        if crate::pods::delete(&pods, &listed, pod).await? {
            cx.expectations.deleted(&uid, pod);
            cx.recorder.record_object(
                &owner.reference,
                Kind::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {pod}"),
            );
        }
    }
    Ok(plan)
}

/// Creates `count` pods from the template in batches of 1, 2, 4, … (kube's
/// slow start: a template that cannot run fails once, not 500 times).
async fn create(
    cx: &Context<Store<Pod>>,
    rs: &ReplicaSet,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    pods: &Api<Pod>,
    count: usize,
    owner: &serde_json::Value,
) -> Result<(), Error> {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone());
    let mut pod = serde_json::to_value(template.unwrap_or_default()).unwrap_or_default();
    pod["apiVersion"] = "v1".into();
    pod["kind"] = "Pod".into();
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    pod["metadata"]["generateName"] = format!("{}-", rs.name_any()).into();
    pod["metadata"]["ownerReferences"] = json!([owner]);
    let pod: Pod = serde_json::from_value(pod).map_err(kube::Error::SerdeError)?;
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    crate::pods::create_slow_start(cx, pods, reference, uid, vec![pod; count]).await
}

/// Makes `owner` the pod's controller (adoption), or removes its
/// ReplicaSet controller reference (`None`: release). The pod's uid is a
/// precondition: a pod deleted and made again under the name is left alone.
async fn set_controller(
    pods: &Api<Pod>,
    listed: &[Pod],
    name: &str,
    owner: Option<&serde_json::Value>,
) -> Result<(), Error> {
    let Some(pod) = listed
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
    else {
        return Ok(());
    };
    let mut refs: Vec<serde_json::Value> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.controller != Some(true))
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    refs.extend(owner.cloned());
    let patch = json!({"metadata": {"uid": pod.metadata.uid, "ownerReferences": refs}});
    match pods
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(rs: Arc<ReplicaSet>, error: &Error, _: Arc<Context<Store<Pod>>>) -> Action {
    crate::retry("replicaset", &rs.name_any(), error)
}
