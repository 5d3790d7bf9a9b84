//! The agent's HTTPS server (the kubelet's port, 10250 by default), for
//! the API server: container logs (read from the CRI log files), and
//! exec, attach and port-forward, which CRI hands to containerd's
//! streaming server: the request is forwarded there and the upgraded
//! stream spliced, so SPDY/3.1 and WebSocket (`v4.channel.k8s.io` and
//! older) are spoken by the same code the kubelet relies on. Clients
//! must present a certificate from the cluster CA.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rudder_cri::{Cri, api};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};

use crate::pods::UID_LABEL;

type Body = BoxBody<Bytes, std::io::Error>;

/// How often a followed log is checked for more.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// TLS material for the agent's server.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The cluster CA, PEM: client certificates must chain to it.
    pub ca_pem: String,
    pub serving: rudder_http::CertKey,
}

/// Binds `addr` and serves until the task is aborted.
pub(crate) async fn serve(
    addr: SocketAddr,
    tls: &Tls,
    cri: Cri,
    node: String,
) -> Result<tokio::task::JoinHandle<()>, crate::Error> {
    let node: Arc<str> = node.into();
    let config = rudder_http::server_config(&tls.ca_pem, &tls.serving, false)
        .map_err(|e| crate::Error::Serve(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Serve(format!("binding {addr}: {e}")))?;
    tracing::info!(%addr, "node agent serving logs, exec, attach and port-forward");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let cri = cri.clone();
            let node = node.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    tracing::debug!(%peer, "TLS handshake failed");
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let (cri, node) = (cri.clone(), node.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(cri, &node, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "agent connection: {e}");
                }
            });
        }
    }))
}

fn full(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

/// A Kubernetes Status error, which the API server passes on to clients.
fn status_error(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    let mut resp = full(code, body.to_string());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(cri: Cri, node: &str, req: Request<Incoming>) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let query = rudder_http::query_pairs(req.uri().query().unwrap_or(""));
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["healthz"]) => full(StatusCode::OK, "ok".into()),
        (&Method::GET, ["stats", "summary"]) => summary(cri, node).await,
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs(cri, ns, pod, container, &query).await
        }
        (&Method::GET | &Method::POST, [kind @ ("exec" | "attach"), ns, pod, container]) => {
            let kind = kind.to_string();
            stream(cri, req, &kind, ns, pod, Some(container), &query).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            stream(cri, req, "portforward", ns, pod, None, &query).await
        }
        _ => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no handler for {} {}", req.method(), req.uri().path()),
        ),
    }
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    matches!(param(query, name), Some("true" | "1"))
}

/// The pod's sandbox: the ready one, else the newest.
async fn sandbox(cri: &mut Cri, ns: &str, pod: &str) -> Option<api::PodSandbox> {
    let filter = api::PodSandboxFilter {
        label_selector: HashMap::from([
            ("io.kubernetes.pod.namespace".to_string(), ns.to_string()),
            ("io.kubernetes.pod.name".to_string(), pod.to_string()),
        ]),
        ..Default::default()
    };
    let mut list = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .ok()?
        .into_inner()
        .items;
    list.sort_by_key(|s| {
        (
            s.state == api::PodSandboxState::SandboxReady as i32,
            s.created_at,
        )
    });
    list.pop()
}

/// The container's instances in the pod's sandbox, newest first.
async fn instances(
    cri: &mut Cri,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<api::ContainerStatus>, Response<Body>> {
    let not_found = || {
        status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container:?} in pod {pod:?} is not available on this node"),
        )
    };
    let Some(sandbox) = sandbox(cri, ns, pod).await else {
        return Err(not_found());
    };
    let filter = api::ContainerFilter {
        pod_sandbox_id: sandbox.id.clone(),
        label_selector: HashMap::from([(
            "io.kubernetes.container.name".to_string(),
            container.to_string(),
        )]),
        ..Default::default()
    };
    let listed = cri
        .runtime
        .list_containers(api::ListContainersRequest {
            filter: Some(filter),
        })
        .await
        .map(|r| r.into_inner().containers)
        .unwrap_or_default();
    let mut out = Vec::new();
    for c in listed {
        if c.labels.get(UID_LABEL) != sandbox.labels.get(UID_LABEL) {
            continue;
        }
        if let Ok(r) = cri
            .runtime
            .container_status(api::ContainerStatusRequest {
                container_id: c.id,
                verbose: false,
            })
            .await
            && let Some(s) = r.into_inner().status
        {
            out.push(s);
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.metadata.as_ref().map_or(0, |m| m.attempt)));
    if out.is_empty() {
        return Err(status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
            ),
        ));
    }
    Ok(out)
}

