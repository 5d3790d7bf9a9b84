//! The etcd backend: the [`Store`] contract over etcd's v3 gRPC API.
//!
//! Every trait operation maps to one etcd RPC (`Range`, `Txn`, `Compact`,
//! `Watch`), so the semantics are etcd's own; the embedded backend copies
//! them. Limits that etcd enforces server-side (request size, ops per
//! transaction) are checked here first so both backends fail the same way.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    PutOptions, TlsOptions, TxnOp, TxnOpResponse, WatchOptions,
};
use futures_util::stream;

use crate::{
    Error, Event, EventKind, KeyValue, Op, OpResult, RangeRequest, RangeResponse, Result, Revision,
    Store, Txn, TxnResponse, WatchStream, prefix_end,
};

/// How to reach an etcd cluster (k3s' `--datastore-*` flags).
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// `http://host:2379` or `https://host:2379`, one per member.
    pub endpoints: Vec<String>,
    /// CA bundle that signed the etcd server certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for etcd's client-cert authentication.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdOptions {
    /// Parses `--datastore-endpoint`'s comma-separated list.
    pub fn from_endpoint_list(list: &str) -> Self {
        let endpoints = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        Self {
            endpoints: endpoints.collect(),
            ..Self::default()
        }
    }
}

#[derive(Clone)]
pub struct EtcdStore {
    client: EtcdClients,
    endpoints: Vec<String>,
}

/// Responses as big as a whole resource list: like kube-apiserver, lift
/// gRPC's 4 MiB default receive limit (requests stay capped by etcd).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Clients configured once, cloned per call (a clone shares the channel).
#[derive(Clone)]
struct EtcdClients {
    kv: etcd_client::KvClient,
    watch: etcd_client::WatchClient,
}

impl EtcdClients {
    fn new(client: &Client) -> Self {
        Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
        }
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.kv.clone()
    }

    fn watcher(&self) -> etcd_client::WatchClient {
        self.watch.clone()
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects and checks that the cluster answers.
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        if opts.endpoints.is_empty() {
            return Err(Error::Etcd("no etcd endpoint given".into()));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        if let Some(tls) = tls_options(&opts)? {
            connect = connect.with_tls(tls);
        }
        let endpoints = opts.endpoints.clone();
        let client = Client::connect(&endpoints, Some(connect))
            .await
            .map_err(|e| Error::Etcd(format!("connecting to {}: {e}", endpoints.join(","))))?;
        let store = Self {
            client: EtcdClients::new(&client),
            endpoints,
        };
        let unreachable = |why: String| {
            Error::Etcd(format!(
                "etcd at {} is unreachable ({why}); check that it runs and that the address and TLS files are right",
                store.endpoints.join(",")
            ))
        };
        let revision =
            match tokio::time::timeout(Duration::from_secs(10), store.current_revision()).await {
                Err(_) => return Err(unreachable("no answer within 10s".into())),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Ok(Ok(revision)) => revision,
            };
        tracing::info!(endpoints = %store.endpoints.join(","), revision, "connected to etcd");
        Ok(store)
    }
}

fn tls_options(opts: &EtcdOptions) -> Result<Option<TlsOptions>> {
    if opts.ca_file.is_none() && opts.cert_file.is_none() && opts.key_file.is_none() {
        return Ok(None);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| Error::Etcd(format!("reading {}: {e}", path.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &opts.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => {
            return Err(Error::Etcd(
                "an etcd client certificate needs both the certificate and the key file".into(),
            ));
        }
    }
    Ok(Some(tls))
}

fn map_err(err: etcd_client::Error, requested: Revision) -> Error {
    let msg = err.to_string();
    if msg.contains("required revision has been compacted") {
        Error::Compacted {
            requested,
            compact_revision: 0,
        }
    } else if msg.contains("required revision is a future revision") {
        Error::FutureRevision {
            requested,
            current: 0,
        }
    } else {
        Error::Etcd(msg)
    }
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|_| Error::Corrupt(format!("etcd key {:?} is not UTF-8", kv.key())))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    })
}

fn range_end(prefix: &str) -> Vec<u8> {
    // etcd reads a range end of "\0" as "to the end of the keyspace".
    prefix_end(prefix).unwrap_or_else(|| vec![0])
}

