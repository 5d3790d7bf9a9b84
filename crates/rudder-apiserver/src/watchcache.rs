//! The watch cache: per resource, the current objects and a window of
//! recent changes, kept in memory from one store watch. Watches are served
//! from it, so a thousand watchers of pods cost the store one watch and
//! each change is decoded and encoded once; lists are served from it when
//! that is consistent (see [`Cache::list_revision`]).
//!
//! Each cache starts on the first request for its resource: a list, then a
//! watch from the list's revision. If that watch fails (the store compacted
//! past it, or the cache fell too far behind), the cache lists again and
//! ends every watch it was serving; clients then watch again, as they do
//! when kube-apiserver's cacher reinitializes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use rudder_api::{Resource, StatusError};
use rudder_store::{EventKind, KeyValue, RangeRequest, Revision, Store};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::objects::{decode, resource_version_at, store_error, with_resource_version};

/// Changes kept for watches that start from a past resourceVersion; older
/// ones are served by a watch on the store.
const HISTORY: usize = 2048;
/// How many of the latest changes keep their decoded objects.
const DECODED_KEPT: usize = 64;
/// An event's object after and before the change, decoded.
pub(crate) type Decoded = (Option<Value>, Option<Value>);
/// Changes a watcher may fall behind before its watch is ended, for the
/// kinds that change in bursts (a rollout of thousands of pods, every
/// node's heartbeat) and for the rest. The channel's slots are allocated
/// up front, per served kind: 4096 for all 56 kinds cost 12 MiB of an idle
/// server's memory (bench/run api's server.rss_idle_mib).
const FAN_OUT_BUSY: usize = 4096;
const FAN_OUT: usize = 512;

/// How far the watchers of the kind stored under `prefix` may fall behind.
fn fan_out(prefix: &str) -> usize {
    let busy = [
        "/registry/core/pods/",
        "/registry/core/events/",
        "/registry/core/nodes/",
        "/registry/core/endpoints/",
        "/registry/coordination.k8s.io/leases/",
        "/registry/discovery.k8s.io/endpointslices/",
    ];
    if busy.contains(&prefix) {
        FAN_OUT_BUSY
    } else {
        FAN_OUT
    }
}

/// One change, shared by every watcher: the JSON line a watcher without
/// selectors sends is made once, without decoding the object; the object
/// is decoded once, the first time a watcher with selectors needs it.
#[derive(Debug)]
pub(crate) struct CacheEvent {
    pub(crate) revision: Revision,
    pub(crate) key: String,
    pub(crate) kind: EventKind,
    /// The object after the change (for a delete: as it was, with the
    /// deleting revision as its resourceVersion).
    kv: KeyValue,
    prev: Option<KeyValue>,
    /// Decoded on first need and shared while the change is recent;
    /// dropped once it is [`DECODED_KEPT`] changes old (a watcher that far
    /// behind decodes again), so the history does not hold decoded copies.
    decoded: Mutex<Option<Arc<Decoded>>>,
    /// What selectors read of the object after and before the change
    /// (see [`rudder_api::selector::selectable`]), kept as `decoded` is.
    attrs: Mutex<Option<Arc<Decoded>>>,
    /// The object's metadata as JSON, with its resourceVersion, for
    /// metadata-only watchers (the garbage collector's), kept as `decoded`.
    metadata: Mutex<Option<Bytes>>,
    /// `ADDED`, `MODIFIED` or `DELETED`, as the store saw the change.
    pub(crate) type_: &'static str,
    /// `{"type":…,"object":…}\n`, for every watcher that sees the change
    /// as the store did.
    pub(crate) line: Bytes,
}