/// Exec, attach or port-forward: asks CRI for a streaming URL and
/// forwards the request there.
async fn stream(
    mut cri: Cri,
    req: Request<Incoming>,
    kind: &str,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    query: &[(String, String)],
) -> Response<Body> {
    let url = match container {
        Some(container) => {
            let list = match instances(&mut cri, ns, pod, container).await {
                Ok(list) => list,
                Err(resp) => return resp,
            };
            let latest = &list[0];
            if latest.state != api::ContainerState::ContainerRunning as i32 {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("container {container} is not running"),
                );
            }
            let (stdin, stdout, stderr, tty) = (
                flag(query, "stdin") || flag(query, "input"),
                flag(query, "stdout") || flag(query, "output"),
                flag(query, "stderr") || flag(query, "error"),
                flag(query, "tty"),
            );
            let result = if kind == "exec" {
                let cmd: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k == "command")
                    .map(|(_, v)| v.clone())
                    .collect();
                if cmd.is_empty() {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "you must specify at least 1 command".into(),
                    );
                }
                cri.runtime
                    .exec(api::ExecRequest {
                        container_id: latest.id.clone(),
                        cmd,
                        tty,
                        stdin,
                        stdout,
                        stderr: stderr && !tty,
                    })
                    .await
                    .map(|r| r.into_inner().url)
            } else {
                cri.runtime
                    .attach(api::AttachRequest {
                        container_id: latest.id.clone(),
                        stdin,
                        tty,
                        stdout,
                        stderr: stderr && !tty,
                    })
                    .await
                    .map(|r| r.into_inner().url)
            };
            match result {
                Ok(url) => url,
                Err(e) => {
                    return status_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        e.message().to_string(),
                    );
                }
            }
        }
        None => {
            let Some(sandbox) = sandbox(&mut cri, ns, pod).await else {
                return status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("pod {pod:?} is not running on this node"),
                );
            };
            let ports: Vec<i32> = query
                .iter()
                .filter(|(k, _)| k == "port" || k == "ports")
                .flat_map(|(_, v)| {
                    v.split(',')
                        .filter_map(|p| p.trim().parse().ok())
                        .collect::<Vec<_>>()
                })
                .collect();
            match cri
                .runtime
                .port_forward(api::PortForwardRequest {
                    pod_sandbox_id: sandbox.id,
                    port: ports,
                })
                .await
            {
                Ok(r) => r.into_inner().url,
                Err(e) => {
                    return status_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        e.message().to_string(),
                    );
                }
            }
        }
    };
    // http://127.0.0.1:PORT/exec/TOKEN
    let Some(rest) = url.strip_prefix("http://") else {
        return status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("unexpected streaming URL from the runtime: {url}"),
        );
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // Query parameters the streaming server reads (port-forward ports for
    // WebSocket clients) go along.
    let path = match req.uri().query() {
        Some(q) if kind == "portforward" => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    let tcp = match tokio::net::TcpStream::connect(authority).await {
        Ok(tcp) => tcp,
        Err(e) => {
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("connecting to the runtime's streaming server: {e}"),
            );
        }
    };
    match rudder_http::forward(req, tcp, authority, &path).await {
        Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(e) => status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    }
}

/// One line of a CRI log file: `<RFC3339Nano> <stream> <P|F> <text>`.
struct LogLine<'a> {
    time: &'a str,
    partial: bool,
    text: &'a str,
}

fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(LogLine {
        time,
        partial: tag == "P",
        text,
    })
}

/// What `kubectl logs` asked for.
struct LogOptions {
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<i64>,
    limit: Option<usize>,
}

/// Whole log entries (partial lines joined), as the client sees them.
#[derive(Default)]
struct Assembler {
    pending: String,
    first_time: Option<String>,
}

impl Assembler {
    /// Feeds one file line; returns a finished entry (time, text).
    fn push(&mut self, line: &str) -> Option<(String, String)> {
        let l = parse_line(line.trim_end_matches('\n'))?;
        if self.first_time.is_none() {
            self.first_time = Some(l.time.to_string());
        }
        self.pending.push_str(l.text);
        if l.partial {
            return None;
        }
        let text = std::mem::take(&mut self.pending);
        let time = self.first_time.take().unwrap_or_default();
        Some((time, text))
    }
}

