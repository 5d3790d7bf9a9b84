//! The embedded backend: etcd's MVCC model on one redb file.
//!
//! Layout (three tables), the same shape as etcd's own backend:
//! - `revs`: (revision, index in revision) → one change record (key, kind,
//!   create revision, version, value, and where the key's previous version
//!   lives). This is the history: every value is written once, here.
//! - `index`: key → where its current version lives in `revs`.
//! - `meta`: the current and the compacted revision.
//!
//! All writes go through one writer thread ([`writer`]) that takes every
//! request queued at the moment, applies them in one redb write transaction
//! (each transaction its own revision) and commits once: one fsync for the
//! whole batch (group commit). Replies and watch events go out only after
//! the commit is durable.
//!
//! Reads use redb's MVCC snapshots and never wait for the writer. A read at
//! a past revision starts from the current index and, for every key changed
//! after that revision, follows the first later change's `prev` pointer.
//!
//! Compaction at revision `C` keeps, per key, its newest version before
//! `C` (unless that is a delete) and drops the older ones, as etcd does:
//! reads at any revision `>= C` and every `prev` pointer stay valid.

mod codec;
mod watch;
mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::{
    Error, Event, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse,
    WatchStream,
};
use codec::{Record, RevKey};

const INDEX: TableDefinition<&str, RevKey> = TableDefinition::new("index");
const REVS: TableDefinition<RevKey, &[u8]> = TableDefinition::new("revs");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACT: &str = "compact_revision";

/// Requests that may wait for the writer before senders block.
const WRITE_QUEUE: usize = 4096;

/// The embedded store's file name inside its directory.
pub const DB_FILE: &str = "state.redb";

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The database file (created if missing, with its parent directories).
    pub path: PathBuf,
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
    /// Most write requests committed together.
    pub max_batch: usize,
    /// Committed batches a watcher may have waiting before it is cancelled
    /// as lagging (its stream ends with [`Error::WatchLagged`]).
    pub watch_queue: usize,
}

impl EmbeddedOptions {
    /// Options for the store in `dir` (the server uses `<data-dir>/server/db`).
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self {
            path: dir.as_ref().join(DB_FILE),
            cache_bytes: 256 << 20,
            max_batch: 1024,
            watch_queue: 4096,
        }
    }
}

/// What the writer, readers and watchers share.
pub(crate) struct Shared {
    db: Database,
    path: PathBuf,
    hub: watch::Hub,
    watch_queue: usize,
    revision: AtomicI64,
    compact: AtomicI64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .field("revision", &self.revision)
            .field("compact", &self.compact)
            .finish_non_exhaustive()
    }
}

/// Reads a record the index or a `prev` pointer names; its absence means
/// the file is damaged (compaction never drops a referenced record).
fn load(revs: &impl ReadableTable<RevKey, &'static [u8]>, at: RevKey) -> Result<Record> {
    let raw = revs
        .get(at)
        .map_err(|e| Error::Storage(format!("reading revision record {}.{}: {e}", at.0, at.1)))?
        .ok_or_else(|| Error::Corrupt(format!("revision record {}.{} is missing", at.0, at.1)))?;
    codec::decode(at, raw.value())
}

fn load_kv(revs: &impl ReadableTable<RevKey, &'static [u8]>, at: RevKey) -> Result<KeyValue> {
    Ok(load(revs, at)?.into_kv(at.0))
}

impl Shared {
    fn compact_revision(&self) -> Revision {
        self.compact.load(Ordering::Acquire)
    }

    fn storage(&self, what: &str, err: impl fmt::Display) -> Error {
        Error::Storage(format!("{what} in {}: {err}", self.path.display()))
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        self.db
            .begin_read()
            .map_err(|e| self.storage("starting a read", e))
    }

