//! The CronJob controller: creates a CronJob's Job at each scheduled time
//! (on the clock of its `timeZone`), by its concurrency policy, keeps its
//! history limits and its status (`active`, `lastScheduleTime`,
//! `lastSuccessfulTime`).
//!
//! Wiring only: the decisions are [`plan::plan`]. It runs on kube-runtime's
//! `Controller`, woken by its CronJobs, the Jobs they own and its own
//! requeue at the next scheduled time. A Job's name is its scheduled time
//! (`<cronjob>-<unix minutes>`), so a time is never started twice.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rudder_api::cron::Zone;
use rudder_runtime::events::{Kind, Recorder};
use rudder_runtime::informers::Informers;
use serde_json::json;

use crate::{Context, Error};

/// The controller, reading CronJobs and Jobs from the shared informers.
pub fn controller(informers: &Informers, recorder: Recorder) -> crate::Run {
    let context = Context::new(informers, recorder, informers.store::<Job>());
    crate::drive(
        Controller::for_stream(
            informers.subscribe::<CronJob>(),
            informers.store::<CronJob>(),
        )
        .owns_stream(informers.subscribe::<Job>()),
        "cronjob",
        reconcile,
        error_policy,
        context,
    )
}

async fn reconcile(cj: Arc<CronJob>, cx: Arc<Context<Store<Job>>>) -> Result<Action, Error> {
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let cj_ref = cj.object_ref(&());
    let spec = cj.spec.clone().unwrap_or_default();
    let zone = match spec.time_zone.as_deref() {
        None => Zone::utc(),
        Some(tz) => match Zone::load(tz) {
            Ok(z) => z,
            Err(e) => {
                cx.recorder.record_object(
                    &cj_ref,
                    Kind::Warning,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {tz:?}: {e}"),
                );
                return Ok(Action::await_change());
            }
        },
    };
    let schedule = match rudder_api::cron::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            cx.recorder.record_object(
                &cj_ref,
                Kind::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok(Action::await_change());
        }
    };
    let jobs: Api<Job> = Api::namespaced(cx.client.clone(), &ns);
    let mine = crate::owned_in(&cx.stores, &ns, &uid);
    let now = rudder_api::time::now();
    let mut plan = plan::plan(&cj, &mine, &schedule, &zone, now);
    for (kind, reason, message) in &plan.events {
        cx.recorder
            .record_object(&cj_ref, *kind, reason, message.clone());
    }
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for job in &plan.delete {
        match jobs.delete(job, &background).await {
            Ok(_) => cx.recorder.record_object(
                &cj_ref,
                Kind::Normal,
                "SuccessfulDelete",
                format!("Deleted job {job}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                cx.recorder.record_object(
                    &cj_ref,
                    Kind::Warning,
                    "FailedDelete",
                    format!("Deleted job: {e}"),
                );
                return Err(e.into());
            }
        }
    }
    if let Some((job_name, at)) = &plan.create {
        let created = match jobs
            .create(&PostParams::default(), &job_for(&cj, job_name, *at, &zone)?)
            .await
        {
            Ok(job) => {
                cx.recorder.record_object(
                    &cj_ref,
                    Kind::Normal,
                    "SuccessfulCreate",
                    format!("Created job {job_name}"),
                );
                Some(job)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Made before (a status write lost): ours if it says so.
                let job = jobs.get(job_name).await?;
                crate::controlled_by(std::slice::from_ref(&job), &uid)
                    .first()
                    .map(|j| (*j).clone())
            }
            Err(e) => {
                cx.recorder.record_object(
                    &cj_ref,
                    Kind::Warning,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return Err(e.into());
            }
        };
        if let Some(job) = created {
            let mut active = plan.status.active.take().unwrap_or_default();
            active.push(job.object_ref(&()));
            plan.status.active = Some(active);
            plan.status.last_schedule_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(*at).unwrap_or_default(),
                ));
        }
    }
    if cj.status.as_ref() != Some(&plan.status) {
        let crons: Api<CronJob> = Api::namespaced(cx.client.clone(), &ns);
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        if status.get("active").is_none() {
            status["active"] = serde_json::Value::Null;
        }
        crons
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await?;
    }
    Ok(match plan.requeue_in {
        Some(secs) => Action::requeue(Duration::from_secs_f64(secs.max(0.1))),
        None => Action::await_change(),
    })
}

/// The Job for the time `at`: the template's labels, annotations and
/// spec, the scheduled time, owned by the CronJob.
fn job_for(cj: &CronJob, name: &str, at: i64, zone: &Zone) -> Result<Job, Error> {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let mut job = serde_json::to_value(&template).unwrap_or_default();
    job["apiVersion"] = "batch/v1".into();
    job["kind"] = "Job".into();
    if !job["metadata"].is_object() {
        job["metadata"] = json!({});
    }
    let meta = &mut job["metadata"];
    meta["name"] = name.into();
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][plan::SCHEDULED_AT] = plan::rfc3339_in(at, zone).into();
    meta["ownerReferences"] = json!([{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": cj.name_any(),
        "uid": cj.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    }]);
    serde_json::from_value(job).map_err(|e| Error(kube::Error::SerdeError(e)))
}

fn error_policy(cj: Arc<CronJob>, error: &Error, _: Arc<Context<Store<Job>>>) -> Action {
    crate::retry("cronjob", &cj.name_any(), error)
}
