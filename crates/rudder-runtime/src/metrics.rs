//! Controller metrics (controller-runtime's names): reconciles by
//! controller and result, their latency, and reconciles in flight; added
//! to the API server's `/metrics` when the controllers run in its process
//! ([`register`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use rudder_api::metrics::Histogram;

#[derive(Debug, Default)]
struct Registry {
    total: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Histogram>,
    active: BTreeMap<&'static str, i64>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(&mut registry().lock().unwrap_or_else(PoisonError::into_inner))
}

/// A reconcile's future, boxed.
pub type Reconciling<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A reconcile function wrapped to be counted and timed under `name`.
pub fn metered<K, C, T, E, F, Fut>(
    name: &'static str,
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<C>) -> Reconciling<T, E>
where
    F: Fn(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    move |object, context| {
        let started = Instant::now();
        with(|r| *r.active.entry(name).or_default() += 1);
        let run = reconcile(object, context);
        Box::pin(async move {
            let result = run.await;
            with(|r| {
                *r.active.entry(name).or_default() -= 1;
                let outcome = if result.is_ok() { "success" } else { "error" };
                *r.total.entry((name, outcome)).or_default() += 1;
                r.durations
                    .entry(name)
                    .or_default()
                    .observe(started.elapsed().as_secs_f64());
            });
            result
        })
    }
}

/// The metrics in Prometheus' text format.
pub fn render(out: &mut String) {
    with(|r| {
        out.push_str(
            "# HELP controller_runtime_reconcile_total Reconciles by controller and result.\n",
        );
        out.push_str("# TYPE controller_runtime_reconcile_total counter\n");
        for ((name, result), n) in &r.total {
            let _ = writeln!(
                out,
                "controller_runtime_reconcile_total{{controller=\"{name}\",result=\"{result}\"}} {n}"
            );
        }
        out.push_str("# HELP controller_runtime_reconcile_errors_total Reconciles that failed, by controller.\n");
        out.push_str("# TYPE controller_runtime_reconcile_errors_total counter\n");
        for ((name, result), n) in &r.total {
            if *result == "error" {
                let _ = writeln!(
                    out,
                    "controller_runtime_reconcile_errors_total{{controller=\"{name}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP controller_runtime_reconcile_time_seconds Reconcile latency by controller.\n",
        );
        out.push_str("# TYPE controller_runtime_reconcile_time_seconds histogram\n");
        for (name, h) in &r.durations {
            h.render(
                out,
                "controller_runtime_reconcile_time_seconds",
                &format!("controller=\"{name}\""),
            );
        }
        out.push_str(
            "# HELP controller_runtime_active_workers Reconciles running now, by controller.\n",
        );
        out.push_str("# TYPE controller_runtime_active_workers gauge\n");
        for (name, n) in &r.active {
            let _ = writeln!(
                out,
                "controller_runtime_active_workers{{controller=\"{name}\"}} {n}"
            );
        }
    });
}

/// Adds these metrics to the API server's `/metrics` (same process).
pub fn register() {
    rudder_api::metrics::set_extra(Box::new(render));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconciles_are_counted_and_timed() {
        let ok = metered("test-ok", |_: Arc<()>, _: Arc<()>| async {
            Ok::<_, ()>(())
        });
        let failing = metered("test-err", |_: Arc<()>, _: Arc<()>| async {
            Err::<(), _>(())
        });
        assert!(ok(Arc::new(()), Arc::new(())).await.is_ok());
        assert!(failing(Arc::new(()), Arc::new(())).await.is_err());
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains(
                "controller_runtime_reconcile_total{controller=\"test-ok\",result=\"success\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_reconcile_errors_total{controller=\"test-err\"} 1"),
            "{out}"
        );
        assert!(
            out.contains(
                "controller_runtime_reconcile_time_seconds_count{controller=\"test-ok\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_active_workers{controller=\"test-ok\"} 0"),
            "{out}"
        );
    }
}