    fn revs(
        &self,
        rtx: &redb::ReadTransaction,
    ) -> Result<redb::ReadOnlyTable<RevKey, &'static [u8]>> {
        rtx.open_table(REVS)
            .map_err(|e| self.storage("opening revs", e))
    }

    /// (current, compacted) revision of a snapshot.
    fn meta(&self, rtx: &redb::ReadTransaction) -> Result<(Revision, Revision)> {
        let meta = rtx
            .open_table(META)
            .map_err(|e| self.storage("opening meta", e))?;
        let read = |key| read_meta(&meta, key).map_err(|e| self.storage("reading meta", e));
        Ok((read(META_REVISION)?, read(META_COMPACT)?))
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let rtx = self.begin_read()?;
        let index = rtx
            .open_table(INDEX)
            .map_err(|e| self.storage("opening index", e))?;
        let at = index
            .get(key)
            .map_err(|e| self.storage("reading the index", e))?
            .map(|v| v.value());
        at.map(|at| load_kv(&self.revs(&rtx)?, at)).transpose()
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let rtx = self.begin_read()?;
        let (current, compact) = self.meta(&rtx)?;
        if req.revision > current {
            return Err(Error::FutureRevision {
                requested: req.revision,
                current,
            });
        }
        if req.revision != 0 && req.revision < compact {
            return Err(Error::Compacted {
                requested: req.revision,
                compact_revision: compact,
            });
        }
        let revs = self.revs(&rtx)?;
        let index = rtx
            .open_table(INDEX)
            .map_err(|e| self.storage("opening index", e))?;
        let lower = match &req.start_after {
            Some(after) if after.as_str() >= req.prefix.as_str() => Bound::Excluded(after.as_str()),
            _ => Bound::Included(req.prefix.as_str()),
        };
        let iter = index
            .range::<&str>((lower, Bound::Unbounded))
            .map_err(|e| self.storage("ranging the index", e))?;
        let mut now = iter.map(|entry| {
            let (k, v) = entry.map_err(|e| self.storage("ranging the index", e))?;
            Ok::<_, Error>((k.value().to_owned(), v.value()))
        });

        // Keys changed after the requested revision, with their value then.
        let overlay = if req.revision == 0 || req.revision == current {
            BTreeMap::new()
        } else {
            self.undo_overlay(&revs, req, current)?
        };
        let mut overlay = overlay.into_iter().peekable();

        let limit = if req.limit == 0 {
            usize::MAX
        } else {
            req.limit
        };
        let mut kvs = Vec::new();
        let mut more = false;
        // Past the limit, keys are only counted (with `count`), not read.
        let mut remaining = 0u64;
        let mut next_now = now.next().transpose()?;
        loop {
            let full = kvs.len() == limit;
            let now_key = next_now
                .as_ref()
                .map(|(k, _)| k.as_str())
                .filter(|k| k.starts_with(&req.prefix));
            let overlay_key = overlay.peek().map(|(k, _)| k.as_str());
            // Take whichever key comes first; the overlay wins a tie. A
            // current key is read only if it goes into the page.
            let item: Option<Result<KeyValue, RevKey>> = match (now_key, overlay_key) {
                (None, None) => break,
                (Some(n), Some(o)) if o <= n => {
                    if o == n {
                        next_now = now.next().transpose()?;
                    }
                    overlay.next().and_then(|(_, then)| then).map(Ok)
                }
                (None, Some(_)) => overlay.next().and_then(|(_, then)| then).map(Ok),
                (Some(_), _) => {
                    let (_, at) = next_now.take().expect("now_key is Some");
                    next_now = now.next().transpose()?;
                    Some(Err(at))
                }
            };
            let Some(item) = item else { continue };
            if full {
                more = true;
                remaining += 1;
                if !req.count {
                    break;
                }
                continue;
            }
            kvs.push(match item {
                Ok(kv) => kv,
                Err(at) => load_kv(&revs, at)?,
            });
        }
        Ok(RangeResponse {
            kvs,
            more,
            revision: current,
            remaining: req.count.then_some(remaining),
        })
    }

    /// For every key under the request's prefix changed after
    /// `req.revision`, its value as of that revision (`None`: absent then).
    fn undo_overlay(
        &self,
        revs: &redb::ReadOnlyTable<RevKey, &'static [u8]>,
        req: &RangeRequest,
        current: Revision,
    ) -> Result<BTreeMap<String, Option<KeyValue>>> {
        let mut overlay = BTreeMap::new();
        let iter = revs
            .range((req.revision + 1, 0)..=(current, u32::MAX))
            .map_err(|e| self.storage("ranging revs", e))?;
        for entry in iter {
            let (k, v) = entry.map_err(|e| self.storage("ranging revs", e))?;
            let rec = codec::decode(k.value(), v.value())?;
            let in_range = rec.key.starts_with(&req.prefix)
                && req
                    .start_after
                    .as_deref()
                    .is_none_or(|after| rec.key.as_str() > after);
            // The first change after the revision points at the version then.
            if in_range && !overlay.contains_key(&rec.key) {
                let then = rec.prev.map(|at| load_kv(revs, at)).transpose()?;
                overlay.insert(rec.key, then);
            }
        }
        Ok(overlay)
    }

    /// Reads the changes from revision `from` through `until`, stopping
    /// after about `max` records (never inside a revision); returns the
    /// events under `prefix` and the next revision to read.
    fn read_log(
        &self,
        prefix: &str,
        from: Revision,
        until: Revision,
        max: usize,
    ) -> Result<(Vec<Event>, Revision)> {
        let rtx = self.begin_read()?;
        let (_, compact) = self.meta(&rtx)?;
        if from < compact {
            return Err(Error::Compacted {
                requested: from,
                compact_revision: compact,
            });
        }
        let revs = self.revs(&rtx)?;
        let iter = revs
            .range((from, 0)..=(until, u32::MAX))
            .map_err(|e| self.storage("ranging revs", e))?;
        let mut events = Vec::new();
        let mut next = until + 1;
        let mut last_rev = None;
        for (scanned, entry) in iter.enumerate() {
            let (k, v) = entry.map_err(|e| self.storage("ranging revs", e))?;
            let at = k.value();
            if scanned >= max && last_rev != Some(at.0) {
                next = at.0;
                break;
            }
            last_rev = Some(at.0);
            let rec = codec::decode(at, v.value())?;
            if rec.key.starts_with(prefix) {
                let prev = rec.prev.map(|p| load_kv(&revs, p)).transpose()?;
                events.push(Event {
                    kind: rec.kind,
                    prev,
                    kv: rec.into_kv(at.0),
                });
            }
        }
        Ok((events, next))
    }
}

