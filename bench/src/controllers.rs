//! `bench/run controllers`: the workload controllers end to end against a
//! real `rudder server --disable-agent` (release build) with simulated
//! nodes (`rudder agent --simulated`), through the API: the clock runs
//! from the first create to the last object reporting done.
//!
//! Rows (each on a fresh cluster): a 1,000-replica Deployment from create
//! to all available, then a rolling update of it (maxSurge 25%) to
//! completion; 100 Deployments × 10 replicas created at once; 1,000 Jobs
//! of one pod each to completion (the simulated pods exit after 100 ms).
//! Printed: seconds, pods/second, the server's CPU per pod and its RSS;
//! and first the idle RSS of a server with every controller running.
//! `BENCH_ROWS=deployment,jobs` runs some rows; `BENCH_SCALE=0.1` shrinks
//! them.

#![allow(clippy::unwrap_used)] // a benchmark that hits an error should stop loudly

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[path = "common.rs"]
#[allow(dead_code)] // not everything shared is used here
mod common;
use common::{Cluster, cpu_ticks, rss_mib, scale, selected, spawn_server, start};

/// Simulated nodes: 110 pods each (a kubelet's default), room for 1,000.
const NODES: usize = 100;
/// Creates in flight at once.
const CREATE_CONCURRENCY: usize = 32;

fn deployment(name: &str, replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                  "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}},
        },
    }))
    .unwrap()
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {
            "metadata": {"annotations": {"sim.rudder.dev/exit-after": "100ms"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}}},
    }))
    .unwrap()
}

/// Whether a Deployment has rolled out its current template to all its
/// replicas, all available (what `kubectl rollout status` waits for).
fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
}

/// A row's figures.
struct Run {
    pods: usize,
    secs: f64,
    server_cpu_secs: f64,
}

fn report(row: &str, run: &Run, cluster: &Cluster) {
    println!("{row}_seconds: {:.1}", run.secs);
    println!("{row}_pods_per_second: {:.0}", run.pods as f64 / run.secs);
    println!(
        "{row}_server_cpu_ms_per_pod: {:.2}",
        run.server_cpu_secs * 1000.0 / run.pods as f64
    );
    println!("{row}_server_rss_mib: {:.1}", rss_mib(cluster.server.id()));
}

/// Runs `act`, then polls `done` until it holds; the seconds between and
/// the server CPU spent.
async fn timed<A, D, DF>(
    cluster: &Cluster,
    pods: usize,
    what: &str,
    act: A,
    mut done: D,
) -> Result<Run>
where
    A: std::future::Future<Output = Result<()>>,
    D: FnMut() -> DF,
    DF: std::future::Future<Output = Result<(usize, usize)>>,
{
    let started = Instant::now();
    let ticks = cpu_ticks(cluster.server.id());
    act.await?;
    let mut last = (0, 0);
    let mut since = Instant::now();
    let mut report = Instant::now();
    loop {
        let now = done().await?;
        if now.0 >= now.1 {
            break;
        }
        if now != last {
            last = now;
            since = Instant::now();
        }
        if since.elapsed() > Duration::from_secs(120) {
            bail!(
                "{what}: {} of {} done, no progress within 120 s",
                now.0,
                now.1
            );
        }
        if report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench: {what}: {} of {} done", now.0, now.1);
            report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    // Linux reports 100 ticks per second.
    let server_cpu_secs = (cpu_ticks(cluster.server.id()) - ticks) as f64 / 100.0;
    eprintln!("bench: {what}: done after {secs:.1} s");
    Ok(Run {
        pods,
        secs,
        server_cpu_secs,
    })
}

/// Creates the objects, CREATE_CONCURRENCY at once.
async fn create_all<K>(api: &Api<K>, objects: Vec<K>) -> Result<()>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(CREATE_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for o in objects {
        let permit = slots.clone().acquire_owned().await?;
        let api = api.clone();
        set.spawn(async move {
            let r = api.create(&PostParams::default(), &o).await;
            drop(permit);
            r
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let binary =
        PathBuf::from(std::env::var("RUDDER_BIN").unwrap_or("target/release/rudder".into()));

    if selected("idle") {
        let dir = tempfile::tempdir()?;
        let port = rudder_testing::free_port()?;
        let mut server = spawn_server(&binary, dir.path(), port)?;
        let kubeconfig = dir.path().join("kubeconfig");
        while !kubeconfig.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Settled: the controllers have listed and watch.
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!("server_rss_idle_mib: {:.1}", rss_mib(server.id()));
        common::stop([&mut server]);
    }

    if selected("deployment") {
        let replicas = scale(1000);
        let (cluster, client) = start(&binary, NODES, &["--sim-pods", "110"]).await?;
        let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let get = || {
            let api = api.clone();
            async move {
                let d = api.get("big").await?;
                let s = d.status.clone().unwrap_or_default();
                let n = usize::try_from(s.available_replicas.unwrap_or(0)).unwrap_or(0);
                Ok(if rolled_out(&d) {
                    (replicas, replicas)
                } else {
                    (n.min(replicas - 1), replicas)
                })
            }
        };
        let create = async {
            api.create(&PostParams::default(), &deployment("big", replicas))
                .await?;
            Ok(())
        };
        let run = timed(&cluster, replicas, "deployment", create, get).await?;
        report(&format!("deployment_{replicas}_replicas"), &run, &cluster);

        let update = async {
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}}});
            api.patch("big", &PatchParams::default(), &Patch::Strategic(&patch))
                .await?;
            Ok(())
        };
        let get = || {
            let api = api.clone();
            async move {
                let d = api.get("big").await?;
                let s = d.status.clone().unwrap_or_default();
                let n = usize::try_from(s.updated_replicas.unwrap_or(0)).unwrap_or(0);
                Ok(if rolled_out(&d) {
                    (replicas, replicas)
                } else {
                    (n.min(replicas - 1), replicas)
                })
            }
        };
        let run = timed(&cluster, replicas, "rolling update", update, get).await?;
        report(
            &format!("rolling_update_{replicas}_replicas"),
            &run,
            &cluster,
        );
    }

    if selected("many") {
        let (count, each) = (scale(100), 10);
        let (cluster, client) = start(&binary, NODES, &["--sim-pods", "110"]).await?;
        let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let list = (0..count)
            .map(|i| deployment(&format!("d{i}"), each))
            .collect();
        let get = || {
            let api = api.clone();
            async move {
                let all = api.list(&ListParams::default()).await?.items;
                Ok((all.iter().filter(|d| rolled_out(d)).count(), count))
            }
        };
        let run = timed(
            &cluster,
            count * each,
            "deployments",
            create_all(&api, list),
            get,
        )
        .await?;
        report(
            &format!("deployments_{count}_x_{each}_replicas"),
            &run,
            &cluster,
        );
    }

    if selected("jobs") {
        let count = scale(1000);
        let (cluster, client) = start(&binary, NODES, &["--sim-pods", "110"]).await?;
        let api: Api<Job> = Api::namespaced(client.clone(), "default");
        let list = (0..count).map(|i| job(&format!("j{i}"))).collect();
        let complete = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                })
        };
        let get = || {
            let api = api.clone();
            async move {
                let all = api.list(&ListParams::default()).await?.items;
                Ok((all.iter().filter(|j| complete(j)).count(), count))
            }
        };
        let run = timed(&cluster, count, "jobs", create_all(&api, list), get).await?;
        report(&format!("jobs_{count}_x_1_pod"), &run, &cluster);
    }
    Ok(())
}
