//! WebSocket streams that a node's streaming server does not speak,
//! translated to the SPDY/3.1 it does, as kube-apiserver translates them:
//!
//! - exec and attach over WebSocket `v5.channel.k8s.io` (kubectl 1.30+,
//!   the Python client): each channel becomes a SPDY stream of the
//!   `v4.channel.k8s.io` protocol, and v5's CLOSE signal half-closes stdin,
//!   which WebSocket v4 cannot express (`kubectl cp` into a pod needs it);
//! - port-forward tunnelled as SPDY inside WebSocket binary messages
//!   (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+): the SPDY bytes are
//!   unwrapped and passed on.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::{Error, spdy, websocket};

const EXEC_V5: &str = "v5.channel.k8s.io";
const EXEC_V4: &str = "v4.channel.k8s.io";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const PORT_FORWARD: &str = "portforward.k8s.io";

/// A WebSocket request that needs translating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// exec or attach, `v5.channel.k8s.io`.
    ExecV5,
    /// port-forward, SPDY tunnelled in WebSocket.
    PortForwardTunnel,
}

impl Translation {
    /// What a request for `subresource` (exec, attach, portforward) needs.
    /// Other WebSocket protocols (v4 and older, the legacy port-forward
    /// channels) are spoken by the node itself.
    pub fn of(headers: &HeaderMap, subresource: &str) -> Option<Translation> {
        if !websocket::is_websocket(headers) {
            return None;
        }
        let offered = websocket::offered_protocols(headers);
        let offers = |p: &str| offered.iter().any(|o| o == p);
        match subresource {
            "exec" | "attach" if offers(EXEC_V5) => Some(Translation::ExecV5),
            "portforward" if offers(TUNNEL) => Some(Translation::PortForwardTunnel),
            _ => None,
        }
    }

    fn websocket_protocol(self) -> &'static str {
        match self {
            Translation::ExecV5 => EXEC_V5,
            Translation::PortForwardTunnel => TUNNEL,
        }
    }

    /// The SPDY protocol asked of the node.
    fn spdy_protocol(self) -> &'static str {
        match self {
            Translation::ExecV5 => EXEC_V4,
            Translation::PortForwardTunnel => PORT_FORWARD,
        }
    }

    /// The answer that completes the client's handshake.
    pub fn accept(self, headers: &HeaderMap) -> Response<()> {
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .and_then(|k| k.to_str().ok())
            .unwrap_or_default();
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&websocket::accept_key(key)) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.websocket_protocol()),
        );
        resp
    }

    /// Asks the node at the other end of `io` to switch `path_and_query`
    /// to SPDY. Its connection once it has; its answer if it refuses.
    pub async fn connect<I>(
        self,
        io: I,
        authority: &str,
        path_and_query: &str,
    ) -> Result<Result<Upgraded, Response<Incoming>>, Error>
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let req = Request::post(path_and_query)
            .header(header::HOST, authority)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", self.spdy_protocol())
            .header(header::CONTENT_LENGTH, "0")
            .body(Empty::<Bytes>::new())?;
        let forward_err = |source| Error::Forward {
            addr: authority.to_string(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(forward_err)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("SPDY connection to a node: {e}");
            }
        });
        let mut resp = sender.send_request(req).await.map_err(forward_err)?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Err(resp));
        }
        let upgraded = hyper::upgrade::on(&mut resp).await.map_err(forward_err)?;
        Ok(Ok(upgraded))
    }

    /// Carries the session between the client's WebSocket and the node's
    /// SPDY connection until either ends.
    pub async fn run(self, client: Upgraded, node: Upgraded, query: &[(String, String)]) {
        let (client, node) = (TokioIo::new(client), TokioIo::new(node));
        let result = match self {
            Translation::ExecV5 => exec_v5(client, node, ExecStreams::from_query(query)).await,
            Translation::PortForwardTunnel => tunnel(client, node).await,
        };
        if let Err(e) = result {
            tracing::debug!("translated stream ended: {e}");
        }
    }
}

/// The streams an exec or attach asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecStreams {
    pub fn from_query(query: &[(String, String)]) -> Self {
        let on = |name: &str| {
            query
                .iter()
                .any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true" | "True"))
        };
        ExecStreams {
            stdin: on("stdin"),
            stdout: on("stdout"),
            // A terminal merges stderr into stdout.
            stderr: on("stderr") && !on("tty"),
            tty: on("tty"),
        }
    }
}

