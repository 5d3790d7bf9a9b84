//! Watch fan-out for the embedded store.
//!
//! The writer publishes each committed batch once; every watcher whose
//! prefix matches gets the batch through its own bounded channel. A watcher
//! that falls `EmbeddedOptions::watch_queue` batches behind is cancelled (its
//! stream ends with [`Error::WatchLagged`]) instead of slowing the writer or
//! growing without bound; clients re-watch from their last revision.
//!
//! # Guarantees
//! A watch sees each event exactly once: events up to the hub's
//! `published` revision at registration come from the revision log
//! (replay), later ones from the channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream;
use tokio::sync::mpsc;

use super::Shared;
use crate::{Error, Event, Result, Revision, WatchStream};

/// Log entries read per replay step (bounds the time one step holds a read
/// transaction and the memory it buffers).
const REPLAY_CHUNK: usize = 1024;

pub(super) type Batch = Arc<Vec<Event>>;

#[derive(Debug, Default)]
pub(super) struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    /// Revision of the last batch handed to watchers.
    published: Revision,
    closed: bool,
    watchers: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    prefix: String,
    tx: mpsc::Sender<Batch>,
    lagged: Arc<AtomicBool>,
}

impl Hub {
    pub(super) fn new(published: Revision) -> Self {
        Self {
            inner: Mutex::new(HubInner {
                published,
                ..HubInner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        // A panic while holding this lock cannot leave HubInner half-updated
        // in a way that matters (it only pushes/retains), so keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a committed batch (all events at revisions `<= revision`) to
    /// the watchers whose prefix matches.
    pub(super) fn publish(&self, revision: Revision, events: Vec<Event>) {
        let mut inner = self.lock();
        inner.published = revision;
        if events.is_empty() {
            return;
        }
        let batch: Batch = Arc::new(events);
        inner.watchers.retain(|slot| {
            if !batch.iter().any(|e| e.kv.key.starts_with(&slot.prefix)) {
                return !slot.tx.is_closed();
            }
            match slot.tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Ends every watch (the store is closing).
    pub(super) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.watchers.clear();
    }
}

struct WatchState {
    shared: Arc<Shared>,
    prefix: String,
    /// Next revision to replay from the log, while `<= replay_until`.
    next: Revision,
    replay_until: Revision,
    /// Live events below this revision were replayed or not asked for.
    live_from: Revision,
    buf: VecDeque<Event>,
    rx: mpsc::Receiver<Batch>,
    lagged: Arc<AtomicBool>,
    done: bool,
}

pub(super) fn watch(shared: Arc<Shared>, prefix: &str, from: Revision) -> Result<WatchStream> {
    let compact = shared.compact_revision();
    if from != 0 && from < compact {
        return Err(Error::Compacted {
            requested: from,
            compact_revision: compact,
        });
    }
    let (tx, rx) = mpsc::channel(shared.watch_queue);
    let lagged = Arc::new(AtomicBool::new(false));
    let published = {
        let mut inner = shared.hub.lock();
        if inner.closed {
            return Err(Error::Closed);
        }
        inner.watchers.push(Slot {
            prefix: prefix.to_owned(),
            tx,
            lagged: lagged.clone(),
        });
        inner.published
    };
    let next = if from == 0 { published + 1 } else { from };
    let state = WatchState {
        shared,
        prefix: prefix.to_owned(),
        next,
        replay_until: published,
        live_from: next.max(published + 1),
        buf: VecDeque::new(),
        rx,
        lagged,
        done: false,
    };
    Ok(Box::pin(stream::unfold(state, next_event)))
}

async fn next_event(mut st: WatchState) -> Option<(Result<Event>, WatchState)> {
    loop {
        if st.done {
            return None;
        }
        if let Some(event) = st.buf.pop_front() {
            return Some((Ok(event), st));
        }
        if st.next <= st.replay_until {
            let shared = st.shared.clone();
            let (prefix, from, until) = (st.prefix.clone(), st.next, st.replay_until);
            let chunk = tokio::task::spawn_blocking(move || {
                shared.read_log(&prefix, from, until, REPLAY_CHUNK)
            })
            .await
            .map_err(|e| Error::Storage(format!("watch replay task failed: {e}")))
            .and_then(|r| r);
            match chunk {
                Ok((events, next)) => {
                    st.buf.extend(events);
                    st.next = next;
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
            continue;
        }
        match st.rx.recv().await {
            Some(batch) => {
                let live_from = st.live_from;
                st.buf.extend(
                    batch
                        .iter()
                        .filter(|e| e.revision() >= live_from && e.kv.key.starts_with(&st.prefix))
                        .cloned(),
                );
            }
            None => {
                st.done = true;
                let err = if st.lagged.load(Ordering::Acquire) {
                    Error::WatchLagged {
                        prefix: st.prefix.clone(),
                    }
                } else {
                    Error::Closed
                };
                return Some((Err(err), st));
            }
        }
    }
}
