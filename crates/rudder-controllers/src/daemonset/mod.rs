//! The DaemonSet controller: one pod on every node that should run it
//! (node selector, required affinity, taints against the daemon pods'
//! tolerations), rolled to a new template node by node within
//! maxUnavailable/maxSurge (or OnDelete), with ControllerRevisions for
//! `kubectl rollout history/undo` and the status `kubectl rollout status`
//! reads.
//!
//! Wiring only: the decisions are [`plan::plan`]. It runs on kube-runtime's
//! `Controller`, woken by its DaemonSets, the pods they own and any Node's
//! change (a node's labels or taints decide where pods run). Pods are
//! pinned to their node by required affinity on `metadata.name`; the
//! scheduler binds them, as in Kubernetes.

pub mod plan;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rudder_api::selector::selector_string;
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use serde_json::{Value, json};

use plan::{GENERATION_LABEL, HASH_LABEL};

use crate::{Context, Error, history};

/// The controller, reading DaemonSets, pods and Nodes from the shared
/// informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let sets = informers.store::<DaemonSet>();
    let context = Context::new(
        informers,
        recorder,
        (informers.store::<Pod>(), informers.store::<Node>()),
    );
    let controller = Controller::for_stream(informers.subscribe::<DaemonSet>(), sets.clone())
        .owns_stream(informers.subscribe::<Pod>())
        .watches_stream(informers.subscribe::<Node>(), move |_| {
            sets.state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        });
    crate::drive(controller, "daemonset", reconcile, error_policy, context)
}

/// The stores a DaemonSet reconcile reads: pods and Nodes.
type Stores = (Store<Pod>, Store<Node>);

async fn reconcile(ds: Arc<DaemonSet>, cx: Arc<Context<Stores>>) -> Result<Action, Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let ds_ref = ds.object_ref(&());
    let spec = ds.spec.clone().unwrap_or_default();
    let selector = selector_string(&serde_json::to_value(&spec.selector).unwrap_or_default());
    if selector.is_empty() {
        cx.recorder.record_object(
            &ds_ref,
            Kind::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), &ns);
    let mine = crate::owned_in(&cx.stores.0, &ns, &uid);
    let nodes: Vec<Node> = cx.stores.1.state().iter().map(|n| (**n).clone()).collect();

    let template = serde_json::to_value(&spec.template).unwrap_or_default();
    let in_use: BTreeSet<String> = mine
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL).cloned())
        .collect();
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let revisions = history::sync(
        &cx.client,
        ds.as_ref(),
        history::Owner {
            api_version: "apps/v1",
            kind: "DaemonSet",
            hash_label: HASH_LABEL,
            selector: &selector,
            template: &template,
            collisions: collisions.unwrap_or(0),
            history_limit: usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0),
        },
        &in_use,
    )
    .await?;
    let hash = revisions
        .current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL).cloned())
        .unwrap_or_else(|| revisions.current.name_any());

    let now = rudder_api::time::now();
    let mut plan = plan::plan(&ds, &nodes, &mine, &hash, now);
    // Until the cache shows what this controller did, it does no more.
    if !crate::pods::pending(&cx.expectations, &cx.stores.0, &ns, &uid).is_empty() {
        plan.create.clear();
        plan.delete.clear();
    }
    if revisions.collisions > 0 || collisions.is_some() {
        plan.status.collision_count = Some(revisions.collisions);
    }
    for (kind, reason, message) in &plan.events {
        cx.recorder
            .record_object(&ds_ref, *kind, reason, message.clone());
    }
    let deletes = plan.delete.iter().map(|pod| {
        let (pods, mine) = (&pods, &mine);
        async move { (pod, crate::pods::delete(pods, mine, pod).await) }
    });
    for (pod, result) in futures_util::future::join_all(deletes).await {
        if result? {
            cx.expectations.deleted(&uid, pod);
            cx.recorder.record_object(
                &ds_ref,
                Kind::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {pod}"),
            );
        }
    }
    let generation = plan::template_generation(&ds);
    let made: Vec<Pod> = plan
        .create
        .iter()
        .map(|node| pod_for(&ds, &template, node, &hash, generation.as_deref()))
        .collect::<Result<_, _>>()?;
    crate::pods::create_slow_start(&cx, &pods, &ds_ref, &uid, made).await?;
    if ds.status.as_ref() != Some(&plan.status) {
        let sets: Api<DaemonSet> = Api::namespaced(cx.client.clone(), &ns);
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        // Counts that went to zero are removed, not left as they were.
        for field in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
        ] {
            if status.get(field).is_none() {
                status[field] = Value::Null;
            }
        }
        sets.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    }
    Ok(match plan.recheck_in {
        Some(secs) => Action::requeue(Duration::from_secs(secs.unsigned_abs().max(1))),
        None => Action::await_change(),
    })
}

/// A daemon pod for `node`: the template with the daemon tolerations, the
/// revision's labels, owned by the DaemonSet and pinned to the node by a
/// required affinity term on its name (which replaces any required terms
/// of the template, as kube's `ReplaceDaemonSetPodNodeNameNodeAffinity`).
fn pod_for(
    ds: &DaemonSet,
    template: &Value,
    node: &str,
    hash: &str,
    generation: Option<&str>,
) -> Result<Pod, Error> {
    let mut pod = template.clone();
    pod["apiVersion"] = "v1".into();
    pod["kind"] = "Pod".into();
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    let meta = &mut pod["metadata"];
    meta["generateName"] = format!("{}-", ds.name_any()).into();
    meta["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds.name_any(),
        "uid": ds.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    }]);
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    meta["labels"][HASH_LABEL] = hash.into();
    if let Some(g) = generation {
        meta["labels"][GENERATION_LABEL] = g.into();
    }
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    pod["spec"]["tolerations"] = serde_json::to_value(plan::tolerations(spec)).unwrap_or_default();
    if !pod["spec"]["affinity"].is_object() {
        pod["spec"]["affinity"] = json!({});
    }
    if !pod["spec"]["affinity"]["nodeAffinity"].is_object() {
        pod["spec"]["affinity"]["nodeAffinity"] = json!({});
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
    });
    serde_json::from_value(pod).map_err(|e| Error(kube::Error::SerdeError(e)))
}

fn error_policy(ds: Arc<DaemonSet>, error: &Error, _: Arc<Context<Stores>>) -> Action {
    crate::retry("daemonset", &ds.name_any(), error)
}
