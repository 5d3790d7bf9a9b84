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

use redb::{ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{LogRecord, ValueRecord, decode_value, encode_log, encode_value};
use super::{KV, LOG, META, META_COMPACT, META_REVISION, Shared, log_event};
use crate::{Error, Event, EventKind, Op, OpResult, Result, Revision, Txn, TxnResponse};

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
            shared.revision.store(applied.revision, Ordering::Release);
            shared.compact.store(applied.compact, Ordering::Release);
            shared.hub.publish(applied.revision, applied.events);
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
        let mut kv = wtx.open_table(KV).map_err(|e| storage("opening kv", &e))?;
        let mut log = wtx
            .open_table(LOG)
            .map_err(|e| storage("opening log", &e))?;
        let mut meta = wtx
            .open_table(META)
            .map_err(|e| storage("opening meta", &e))?;
        for req in batch {
            match req {
                Request::Txn { txn, .. } => {
                    let mut tables = Tables {
                        kv: &mut kv,
                        log: &mut log,
                        shared,
                    };
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
                        log.retain_in(..(target, 0), |_, _| false)
                            .map_err(|e| storage("compacting the log", &e))?;
                        compact = target;
                        Ok(())
                    };
                    outcomes.push(Outcome::Compact(outcome));
                }
            }
        }
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

struct Tables<'a, 't> {
    kv: &'a mut Table<'t, &'static str, &'static [u8]>,
    log: &'a mut Table<'t, (i64, u32), &'static [u8]>,
    shared: &'a Shared,
}

impl Tables<'_, '_> {
    fn read(&self, key: &str) -> Result<Option<ValueRecord>> {
        let found = self
            .kv
            .get(key)
            .map_err(|e| self.shared.storage("reading a key", e))?;
        found.map(|raw| decode_value(key, raw.value())).transpose()
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
            let current = self.read(&cmp.key)?.map_or(0, |r| r.mod_revision);
            if current != cmp.mod_revision {
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
        let mut index: u32 = 0;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                Op::Get(key) => OpResult::Get(self.read(key)?.map(|r| r.into_kv(key.clone()))),
                Op::Put { key, value } => {
                    let prev = self.read(key)?;
                    let (create_revision, version) = prev
                        .as_ref()
                        .map_or((rev, 1), |p| (p.create_revision, p.version + 1));
                    let raw = encode_value(create_revision, rev, version, value);
                    self.kv
                        .insert(key.as_str(), raw.as_slice())
                        .map_err(|e| self.shared.storage("writing a key", e))?;
                    let prev_kv = prev.as_ref().map(|p| p.clone().into_kv(key.clone()));
                    let rec = LogRecord {
                        kind: EventKind::Put,
                        key: key.clone(),
                        create_revision,
                        version,
                        value: value.clone(),
                        prev,
                    };
                    self.append(rev, &mut index, rec, events)?;
                    OpResult::Put { prev: prev_kv }
                }
                Op::Delete(key) => match self.read(key)? {
                    None => OpResult::Delete { prev: None },
                    Some(prev) => {
                        self.kv
                            .remove(key.as_str())
                            .map_err(|e| self.shared.storage("deleting a key", e))?;
                        let prev_kv = prev.clone().into_kv(key.clone());
                        let rec = LogRecord {
                            kind: EventKind::Delete,
                            key: key.clone(),
                            create_revision: 0,
                            version: 0,
                            value: bytes::Bytes::new(),
                            prev: Some(prev),
                        };
                        self.append(rev, &mut index, rec, events)?;
                        OpResult::Delete {
                            prev: Some(prev_kv),
                        }
                    }
                },
            };
            results.push(result);
        }
        let wrote = index > 0;
        let resp = TxnResponse {
            succeeded,
            revision: if wrote { rev } else { revision },
            results,
        };
        Ok((resp, wrote))
    }

    fn append(
        &mut self,
        rev: Revision,
        index: &mut u32,
        rec: LogRecord,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        self.log
            .insert((rev, *index), encode_log(&rec).as_slice())
            .map_err(|e| self.shared.storage("appending to the log", e))?;
        *index += 1;
        events.push(log_event(rev, rec));
        Ok(())
    }
}