fn read_meta(
    meta: &impl ReadableTable<&'static str, i64>,
    key: &str,
) -> std::result::Result<Revision, redb::StorageError> {
    Ok(meta.get(key)?.map_or(0, |v| v.value()))
}

/// The embedded MVCC store. Cheap to clone; all clones share one database.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer: Arc<writer::Handle>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store. Fails with [`Error::Open`] naming the
    /// file if it is locked by another process, truncated or corrupt.
    pub fn open(opts: EmbeddedOptions) -> Result<Self> {
        let open_err = |message: String| Error::Open {
            path: opts.path.display().to_string(),
            message,
        };
        if let Some(dir) = opts.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(format!("creating {}: {e}", dir.display())))?;
        }
        let db = open_database(&opts).map_err(open_err)?;
        let (revision, compact) = init_tables(&db).map_err(open_err)?;
        let shared = Arc::new(Shared {
            db,
            path: opts.path.clone(),
            hub: watch::Hub::new(revision),
            watch_queue: opts.watch_queue.max(1),
            revision: AtomicI64::new(revision),
            compact: AtomicI64::new(compact),
        });
        let writer = writer::spawn(shared.clone(), opts.max_batch, WRITE_QUEUE)
            .map_err(|e| open_err(format!("starting the writer thread: {e}")))?;
        tracing::info!(path = %opts.path.display(), revision, compact, "embedded store open");
        Ok(Self {
            shared,
            writer: Arc::new(writer),
        })
    }

    /// Stops accepting writes, waits for the ones queued to commit and ends
    /// every watch. The file is closed when the last clone is dropped.
    pub async fn close(&self) {
        let writer = self.writer.clone();
        // Joining a std thread blocks; do it off the async workers.
        let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
        self.shared.hub.close();
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| {
                // Cancelled: the runtime is shutting down with the process.
                if e.is_cancelled() {
                    Error::Closed
                } else {
                    Error::Storage(format!("read task failed: {e}"))
                }
            })?
    }
}

