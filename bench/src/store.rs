//! `bench/run store`: the embedded store against a real local etcd, same
//! load, same run, fsync on for both.
//!
//! Rows: creates of 1 KiB values by 1, 8 and 64 concurrent writers; point
//! reads; a prefix range of 10k keys; watch delivery to 100 watchers; and
//! the time to reopen the embedded store. Every figure is one `key: value`
//! line; each row ends with the embedded/etcd ratio.
//!
//! `BENCH_SECONDS` (default 3) sets how long each timed row runs.

#![allow(clippy::unwrap_used)] // a benchmark that hits an error should stop loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use rudder_store::{
    EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Op, RangeRequest, Store, Txn,
};

const VALUE_BYTES: usize = 1024;
const RANGE_KEYS: usize = 10_000;
const READ_KEYS: usize = 10_000;
const WATCHERS: usize = 100;
const WATCH_WRITES: usize = 500;

struct Stats {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

#[path = "common.rs"]
mod common;
use common::{seconds, selected};

/// Joins the timed tasks into one row's figures.
async fn collect(mut tasks: tokio::task::JoinSet<Vec<Duration>>, start: Instant) -> Stats {
    let mut latencies = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.unwrap());
    }
    Stats {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; VALUE_BYTES])
}

async fn writes(store: Arc<dyn Store>, writers: usize, run: &str) -> Stats {
    let deadline = Instant::now() + seconds();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        let prefix = format!("/bench/{run}/w{w:03}/");
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let v = value();
            while Instant::now() < deadline {
                let key = format!("{prefix}{:08}", lat.len());
                let t = Instant::now();
                store.create(&key, v.clone()).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        });
    }
    collect(tasks, start).await
}

async fn load(store: &Arc<dyn Store>, prefix: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let store = store.clone();
        let ops: Vec<Op> = chunk
            .iter()
            .map(|i| Op::put(format!("{prefix}{i:08}"), value()))
            .collect();
        tasks.spawn(async move {
            store
                .txn(Txn {
                    success: ops,
                    ..Txn::default()
                })
                .await
                .unwrap()
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

async fn point_reads(store: Arc<dyn Store>) -> Stats {
    load(&store, "/read/", READ_KEYS).await;
    let deadline = Instant::now() + seconds();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..8u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut rng = fastrand_lite(r + 1);
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let key = format!("/read/{:08}", rng() % READ_KEYS as u64);
                let t = Instant::now();
                assert!(store.get(&key).await.unwrap().is_some());
                lat.push(t.elapsed());
            }
            lat
        });
    }
    collect(tasks, start).await
}

