//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`,
//! hostnames under the governing Service, and claims from
//! `volumeClaimTemplates` that outlive them (as the retention policy
//! says), made in order (OrderedReady) or all at once (Parallel), rolled
//! to a new template from the highest ordinal down to the partition, with
//! ControllerRevisions for `kubectl rollout history/undo`.
//!
//! Wiring only: the decisions are [`plan::plan`]. It runs on kube-runtime's
//! `Controller`, woken by its StatefulSets and the pods they own. Pod
//! names are the expectations: a create of a name that exists is a 409,
//! so a stale cache cannot make two pods of one ordinal.

pub mod plan;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rudder_api::selector::selector_string;
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use serde_json::{Value, json};

use plan::{From, POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL};

use crate::{Context, Error, history};

/// The label on a StatefulSet's ControllerRevisions with their hash.
const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The controller, reading StatefulSets and pods from the shared
/// informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let context = Context::new(informers, recorder, informers.store::<Pod>());
    crate::drive(
        Controller::for_stream(
            informers.subscribe::<StatefulSet>(),
            informers.store::<StatefulSet>(),
        )
        .owns_stream(informers.subscribe::<Pod>()),
        "statefulset",
        reconcile,
        error_policy,
        context,
    )
}

async fn reconcile(set: Arc<StatefulSet>, cx: Arc<Context<Store<Pod>>>) -> Result<Action, Error> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let set_ref = set.object_ref(&());
    let spec = set.spec.clone().unwrap_or_default();
    let selector = selector_string(&serde_json::to_value(&spec.selector).unwrap_or_default());
    if selector.is_empty() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), &ns);
    let mine = crate::owned_in(&cx.stores, &ns, &uid);

    let template = serde_json::to_value(&spec.template).unwrap_or_default();
    let old_current = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let mut in_use: BTreeSet<String> = mine
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_LABEL).cloned())
        .collect();
    in_use.extend(old_current.clone());
    let revisions = history::sync(
        &cx.client,
        set.as_ref(),
        history::Owner {
            api_version: "apps/v1",
            kind: "StatefulSet",
            hash_label: HASH_LABEL,
            selector: &selector,
            template: &template,
            collisions: set
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
            history_limit: usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0),
        },
        &in_use,
    )
    .await?;
    let update = revisions.current.name_any();
    // The current revision's template, for pods below the partition.
    let current = old_current
        .as_ref()
        .and_then(|c| revisions.others.iter().find(|r| r.name_any() == *c))
        .cloned();
    let current_name = current.as_ref().map_or(update.clone(), |r| r.name_any());
    let current_template = current
        .as_ref()
        .and_then(|r| r.data.as_ref())
        .map(|d| {
            let mut t = d.0["spec"]["template"].clone();
            if let Some(o) = t.as_object_mut() {
                o.remove("$patch");
            }
            t
        })
        .unwrap_or_else(|| template.clone());

    let now = rudder_api::time::now();
    let mut plan = plan::plan(&set, &mine, &current_name, &update, now);
    plan.status.collision_count = Some(revisions.collisions);
    if set.status.as_ref() != Some(&plan.status) {
        let sets: Api<StatefulSet> = Api::namespaced(cx.client.clone(), &ns);
        sets.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": plan.status })),
        )
        .await?;
    }

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cx.client.clone(), &ns);
    let policy = spec
        .persistent_volume_claim_retention_policy
        .clone()
        .unwrap_or_default();
    let scaled_delete = policy.when_scaled.as_deref() == Some("Delete");
    for o in &plan.condemned {
        // whenScaled: Delete: a claim goes with the pod past the replicas.
        let pod = mine
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(&format!("{name}-{o}")));
        if let (true, Some(pod)) = (scaled_delete, pod) {
            for claim in claim_names(&set, *o) {
                let owner = json!([{"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(),
                                    "uid": pod.metadata.uid, "controller": true, "blockOwnerDeletion": true}]);
                let patch = json!({"metadata": {"ownerReferences": owner}});
                match claims
                    .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for pod in &plan.delete {
        if crate::pods::delete(&pods, &mine, pod).await? {
            cx.recorder.record_object(
                &set_ref,
                Kind::Normal,
                "SuccessfulDelete",
                format!("delete Pod {pod} in StatefulSet {name} successful"),
            );
        }
    }
    let made = plan.create.iter().map(|(o, from)| {
        let (template, revision) = match from {
            From::Current => (&current_template, current_name.as_str()),
            From::Update => (&template, update.as_str()),
        };
        create_pod(&cx, &set, &pods, &claims, *o, template, revision)
    });
    for result in futures_util::future::join_all(made).await {
        result?;
    }
    Ok(match plan.recheck_in {
        Some(secs) => Action::requeue(Duration::from_secs(secs.unsigned_abs().max(1))),
        None => Action::await_change(),
    })
}

/// The names of ordinal `o`'s claims: `<template>-<set>-<o>`.
fn claim_names(set: &StatefulSet, o: i32) -> Vec<String> {
    set.spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .map(|t| {
            format!(
                "{}-{}-{o}",
                t.metadata.name.as_deref().unwrap_or_default(),
                set.name_any()
            )
        })
        .collect()
}

/// Creates ordinal `o`'s missing claims, then its pod.
async fn create_pod(
    cx: &Context<Store<Pod>>,
    set: &StatefulSet,
    pods: &Api<Pod>,
    claims: &Api<PersistentVolumeClaim>,
    o: i32,
    template: &Value,
    revision: &str,
) -> Result<(), Error> {
    let name = set.name_any();
    let pod_name = format!("{name}-{o}");
    let spec = set.spec.clone().unwrap_or_default();
    let set_owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                           "uid": set.metadata.uid, "controller": true, "blockOwnerDeletion": true});
    let when_deleted = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    let selector_labels = serde_json::to_value(&spec.selector.match_labels).unwrap_or(Value::Null);
    let mut volumes: Vec<Value> = Vec::new();
    for t in spec.volume_claim_templates.iter().flatten() {
        let tname = t.metadata.name.clone().unwrap_or_default();
        let claim_name = format!("{tname}-{name}-{o}");
        let mut claim = serde_json::to_value(t).unwrap_or_default();
        claim["apiVersion"] = "v1".into();
        claim["kind"] = "PersistentVolumeClaim".into();
        claim["metadata"]["name"] = claim_name.clone().into();
        claim["metadata"]["namespace"] = Value::Null;
        if !claim["metadata"]["labels"].is_object() {
            claim["metadata"]["labels"] = json!({});
        }
        for (k, v) in selector_labels.as_object().into_iter().flatten() {
            claim["metadata"]["labels"][k] = v.clone();
        }
        if when_deleted {
            claim["metadata"]["ownerReferences"] = json!([set_owner]);
        }
        claim.as_object_mut().map(|c| c.remove("status"));
        let claim: PersistentVolumeClaim =
            serde_json::from_value(claim).map_err(|e| Error(kube::Error::SerdeError(e)))?;
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => cx.recorder.record_object(
                &set.object_ref(&()),
                Kind::Normal,
                "SuccessfulCreate",
                format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {name} success"),
            ),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                cx.recorder.record_object(
                    &set.object_ref(&()),
                    Kind::Warning,
                    "FailedCreate",
                    format!("create Claim {claim_name} for Pod {pod_name} in StatefulSet {name} failed error: {e}"),
                );
                return Err(e.into());
            }
        }
        volumes.push(json!({"name": tname, "persistentVolumeClaim": {"claimName": claim_name}}));
    }

    let mut pod = template.clone();
    pod["apiVersion"] = "v1".into();
    pod["kind"] = "Pod".into();
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    let meta = &mut pod["metadata"];
    meta["name"] = pod_name.clone().into();
    meta["generateName"] = format!("{name}-").into();
    meta["ownerReferences"] = json!([set_owner]);
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    meta["labels"][POD_NAME_LABEL] = pod_name.clone().into();
    meta["labels"][POD_INDEX_LABEL] = o.to_string().into();
    meta["labels"][REVISION_LABEL] = revision.into();
    pod["spec"]["hostname"] = pod_name.clone().into();
    if let Some(service) = spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = service.clone().into();
    }
    if !volumes.is_empty() {
        let claimed: BTreeSet<String> = volumes
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        let others = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["name"].as_str().is_none_or(|n| !claimed.contains(n)))
            .cloned();
        volumes.extend(others);
        pod["spec"]["volumes"] = Value::Array(volumes);
    }
    let pod: Pod = serde_json::from_value(pod).map_err(|e| Error(kube::Error::SerdeError(e)))?;
    match pods.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            cx.recorder.record_object(
                &set.object_ref(&()),
                Kind::Normal,
                "SuccessfulCreate",
                format!("create Pod {pod_name} in StatefulSet {name} successful"),
            );
            Ok(())
        }
        // The pod is there already (a stale cache): the name is the guard.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => {
            cx.recorder.record_object(
                &set.object_ref(&()),
                Kind::Warning,
                "FailedCreate",
                format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}"),
            );
            Err(e.into())
        }
    }
}

fn error_policy(set: Arc<StatefulSet>, error: &Error, _: Arc<Context<Store<Pod>>>) -> Action {
    crate::retry("statefulset", &set.name_any(), error)
}
