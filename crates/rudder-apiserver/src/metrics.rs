//! `/metrics` in the Prometheus text format: requests by verb, resource and
//! code, request latency by verb and resource, open watches by resource,
//! and store latency by operation (through [`MeteredStore`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rudder_store::{
    RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse, WatchStream,
};

use rudder_api::metrics::Histogram;

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    durations: BTreeMap<(String, String), Histogram>,
    watches: BTreeMap<String, i64>,
    store: BTreeMap<&'static str, Histogram>,
    /// Store watches opened, by resource prefix (`/registry/core/pods/`).
    store_watches: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay usable after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn request(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        let mut inner = self.lock();
        *inner
            .requests
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default() += 1;
        // A watch's duration is its whole life; Kubernetes leaves it out too.
        if verb != "WATCH" {
            inner
                .durations
                .entry((verb.to_string(), resource.to_string()))
                .or_default()
                .observe(took.as_secs_f64());
        }
    }

    /// Counts an open watch until the guard is dropped.
    pub(crate) fn watch_started(self: &Arc<Self>, resource: &str) -> WatchGuard {
        *self.lock().watches.entry(resource.to_string()).or_default() += 1;
        WatchGuard {
            metrics: self.clone(),
            resource: resource.to_string(),
        }
    }

    fn store_watch(&self, prefix: &str) {
        // The resource's prefix: `/registry/GROUP/PLURAL/`, a namespace's
        // or an object's key counted with it.
        let resource: String = prefix.split_inclusive('/').take(4).collect();
        *self.lock().store_watches.entry(resource).or_default() += 1;
    }

    fn store_op(&self, op: &'static str, took: Duration) {
        self.lock()
            .store
            .entry(op)
            .or_default()
            .observe(took.as_secs_f64());
    }

    pub(crate) fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        rudder_api::metrics::render_extra(&mut out);
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), n) in &inner.requests {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Request latency by verb and resource (watches excluded).\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), h) in &inner.durations {
            h.render(
                &mut out,
                "apiserver_request_duration_seconds",
                &format!("verb=\"{verb}\",resource=\"{resource}\""),
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Open watches by resource.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        for (resource, n) in &inner.watches {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{verb=\"WATCH\",resource=\"{resource}\"}} {n}"
            );
        }
        out.push_str("# HELP rudder_store_request_duration_seconds Store latency by operation.\n");
        out.push_str("# TYPE rudder_store_request_duration_seconds histogram\n");
        for (op, h) in &inner.store {
            h.render(
                &mut out,
                "rudder_store_request_duration_seconds",
                &format!("operation=\"{op}\""),
            );
        }
        out.push_str(
            "# HELP rudder_store_watches_total Watches opened on the store, by resource.\n",
        );
        out.push_str("# TYPE rudder_store_watches_total counter\n");
        for (prefix, n) in &inner.store_watches {
            let _ = writeln!(out, "rudder_store_watches_total{{prefix=\"{prefix}\"}} {n}");
        }
        out
    }
}

pub(crate) struct WatchGuard {
    metrics: Arc<Metrics>,
    resource: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(n) = self.metrics.lock().watches.get_mut(&self.resource) {
            *n -= 1;
        }
    }
}

/// (verb, resource) labels of a request, as kube-apiserver names them.
pub(crate) fn labels(method: &http::Method, path: &str, watch: bool) -> (String, String) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return (method.as_str().to_string(), String::new()),
    };
    let rest = rest.strip_prefix(&["watch"]).unwrap_or(rest);
    let (resource, named) = match rest {
        ["namespaces", _, plural, more @ ..] => (*plural, !more.is_empty()),
        [plural, more @ ..] => (*plural, !more.is_empty()),
        [] => ("", false),
    };
    let verb = match (method.as_str(), watch, named) {
        ("GET", true, _) => "WATCH",
        ("GET", false, false) => "LIST",
        (m, _, _) => m,
    };
    (verb.to_string(), resource.to_string())
}

/// A [`Store`] that records each operation's latency.
#[derive(Debug)]
pub(crate) struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub(crate) fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str) -> Result<Option<rudder_store::KeyValue>> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.store_op("get", t.elapsed());
        r
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let t = Instant::now();
        let r = self.inner.range(req).await;
        self.metrics.store_op("range", t.elapsed());
        r
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let t = Instant::now();
        let r = self.inner.txn(txn).await;
        self.metrics.store_op("txn", t.elapsed());
        r
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let t = Instant::now();
        let r = self.inner.watch(prefix, from_revision).await;
        self.metrics.store_op("watch", t.elapsed());
        self.metrics.store_watch(prefix);
        r
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.compact(revision).await;
        self.metrics.store_op("compact", t.elapsed());
        r
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    fn watch_is_ordered(&self) -> bool {
        self.inner.watch_is_ordered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_like_kube_apiserver() {
        let get = http::Method::GET;
        assert_eq!(
            labels(&get, "/api/v1/namespaces/default/pods", false),
            ("LIST".into(), "pods".into())
        );
        assert_eq!(
            labels(&get, "/api/v1/namespaces/default/pods/x", false),
            ("GET".into(), "pods".into())
        );
        assert_eq!(
            labels(&get, "/apis/apps/v1/deployments", true),
            ("WATCH".into(), "deployments".into())
        );
        assert_eq!(
            labels(&get, "/api/v1/watch/namespaces/a/pods", true),
            ("WATCH".into(), "pods".into())
        );
        assert_eq!(
            labels(&http::Method::POST, "/api/v1/namespaces", false),
            ("POST".into(), "namespaces".into())
        );
        assert_eq!(
            labels(&get, "/version", false),
            ("GET".into(), String::new())
        );
    }

    #[test]
    fn rendering_is_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.request("LIST", "pods", 200, Duration::from_millis(3));
        let guard = m.watch_started("pods");
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"200\"} 1"
            )
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"LIST\",resource=\"pods\",le=\"0.005\"} 1"));
        assert!(
            text.contains("apiserver_longrunning_requests{verb=\"WATCH\",resource=\"pods\"} 1")
        );
        drop(guard);
        assert!(
            m.render()
                .contains("apiserver_longrunning_requests{verb=\"WATCH\",resource=\"pods\"} 0")
        );
    }
}
