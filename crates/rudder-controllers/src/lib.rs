//! Rudder's controllers. Each is an API client like any other (the `kube`
//! crate, over HTTPS to the API server), level-triggered: it compares what
//! is with what should be and acts, and is safe to run again at any time.

pub mod garbage_collector;

/// Runs every controller until the process ends.
pub async fn run(client: kube::Client) {
    garbage_collector::run(client).await;
}
