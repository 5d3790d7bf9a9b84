//! The single writer thread and its group commit.
//!
//! Writers enqueue requests; the thread takes everything queued at the
//! moment (up to `max_batch`), applies the requests in order inside one redb
//! write transaction, commits once (one fsync), then publishes the events
//! and answers every request. Under load, batches grow by themselves: while
//! one fsync runs, the next batch queues up.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use std::collections::HashMap;

use redb::{ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{self, Record, RevKey};
use super::{INDEX, META, META_COMPACT, META_REVISION, REVS, Shared, load};
use crate::{Error, Event, EventKind, KeyValue, Op, OpResult, Result, Revision, Txn, TxnResponse};

pub(super) enum Request {
    Txn {
        txn: Txn,
        reply: oneshot::Sender<Result<TxnResponse>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

#[derive(Debug)]
pub(super) struct Handle {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    pub(super) async fn send(&self, req: Request) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let tx = tx.ok_or(Error::Closed)?;
        tx.send(req).await.map_err(|_| Error::Closed)
    }

    /// Refuses new writes, lets the queued ones commit and joins the thread.
    pub(super) fn shutdown(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    max_batch: usize,
    queue: usize,
) -> std::io::Result<Handle> {
    let (tx, rx) = mpsc::channel(queue);
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(&shared, rx, max_batch.max(1)))?;
    Ok(Handle {
        tx: Mutex::new(Some(tx)),
        thread: Mutex::new(Some(thread)),
    })
}

fn run(shared: &Shared, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        commit(shared, batch);
    }
    // Every sender is gone: end the watches so their streams finish.
    shared.hub.close();
}

enum Outcome {
    Txn(Result<TxnResponse>),
    Compact(Result<()>),
}

struct Applied {
    outcomes: Vec<Outcome>,
    events: Vec<Event>,
    revision: Revision,
    compact: Revision,
}

fn commit(shared: &Shared, batch: Vec<Request>) {
    let applied = apply(shared, &batch);
    match applied {
        Ok(applied) => {
            // Published before the revision moves: whoever reads the new
            // revision finds its events already queued on every watch.
            shared.hub.publish(applied.revision, applied.events);
            shared.revision.store(applied.revision, Ordering::Release);
            shared.compact.store(applied.compact, Ordering::Release);
            for (req, outcome) in batch.into_iter().zip(applied.outcomes) {
                // A requester that gave up waiting is no error.
                match (req, outcome) {
                    (Request::Txn { reply, .. }, Outcome::Txn(r)) => drop(reply.send(r)),
                    (Request::Compact { reply, .. }, Outcome::Compact(r)) => drop(reply.send(r)),
                    _ => unreachable!("outcomes are pushed in request order, one per request"),
                }
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = batch.len(), "store commit failed");
            let msg = err.to_string();
            for req in batch {
                match req {
                    Request::Txn { reply, .. } => {
                        drop(reply.send(Err(Error::Storage(msg.clone()))))
                    }
                    Request::Compact { reply, .. } => {
                        drop(reply.send(Err(Error::Storage(msg.clone()))));
                    }
                }
            }
        }
    }
}

fn apply(shared: &Shared, batch: &[Request]) -> Result<Applied> {
    let storage = |what: &str, e: &dyn std::fmt::Display| shared.storage(what, e);
    let wtx = shared
        .db
        .begin_write()
        .map_err(|e| storage("starting a write", &e))?;
    let mut revision = shared.revision.load(Ordering::Acquire);
    let mut compact = shared.compact.load(Ordering::Acquire);
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    {
        let mut tables = Tables {
            index: wtx
                .open_table(INDEX)
                .map_err(|e| storage("opening index", &e))?,
            revs: wtx
                .open_table(REVS)
                .map_err(|e| storage("opening revs", &e))?,
            shared,
        };
        for req in batch {
            match req {
                Request::Txn { txn, .. } => {
                    let (resp, wrote) = tables.apply_txn(txn, revision, &mut events)?;
                    if wrote {
                        revision += 1;
                    }
                    outcomes.push(Outcome::Txn(Ok(resp)));
                }
                Request::Compact {
                    revision: target, ..
                } => {
                    let target = *target;
                    let outcome = if target > revision {
                        Err(Error::FutureRevision {
                            requested: target,
                            current: revision,
                        })
                    } else if target <= compact {
                        Err(Error::Compacted {
                            requested: target,
                            compact_revision: compact,
                        })
                    } else {
                        tables.compact(target)?;
                        compact = target;
                        Ok(())
                    };
                    outcomes.push(Outcome::Compact(outcome));
                }
            }
        }
        let mut meta = wtx
            .open_table(META)
            .map_err(|e| storage("opening meta", &e))?;
        meta.insert(META_REVISION, revision)
            .map_err(|e| storage("writing meta", &e))?;
        meta.insert(META_COMPACT, compact)
            .map_err(|e| storage("writing meta", &e))?;
    }
    wtx.commit().map_err(|e| storage("committing", &e))?;
    Ok(Applied {
        outcomes,
        events,
        revision,
        compact,
    })
}

struct Tables<'t> {
    index: Table<'t, &'static str, RevKey>,
    revs: Table<'t, RevKey, &'static [u8]>,
    shared: &'t Shared,
}

