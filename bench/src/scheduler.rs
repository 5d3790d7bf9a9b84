//! `bench/run scheduler`: Kubernetes' scheduler_perf workloads against a
//! real `rudder server --disable-agent` (release build) with simulated
//! nodes (`rudder agent --simulated`), end to end through the API: the
//! clock runs from the first pod created to the last one bound, as seen
//! through a watch.
//!
//! Rows (each on a fresh cluster): SchedulingBasic (5,000 nodes, 10,000
//! pods), pod anti-affinity (5,000 nodes, pods that must not share a
//! host), topology spreading (5,000 nodes over 3 zones, `maxSkew: 1`),
//! and preemption (500 full nodes, high-priority pods evicting
//! low-priority ones). Printed: pods/second and the server's RSS after
//! each. `BENCH_ROWS=basic,anti` runs some rows; `BENCH_SCALE=0.1` shrinks
//! node and pod counts (for a quick look).

#![allow(clippy::unwrap_used)] // a benchmark that hits an error should stop loudly

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

#[path = "common.rs"]
#[allow(dead_code)] // this benchmark has no timed rows
mod common;
use common::{Cluster, cpu_ticks, rss_mib, scale, selected, start};

/// Creates in flight at once (a client like scheduler_perf's, QPS-free).
const CREATE_CONCURRENCY: usize = 32;

fn pod(name: &str, workload: &str, extra: Value) -> Pod {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": workload}},
        "spec": {
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}],
        },
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Creates the pods (CREATE_CONCURRENCY at once) and waits until every
/// one of them is bound; returns the seconds from first create to last bind.
/// One workload's figures: first create to last bind, and the CPU the
/// server and the simulated agent spent meanwhile.
struct Run {
    pods: usize,
    secs: f64,
    server_cpu_secs: f64,
    sim_cpu_secs: f64,
}

async fn create_and_wait_bound(
    cluster: &Cluster,
    client: &kube::Client,
    workload: &str,
    pods: Vec<Pod>,
) -> Result<Run> {
    let sim_pid = cluster.sim.as_ref().map_or(0, std::process::Child::id);
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let want: HashSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let total = want.len();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let selector = format!("bench={workload}");
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(watch_api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(p)) = stream.next().await {
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                && tx.send(p.metadata.name.unwrap_or_default()).is_err()
            {
                return;
            }
        }
    });
    // The watch is listening before the first create.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let ticks = (cpu_ticks(cluster.server.id()), cpu_ticks(sim_pid));
    let slots = Arc::new(tokio::sync::Semaphore::new(CREATE_CONCURRENCY));
    let creates = tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for p in pods {
            let permit = slots.clone().acquire_owned().await.unwrap();
            let api = api.clone();
            set.spawn(async move {
                let r = api.create(&PostParams::default(), &p).await;
                drop(permit);
                r
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().context("creating a pod")?;
        }
        anyhow::Ok(started.elapsed())
    });
    let mut bound = HashSet::new();
    let mut last_report = Instant::now();
    while bound.len() < total {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(name)) => {
                if want.contains(&name) {
                    bound.insert(name);
                }
            }
            Ok(None) => bail!("the watch ended"),
            Err(_) => bail!(
                "{workload}: {} of {total} pods bound, none more within 120 s",
                bound.len()
            ),
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench: {workload}: {} of {total} bound", bound.len());
            last_report = Instant::now();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Linux reports 100 ticks per second.
    let server_cpu_secs = (cpu_ticks(cluster.server.id()) - ticks.0) as f64 / 100.0;
    let sim_cpu_secs = (cpu_ticks(sim_pid) - ticks.1) as f64 / 100.0;
    let created = creates.await??;
    eprintln!(
        "bench: {workload}: {total} created in {:.1} s, all bound after {elapsed:.1} s",
        created.as_secs_f64()
    );
    watch.abort();
    Ok(Run {
        pods: total,
        secs: elapsed,
        server_cpu_secs,
        sim_cpu_secs,
    })
}

