//! Probes and lifecycle hooks: exec (CRI ExecSync), httpGet, tcpSocket
//! and grpc handlers, and the kubelet's bookkeeping of a probe's timing
//! fields (initialDelaySeconds, periodSeconds, timeoutSeconds,
//! successThreshold, failureThreshold).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rudder_cri::{Cri, api};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What probes call themselves, as the kubelet's do.
const USER_AGENT: &str = "kube-probe/1.33";

/// How much of a probe's output goes into an event.
const OUTPUT_MAX: usize = 1024;

/// One probe of one container instance.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tracker {
    last_run: Option<Instant>,
    successes: i32,
    failures: i32,
    /// The probe's verdict once a threshold was reached.
    pub(crate) healthy: Option<bool>,
}

/// What a probe found; the message explains a failure.
pub(crate) type Outcome = Result<(), String>;

/// Where a probe runs: the container, and the pod's IP.
pub(crate) struct Target<'a> {
    pub(crate) cri: Cri,
    pub(crate) container_id: &'a str,
    pub(crate) container: &'a Container,
    pub(crate) pod_ip: &'a str,
}

impl Tracker {
    /// Whether `probe` is due, given when the container started.
    pub(crate) fn due(&self, probe: &Probe, started: Instant) -> bool {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
        if started.elapsed() < delay {
            return false;
        }
        self.last_run.is_none_or(|t| t.elapsed() >= period)
    }

    /// Records an outcome; returns the new verdict when it changed.
    pub(crate) fn record(&mut self, probe: &Probe, ok: bool) -> Option<bool> {
        self.last_run = Some(Instant::now());
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let verdict = if ok && self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
            Some(true)
        } else if !ok && self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
            Some(false)
        } else {
            None
        };
        match verdict {
            Some(v) if self.healthy != Some(v) => {
                self.healthy = Some(v);
                Some(v)
            }
            _ => None,
        }
    }
}

/// Runs a probe once, within its timeoutSeconds.
pub(crate) async fn run(probe: &Probe, t: Target<'_>) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let work = async {
        if let Some(exec) = &probe.exec {
            exec_action(exec, &t, timeout).await
        } else if let Some(http) = &probe.http_get {
            http_get(http, &t).await
        } else if let Some(tcp) = &probe.tcp_socket {
            tcp_socket(tcp, &t).await
        } else if let Some(grpc) = &probe.grpc {
            let port =
                u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
            let service = grpc.service.as_deref().unwrap_or_default();
            rudder_cri::health::check(t.pod_ip, port, service, timeout, USER_AGENT).await
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(timeout + Duration::from_millis(100), work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// Runs a lifecycle hook (postStart, preStop) to its end.
pub(crate) async fn hook(handler: &LifecycleHandler, t: Target<'_>, timeout: Duration) -> Outcome {
    let work = async {
        if let Some(exec) = &handler.exec {
            exec_action(exec, &t, timeout).await
        } else if let Some(http) = &handler.http_get {
            http_get(http, &t).await
        } else if let Some(tcp) = &handler.tcp_socket {
            tcp_socket(tcp, &t).await
        } else if let Some(sleep) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            Ok(())
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("hook timed out after {}s", timeout.as_secs())),
    }
}

async fn exec_action(exec: &ExecAction, t: &Target<'_>, timeout: Duration) -> Outcome {
    let cmd = exec.command.clone().unwrap_or_default();
    let mut cri = t.cri.clone();
    let r = cri
        .runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: t.container_id.to_string(),
            cmd: cmd.clone(),
            timeout: timeout.as_secs() as i64,
        })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    if r.exit_code == 0 {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&r.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&r.stderr));
    output.truncate(floor(&output, OUTPUT_MAX));
    if output.trim().is_empty() {
        Err(format!(
            "command {:?} exited with {}",
            cmd.join(" "),
            r.exit_code
        ))
    } else {
        Err(output)
    }
}

/// A port number, or a named port of the container.
fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("port {name:?} is not a port of container {:?}", c.name)),
    }
}

async fn connect(host: &str, port: i32) -> Result<tokio::net::TcpStream, String> {
    tokio::net::TcpStream::connect((host, port as u16))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {e}"))
}

async fn tcp_socket(tcp: &TCPSocketAction, t: &Target<'_>) -> Outcome {
    let host = tcp.host.clone().unwrap_or_else(|| t.pod_ip.to_string());
    let port = port(t.container, &tcp.port)?;
    connect(&host, port.into()).await.map(drop)
}

async fn http_get(http: &HTTPGetAction, t: &Target<'_>) -> Outcome {
    let host = http.host.clone().unwrap_or_else(|| t.pod_ip.to_string());
    let port = port(t.container, &http.port)?;
    let path = http.path.clone().unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for h in http.http_headers.iter().flatten() {
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("\r\n");
    let head = if http.scheme.as_deref() == Some("HTTPS") {
        // As the kubelet, without checking the certificate.
        let config = rudder_http::client_config_unverified(None).map_err(|e| e.to_string())?;
        let stream = rudder_http::connect_tls(std::sync::Arc::new(config), &host, port)
            .await
            .map_err(|e| e.to_string())?;
        exchange(stream, &request).await?
    } else {
        exchange(connect(&host, port.into()).await?, &request).await?
    };
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response: {:?}", head.lines().next()))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Sends `request` and returns the start of the response.
async fn exchange<S>(mut stream: S, request: &str) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 256];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&head[..n]).into_owned())
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_the_verdict() {
        let probe = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(1),
            ..Default::default()
        };
        let mut t = Tracker::default();
        assert_eq!(t.record(&probe, true), Some(true));
        assert_eq!(t.record(&probe, false), None, "one failure is not enough");
        assert_eq!(t.record(&probe, false), Some(false));
        assert_eq!(t.record(&probe, false), None, "no change");
        assert_eq!(t.record(&probe, true), Some(true));
    }
}
