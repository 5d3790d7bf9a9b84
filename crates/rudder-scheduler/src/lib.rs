//! Rudder's scheduler, shaped as kube-scheduler: a queue ([`queue`]), a
//! cache that is also the cycle's snapshot ([`cache`]), the framework's
//! extension points ([`framework`]), plugins one file each ([`plugins`])
//! found by name in a [`registry`], and the loop that drives them through
//! the API ([`scheduler`]).

pub mod cache;
pub mod framework;
pub mod plugins;
pub mod queue;
pub mod registry;
pub mod scheduler;

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Runs the default scheduler until the task is dropped.
pub async fn run(client: kube::Client, config: scheduler::Config) {
    let profile = registry::default_profile(&config.scheduler_name);
    let framework = match framework::Framework::new(profile, &registry::Registry::default()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("scheduler profile: {e}");
            return;
        }
    };
    scheduler::Scheduler::new(client, config, framework)
        .run()
        .await;
}
