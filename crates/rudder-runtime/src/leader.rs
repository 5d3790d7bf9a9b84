//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it: one holder at a time renews the Lease; the
//! others watch it and take over when it has not changed for its duration.
//! With several servers sharing one etcd, the scheduler and the
//! controllers run on one of them only.
//!
//! # Guarantees
//! A candidate only starts the work after writing itself as holder with a
//! compare-and-swap on the Lease's resourceVersion, and stops it as soon
//! as it cannot renew within the renew deadline.
//!
//! # Assumptions
//! Expiry is judged on the candidate's own clock, from when it last saw
//! the Lease change (not from `renewTime`), so clock skew between machines
//! does not matter.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::Instant;

/// How long a Lease holds without renewal (client-go's default 15 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps trying to renew before it gives up (10 s).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews and the others look (2 s).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Who competes for which Lease.
#[derive(Debug, Clone)]
pub struct Election {
    /// `kube-system/<name>`: `kube-scheduler`, `kube-controller-manager`.
    pub name: String,
    /// This candidate (`<host>_<random>`).
    pub identity: String,
}

impl Election {
    /// A candidate for `name` as `identity`. A server keeps its identity
    /// across restarts, so that it takes its own Lease back at once
    /// rather than waiting for it to expire.
    pub fn new(name: &str, identity: &str) -> Self {
        Self {
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }
}

/// This server's identity in elections: `<host>_<id>`, the id kept in
/// `file` (made at the first start).
pub fn identity(host: &str, file: &std::path::Path) -> std::io::Result<String> {
    let id = match std::fs::read_to_string(file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(file, &id)?;
            id
        }
    };
    Ok(format!("{host}_{id}"))
}

/// Runs `work()` whenever this candidate holds the Lease, stopping it when
/// the Lease is lost, until the task is dropped.
pub async fn run_elected<F, Fut>(client: kube::Client, election: Election, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let mut observed: Option<(String, Instant)> = None;
    loop {
        if try_acquire(&leases, &election, &mut observed).await {
            tracing::info!(lease = %election.name, identity = %election.identity, "became leader");
            let task = tokio::spawn(work());
            let abort = task.abort_handle();
            let mut last_renew = Instant::now();
            loop {
                tokio::time::sleep(RETRY_PERIOD).await;
                if task.is_finished() {
                    return;
                }
                if try_acquire(&leases, &election, &mut observed).await {
                    last_renew = Instant::now();
                } else if last_renew.elapsed() >= RENEW_DEADLINE {
                    break;
                }
            }
            abort.abort();
            tracing::warn!(lease = %election.name, identity = %election.identity, "lost the lease; stopped");
        }
        tokio::time::sleep(RETRY_PERIOD).await;
    }
}

/// Takes or renews the Lease if it is ours, free or expired; whether we
/// hold it now.
async fn try_acquire(
    leases: &Api<Lease>,
    election: &Election,
    observed: &mut Option<(String, Instant)>,
) -> bool {
    let now = rudder_api::time::micro_now();
    let spec = |transitions: i32, acquire: serde_json::Value| {
        json!({
            "holderIdentity": election.identity,
            "leaseDurationSeconds": LEASE_DURATION.as_secs(),
            "acquireTime": acquire,
            "renewTime": now,
            "leaseTransitions": transitions,
        })
    };
    let current = match leases.get_opt(&election.name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(lease = %election.name, "reading the lease: {e}");
            return false;
        }
    };
    let Some(mut lease) = current else {
        let new = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": election.name, "namespace": "kube-system"},
            "spec": spec(0, json!(now)),
        });
        let Ok(new) = serde_json::from_value::<Lease>(new) else {
            return false;
        };
        return leases.create(&PostParams::default(), &new).await.is_ok();
    };
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    let s = lease.spec.clone().unwrap_or_default();
    let holder = s.holder_identity.clone().unwrap_or_default();
    let ours = holder == election.identity;
    // Expired: unchanged for its duration since we first saw this version.
    let expired = match observed {
        Some((seen, at)) if *seen == rv => {
            let duration = s
                .lease_duration_seconds
                .map_or(LEASE_DURATION, |d| Duration::from_secs(d.max(1) as u64));
            at.elapsed() >= duration
        }
        _ => {
            *observed = Some((rv.clone(), Instant::now()));
            false
        }
    };
    if !ours && !holder.is_empty() && !expired {
        return false;
    }
    let transitions = s.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let acquire = if ours {
        serde_json::to_value(&s.acquire_time).unwrap_or(json!(now))
    } else {
        json!(now)
    };
    let Ok(new_spec) = serde_json::from_value(spec(transitions, acquire)) else {
        return false;
    };
    lease.spec = Some(new_spec);
    // The update carries the resourceVersion read: a rival's write in
    // between makes it fail with 409.
    match leases
        .replace(&election.name, &PostParams::default(), &lease)
        .await
    {
        Ok(l) => {
            *observed = Some((
                l.metadata.resource_version.unwrap_or_default(),
                Instant::now(),
            ));
            true
        }
        Err(e) => {
            tracing::debug!(lease = %election.name, "writing the lease: {e}");
            false
        }
    }
}
