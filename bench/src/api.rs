//! `bench/run api`: a real `rudder server --disable-agent` (release build,
//! embedded store, fsync on) driven over HTTPS with client certificates.
//!
//! Rows: 1, 16 and 64 concurrent clients creating, getting, updating and
//! listing ConfigMaps and Pods (each client in its own namespace); a LIST
//! of 10,000 pods; 1,000 concurrent watchers receiving each change; the
//! server's RSS idle and the most it reached under load. One `key: value`
//! line per figure. `BENCH_SECONDS` (default 3) sets each timed row.

#![allow(clippy::unwrap_used)] // a benchmark that hits an error should stop loudly

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const WATCHERS: usize = 1000;
const WATCH_WRITES: usize = 100;
const LIST_PODS: usize = 10_000;

#[path = "common.rs"]
mod common;
use common::{seconds, selected, spawn_server};

struct Server {
    child: Child,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(binary: &Path) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = rudder_testing::free_port()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let child = spawn_server(binary, dir.path(), port)
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            if Instant::now() > deadline {
                bail!("rudder server did not write its kubeconfig within 30s");
            }
            #[allow(clippy::disallowed_methods)] // before the runtime starts work
            std::thread::sleep(Duration::from_millis(20));
        }
        let tls = Arc::new(client_tls(&std::fs::read_to_string(&kubeconfig)?)?);
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls,
            _dir: dir,
        })
    }

    fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id()).unwrap_or(f64::NAN)
    }

    async fn client(&self) -> Result<Client> {
        Client::connect(self.addr, self.tls.clone()).await
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn kubeconfig_field(kubeconfig: &str, field: &str) -> Result<Vec<u8>> {
    let line = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}: ")))
        .with_context(|| format!("kubeconfig has no {field}"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(line.trim())?)
}

fn client_tls(kubeconfig: &str) -> Result<rustls::ClientConfig> {
    let ca = kubeconfig_field(kubeconfig, "certificate-authority-data")?;
    let cert = kubeconfig_field(kubeconfig, "client-certificate-data")?;
    let key = kubeconfig_field(kubeconfig, "client-key-data")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c?)?;
    }
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut cert.as_slice()).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut key.as_slice())?.context("no client key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?)
}

/// One HTTPS connection, requests in sequence (like one client-go client
/// on HTTP/1.1).
struct Client {
    send: SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(ServerName::try_from("127.0.0.1")?, tcp)
            .await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Self { send })
    }

    async fn start(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let body = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(body))?;
        self.send.ready().await?;
        Ok(self.send.send_request(req).await?)
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let resp = self.start(method, path, body).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "api"}},
           "data": {"key": "value", "other": "x".repeat(200)}})
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "3600"],
                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

#[derive(Default)]
struct Samples {
    create: Vec<Duration>,
    get: Vec<Duration>,
    update: Vec<Duration>,
    list: Vec<Duration>,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.create.extend(other.create);
        self.get.extend(other.get);
        self.update.extend(other.update);
        self.list.extend(other.list);
    }
}

fn percentile_ms(v: &mut [Duration], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1000.0
}