/// etcd refuses an empty key; "\0" is the smallest key there is.
fn range_start(prefix: &str) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Etcd("response without a header".into()))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .client
            .kv()
            .get(key, None)
            .await
            .map_err(|e| map_err(e, 0))?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let start = match &req.start_after {
            Some(after) if after.as_str() >= req.prefix.as_str() => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            _ => range_start(&req.prefix),
        };
        let mut opts = GetOptions::new().with_range(range_end(&req.prefix));
        if req.limit > 0 {
            opts = opts.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        if req.revision > 0 {
            opts = opts.with_revision(req.revision);
        }
        let resp = self
            .client
            .kv()
            .get(start, Some(opts))
            .await
            .map_err(|e| map_err(e, req.revision))?;
        let kvs = resp
            .kvs()
            .iter()
            .map(convert_kv)
            .collect::<Result<Vec<_>>>()?;
        // etcd counts every key in the range, the returned ones included.
        let remaining = req.count.then(|| {
            u64::try_from(resp.count())
                .unwrap_or(0)
                .saturating_sub(kvs.len() as u64)
        });
        Ok(RangeResponse {
            kvs,
            more: resp.more(),
            revision: header_revision(resp.header())?,
            remaining,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        let ops = |ops: &[Op]| -> Vec<TxnOp> {
            ops.iter()
                .map(|op| match op {
                    Op::Get(key) => TxnOp::get(key.as_str(), None),
                    Op::Put { key, value } => TxnOp::put(
                        key.as_str(),
                        value.to_vec(),
                        Some(PutOptions::new().with_prev_key()),
                    ),
                    Op::Delete(key) => {
                        TxnOp::delete(key.as_str(), Some(DeleteOptions::new().with_prev_key()))
                    }
                })
                .collect()
        };
        let compare: Vec<_> = txn
            .compare
            .iter()
            .map(|c| {
                etcd_client::Compare::mod_revision(c.key.as_str(), CompareOp::Equal, c.mod_revision)
            })
            .collect();
        let etxn = etcd_client::Txn::new()
            .when(compare)
            .and_then(ops(&txn.success))
            .or_else(ops(&txn.failure));
        let resp = self
            .client
            .kv()
            .txn(etxn)
            .await
            .map_err(|e| map_err(e, 0))?;
        let results = resp
            .op_responses()
            .iter()
            .map(|r| {
                Ok(match r {
                    TxnOpResponse::Get(g) => {
                        OpResult::Get(g.kvs().first().map(convert_kv).transpose()?)
                    }
                    TxnOpResponse::Put(p) => OpResult::Put {
                        prev: p.prev_key().map(convert_kv).transpose()?,
                    },
                    TxnOpResponse::Delete(d) => OpResult::Delete {
                        prev: d.prev_kvs().first().map(convert_kv).transpose()?,
                    },
                    TxnOpResponse::Txn(_) => {
                        return Err(Error::Etcd("unexpected nested transaction response".into()));
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header())?,
            results,
        })
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        if from_revision > 0 {
            // etcd accepts a watch from a compacted revision and cancels it
            // right after; find out now so both backends fail at the call.
            let probe = GetOptions::new()
                .with_revision(from_revision)
                .with_count_only();
            let probed = self.client.kv().get(range_start(prefix), Some(probe)).await;
            if let Err(e) = probed {
                match map_err(e, from_revision) {
                    Error::FutureRevision { .. } => {}
                    other => return Err(other),
                }
            }
        }
        let mut opts = WatchOptions::new()
            .with_range(range_end(prefix))
            .with_prev_key();
        if from_revision > 0 {
            opts = opts.with_start_revision(from_revision);
        }
        let watch = self
            .client
            .watcher()
            .watch(range_start(prefix), Some(opts))
            .await
            .map_err(|e| map_err(e, from_revision))?;
        let state = EtcdWatch {
            watch,
            buf: VecDeque::new(),
            next: from_revision,
            done: false,
        };
        Ok(Box::pin(stream::unfold(state, EtcdWatch::next)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.client
            .kv()
            .compact(revision, None)
            .await
            .map_err(|e| map_err(e, revision))?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .client
            .kv()
            .get("\0", Some(opts))
            .await
            .map_err(|e| map_err(e, 0))?;
        header_revision(resp.header())
    }
}

struct EtcdWatch {
    /// Holds the request side open too: dropping it ends the watch.
    watch: etcd_client::WatchStream,
    buf: VecDeque<Event>,
    next: Revision,
    done: bool,
}

impl EtcdWatch {
    async fn next(mut self) -> Option<(Result<Event>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.buf.pop_front() {
                self.next = event.revision() + 1;
                return Some((Ok(event), self));
            }
            let outcome = match self.watch.message().await {
                Ok(Some(resp)) if resp.canceled() => Err(if resp.compact_revision() > 0 {
                    Error::Compacted {
                        requested: self.next,
                        compact_revision: resp.compact_revision(),
                    }
                } else {
                    Error::Etcd(format!("watch cancelled: {}", resp.cancel_reason()))
                }),
                Ok(Some(resp)) => resp
                    .events()
                    .iter()
                    .map(convert_event)
                    .collect::<Result<Vec<_>>>(),
                Ok(None) => Err(Error::Etcd("etcd closed the watch stream".into())),
                Err(e) => Err(map_err(e, self.next)),
            };
            match outcome {
                Ok(events) => self.buf.extend(events),
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
    }
}

fn convert_event(e: &etcd_client::Event) -> Result<Event> {
    let kv = e
        .kv()
        .ok_or_else(|| Error::Etcd("watch event without a key".into()))?;
    let kind = match e.event_type() {
        etcd_client::EventType::Put => EventKind::Put,
        etcd_client::EventType::Delete => EventKind::Delete,
    };
    Ok(Event {
        kind,
        kv: convert_kv(kv)?,
        prev: e.prev_kv().map(convert_kv).transpose()?,
    })
}