fn render(time: &str, text: &str, opts: &LogOptions) -> String {
    if opts.timestamps {
        format!("{time} {text}\n")
    } else {
        format!("{text}\n")
    }
}

fn after_since(time: &str, opts: &LogOptions) -> bool {
    match opts.since {
        None => true,
        Some(since) => {
            let secs = time.get(..19).map(|t| format!("{t}Z"));
            secs.and_then(|t| rudder_api::time::parse_rfc3339(&t))
                .is_none_or(|t| t >= since)
        }
    }
}

async fn logs(
    mut cri: Cri,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let list = match instances(&mut cri, ns, pod, container).await {
        Ok(list) => list,
        Err(resp) => return resp,
    };
    let previous = flag(query, "previous");
    let instance = if previous {
        match list.get(1) {
            Some(s) => s.clone(),
            None => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
        }
    } else {
        list[0].clone()
    };
    let now = rudder_api::time::now();
    let opts = LogOptions {
        follow: flag(query, "follow") && !previous,
        timestamps: flag(query, "timestamps"),
        tail: param(query, "tailLines").and_then(|v| v.parse().ok()),
        since: param(query, "sinceSeconds")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|s| now - s)
            .or_else(|| param(query, "sinceTime").and_then(rudder_api::time::parse_rfc3339)),
        limit: param(query, "limitBytes").and_then(|v| v.parse().ok()),
    };
    let path = instance.log_path.clone();
    // Rotated files first (oldest first), then the current one.
    let mut content = String::new();
    for rotated in crate::pods::rotated_logs(&path) {
        content.push_str(
            &tokio::fs::read_to_string(&rotated)
                .await
                .unwrap_or_default(),
        );
    }
    let current = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    // A last line without its newline is still being written.
    let consumed = current.len()
        - current
            .rsplit_once('\n')
            .map_or(current.len(), |(_, rest)| rest.len());
    content.push_str(&current);
    let mut assembler = Assembler::default();
    let mut entries: Vec<String> = content
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| assembler.push(l))
        .filter(|(t, _)| after_since(t, &opts))
        .map(|(t, text)| render(&t, &text, &opts))
        .collect();
    if let Some(n) = opts.tail
        && entries.len() > n
    {
        entries.drain(..entries.len() - n);
    }
    let mut head: String = entries.concat();
    let mut budget = opts.limit;
    if let Some(limit) = budget {
        if head.len() >= limit {
            head.truncate(floor_char_boundary(&head, limit));
            return text_response(full(StatusCode::OK, head));
        }
        budget = Some(limit - head.len());
    }
    if !opts.follow {
        return text_response(full(StatusCode::OK, head));
    }
    // Follow: the file from where it was read, until the container stops.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let id = instance.id.clone();
    tokio::spawn(async move {
        if !head.is_empty() && tx.send(Bytes::from(head)).await.is_err() {
            return;
        }
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return;
        };
        if file
            .seek(std::io::SeekFrom::Start(consumed as u64))
            .await
            .is_err()
        {
            return;
        }
        let mut inode = file
            .metadata()
            .await
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok();
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = String::new();
        let mut budget = budget;
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if let Some((t, text)) = assembler.push(&line) {
                        let mut out = render(&t, &text, &opts);
                        if let Some(b) = budget.as_mut() {
                            if out.len() >= *b {
                                out.truncate(floor_char_boundary(&out, *b));
                                let _ = tx.send(Bytes::from(out)).await;
                                return;
                            }
                            *b -= out.len();
                        }
                        if tx.send(Bytes::from(out)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(n) => {
                    // At the end (or mid-line): unread the partial line
                    // and wait for more, unless the container stopped.
                    if n > 0 {
                        let back = -(n as i64);
                        if reader.seek(std::io::SeekFrom::Current(back)).await.is_err() {
                            return;
                        }
                    }
                    // Rotated: go on in the new file.
                    let now = tokio::fs::metadata(&path)
                        .await
                        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                        .ok();
                    if now.is_some()
                        && now != inode
                        && let Ok(file) = tokio::fs::File::open(&path).await
                    {
                        inode = now;
                        reader = tokio::io::BufReader::new(file);
                        continue;
                    }
                    if tx.is_closed() || !running(&mut cri, &id).await {
                        return;
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                Err(_) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// The kubelet's Summary API (`stats/v1alpha1`), as metrics-server reads
/// it: the node's CPU and memory from /proc, each pod's containers from
/// CRI container stats.
async fn summary(mut cri: Cri, node_name: &str) -> Response<Body> {
    let stats = match cri
        .runtime
        .list_container_stats(api::ListContainerStatsRequest { filter: None })
        .await
    {
        Ok(r) => r.into_inner().stats,
        Err(e) => {
            return status_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("container stats: {}", e.message()),
            );
        }
    };
    let now = rudder_api::time::rfc3339_now();
    let value = |v: &Option<api::UInt64Value>| v.as_ref().map(|v| v.value);
    let mut pods: std::collections::BTreeMap<(String, String, String), Vec<serde_json::Value>> =
        Default::default();
    for s in &stats {
        let Some(attrs) = &s.attributes else { continue };
        let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
        let key = (
            label("io.kubernetes.pod.namespace"),
            label("io.kubernetes.pod.name"),
            label(UID_LABEL),
        );
        let cpu = s.cpu.as_ref();
        let memory = s.memory.as_ref();
        pods.entry(key).or_default().push(json!({
            "name": attrs.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
            "cpu": {
                "time": now,
                "usageNanoCores": cpu.and_then(|c| value(&c.usage_nano_cores)),
                "usageCoreNanoSeconds": cpu.and_then(|c| value(&c.usage_core_nano_seconds)),
            },
            "memory": {
                "time": now,
                "workingSetBytes": memory.and_then(|m| value(&m.working_set_bytes)),
                "usageBytes": memory.and_then(|m| value(&m.usage_bytes)),
                "rssBytes": memory.and_then(|m| value(&m.rss_bytes)),
            },
        }));
    }
    let sum = |containers: &[serde_json::Value], section: &str, field: &str| -> u64 {
        containers
            .iter()
            .filter_map(|c| c[section][field].as_u64())
            .sum()
    };
    let pods: Vec<serde_json::Value> = pods
        .into_iter()
        .filter(|((_, name, _), _)| !name.is_empty())
        .map(|((namespace, name, uid), containers)| {
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "cpu": {"time": now,
                    "usageNanoCores": sum(&containers, "cpu", "usageNanoCores"),
                    "usageCoreNanoSeconds": sum(&containers, "cpu", "usageCoreNanoSeconds")},
                "memory": {"time": now,
                    "workingSetBytes": sum(&containers, "memory", "workingSetBytes"),
                    "usageBytes": sum(&containers, "memory", "usageBytes")},
                "containers": containers,
            })
        })
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    let (total, available) = (kib("MemTotal:"), kib("MemAvailable:"));
    let cpu_ns = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let fields: Vec<u64> = s
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: all but idle
        // and iowait, in USER_HZ (100 per second).
        let busy: u64 = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
            .map(|(_, v)| v)
            .sum();
        Some(busy * 10_000_000)
    });
    let body = json!({
        "node": {
            "nodeName": node_name,
            "cpu": {"time": now, "usageCoreNanoSeconds": cpu_ns},
            "memory": {"time": now, "availableBytes": available,
                "usageBytes": total.zip(available).map(|(t, a)| t - a),
                "workingSetBytes": total.zip(available).map(|(t, a)| t - a)},
        },
        "pods": pods,
    });
    let mut resp = full(StatusCode::OK, body.to_string());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text_response(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

async fn running(cri: &mut Cri, id: &str) -> bool {
    cri.runtime
        .container_status(api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().status)
        .is_some_and(|s| s.state == api::ContainerState::ContainerRunning as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_are_joined() {
        let mut a = Assembler::default();
        assert!(a.push("2026-01-01T00:00:00.1Z stdout P hel\n").is_none());
        let (t, text) = a
            .push("2026-01-01T00:00:00.2Z stdout F lo\n")
            .unwrap_or_default();
        assert_eq!(
            (t.as_str(), text.as_str()),
            ("2026-01-01T00:00:00.1Z", "hello")
        );
        let (_, empty) = a
            .push("2026-01-01T00:00:01Z stdout F \n")
            .unwrap_or_default();
        assert_eq!(empty, "");
    }
}