/// One client: in its own namespace, create / get / update / list in a loop.
async fn crud_client(
    mut c: Client,
    ns: String,
    kind: &'static str,
    deadline: Instant,
) -> Result<Samples> {
    let plural = if kind == "ConfigMap" {
        "configmaps"
    } else {
        "pods"
    };
    let base = format!("/api/v1/namespaces/{ns}/{plural}");
    let mut s = Samples::default();
    let mut i = 0;
    while Instant::now() < deadline {
        let name = format!("o{i}");
        i += 1;
        let obj = if kind == "ConfigMap" {
            configmap(&name)
        } else {
            pod(&name)
        };
        let t = Instant::now();
        c.call("POST", &base, Some(&obj)).await?;
        s.create.push(t.elapsed());
        let t = Instant::now();
        let mut got = c.call("GET", &format!("{base}/{name}"), None).await?;
        s.get.push(t.elapsed());
        // Unconditional (no resourceVersion): the server's scheduler may
        // write an unschedulable pod's status at any moment.
        got["metadata"]["labels"]["updated"] = "yes".into();
        if let Some(meta) = got["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        let t = Instant::now();
        c.call("PUT", &format!("{base}/{name}"), Some(&got)).await?;
        s.update.push(t.elapsed());
        let t = Instant::now();
        c.call("GET", &format!("{base}?limit=500"), None).await?;
        s.list.push(t.elapsed());
    }
    Ok(s)
}

async fn crud_row(
    server: &Server,
    clients: usize,
    kind: &'static str,
    peak: &AtomicU64,
) -> Result<()> {
    let mut admin = server.client().await?;
    let mut tasks = tokio::task::JoinSet::new();
    let deadline = Instant::now() + seconds();
    let start = Instant::now();
    for n in 0..clients {
        let ns = format!("bench-{}-{clients}-{n}", kind.to_lowercase());
        admin
            .call(
                "POST",
                "/api/v1/namespaces",
                Some(&json!({"metadata": {"name": ns}})),
            )
            .await?;
        let c = server.client().await?;
        tasks.spawn(crud_client(c, ns, kind, deadline));
    }
    let mut all = Samples::default();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    track_peak(server, peak);
    let row = format!("{}_{clients}_clients", kind.to_lowercase());
    for (op, v) in [
        ("create", &mut all.create),
        ("get", &mut all.get),
        ("update", &mut all.update),
        ("list", &mut all.list),
    ] {
        println!("{row}.{op}.ops_per_s: {:.0}", v.len() as f64 / elapsed);
        println!("{row}.{op}.p50_ms: {:.2}", percentile_ms(v, 50));
        println!("{row}.{op}.p99_ms: {:.2}", percentile_ms(v, 99));
    }
    Ok(())
}

fn track_peak(server: &Server, peak: &AtomicU64) {
    let now = (server.rss_mib() * 1024.0) as u64;
    peak.fetch_max(now, Ordering::Relaxed);
}

async fn list_row(server: &Server, peak: &AtomicU64) -> Result<()> {
    let mut admin = server.client().await?;
    admin
        .call(
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"metadata": {"name": "big"}})),
        )
        .await?;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let mut c = server.client().await?;
        tasks.spawn(async move {
            for i in (w..LIST_PODS).step_by(32) {
                c.call(
                    "POST",
                    "/api/v1/namespaces/big/pods",
                    Some(&pod(&format!("p{i:05}"))),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let mut lat = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let resp = admin
            .start("GET", "/api/v1/namespaces/big/pods", None)
            .await?;
        let body = resp.into_body().collect().await?.to_bytes();
        lat.push(t.elapsed());
        bytes = body.len();
        track_peak(server, peak);
    }
    let list: Value = serde_json::from_slice(
        &admin
            .start("GET", "/api/v1/namespaces/big/pods?limit=1", None)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes(),
    )?;
    assert!(list["metadata"]["continue"].is_string());
    println!(
        "list_10k_pods.response_mib: {:.1}",
        bytes as f64 / (1 << 20) as f64
    );
    println!("list_10k_pods.p50_ms: {:.1}", percentile_ms(&mut lat, 50));
    println!("list_10k_pods.p99_ms: {:.1}", percentile_ms(&mut lat, 99));
    Ok(())
}

async fn watch_row(server: &Server, peak: &AtomicU64) -> Result<()> {
    let mut admin = server.client().await?;
    admin
        .call(
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"metadata": {"name": "watched"}})),
        )
        .await?;
    let rv = admin
        .call("GET", "/api/v1/namespaces/watched/configmaps", None)
        .await?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/namespaces/watched/configmaps?watch=1&resourceVersion={rv}");
    let mut watchers = tokio::task::JoinSet::new();
    let ready = Arc::new(tokio::sync::Barrier::new(WATCHERS + 1));
    for _ in 0..WATCHERS {
        let mut c = server.client().await?;
        let path = path.clone();
        let ready = ready.clone();
        watchers.spawn(async move {
            let resp = c.start("GET", &path, None).await?;
            ready.wait().await;
            let mut body = resp.into_body();
            let mut got = Vec::with_capacity(WATCH_WRITES);
            let mut buf = Vec::new();
            while got.len() < WATCH_WRITES {
                let frame = body.frame().await.context("watch ended")??;
                let at = Instant::now();
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=nl).collect();
                        let event: Value = serde_json::from_slice(&line)?;
                        let name = event["object"]["metadata"]["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        // The root CA publisher writes its ConfigMap into
                        // the new namespace too: only the row's own count.
                        if name.starts_with('w') {
                            got.push((name, at));
                        }
                    }
                }
            }
            anyhow::Ok(got)
        });
    }
    ready.wait().await;
    let idle_watchers_rss = server.rss_mib();
    let mut sent = Vec::new();
    for i in 0..WATCH_WRITES {
        let t = Instant::now();
        admin
            .call(
                "POST",
                "/api/v1/namespaces/watched/configmaps",
                Some(&configmap(&format!("w{i:04}"))),
            )
            .await?;
        sent.push((t, Instant::now()));
        // Spread the writes out: this row measures delivery, not queueing.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut from_ack, mut from_start) = (Vec::new(), Vec::new());
    while let Some(r) = watchers.join_next().await {
        for (name, at) in r?? {
            let i: usize = name.trim_start_matches('w').parse()?;
            from_ack.push(at.saturating_duration_since(sent[i].1));
            from_start.push(at.saturating_duration_since(sent[i].0));
        }
    }
    track_peak(server, peak);
    println!("watch_1000_watchers.events_delivered: {}", from_ack.len());
    println!("watch_1000_watchers.rss_with_watchers_mib: {idle_watchers_rss:.1}");
    println!(
        "watch_1000_watchers.from_ack.p50_ms: {:.2}",
        percentile_ms(&mut from_ack, 50)
    );
    println!(
        "watch_1000_watchers.from_ack.p99_ms: {:.2}",
        percentile_ms(&mut from_ack, 99)
    );
    println!(
        "watch_1000_watchers.from_write_start.p50_ms: {:.2}",
        percentile_ms(&mut from_start, 50)
    );
    println!(
        "watch_1000_watchers.from_write_start.p99_ms: {:.2}",
        percentile_ms(&mut from_start, 99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let binary: PathBuf = std::env::var_os("RUDDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/rudder"));
    let server = Server::start(&binary)?;
    println!(
        "# rudder API benchmark: rudder server --disable-agent (embedded store, fsync on), HTTPS, client certificates"
    );
    println!(
        "# {:.1} s per timed row; each client is one HTTP/1.1 connection",
        seconds().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("server.rss_idle_mib: {:.1}", server.rss_mib());
    let peak = AtomicU64::new(0);
    for kind in ["ConfigMap", "Pod"] {
        for clients in [1, 16, 64] {
            if selected(&format!("{}_{clients}_clients", kind.to_lowercase())) {
                crud_row(&server, clients, kind, &peak).await?;
            }
        }
    }
    if selected("list_10k_pods") {
        list_row(&server, &peak).await?;
    }
    if selected("watch_1000_watchers") {
        watch_row(&server, &peak).await?;
    }
    println!(
        "server.rss_peak_sampled_mib: {:.1}",
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
    Ok(())
}
