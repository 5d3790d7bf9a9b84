//! The ReplicationController controller: a ReplicationController is a
//! ReplicaSet with a plain map for a selector (kube runs one controller
//! for both), so it is seen as one and run by the ReplicaSet controller's
//! decisions ([`crate::replicaset::sync`]); its pods' controller is the
//! `v1` ReplicationController, and its status is written back to it.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rudder_runtime::events::Recorder;
use rudder_runtime::informers::Informers;
use serde_json::json;

use crate::replicaset::{Owner, next, sync};
use crate::{Context, Error};

/// The controller, reading ReplicationControllers and pods from the
/// shared informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let rcs = informers.store::<ReplicationController>();
    let pods = informers.store::<Pod>();
    let controller =
        Controller::for_stream(informers.subscribe::<ReplicationController>(), rcs.clone())
            .watches_stream(informers.subscribe::<Pod>(), move |pod| {
                owners_of(&pod, &rcs)
            });
    let context = Context::new(informers, recorder, pods);
    crate::drive(
        controller,
        "replicationcontroller",
        reconcile,
        error_policy,
        context,
    )
}

/// The ReplicationControllers a pod's change concerns: its controller, or
/// for an orphan those of its namespace.
fn owners_of(
    pod: &Pod,
    cache: &Store<ReplicationController>,
) -> Vec<ObjectRef<ReplicationController>> {
    let ns = pod.namespace().unwrap_or_default();
    match pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
    {
        Some(o) if o.kind == "ReplicationController" && o.api_version == "v1" => {
            vec![ObjectRef::new(&o.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => cache
            .state()
            .iter()
            .filter(|rc| rc.namespace().as_deref() == Some(ns.as_str()))
            .map(|rc| ObjectRef::from_obj(rc.as_ref()))
            .collect(),
    }
}

/// A ReplicationController as a ReplicaSet: the same metadata, replicas,
/// template and status, its selector map as `matchLabels` (defaulted, as
/// the API server does, from the template's labels).
pub fn as_replica_set(rc: &ReplicationController) -> Result<ReplicaSet, serde_json::Error> {
    let mut v = serde_json::to_value(rc)?;
    v["apiVersion"] = "apps/v1".into();
    v["kind"] = "ReplicaSet".into();
    let selector = if v["spec"]["selector"].is_object() {
        v["spec"]["selector"].clone()
    } else {
        v["spec"]["template"]["metadata"]["labels"].clone()
    };
    v["spec"]["selector"] = json!({ "matchLabels": selector });
    serde_json::from_value(v)
}

async fn reconcile(
    rc: Arc<ReplicationController>,
    cx: Arc<Context<Store<Pod>>>,
) -> Result<Action, Error> {
    let rs = as_replica_set(&rc).map_err(kube::Error::SerdeError)?;
    let owner = Owner {
        api_version: "v1",
        kind: "ReplicationController",
        reference: rc.object_ref(&()),
    };
    let plan = sync(&cx, &rs, &owner).await?;
    let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
    if let Some(s) = status.as_object_mut() {
        s.remove("terminatingReplicas");
    }
    let current = serde_json::to_value(&rc.status).unwrap_or_default();
    if current != status {
        let api: Api<ReplicationController> =
            Api::namespaced(cx.client.clone(), &rc.namespace().unwrap_or_default());
        api.patch_status(
            &rc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    }
    Ok(next(&plan))
}

fn error_policy(
    rc: Arc<ReplicationController>,
    error: &Error,
    _: Arc<Context<Store<Pod>>>,
) -> Action {
    crate::retry("replicationcontroller", &rc.name_any(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replication_controller_reads_as_a_replica_set() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "old", "uid": "u"},
            "spec": {"replicas": 2, "selector": {"app": "old"},
                     "template": {"metadata": {"labels": {"app": "old"}}, "spec": {"containers": []}}},
        }))
        .unwrap();
        let rs = as_replica_set(&rc).unwrap();
        let spec = rs.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "old");
        assert_eq!(rs.metadata.uid.as_deref(), Some("u"));
    }
}
