//! Rudder's controllers. Each is an API client like any other (the `kube`
//! crate, over HTTPS to the API server), level-triggered: it compares what
//! is with what should be and acts, and is safe to run again at any time.

use kube::runtime::reflector::Store;
use rudder_runtime::expectations::Expectations;
use rudder_runtime::informers::Informers;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod namespace_defaults;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_gc;
mod pods;
pub mod replicaset;
pub mod replication_controller;
pub mod statefulset;
pub mod ttl_after_finished;

/// What the controllers need to know of the cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pod IPs come from here: each node a /24.
    pub cluster_cidr: String,
    /// The cluster CA (PEM), published in every namespace.
    pub ca_pem: String,
    /// How long a node may be silent before it is Unknown.
    pub node_monitor_grace_period: std::time::Duration,
}

/// Runs every controller until the process ends. The workload
/// controllers read the cluster through one set of shared informers
/// (one watch per kind) and act through the API.
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
    rudder_runtime::metrics::register();
    let informers = Informers::new(client.clone());
    let controllers = futures_util::future::join_all([
        replicaset::controller(&informers, recorder("replicaset-controller")),
        replication_controller::controller(&informers, recorder("replication-controller")),
        deployment::controller(&informers, recorder("deployment-controller")),
        job::controller(&informers, recorder("job-controller")),
        cronjob::controller(&informers, recorder("cronjob-controller")),
        ttl_after_finished::controller(&informers, recorder("ttl-after-finished-controller")),
        daemonset::controller(&informers, recorder("daemonset-controller")),
        statefulset::controller(&informers, recorder("statefulset-controller")),
        node_lifecycle::controller(
            &informers,
            recorder("node-controller"),
            config.node_monitor_grace_period,
        ),
        pod_gc::controller(&informers),
        disruption::controller(&informers, recorder("controllermanager")),
    ]);
    // No controller decides from a cache that has not listed yet.
    let synced = informers.synced();
    let controllers = async move {
        synced.await;
        tracing::info!("controllers' caches are synced; controllers running");
        controllers.await;
    };
    tokio::join!(
        informers.run(),
        controllers,
        garbage_collector::run(client.clone()),
        node_ipam::run(client.clone(), config.cluster_cidr),
        namespace_defaults::run(client.clone(), config.ca_pem),
    );
}

/// A controller's run, boxed so that they can be run together.
pub(crate) type Run = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `controller` until the process ends, its reconciles counted and
/// timed as `name` (`rudder_runtime::metrics`).
pub(crate) fn drive<K, C, F, Fut>(
    controller: kube::runtime::Controller<K>,
    name: &'static str,
    reconcile: F,
    error_policy: fn(
        std::sync::Arc<K>,
        &Error,
        std::sync::Arc<C>,
    ) -> kube::runtime::controller::Action,
    context: std::sync::Arc<C>,
) -> Run
where
    K: rudder_runtime::informers::Kind,
    C: Send + Sync + 'static,
    F: Fn(std::sync::Arc<K>, std::sync::Arc<C>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<kube::runtime::controller::Action, Error>>
        + Send
        + 'static,
{
    use futures_util::StreamExt;
    Box::pin(
        controller
            .run(
                rudder_runtime::metrics::metered(name, reconcile),
                error_policy,
                context,
            )
            .for_each(|_| std::future::ready(())),
    )
}

/// What a controller's reconciler shares: its API client, the recorder of
/// its events, the informers' stores it reads (`S`) and its expectations.
pub(crate) struct Context<S = ()> {
    pub(crate) client: kube::Client,
    pub(crate) recorder: rudder_runtime::events::Recorder,
    pub(crate) stores: S,
    pub(crate) expectations: Expectations,
}

impl<S> Context<S> {
    pub(crate) fn new(
        informers: &Informers,
        recorder: rudder_runtime::events::Recorder,
        stores: S,
    ) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            client: informers.client().clone(),
            recorder,
            stores,
            expectations: Expectations::default(),
        })
    }
}

/// A reconcile's failure: an API call's (retried by `error_policy`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kube::Error);

impl Error {
    /// A 409: the cache was behind a write; tried again soon, quietly.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(&self.0, kube::Error::Api(e) if e.code == 409)
    }
}

/// What a controller does after a failed reconcile: a conflict (its cache
/// was behind) is retried soon and logged quietly, anything else after a
/// second with a warning.
pub(crate) fn retry(
    controller: &str,
    object: &str,
    error: &Error,
) -> kube::runtime::controller::Action {
    use std::time::Duration;
    if error.is_conflict() {
        tracing::debug!(controller, object, "{error}");
        kube::runtime::controller::Action::requeue(Duration::from_millis(100))
    } else {
        tracing::warn!(controller, object, "{error}");
        kube::runtime::controller::Action::requeue(Duration::from_secs(1))
    }
}

/// The objects of `K` in namespace `ns` that `owner_uid` controls, from a
/// store.
pub(crate) fn owned_in<K>(store: &Store<K>, ns: &str, owner_uid: &str) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .filter(|o| is_controlled_by(o.as_ref(), owner_uid))
        .map(|o| (**o).clone())
        .collect()
}

fn is_controlled_by<K: kube::Resource>(o: &K, owner_uid: &str) -> bool {
    o.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

/// The objects of `listed` that `owner_uid` controls.
pub(crate) fn controlled_by<'a, K: kube::Resource>(listed: &'a [K], owner_uid: &str) -> Vec<&'a K> {
    listed
        .iter()
        .filter(|o| is_controlled_by(*o, owner_uid))
        .collect()
}

/// Event writes in flight at once, for all controllers.
const EVENT_CONCURRENCY: usize = 16;