fn report(row: &str, run: &Run, cluster: &Cluster) {
    let per_pod_ms = |secs: f64| secs * 1000.0 / run.pods as f64;
    println!("{row}_pods_per_second: {:.0}", run.pods as f64 / run.secs);
    println!("{row}_server_rss_mib: {:.1}", rss_mib(cluster.server.id()));
    // Steadier than pods/s on a shared 2-core machine: the work per pod.
    println!(
        "{row}_server_cpu_ms_per_pod: {:.2}",
        per_pod_ms(run.server_cpu_secs)
    );
    println!(
        "{row}_sim_agent_cpu_ms_per_pod: {:.2}",
        per_pod_ms(run.sim_cpu_secs)
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let binary =
        PathBuf::from(std::env::var("RUDDER_BIN").unwrap_or("target/release/rudder".into()));

    if selected("basic") {
        let (nodes, pods) = (scale(5000), scale(10_000));
        let (cluster, client) = start(&binary, nodes, &[]).await?;
        let list = (0..pods)
            .map(|i| pod(&format!("basic-{i}"), "basic", json!({})))
            .collect();
        let run = create_and_wait_bound(&cluster, &client, "basic", list).await?;
        report(
            &format!("scheduling_basic_{nodes}_nodes_{pods}_pods"),
            &run,
            &cluster,
        );
    }

    if selected("anti") {
        let (nodes, pods) = (scale(5000), scale(2000));
        let (cluster, client) = start(&binary, nodes, &[]).await?;
        let anti = json!({"metadata": {"labels": {"color": "green"}}, "spec": {"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"color": "green"}},
                "topologyKey": "kubernetes.io/hostname"}]}}}});
        let list = (0..pods)
            .map(|i| pod(&format!("anti-{i}"), "anti", anti.clone()))
            .collect();
        let run = create_and_wait_bound(&cluster, &client, "anti", list).await?;
        report(
            &format!("pod_anti_affinity_{nodes}_nodes_{pods}_pods"),
            &run,
            &cluster,
        );
    }

    if selected("spread") {
        let (nodes, pods) = (scale(5000), scale(5000));
        let (cluster, client) = start(&binary, nodes, &["--sim-zones", "3"]).await?;
        let spread = json!({"metadata": {"labels": {"app": "spread"}}, "spec": {"topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}}}]}});
        let list = (0..pods)
            .map(|i| pod(&format!("spread-{i}"), "spread", spread.clone()))
            .collect();
        let run = create_and_wait_bound(&cluster, &client, "spread", list).await?;
        report(
            &format!("topology_spreading_{nodes}_nodes_{pods}_pods"),
            &run,
            &cluster,
        );
    }

    if selected("preemption") {
        let (nodes, victims, pods) = (scale(500), scale(2000), scale(500));
        let (cluster, client) = start(&binary, nodes, &["--sim-cpu", "4"]).await?;
        let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> =
            Api::all(client.clone());
        for (name, value) in [("low", 10), ("high", 1000)] {
            let pc = serde_json::from_value(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value}),
            )?;
            classes.create(&PostParams::default(), &pc).await?;
        }
        let full = |class: &str| {
            json!({"spec": {"priorityClassName": class, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "1", "memory": "500Mi"}}}]}})
        };
        let init = (0..victims)
            .map(|i| pod(&format!("low-{i}"), "low", full("low")))
            .collect();
        create_and_wait_bound(&cluster, &client, "low", init).await?;
        let list = (0..pods)
            .map(|i| pod(&format!("high-{i}"), "high", full("high")))
            .collect();
        let run = create_and_wait_bound(&cluster, &client, "high", list).await?;
        report(
            &format!("preemption_{nodes}_nodes_{pods}_pods"),
            &run,
            &cluster,
        );
    }
    Ok(())
}