impl Tables<'_> {
    /// The key's current version: where it lives and its record.
    fn current(&self, key: &str) -> Result<Option<(RevKey, Record)>> {
        let at = self
            .index
            .get(key)
            .map_err(|e| self.shared.storage("reading the index", e))?;
        let Some(at) = at.map(|v| v.value()) else {
            return Ok(None);
        };
        Ok(Some((at, load(&self.revs, at)?)))
    }

    fn mod_revision(&self, key: &str) -> Result<Revision> {
        let at = self
            .index
            .get(key)
            .map_err(|e| self.shared.storage("reading the index", e))?;
        Ok(at.map_or(0, |v| v.value().0))
    }

    /// Applies one transaction at `revision + 1`; returns its response and
    /// whether it wrote anything (and so took that revision).
    fn apply_txn(
        &mut self,
        txn: &Txn,
        revision: Revision,
        events: &mut Vec<Event>,
    ) -> Result<(TxnResponse, bool)> {
        let mut succeeded = true;
        for cmp in &txn.compare {
            if self.mod_revision(&cmp.key)? != cmp.mod_revision {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let rev = revision + 1;
        let mut sub: u32 = 0;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                Op::Get(key) => OpResult::Get(self.current(key)?.map(|(at, r)| r.into_kv(at.0))),
                Op::Put { key, value } => {
                    let prev = self.current(key)?;
                    let (create_revision, version) = prev
                        .as_ref()
                        .map_or((rev, 1), |(_, p)| (p.create_revision, p.version + 1));
                    let rec = Record {
                        kind: EventKind::Put,
                        key: key.clone(),
                        create_revision,
                        version,
                        prev: prev.as_ref().map(|(at, _)| *at),
                        value: value.clone(),
                    };
                    let prev = prev.map(|(at, p)| p.into_kv(at.0));
                    self.append((rev, sub), rec, prev.clone(), events)?;
                    sub += 1;
                    OpResult::Put { prev }
                }
                Op::Delete(key) => match self.current(key)? {
                    None => OpResult::Delete { prev: None },
                    Some((at, p)) => {
                        let rec = Record {
                            kind: EventKind::Delete,
                            key: key.clone(),
                            create_revision: 0,
                            version: 0,
                            prev: Some(at),
                            value: bytes::Bytes::new(),
                        };
                        let prev = p.into_kv(at.0);
                        self.append((rev, sub), rec, Some(prev.clone()), events)?;
                        sub += 1;
                        OpResult::Delete { prev: Some(prev) }
                    }
                },
            };
            results.push(result);
        }
        let wrote = sub > 0;
        let resp = TxnResponse {
            succeeded,
            revision: if wrote { rev } else { revision },
            results,
        };
        Ok((resp, wrote))
    }

    /// Writes a change record and points the index at it.
    fn append(
        &mut self,
        at: RevKey,
        rec: Record,
        prev: Option<KeyValue>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let storage = |what: &str, e: redb::StorageError| self.shared.storage(what, e);
        self.revs
            .insert(at, codec::encode(&rec).as_slice())
            .map_err(|e| storage("writing a record", e))?;
        match rec.kind {
            EventKind::Put => self.index.insert(rec.key.as_str(), at).map(drop),
            EventKind::Delete => self.index.remove(rec.key.as_str()).map(drop),
        }
        .map_err(|e| storage("updating the index", e))?;
        events.push(Event {
            kind: rec.kind,
            prev,
            kv: rec.into_kv(at.0),
        });
        Ok(())
    }

    /// Drops the history before `target`: of the records older than it,
    /// keeps only each key's newest, and not even that if it is a delete.
    fn compact(&mut self, target: Revision) -> Result<()> {
        let storage = |what: &str, e: redb::StorageError| self.shared.storage(what, e);
        let mut newest: HashMap<String, (RevKey, EventKind)> = HashMap::new();
        let mut doomed = Vec::new();
        for entry in self
            .revs
            .range(..(target, 0))
            .map_err(|e| storage("ranging revs", e))?
        {
            let (k, v) = entry.map_err(|e| storage("ranging revs", e))?;
            let at = k.value();
            let rec = codec::decode(at, v.value())?;
            if let Some((older, _)) = newest.insert(rec.key, (at, rec.kind)) {
                doomed.push(older);
            }
        }
        doomed.extend(
            newest
                .into_values()
                .filter(|(_, kind)| *kind == EventKind::Delete)
                .map(|(at, _)| at),
        );
        for at in doomed {
            self.revs
                .remove(at)
                .map_err(|e| storage("compacting revs", e))?;
        }
        Ok(())
    }
}
