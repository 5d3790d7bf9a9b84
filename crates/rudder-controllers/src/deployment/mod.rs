//! The Deployment controller: a Deployment's pods run through
//! ReplicaSets, one per template; changing the template rolls out a new
//! one (RollingUpdate within maxSurge/maxUnavailable, or Recreate), with
//! revisions that `kubectl rollout history/undo` read, and the status
//! `kubectl rollout status` waits on.
//!
//! Wiring only: the decisions are in [`plan`]. It runs on kube-runtime's
//! `Controller`, woken by its Deployments and by the ReplicaSets they own.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use serde_json::json;

use plan::{HASH_LABEL, REVISION};

use crate::{Context, Error};

/// The controller, reading Deployments and ReplicaSets from the shared
/// informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let context = Context::new(informers, recorder, informers.store::<ReplicaSet>());
    crate::drive(
        Controller::for_stream(
            informers.subscribe::<Deployment>(),
            informers.store::<Deployment>(),
        )
        .owns_stream(informers.subscribe::<ReplicaSet>()),
        "deployment",
        reconcile,
        error_policy,
        context,
    )
}

async fn reconcile(
    d: Arc<Deployment>,
    cx: Arc<Context<Store<ReplicaSet>>>,
) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let sets: Api<ReplicaSet> = Api::namespaced(cx.client.clone(), &ns);
    let listed = crate::owned_in(&cx.stores, &ns, &uid);
    let owned: Vec<&ReplicaSet> = listed.iter().collect();
    let mut new = owned
        .iter()
        .copied()
        .find(|rs| plan::is_current(&d, rs))
        .cloned();
    let old: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|rs| {
            new.as_ref()
                .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
        })
        .collect();
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = plan::spec_replicas(&d);
    let paused = spec.paused == Some(true);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");

    // What this reconcile wrote, newer than the cache.
    let mut written: Vec<ReplicaSet> = Vec::new();
    if new.is_none() && !paused {
        let initial = if recreate {
            0
        } else {
            plan::new_rs_replicas(&d, &owned, None)
        };
        let created = create_new(&cx, &d, &sets, &owned, initial).await?;
        written.push(created.clone());
        new = Some(created);
    }
    let revision = plan::next_revision(&old);
    if let Some(rs) = &new {
        // The new set carries the newest revision (an undo makes an old one
        // current again, and it becomes the newest).
        if plan::revision(rs).is_none_or(|r| r < revision) {
            written.push(annotate(&sets, rs, revision, &d).await?);
        }
    }

    if !paused {
        if recreate {
            // Old pods all gone first, then the new ones.
            let old_running = old.iter().any(|rs| plan::rs_replicas(rs) > 0);
            for rs in old.iter().filter(|rs| plan::rs_replicas(rs) > 0) {
                written.push(scale(&cx, &d, &sets, rs, 0).await?);
            }
            let old_pods = old
                .iter()
                .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0));
            if let Some(rs) = &new
                && !old_running
                && !old_pods
                && plan::rs_replicas(rs) != replicas
            {
                written.push(scale(&cx, &d, &sets, rs, replicas).await?);
            }
        } else {
            if let Some(rs) = &new {
                let all: Vec<&ReplicaSet> = old.iter().copied().chain([rs]).collect();
                let target = plan::new_rs_replicas(&d, &all, Some(rs));
                if target != plan::rs_replicas(rs) {
                    written.push(scale(&cx, &d, &sets, rs, target).await?);
                }
            }
            for (set, target) in plan::old_rs_scale_down(&d, new.as_ref(), &old) {
                if let Some(rs) = old
                    .iter()
                    .find(|rs| rs.metadata.name.as_deref() == Some(&set))
                {
                    written.push(scale(&cx, &d, &sets, rs, target).await?);
                }
            }
        }
        cleanup(&sets, &d, &old).await?;
    }

    // The status, from the sets as this reconcile left them.
    let mut listed = crate::owned_in(&cx.stores, &ns, &uid);
    for rs in written {
        match listed
            .iter_mut()
            .find(|l| l.metadata.uid == rs.metadata.uid)
        {
            Some(l) => *l = rs,
            None => listed.push(rs),
        }
    }
    let owned: Vec<&ReplicaSet> = listed.iter().collect();
    let new = owned.iter().copied().find(|rs| plan::is_current(&d, rs));
    let status = plan::status(
        &d,
        &owned,
        new,
        &rudder_api::time::rfc3339_now(),
        rudder_api::time::now(),
    );
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), &ns);
    if let Some(rs) = new
        && let Some(revision) = plan::revision(rs)
        && d.annotations().get(REVISION).map(String::as_str) != Some(revision.to_string().as_str())
    {
        let patch = json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
        deployments
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if d.status.as_ref() != Some(&status) {
        deployments
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await?;
    }
    // Until done, look again before the progress deadline passes.
    let done =
        status.updated_replicas == Some(replicas) && status.available_replicas == Some(replicas);
    Ok(if done || paused {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(10))
    })
}