impl CacheEvent {
    /// The object after the change and before it, decoded (`None` where
    /// absent or undecodable).
    pub(crate) fn objects(&self) -> Arc<Decoded> {
        let mut slot = self
            .decoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| {
            Arc::new((
                decode(&self.kv).ok(),
                self.prev.as_ref().and_then(|p| decode(p).ok()),
            ))
        })
        .clone()
    }

    /// What selectors read of the object after and before the change
    /// (`fields`: the resource's selectable fields), picked once.
    pub(crate) fn attrs(&self, fields: &[&str]) -> Arc<Decoded> {
        let mut slot = self
            .attrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| {
            let pick = |kv: &KeyValue| rudder_api::selector::selectable(&kv.value, fields).ok();
            Arc::new((pick(&self.kv), self.prev.as_ref().and_then(pick)))
        })
        .clone()
    }

    /// The line a metadata-only watcher without selectors sees:
    /// the object as `PartialObjectMetadata` of `api_version`.
    pub(crate) fn metadata_line(&self, api_version: &str) -> Option<Bytes> {
        let mut slot = self
            .metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            #[derive(serde::Deserialize)]
            struct Of<'a> {
                #[serde(borrow)]
                metadata: &'a serde_json::value::RawValue,
            }
            let of: Of = serde_json::from_slice(&self.kv.value).ok()?;
            let raw = of.metadata.get().trim().as_bytes();
            // Stored metadata has no resourceVersion: it goes in first.
            if raw.first() != Some(&b'{') {
                return None;
            }
            *slot = Some(resource_version_at(raw, 1, self.kv.mod_revision));
        }
        let metadata = slot.clone()?;
        drop(slot);
        let head = format!(
            "{{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"{api_version}\",\"metadata\":"
        );
        let mut object = Vec::with_capacity(head.len() + metadata.len() + 1);
        object.extend_from_slice(head.as_bytes());
        object.extend_from_slice(&metadata);
        object.push(b'}');
        Some(event_line(self.type_, &object))
    }

    /// The event's line as a watcher sees it whose selectors make it
    /// `type_`: `ADDED` shows the object, `DELETED` (it no longer matches)
    /// the object as it was before, at this change's revision, as
    /// kube-apiserver's cacher does.
    pub(crate) fn line_as(&self, type_: &str) -> Bytes {
        if type_ == self.type_ {
            return self.line.clone();
        }
        let object = match (type_, &self.prev) {
            ("DELETED", Some(prev)) => with_resource_version(&KeyValue {
                mod_revision: self.revision,
                ..prev.clone()
            })
            .unwrap_or_default(),
            _ => {
                // The object as the line holds it, between the type and "}\n".
                let at = "{\"type\":\"\",\"object\":".len() + self.type_.len();
                self.line.slice(at..self.line.len() - 2)
            }
        };
        event_line(type_, &object)
    }

    fn forget_decoded(&self) {
        for slot in [&self.decoded, &self.attrs] {
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        self.metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// `{"type":…,"object":…}\n`
fn event_line(type_: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line.into()
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<String, KeyValue>,
    /// Every change up to here is applied.
    revision: Revision,
    /// Every change from this revision on is in `history` (the list's
    /// revision + 1, later the revision after the last event let go).
    /// `revision` may move past it by confirmations without events.
    since: Revision,
    history: VecDeque<Arc<CacheEvent>>,
    events: broadcast::Sender<Arc<CacheEvent>>,
}

impl State {
    /// The objects whose keys start with `within` (a namespace's prefix).
    fn under(&self, within: &str) -> Vec<KeyValue> {
        self.objects
            .range(within.to_string()..)
            .take_while(|(k, _)| k.starts_with(within))
            .map(|(_, kv)| kv.clone())
            .collect()
    }
}

/// The cache of one resource.
#[derive(Debug)]
pub(crate) struct Cache {
    prefix: String,
    state: RwLock<State>,
    /// The applied revision, for waiters.
    progress: watch::Sender<Revision>,
    /// Asks the updater to confirm a store revision (see `list_revision`).
    sync: mpsc::Sender<(Revision, oneshot::Sender<()>)>,
}

/// What a new watch starts from.
pub(crate) struct Subscription {
    /// The objects at `revision` (when no resourceVersion was given).
    pub(crate) initial: Vec<KeyValue>,
    /// Changes after the starting point that happened before subscribing.
    pub(crate) replay: Vec<Arc<CacheEvent>>,
    pub(crate) live: broadcast::Receiver<Arc<CacheEvent>>,
    /// Live events below this were replayed or are too old.
    pub(crate) from: Revision,
    pub(crate) revision: Revision,
}

impl Cache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes from `from` (the first revision wanted), or from the
    /// current objects when `from` is `None`. `Ok(None)`: `from` is older
    /// than the history kept.
    pub(crate) fn subscribe(&self, from: Option<Revision>, within: &str) -> Option<Subscription> {
        let state = self.read();
        let live = state.events.subscribe();
        match from {
            None => Some(Subscription {
                initial: state.under(within),
                replay: Vec::new(),
                live,
                from: state.revision + 1,
                revision: state.revision,
            }),
            Some(from) => {
                // Changes since `from` the cache may not have: the store
                // replays them.
                if from < state.since {
                    return None;
                }
                let replay = state
                    .history
                    .iter()
                    .filter(|e| e.revision >= from && e.key.starts_with(within))
                    .cloned()
                    .collect();
                Some(Subscription {
                    initial: Vec::new(),
                    replay,
                    live,
                    from,
                    revision: state.revision,
                })
            }
        }
    }

    /// The objects under `within` as of the cache's revision.
    pub(crate) fn snapshot(&self, within: &str) -> (Revision, Vec<KeyValue>) {
        let state = self.read();
        (state.revision, state.under(within))
    }

    /// One object as of the cache's revision.
    pub(crate) fn get(&self, key: &str) -> Option<KeyValue> {
        self.read().objects.get(key).cloned()
    }

    pub(crate) fn revision(&self) -> Revision {
        self.read().revision
    }

    /// Waits until the cache holds every change up to `revision`; `false`
    /// if that does not happen within `wait`.
    pub(crate) async fn wait_for(&self, revision: Revision, wait: Duration) -> bool {
        let mut rx = self.progress.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Makes the cache current with the store, when the store can say so
    /// (`Store::watch_is_ordered`): reads the store's revision, then has the
    /// updater drain its watch and confirm. `None` when the store cannot
    /// promise it; the caller then reads the store.
    pub(crate) async fn sync_with(&self, store: &dyn Store) -> Option<Revision> {
        if !store.watch_is_ordered() {
            return None;
        }
        let current = store.current_revision().await.ok()?;
        if self.revision() >= current {
            return Some(current);
        }
        let (tx, rx) = oneshot::channel();
        self.sync.send((current, tx)).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()?;
        Some(current)
    }

    fn apply(&self, event: rudder_store::Event) {
        let revision = event.revision();
        let rudder_store::Event { kind, kv, prev } = event;
        // What watchers see of a delete is the object as it was, at the
        // deleting revision.
        let shown = match (kind, &prev) {
            (EventKind::Delete, Some(prev)) => KeyValue {
                mod_revision: revision,
                ..prev.clone()
            },
            (EventKind::Delete, None) => {
                tracing::warn!(key = %kv.key, "watch cache: a delete without its previous value");
                return;
            }
            (EventKind::Put, _) => kv.clone(),
        };
        let object = match with_resource_version(&shown) {
            Ok(object) => object,
            Err(e) => {
                tracing::warn!(key = %kv.key, "watch cache skips an undecodable object: {}", e.message);
                return;
            }
        };
        let type_ = match (kind, &prev) {
            (EventKind::Delete, _) => "DELETED",
            (EventKind::Put, Some(_)) => "MODIFIED",
            (EventKind::Put, None) => "ADDED",
        };
        let line = event_line(type_, &object);
        let key = kv.key.clone();
        let cached = Arc::new(CacheEvent {
            revision,
            key: key.clone(),
            kind,
            kv: shown,
            prev,
            decoded: Mutex::new(None),
            attrs: Mutex::new(None),
            metadata: Mutex::new(None),
            type_,
            line,
        });
        let mut state = self.write();
        match kind {
            EventKind::Put => state.objects.insert(key, kv),
            EventKind::Delete => state.objects.remove(&key),
        };
        state.revision = state.revision.max(revision);
        if state.history.len() == HISTORY
            && let Some(gone) = state.history.pop_front()
        {
            state.since = gone.revision + 1;
        }
        state.history.push_back(cached.clone());
        if let Some(aged) = state.history.len().checked_sub(DECODED_KEPT + 1)
            && let Some(e) = state.history.get(aged)
        {
            e.forget_decoded();
        }
        let _ = state.events.send(cached);
        let now = state.revision;
        drop(state);
        self.progress.send_replace(now);
    }

    fn confirm(&self, revision: Revision) {
        let mut state = self.write();
        state.revision = state.revision.max(revision);
        let now = state.revision;
        drop(state);
        self.progress.send_replace(now);
    }
}

/// The caches of every resource, started on first use.
#[derive(Debug, Clone)]
pub(crate) struct WatchCaches {
    store: Arc<dyn Store>,
    caches: Arc<Mutex<HashMap<String, Arc<Cache>>>>,
}

impl WatchCaches {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            caches: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The cache of `r`, once it has loaded.
    pub(crate) async fn get(&self, r: &Resource) -> Result<Arc<Cache>, StatusError> {
        let prefix = r.storage_prefix();
        let (cache, fresh) = {
            let mut caches = self
                .caches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match caches.get(&prefix) {
                Some(c) => (c.clone(), false),
                None => {
                    let (sync_tx, sync_rx) = mpsc::channel(64);
                    let cache = Arc::new(Cache {
                        prefix: prefix.clone(),
                        state: RwLock::new(State {
                            objects: BTreeMap::new(),
                            revision: 0,
                            since: 1,
                            history: VecDeque::new(),
                            events: broadcast::channel(fan_out(&prefix)).0,
                        }),
                        progress: watch::Sender::new(0),
                        sync: sync_tx,
                    });
                    caches.insert(prefix.clone(), cache.clone());
                    tokio::spawn(run(cache.clone(), self.store.clone(), sync_rx));
                    (cache, true)
                }
            }
        };
        if fresh || cache.revision() == 0 {
            // Loaded once the first list is in (revision ≥ 1 from then on).
            if !cache.wait_for(1, Duration::from_secs(30)).await {
                return Err(StatusError::timeout(format!(
                    "the watch cache for {prefix} is still loading"
                )));
            }
        }
        Ok(cache)
    }
}

/// Keeps one cache current: list, watch from there, list again on failure.
async fn run(
    cache: Arc<Cache>,
    store: Arc<dyn Store>,
    mut sync: mpsc::Receiver<(Revision, oneshot::Sender<()>)>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let list = match store
            .range(RangeRequest::prefix(cache.prefix.clone()))
            .await
        {
            Ok(list) => list,
            Err(rudder_store::Error::Closed) => return,
            Err(e) => {
                tracing::warn!(prefix = %cache.prefix, "watch cache list failed, retrying: {}", store_error(e).message);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let revision = list.revision;
        {
            let mut state = cache.write();
            state.objects = list
                .kvs
                .into_iter()
                .map(|kv| (kv.key.clone(), kv))
                .collect();
            state.revision = revision;
            state.since = revision + 1;
            state.history.clear();
            // Ends the watches served so far: what they saw may not lead
            // on to this list.
            state.events = broadcast::channel(fan_out(&cache.prefix)).0;
        }
        cache.progress.send_replace(revision);
        let mut stream = match store.watch(&cache.prefix, revision + 1).await {
            Ok(s) => s,
            Err(rudder_store::Error::Closed) => return,
            Err(e) => {
                tracing::warn!(prefix = %cache.prefix, "watch cache watch failed, listing again: {}", store_error(e).message);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let ended = loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(event)) => cache.apply(event),
                    Some(Err(e)) => break Some(e),
                    None => break None,
                },
                Some((revision, done)) = sync.recv() => {
                    // Everything up to `revision` is queued on the stream
                    // (Store::watch_is_ordered): apply what is ready.
                    let mut failed = None;
                    while let Some(next) = stream.next().now_or_never() {
                        match next {
                            Some(Ok(event)) => cache.apply(event),
                            Some(Err(e)) => {
                                failed = Some(e);
                                break;
                            }
                            None => break,
                        }
                    }
                    if failed.is_some() {
                        break failed;
                    }
                    cache.confirm(revision);
                    let _ = done.send(());
                }
            }
        };
        match ended {
            Some(rudder_store::Error::Closed) => return,
            Some(e) => {
                tracing::info!(prefix = %cache.prefix, "watch cache lists again: {}", store_error(e).message);
            }
            // The store is closing.
            None => return,
        }
    }
}

pub(crate) fn bookmark(r: &Resource, revision: Revision) -> Value {
    json!({
        "type": "BOOKMARK",
        "object": {
            "kind": r.kind,
            "apiVersion": r.api_version(),
            "metadata": {"resourceVersion": revision.to_string(), "creationTimestamp": null},
        }
    })
}