// The channels of the WebSocket protocols.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// WebSocket v5 ⇄ SPDY v4: one SPDY stream per channel, opened in the
/// order client-go opens them (error, stdin, stdout, stderr, resize).
async fn exec_v5<C, N>(client: C, node: N, streams: ExecStreams) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    N: AsyncRead + AsyncWrite + Send + 'static,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (node_r, node_w) = tokio::io::split(node);
    let ws = Arc::new(Mutex::new(websocket::Writer::new(client_w)));
    let spdy = Arc::new(Mutex::new(spdy::Writer::new(node_w)));

    let wanted = [
        (true, "error", ERROR),
        (streams.stdin, "stdin", STDIN),
        (streams.stdout, "stdout", STDOUT),
        (streams.stderr, "stderr", STDERR),
        (streams.tty, "resize", RESIZE),
    ];
    // Stream id → channel.
    let mut channels: Vec<(u32, u8)> = Vec::new();
    {
        let mut spdy = spdy.lock().await;
        let mut id = 1;
        for (_, kind, channel) in wanted.iter().filter(|w| w.0) {
            spdy.open(id, &[("streamtype", kind)]).await?;
            channels.push((id, *channel));
            id += 2;
        }
    }
    let stream_of = |channel: u8| channels.iter().find(|c| c.1 == channel).map(|c| c.0);
    let (stdin, resize) = (stream_of(STDIN), stream_of(RESIZE));

    // Client → node.
    let to_node = {
        let (ws, spdy) = (Arc::clone(&ws), Arc::clone(&spdy));
        tokio::spawn(async move {
            let mut reader = websocket::Reader::new(client_r);
            while let Some(msg) = reader.next().await? {
                match msg {
                    // The Python client sends text messages for text.
                    websocket::Message::Binary(data) | websocket::Message::Text(data) => {
                        let Some((&channel, payload)) = data.split_first() else {
                            continue;
                        };
                        let target = match channel {
                            STDIN => stdin.map(|id| (id, payload, false)),
                            RESIZE => resize.map(|id| (id, payload, false)),
                            CLOSE if payload.first() == Some(&STDIN) => {
                                stdin.map(|id| (id, &[][..], true))
                            }
                            _ => None,
                        };
                        if let Some((id, payload, fin)) = target {
                            spdy.lock().await.data(id, payload, fin).await?;
                        }
                    }
                    websocket::Message::Ping(p) => ws.lock().await.pong(&p).await?,
                    websocket::Message::Close(_) => break,
                    websocket::Message::Pong => {}
                }
            }
            // The client is gone: end the session on the node.
            spdy.lock().await.shutdown().await
        })
    };

    // Node → client.
    let mut reader = spdy::Reader::new(node_r);
    let result = async {
        while let Some(frame) = reader.next().await? {
            match frame {
                spdy::Frame::Data { stream, data, .. } if !data.is_empty() => {
                    if let Some(&(_, channel)) = channels.iter().find(|c| c.0 == stream) {
                        ws.lock().await.binary(&[&[channel], &data]).await?;
                    }
                }
                spdy::Frame::Ping(id) => spdy.lock().await.pong(id).await?,
                spdy::Frame::GoAway => break,
                _ => {}
            }
        }
        Ok::<_, std::io::Error>(())
    }
    .await;
    to_node.abort();
    let closed = ws.lock().await.close(1000).await;
    result.and(closed)
}

/// SPDY tunnelled in WebSocket binary messages ⇄ SPDY.
async fn tunnel<C, N>(client: C, node: N) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    N: AsyncRead + AsyncWrite + Send + 'static,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (mut node_r, mut node_w) = tokio::io::split(node);
    let ws = Arc::new(Mutex::new(websocket::Writer::new(client_w)));
    let to_node = {
        let ws = Arc::clone(&ws);
        tokio::spawn(async move {
            let mut reader = websocket::Reader::new(client_r);
            while let Some(msg) = reader.next().await? {
                match msg {
                    websocket::Message::Binary(data) => {
                        node_w.write_all(&data).await?;
                        node_w.flush().await?;
                    }
                    websocket::Message::Ping(p) => ws.lock().await.pong(&p).await?,
                    websocket::Message::Close(_) => break,
                    websocket::Message::Text(_) | websocket::Message::Pong => {}
                }
            }
            node_w.shutdown().await
        })
    };
    let mut buf = vec![0u8; 32 * 1024];
    let result = async {
        loop {
            let n = node_r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            ws.lock().await.binary(&[&buf[..n]]).await?;
        }
    }
    .await;
    to_node.abort();
    let closed = ws.lock().await.close(1000).await;
    result.and(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_v5_exec_and_the_port_forward_tunnel_are_translated() {
        let ws = |protocols: &str| {
            headers(&[
                ("upgrade", "websocket"),
                ("sec-websocket-key", "k"),
                ("sec-websocket-protocol", protocols),
            ])
        };
        let v5 = ws("v5.channel.k8s.io, v4.channel.k8s.io");
        assert_eq!(Translation::of(&v5, "exec"), Some(Translation::ExecV5));
        assert_eq!(Translation::of(&v5, "attach"), Some(Translation::ExecV5));
        assert_eq!(Translation::of(&v5, "portforward"), None);
        assert_eq!(Translation::of(&ws("v4.channel.k8s.io"), "exec"), None);
        assert_eq!(
            Translation::of(&ws(TUNNEL), "portforward"),
            Some(Translation::PortForwardTunnel)
        );
        let spdy = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", EXEC_V5),
        ]);
        assert_eq!(Translation::of(&spdy, "exec"), None);
    }

    #[test]
    fn a_terminal_has_no_stderr_stream() {
        let q = |s: &str| crate::query_pairs(s);
        assert_eq!(
            ExecStreams::from_query(&q("stdin=true&stdout=true&stderr=true&tty=true")),
            ExecStreams {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        assert_eq!(
            ExecStreams::from_query(&q("stdout=1&stderr=1&stdin=false")),
            ExecStreams {
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
    }
}