/// xorshift: enough randomness for picking keys, no dependency.
fn fastrand_lite(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

async fn ranges(store: Arc<dyn Store>) -> Stats {
    load(&store, "/range/", RANGE_KEYS).await;
    let deadline = Instant::now() + seconds();
    let start = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline || latencies.len() < 5 {
        let t = Instant::now();
        let resp = store.range(RangeRequest::prefix("/range/")).await.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(resp.kvs.len(), RANGE_KEYS);
    }
    Stats {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Watch delivery: one writer, `WATCHERS` watchers on the prefix. Returns
/// (latency from the write's acknowledgement, latency from its start).
async fn watch_delivery(store: Arc<dyn Store>) -> (Stats, Stats) {
    let mut watchers = tokio::task::JoinSet::new();
    for _ in 0..WATCHERS {
        let mut w = store.watch("/watch/", 0).await.unwrap();
        watchers.spawn(async move {
            let mut got = Vec::with_capacity(WATCH_WRITES);
            while got.len() < WATCH_WRITES {
                let e = w.next().await.unwrap().unwrap();
                got.push((e.kv.key, Instant::now()));
            }
            got
        });
    }
    let mut sent = Vec::with_capacity(WATCH_WRITES);
    let start = Instant::now();
    for i in 0..WATCH_WRITES {
        let key = format!("/watch/{i:08}");
        let t = Instant::now();
        store.create(&key, value()).await.unwrap();
        sent.push((t, Instant::now()));
    }
    let elapsed = start.elapsed();
    let (mut from_ack, mut from_start) = (Vec::new(), Vec::new());
    while let Some(got) = watchers.join_next().await {
        for (key, at) in got.unwrap() {
            let i: usize = key.trim_start_matches("/watch/").parse().unwrap();
            let (started, acked) = sent[i];
            from_ack.push(at.saturating_duration_since(acked));
            from_start.push(at.saturating_duration_since(started));
        }
    }
    let ops = from_ack.len();
    (
        Stats {
            ops,
            elapsed,
            latencies: from_ack,
        },
        Stats {
            ops,
            elapsed,
            latencies: from_start,
        },
    )
}

struct Row<'a> {
    name: &'a str,
    embedded: Stats,
    etcd: Stats,
}

fn print_row(mut row: Row<'_>) {
    for (backend, s) in [("embedded", &mut row.embedded), ("etcd", &mut row.etcd)] {
        println!("{}.{backend}.ops_per_s: {:.0}", row.name, s.throughput());
        println!("{}.{backend}.p50_ms: {:.3}", row.name, s.percentile_ms(50));
        println!("{}.{backend}.p99_ms: {:.3}", row.name, s.percentile_ms(99));
    }
    println!(
        "{}.ratio_throughput_embedded_over_etcd: {:.2}",
        row.name,
        row.embedded.throughput() / row.etcd.throughput()
    );
    println!(
        "{}.ratio_p99_embedded_over_etcd: {:.2}",
        row.name,
        row.embedded.percentile_ms(99) / row.etcd.percentile_ms(99)
    );
}

struct Backends {
    embedded: Arc<dyn Store>,
    etcd: Arc<dyn Store>,
}

/// Runs one row against both backends, if selected, and prints it.
async fn row<F, Fut>(b: &Backends, name: &str, f: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = Stats>,
{
    if selected(name) {
        let embedded = f(b.embedded.clone()).await;
        let etcd = f(b.etcd.clone()).await;
        print_row(Row {
            name,
            embedded,
            etcd,
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let etcd_server = tokio::task::spawn_blocking(rudder_testing::EtcdServer::start).await??;
    let etcd = EtcdStore::connect(EtcdOptions::from_endpoint_list(etcd_server.endpoint()))
        .await
        .context("connecting to the benchmark's etcd")?;
    let embedded_store = EmbeddedStore::open(EmbeddedOptions::in_dir(dir.path()))?;
    let b = Backends {
        embedded: Arc::new(embedded_store.clone()),
        etcd: Arc::new(etcd),
    };
    println!(
        "# rudder store benchmark: embedded (redb, fsync on) vs etcd 3.4 (fsync on), same machine, same run"
    );
    println!(
        "# value size {VALUE_BYTES} B; {:.1} s per timed row",
        seconds().as_secs_f64()
    );

    for writers in [1usize, 8, 64] {
        let run = format!("c{writers}");
        row(&b, &format!("write_{writers}_writers"), |s| {
            writes(s, writers, &run)
        })
        .await;
    }
    row(&b, "point_read_8_readers", point_reads).await;
    row(&b, "range_10k_keys", ranges).await;
    if selected("watch_100_watchers") {
        let (e_ack, e_start) = watch_delivery(b.embedded.clone()).await;
        let (d_ack, d_start) = watch_delivery(b.etcd.clone()).await;
        let name = "watch_100_watchers_from_ack";
        print_row(Row {
            name,
            embedded: e_ack,
            etcd: d_ack,
        });
        let name = "watch_100_watchers_from_write_start";
        print_row(Row {
            name,
            embedded: e_start,
            etcd: d_start,
        });
    }

    // Reopening runs redb's full integrity check over the file.
    drop(b);
    embedded_store.close().await;
    drop(embedded_store);
    let size = std::fs::metadata(dir.path().join(rudder_store::DB_FILE))?.len();
    let t = Instant::now();
    let reopened = EmbeddedStore::open(EmbeddedOptions::in_dir(dir.path()))?;
    println!(
        "open.embedded.file_mib: {:.1}",
        size as f64 / (1 << 20) as f64
    );
    println!(
        "open.embedded.ms: {:.1}",
        t.elapsed().as_secs_f64() * 1000.0
    );
    reopened.close().await;
    Ok(())
}
