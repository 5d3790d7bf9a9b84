//! Rudder's controllers. Each is an API client like any other (the `kube`
//! crate, over HTTPS to the API server), level-triggered: it compares what
//! is with what should be and acts, and is safe to run again at any time.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod namespace_defaults;
pub mod node_ipam;
mod pods;
pub mod replicaset;
pub mod statefulset;
pub mod ttl_after_finished;

/// What the controllers need to know of the cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pod IPs come from here: each node a /24.
    pub cluster_cidr: String,
    /// The cluster CA (PEM), published in every namespace.
    pub ca_pem: String,
}

/// Runs every controller until the process ends.
pub async fn run(client: kube::Client, config: Config) {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "rudder".into());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(EVENT_CONCURRENCY));
    let recorder = |component| {
        rudder_runtime::events::Recorder::new(
            client.clone(),
            component,
            host.clone(),
            slots.clone(),
        )
    };
    tokio::join!(
        garbage_collector::run(client.clone()),
        node_ipam::run(client.clone(), config.cluster_cidr),
        replicaset::run(client.clone(), recorder("replicaset-controller")),
        deployment::run(client.clone(), recorder("deployment-controller")),
        job::run(client.clone(), recorder("job-controller")),
        cronjob::run(client.clone(), recorder("cronjob-controller")),
        ttl_after_finished::run(client.clone(), recorder("ttl-after-finished-controller")),
        daemonset::run(client.clone(), recorder("daemonset-controller")),
        statefulset::run(client.clone(), recorder("statefulset-controller")),
        namespace_defaults::run(client.clone(), config.ca_pem),
    );
}

/// What a controller's reconciler shares: its API client and the
/// recorder of its events.
pub(crate) struct Context {
    pub(crate) client: kube::Client,
    pub(crate) recorder: rudder_runtime::events::Recorder,
}

/// A reconcile's failure: an API call's (retried by `error_policy`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kube::Error);

/// The objects of `listed` that `owner_uid` controls.
pub(crate) fn controlled_by<'a, K: kube::Resource>(listed: &'a [K], owner_uid: &str) -> Vec<&'a K> {
    listed
        .iter()
        .filter(|o| {
            o.meta()
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.uid == owner_uid)
        })
        .collect()
}

/// Event writes in flight at once, for all controllers.
const EVENT_CONCURRENCY: usize = 16;
