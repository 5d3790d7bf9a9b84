//! Periodic compaction: keeps a bounded window of history.
//!
//! Like kube-apiserver, every `interval` the compactor compacts at the
//! revision it saw one interval earlier, so between one and two intervals
//! of history stay available for watches that resume and paginated lists.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Revision, Store};

/// kube-apiserver's default `--etcd-compaction-interval`.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
pub struct Compactor {
    store: Arc<dyn Store>,
    /// The revision seen at the previous tick: the next compaction target.
    pending: Option<Revision>,
}

impl Compactor {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            pending: None,
        }
    }

    /// One tick: compacts at the revision of the previous tick, then
    /// remembers the current one. Returns the revision compacted at.
    pub async fn tick(&mut self) -> crate::Result<Option<Revision>> {
        let current = self.store.current_revision().await?;
        let target = self.pending.replace(current);
        match target {
            Some(rev) if rev > 0 => match self.store.compact(rev).await {
                Ok(()) => Ok(Some(rev)),
                // Another server (shared etcd) or an earlier run got there first.
                Err(Error::Compacted { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
    }

    /// Runs ticks every `interval` until the task is aborted.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.tick().await {
                Ok(Some(rev)) => tracing::info!(revision = rev, "compacted store history"),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "store compaction failed; retrying next interval")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedOptions, EmbeddedStore, RangeRequest};

    #[tokio::test]
    async fn each_tick_compacts_at_the_revision_of_the_previous_tick() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::in_dir(dir.path())).unwrap());
        let mut compactor = Compactor::new(store.clone());
        let r1 = store.create("/a", "1".into()).await.unwrap();
        assert_eq!(
            compactor.tick().await.unwrap(),
            None,
            "the first tick only remembers"
        );
        let r2 = store.update("/a", "2".into(), r1).await.unwrap();
        assert_eq!(compactor.tick().await.unwrap(), Some(r1));
        // History from the first tick on is still there; older is gone.
        assert!(
            store
                .range(RangeRequest::prefix("/").at_revision(r1))
                .await
                .is_ok()
        );
        assert_eq!(compactor.tick().await.unwrap(), Some(r2));
        let err = store
            .range(RangeRequest::prefix("/").at_revision(r1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
        // Nothing written since the last tick: compacting again is a no-op.
        assert_eq!(compactor.tick().await.unwrap(), None);
    }
}