fn open_database(opts: &EmbeddedOptions) -> std::result::Result<Database, String> {
    let mut builder = Database::builder();
    builder.set_cache_size(opts.cache_bytes);
    builder.set_check_integrity_on_open(true);
    // redb reports damage as errors, but a library panic on a hostile file
    // must not take the server down with an unhelpful message.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.create(&opts.path)));
    match result {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            Err("the database is already open in another process (is another rudder server running with this data dir?)".into())
        }
        Ok(Err(e)) => Err(format!("{e}; the file may be truncated or corrupt: restore it from a backup or move it away to start empty")),
        Err(_) => Err("the database file is corrupt (redb panicked while opening it); restore it from a backup or move it away to start empty".into()),
    }
}

/// Creates the tables on first open; returns (revision, compact revision).
fn init_tables(db: &Database) -> std::result::Result<(Revision, Revision), String> {
    let wtx = db.begin_write().map_err(|e| e.to_string())?;
    let revs = {
        wtx.open_table(INDEX).map_err(|e| e.to_string())?;
        wtx.open_table(REVS).map_err(|e| e.to_string())?;
        let mut meta = wtx.open_table(META).map_err(|e| e.to_string())?;
        let mut revision = read_meta(&meta, META_REVISION).map_err(|e| e.to_string())?;
        if revision == 0 {
            // etcd starts an empty cluster at revision 1.
            revision = 1;
            meta.insert(META_REVISION, revision)
                .map_err(|e| e.to_string())?;
        }
        let compact = read_meta(&meta, META_COMPACT).map_err(|e| e.to_string())?;
        (revision, compact)
    };
    wtx.commit().map_err(|e| e.to_string())?;
    Ok(revs)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        // A point read is a few microseconds from redb's cache: cheaper
        // inline than a hop to the blocking pool.
        self.shared.get(key)
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.blocking(move |s| s.range(&req)).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Request::Txn { txn, reply })
            .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        watch::watch(self.shared.clone(), prefix, from_revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Request::Compact { revision, reply })
            .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    fn watch_is_ordered(&self) -> bool {
        true
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn open(dir: &Path, watch_queue: usize) -> EmbeddedStore {
        EmbeddedStore::open(EmbeddedOptions {
            watch_queue,
            ..EmbeddedOptions::in_dir(dir)
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_cancelled_after_its_queued_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 4);
        let mut slow = store.watch("/s/", 0).await.unwrap();
        let mut writes = Vec::new();
        for i in 0..10 {
            writes.push(store.create(&format!("/s/{i}"), "v".into()).await.unwrap());
        }
        // The writer never blocked on the slow watcher; it gets what was
        // queued, then a lag error telling it to re-watch.
        let mut seen = Vec::new();
        let err = loop {
            match slow.next().await.expect("stream ends with an error") {
                Ok(e) => seen.push(e.revision()),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::WatchLagged { .. }), "{err:?}");
        assert_eq!(
            seen,
            writes[..seen.len()],
            "delivered events are a prefix, in order"
        );
        assert!(seen.len() < writes.len());
        assert!(slow.next().await.is_none());

        // Re-watching from the next revision gets the rest from history.
        let from = seen.last().map_or(writes[0], |r| r + 1);
        let mut again = store.watch("/s/", from).await.unwrap();
        for want in writes.iter().filter(|r| **r >= from) {
            assert_eq!(again.next().await.unwrap().unwrap().revision(), *want);
        }
    }

    #[tokio::test]
    async fn closing_the_store_ends_watches_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 16);
        let mut w = store.watch("/", 0).await.unwrap();
        store.close().await;
        assert!(matches!(w.next().await, Some(Err(Error::Closed))));
        assert!(matches!(
            store.create("/x", "v".into()).await,
            Err(Error::Closed)
        ));
        assert!(matches!(store.watch("/", 0).await, Err(Error::Closed)));
    }
}