/// Creates the ReplicaSet for the current template, named by its hash.
async fn create_new(
    cx: &Context<Store<ReplicaSet>>,
    d: &Deployment,
    sets: &Api<ReplicaSet>,
    owned: &[&ReplicaSet],
    replicas: i32,
) -> Result<ReplicaSet, Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let collisions = d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let hash = plan::template_hash(&spec.template, collisions);
    let mut template = serde_json::to_value(&spec.template).unwrap_or_default();
    template["metadata"]["labels"][HASH_LABEL] = hash.clone().into();
    let mut selector = serde_json::to_value(&spec.selector).unwrap_or_default();
    selector["matchLabels"][HASH_LABEL] = hash.clone().into();
    let name = format!("{}-{hash}", d.name_any());
    let max = replicas + plan::fenceposts(d).0;
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        REVISION.into(),
        plan::next_revision(owned).to_string().into(),
    );
    annotations.insert(
        "deployment.kubernetes.io/desired-replicas".into(),
        plan::spec_replicas(d).to_string().into(),
    );
    annotations.insert(
        "deployment.kubernetes.io/max-replicas".into(),
        max.to_string().into(),
    );
    if let Some(cause) = d.annotations().get("kubernetes.io/change-cause") {
        annotations.insert("kubernetes.io/change-cause".into(), cause.clone().into());
    }
    let mut labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": d.namespace(), "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.name_any(),
                                 "uid": d.metadata.uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"replicas": replicas, "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
                 "selector": selector, "template": template},
    });
    let rs: ReplicaSet = serde_json::from_value(rs).map_err(kube::Error::SerdeError)?;
    let created = match sets.create(&PostParams::default(), &rs).await {
        Ok(created) => created,
        // Made by an earlier reconcile whose answer was lost.
        Err(kube::Error::Api(e)) if e.code == 409 => sets.get(&name).await?,
        Err(e) => return Err(e.into()),
    };
    if replicas > 0 {
        cx.recorder.record_object(
            &d.object_ref(&()),
            Kind::Normal,
            "ScalingReplicaSet",
            format!("Scaled up replica set {name} from 0 to {replicas}"),
        );
    }
    Ok(created)
}

/// Gives the current set the newest revision (and the change cause).
async fn annotate(
    sets: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    revision: i64,
    d: &Deployment,
) -> Result<ReplicaSet, Error> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(REVISION.into(), revision.to_string().into());
    if let Some(cause) = d.annotations().get("kubernetes.io/change-cause") {
        annotations.insert("kubernetes.io/change-cause".into(), cause.clone().into());
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    Ok(sets
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Scales a set, saying so as Kubernetes does.
async fn scale(
    cx: &Context<Store<ReplicaSet>>,
    d: &Deployment,
    sets: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    to: i32,
) -> Result<ReplicaSet, Error> {
    let from = plan::rs_replicas(rs);
    let patch = json!({
        "metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas":
                                      plan::spec_replicas(d).to_string()}},
        "spec": {"replicas": to},
    });
    let scaled = sets
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let direction = if to > from { "up" } else { "down" };
    cx.recorder.record_object(
        &d.object_ref(&()),
        Kind::Normal,
        "ScalingReplicaSet",
        format!(
            "Scaled {direction} replica set {} from {from} to {to}",
            rs.name_any()
        ),
    );
    Ok(scaled)
}

/// Deletes the oldest empty old sets beyond `revisionHistoryLimit`.
async fn cleanup(sets: &Api<ReplicaSet>, d: &Deployment, old: &[&ReplicaSet]) -> Result<(), Error> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut empty: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|rs| {
            plan::rs_replicas(rs) == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
        })
        .collect();
    if empty.len() <= limit {
        return Ok(());
    }
    empty.sort_by_key(|rs| plan::revision(rs).unwrap_or(0));
    for rs in empty.iter().take(empty.len() - limit) {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match sets.delete(&rs.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn error_policy(d: Arc<Deployment>, error: &Error, _: Arc<Context<Store<ReplicaSet>>>) -> Action {
    crate::retry("deployment", &d.name_any(), error)
}
