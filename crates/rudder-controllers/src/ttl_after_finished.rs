//! The TTL-after-finished controller: a finished Job (Complete or Failed)
//! with `spec.ttlSecondsAfterFinished` is deleted, with its pods
//! (Foreground), that many seconds after it finished.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use rudder_runtime::informers::Informers;

use crate::{Context, Error};

/// The controller, reading Jobs from the shared informers.
pub fn controller(informers: &Informers, recorder: rudder_runtime::events::Recorder) -> crate::Run {
    let context = Context::new(informers, recorder, ());
    crate::drive(
        Controller::for_stream(informers.subscribe::<Job>(), informers.store::<Job>()),
        "ttl-after-finished",
        reconcile,
        error_policy,
        context,
    )
}

/// When the Job is due for deletion (seconds since the epoch), if it is
/// finished and has a TTL.
pub fn due(job: &Job) -> Option<i64> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = finished.last_transition_time.as_ref()?.0.as_second();
    Some(at + i64::from(ttl))
}

async fn reconcile(job: Arc<Job>, cx: Arc<Context>) -> Result<Action, Error> {
    let Some(at) = due(&job) else {
        return Ok(Action::await_change());
    };
    let left = at - rudder_api::time::now();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left.unsigned_abs())));
    }
    // Checked again on a fresh read: the TTL may have changed since.
    let jobs: Api<Job> = Api::namespaced(cx.client.clone(), &job.namespace().unwrap_or_default());
    let fresh = match jobs.get(&job.name_any()).await {
        Ok(j) => j,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    if due(&fresh).is_none_or(|at| at > rudder_api::time::now()) {
        return Ok(Action::await_change());
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    tracing::info!(job = %fresh.name_any(), "deleting a finished Job past its ttlSecondsAfterFinished");
    match jobs.delete(&fresh.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(job: Arc<Job>, error: &Error, _: Arc<Context>) -> Action {
    crate::retry("ttl-after-finished", &job.name_any(), error)
}
