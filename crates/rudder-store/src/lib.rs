//! Rudder's store: all cluster state lives behind the [`Store`] trait.
//!
//! The trait is shaped like etcd's v3 KV and watch API, so that both backends
//! fit it exactly:
//!
//! - [`EmbeddedStore`] (the default): MVCC on redb, one global revision,
//!   a revision log for watch replay and reads at past revisions, group
//!   commit (one fsync per batch of concurrent writers).
//! - [`EtcdStore`]: the same contract over an etcd 3.x cluster.
//!
//! Start at [`Store`]; `tests/conformance.rs` is the executable contract,
//! run unchanged against both backends.
//!
//! # Semantics (etcd's)
//! - Every write (a transaction that changes at least one key) bumps one
//!   global revision. Each key carries its create revision, mod revision and
//!   version (number of writes since creation).
//! - A compare on mod revision `0` means "the key is absent".
//! - `compact(r)` drops history older than `r`: reads at a revision `< r`
//!   and watches from a revision `< r` fail with [`Error::Compacted`].

mod compactor;
mod embedded;
mod etcd;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use compactor::{Compactor, DEFAULT_COMPACTION_INTERVAL};
pub use embedded::{DB_FILE, EmbeddedOptions, EmbeddedStore};
pub use etcd::{EtcdOptions, EtcdStore};

/// Largest total payload (keys plus values) one write may carry: 1.5 MiB,
/// etcd's default `--max-request-bytes`.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Most operations one transaction branch may hold (etcd's `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// A global store revision; `0` means "none" (absent key, "latest").
pub type Revision = i64;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One key with its value and etcd metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// Writes since creation; 1 after create.
    pub version: i64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change to one key, as a watch delivers it.
///
/// For a delete, `kv` holds the key, the deleting revision as
/// `mod_revision`, an empty value and zero create revision and version
/// (etcd's tombstone shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The key's value before this change, if it existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Compares a key's mod revision for equality; `0` means "absent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

impl Compare {
    pub fn mod_revision(key: impl Into<String>, mod_revision: Revision) -> Self {
        Self {
            key: key.into(),
            mod_revision,
        }
    }

    pub fn absent(key: impl Into<String>) -> Self {
        Self::mod_revision(key, 0)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Get(String),
    Put { key: String, value: Bytes },
    Delete(String),
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Get(k) | Op::Delete(k) | Op::Put { key: k, .. } => k,
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get(k) => write!(f, "Get({k:?})"),
            Op::Put { key, value } => write!(f, "Put({key:?}, {} bytes)", value.len()),
            Op::Delete(k) => write!(f, "Delete({k:?})"),
        }
    }
}

/// The result of one [`Op`], in the order the ops were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Get(Option<KeyValue>),
    Put {
        prev: Option<KeyValue>,
    },
    /// `prev` is `None` when the key did not exist (nothing was deleted).
    Delete {
        prev: Option<KeyValue>,
    },
}

/// If every compare holds, run `success`, else `failure`: atomically, at
/// one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store revision after the transaction (its own revision if it
    /// wrote anything).
    pub revision: Revision,
    pub results: Vec<OpResult>,
}

