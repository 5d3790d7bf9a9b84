//! The Job controller: runs a Job's pods to its completions (NonIndexed
//! or Indexed, `parallelism` at a time), retries failures with back-off up
//! to `backoffLimit` (or per index), applies its pod failure and success
//! policies, its deadline and suspension, and writes the status and
//! conditions that `kubectl get/wait/describe job` read.
//!
//! Wiring only: the decisions are [`plan::plan`]. It runs on kube-runtime's
//! `Controller`, woken by its Jobs and by the pods they own, read from the
//! shared informers. Every status write is a compare-and-swap on the
//! Job's resourceVersion, so a stale cache cannot count a pod twice, and
//! its expectations keep it from creating twice.

pub mod indexes;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use serde_json::json;

use plan::{INDEX, INDEX_FAILURES, TRACKING_FINALIZER};

use crate::{Context, Error};

/// The controller, reading Jobs and pods from the shared informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let context = Context::new(informers, recorder, informers.store::<Pod>());
    crate::drive(
        Controller::for_stream(informers.subscribe::<Job>(), informers.store::<Job>())
            .owns_stream(informers.subscribe::<Pod>()),
        "job",
        reconcile,
        error_policy,
        context,
    )
}

async fn reconcile(job: Arc<Job>, cx: Arc<Context<Store<Pod>>>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), &ns);
    let mine = crate::owned_in(&cx.stores, &ns, &uid);
    let job_ref = job.object_ref(&());
    let jobs: Api<Job> = Api::namespaced(cx.client.clone(), &ns);

    // The status first: a pod's finalizer goes only once the status
    // counts it (as uncounted), so no pod is lost or counted twice. The
    // write is a compare-and-swap; when the cached Job is behind, it is
    // read again and the plan made again.
    let mut job = job;
    let mut tries = 0;
    let mut plan = loop {
        let mut plan = plan::plan(&job, &mine, rudder_api::time::now());
        // Until the cache shows what this controller did, it does no more.
        if !crate::pods::pending(&cx.expectations, &cx.stores, &ns, &uid).is_empty() {
            plan.create.clear();
            plan.delete.clear();
        }
        if job.status.as_ref() == Some(&plan.status) {
            break plan;
        }
        let mut updated = (*job).clone();
        updated.status = Some(plan.status.clone());
        match jobs
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => break plan,
            Err(kube::Error::Api(e)) if e.code == 409 && tries < 3 => {
                tries += 1;
                job = Arc::new(jobs.get(&name).await?);
            }
            Err(e) => return Err(e.into()),
        }
    };
    for (kind, reason, message) in &plan.events {
        cx.recorder
            .record_object(&job_ref, *kind, reason, message.clone());
    }
    let remove = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    for pod in &plan.finalize {
        match pods
            .patch(pod, &PatchParams::default(), &Patch::Strategic(&remove))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for pod in &plan.delete {
        if plan.uncount_deleted {
            // Let go first: a pod stopped on purpose is not a failure.
            match pods
                .patch(pod, &PatchParams::default(), &Patch::Strategic(&remove))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if crate::pods::delete(&pods, &mine, pod).await? {
            cx.expectations.deleted(&uid, pod);
            cx.recorder.record_object(
                &job_ref,
                Kind::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {pod}"),
            );
        }
    }
    if !plan.create.is_empty() {
        create(&cx, &job, &pods, &mine, &std::mem::take(&mut plan.create)).await?;
    }
    Ok(match plan.recheck_in {
        Some(secs) => Action::requeue(Duration::from_secs(secs.unsigned_abs().max(1))),
        None => Action::await_change(),
    })
}

/// Creates the pods (an index each for an Indexed Job), slowly started.
async fn create(
    cx: &Context<Store<Pod>>,
    job: &Job,
    pods: &Api<Pod>,
    mine: &[Pod],
    wanted: &[Option<i32>],
) -> Result<(), Error> {
    let made: Vec<Pod> = wanted
        .iter()
        .map(|i| pod_for(job, *i, i.map_or(0, |i| plan::failures_of_index(mine, i))))
        .collect::<Result<_, _>>()?;
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    crate::pods::create_slow_start(cx, pods, &job.object_ref(&()), uid, made).await
}

/// A pod of `job`, from its template: owned by it, tracked by its
/// finalizer and, for an Indexed Job, carrying its completion index (label,
/// annotation, `JOB_COMPLETION_INDEX` and the hostname `<job>-<index>`).
fn pod_for(job: &Job, index: Option<i32>, index_failures: i32) -> Result<Pod, Error> {
    let name = job.name_any();
    let template = job.spec.as_ref().map(|s| s.template.clone());
    let mut pod = serde_json::to_value(template.unwrap_or_default()).unwrap_or_default();
    pod["apiVersion"] = "v1".into();
    pod["kind"] = "Pod".into();
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    let meta = &mut pod["metadata"];
    meta["ownerReferences"] = json!([{
        "apiVersion": "batch/v1", "kind": "Job", "name": name,
        "uid": job.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    }]);
    meta["finalizers"] = json!([TRACKING_FINALIZER]);
    match index {
        None => meta["generateName"] = format!("{name}-").into(),
        Some(i) => {
            meta["generateName"] = format!("{name}-{i}-").into();
            for map in ["labels", "annotations"] {
                if !meta[map].is_object() {
                    meta[map] = json!({});
                }
                meta[map][INDEX] = i.to_string().into();
            }
            if job
                .spec
                .as_ref()
                .is_some_and(|s| s.backoff_limit_per_index.is_some())
            {
                meta["annotations"][INDEX_FAILURES] = index_failures.to_string().into();
            }
            let spec = &mut pod["spec"];
            if spec["hostname"].as_str().is_none_or(str::is_empty) {
                spec["hostname"] = format!("{name}-{i}").into();
            }
            let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": format!("metadata.labels['{INDEX}']")}}});
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_array_mut().into_iter().flatten() {
                    if !c["env"].is_array() {
                        c["env"] = json!([]);
                    }
                    if let Some(vars) = c["env"].as_array_mut()
                        && !vars.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX")
                    {
                        vars.push(env.clone());
                    }
                }
            }
        }
    }
    serde_json::from_value(pod).map_err(|e| Error(kube::Error::SerdeError(e)))
}

fn error_policy(job: Arc<Job>, error: &Error, _: Arc<Context<Store<Pod>>>) -> Action {
    crate::retry("job", &job.name_any(), error)
}
