//! Events expire: kube-apiserver keeps them for `--event-ttl` (1 h) after
//! their last write, with an etcd lease. The store has no leases, so a
//! sweeper deletes events whose newest timestamp is older than the TTL.

use std::sync::Arc;
use std::time::Duration;

use rudder_api::time::{now, parse_rfc3339};
use rudder_store::{RangeRequest, Store};
use serde_json::Value;

const EVENTS_PREFIXES: &[&str] = &["/registry/core/events/"];
const PAGE: usize = 500;

/// The newest time an event was written at, as Kubernetes records it.
fn last_seen(event: &Value) -> Option<i64> {
    [
        &event["series"]["lastObservedTime"],
        &event["lastTimestamp"],
        &event["eventTime"],
        &event["metadata"]["creationTimestamp"],
    ]
    .iter()
    .filter_map(|v| v.as_str().and_then(parse_rfc3339))
    .max()
}

/// Deletes expired events once; returns how many.
pub(crate) async fn sweep(store: &Arc<dyn Store>, ttl: Duration) -> rudder_store::Result<usize> {
    let cutoff = now() - i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut deleted = 0;
    for prefix in EVENTS_PREFIXES {
        let mut req = RangeRequest::prefix(*prefix).limit(PAGE);
        loop {
            let page = store.range(req.clone()).await?;
            for kv in &page.kvs {
                let expired = serde_json::from_slice::<Value>(&kv.value)
                    .ok()
                    .and_then(|e| last_seen(&e))
                    .is_some_and(|t| t < cutoff);
                // Unchanged since read, or it was just updated: keep it.
                if expired && store.delete(&kv.key, Some(kv.mod_revision)).await.is_ok() {
                    deleted += 1;
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => req = req.start_after(last.key.clone()),
                _ => break,
            }
        }
    }
    Ok(deleted)
}

/// Sweeps every minute (or every half TTL, for short TTLs).
pub(crate) async fn sweep_forever(store: Arc<dyn Store>, ttl: Duration) {
    let every = (ttl / 2).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&store, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired events"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired events failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_newest_timestamp_counts() {
        let e = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                       "lastTimestamp": "2026-01-02T00:00:00Z", "eventTime": null});
        assert_eq!(last_seen(&e), parse_rfc3339("2026-01-02T00:00:00Z"));
        assert_eq!(last_seen(&json!({})), None);
    }
}