impl Txn {
    /// Checks the limits both backends enforce, before anything is sent.
    pub fn validate(&self) -> Result<()> {
        for ops in [&self.success, &self.failure] {
            if ops.len() > MAX_TXN_OPS {
                return Err(Error::InvalidTxn(format!(
                    "{} operations in one branch, over the limit of {MAX_TXN_OPS}",
                    ops.len()
                )));
            }
            let mut written = std::collections::HashSet::new();
            let mut bytes = 0usize;
            for op in ops.iter() {
                if op.key().is_empty() {
                    return Err(Error::InvalidTxn("empty key".into()));
                }
                if let Op::Put { key, value } = op {
                    bytes += key.len() + value.len();
                    if bytes > MAX_REQUEST_BYTES {
                        return Err(Error::ValueTooLarge {
                            key: key.clone(),
                            size: bytes,
                            limit: MAX_REQUEST_BYTES,
                        });
                    }
                }
                if !matches!(op, Op::Get(_)) && !written.insert(op.key()) {
                    return Err(Error::InvalidTxn(format!(
                        "key {:?} is written twice in one transaction",
                        op.key()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A read of the keys under `prefix`, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub prefix: String,
    /// Start strictly after this key (the last key of the previous page).
    pub start_after: Option<String>,
    /// At most this many keys; `0` means no limit.
    pub limit: usize,
    /// Read as of this revision; `0` means the current one.
    pub revision: Revision,
    /// Also count the keys that match after the page (see
    /// [`RangeResponse::remaining`]).
    pub count: bool,
}

impl RangeRequest {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }

    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    /// Counts what matches past the limit too (a list's
    /// `remainingItemCount`).
    pub fn with_count(mut self) -> Self {
        self.count = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More keys match after the last one returned.
    pub more: bool,
    /// The store's current revision when the read was served.
    pub revision: Revision,
    /// With [`RangeRequest::count`]: how many keys match after the last
    /// one returned (at the revision read).
    pub remaining: Option<u64>,
}

/// A stream of watch events in revision order. It ends with an error item
/// if the watch cannot go on (fell behind, history compacted, store closed).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("conflict on key {key:?}: expected mod revision {expected}, found {}", current.as_ref().map_or(0, |kv| kv.mod_revision))]
    Conflict {
        key: String,
        expected: Revision,
        current: Option<KeyValue>,
    },
    #[error("revision {requested} has been compacted; the oldest available is {compact_revision}")]
    Compacted {
        requested: Revision,
        compact_revision: Revision,
    },
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("request for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),
    #[error("watch on {prefix:?} fell behind and was cancelled; start a new watch")]
    WatchLagged { prefix: String },
    #[error("cannot open the store at {path}: {message}")]
    Open { path: String, message: String },
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("the store is closed")]
    Closed,
}

/// The cluster's state store: an etcd-shaped KV with MVCC and watch.
///
/// # Guarantees
/// - Writes are linearizable and durable once acknowledged (the embedded
///   backend fsyncs before replying; etcd commits through raft).
/// - A watch delivers every change under its prefix from its start
///   revision on, in revision order, each exactly once, with the previous
///   value.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Streams changes under `prefix` from `from_revision` on (`0`: from
    /// the next write). Fails with [`Error::Compacted`] if that revision is
    /// no longer kept.
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;

    /// Drops history before `revision`. Fails with [`Error::Compacted`] if
    /// the store is already compacted at or past it.
    async fn compact(&self, revision: Revision) -> Result<()>;

    async fn current_revision(&self) -> Result<Revision>;

    /// Whether, once [`Store::current_revision`] has returned R, every
    /// event up to R is already queued on each open watch. Then a watcher
    /// that has drained what its stream has ready has seen all of R (the
    /// API server's watch cache serves consistent lists that way). True for
    /// the embedded store; etcd's watch streams travel on their own.
    fn watch_is_ordered(&self) -> bool {
        false
    }

    /// Creates `key`; fails with [`Error::AlreadyExists`] if present.
    /// Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let resp = self
            .txn(Txn {
                compare: vec![Compare::absent(key)],
                success: vec![Op::Put {
                    key: key.into(),
                    value,
                }],
                failure: vec![],
            })
            .await?;
        if resp.succeeded {
            Ok(resp.revision)
        } else {
            Err(Error::AlreadyExists { key: key.into() })
        }
    }

    /// Replaces `key` if its mod revision is still `expected`; otherwise
    /// fails with [`Error::Conflict`] carrying the current value.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let resp = self
            .txn(Txn {
                compare: vec![Compare::mod_revision(key, expected)],
                success: vec![Op::Put {
                    key: key.into(),
                    value,
                }],
                failure: vec![Op::Get(key.into())],
            })
            .await?;
        if resp.succeeded {
            return Ok(resp.revision);
        }
        Err(Error::Conflict {
            key: key.into(),
            expected,
            current: take_get(resp.results),
        })
    }

    /// Deletes `key`, if `expected` is given only at that mod revision.
    /// Returns the deleting revision and the deleted value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let txn = match expected {
            Some(rev) => Txn {
                compare: vec![Compare::mod_revision(key, rev)],
                success: vec![Op::Delete(key.into())],
                failure: vec![Op::Get(key.into())],
            },
            None => Txn {
                compare: vec![],
                success: vec![Op::Delete(key.into())],
                failure: vec![],
            },
        };
        let resp = self.txn(txn).await?;
        let succeeded = resp.succeeded;
        let revision = resp.revision;
        match resp.results.into_iter().next() {
            Some(OpResult::Delete { prev: Some(prev) }) if succeeded => Ok((revision, prev)),
            Some(OpResult::Get(Some(current))) => Err(Error::Conflict {
                key: key.into(),
                expected: expected.unwrap_or_default(),
                current: Some(current),
            }),
            _ => Err(Error::NotFound { key: key.into() }),
        }
    }
}

fn take_get(results: Vec<OpResult>) -> Option<KeyValue> {
    results.into_iter().find_map(|r| match r {
        OpResult::Get(kv) => kv,
        _ => None,
    })
}

/// The smallest string greater than every string starting with `prefix`,
/// or `None` if there is none (the prefix is empty or all `U+10FFFF`).
pub(crate) fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
