//! HTTPS plumbing shared by the API server and the node agent.
//!
//! - [`server_config`]: a rustls server configuration from PEM that
//!   verifies client certificates against the cluster CA;
//!   [`client_config_unverified`] for reaching agents; [`fetch_ca`] for
//!   joining with a token.
//! - [`forward`]: sends a request on to another server over a connection
//!   the caller opened and returns its response; when both sides agree to
//!   an upgrade (exec, attach and port-forward streams), the two upgraded
//!   connections are spliced. The API server forwards `pods/log`,
//!   `pods/exec`, … to the node agent this way, and the agent forwards
//!   streams to its runtime's streaming server.
//! - [`streams`]: WebSocket streams the runtime does not speak (exec over
//!   `v5.channel.k8s.io`, port-forward tunnelled in WebSocket), translated
//!   to SPDY/3.1 ([`spdy`], [`websocket`]).

pub mod spdy;
pub mod streams;
pub mod websocket;

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("forwarding to {addr}: {source}")]
    Forward { addr: String, source: hyper::Error },
    #[error("building the forwarded request: {0}")]
    Request(#[from] http::Error),
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey").finish_non_exhaustive()
    }
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(e.to_string()))
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| Error::Tls(e.to_string()))?
        .ok_or_else(|| Error::Tls("the private key is missing".into()))
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(|e| Error::Tls(e.to_string()))?;
    }
    Ok(roots)
}

/// A server configuration serving `serving`. Client certificates must
/// chain to `ca_pem`; with `optional_client_auth` clients may also come
/// without one (and authenticate otherwise). HTTP/1.1 only: upgrades
/// (exec, port-forward) need it.
pub fn server_config(
    ca_pem: &str,
    serving: &CertKey,
    optional_client_auth: bool,
) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider.clone(),
    );
    let builder = if optional_client_auth {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder.build().map_err(|e| Error::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&serving.cert_pem)?, key(&serving.key_pem)?)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that presents `client` (if any) and does not
/// check the server's certificate chain, only its handshake signatures:
/// how kube-apiserver reaches kubelets when no kubelet CA is set
/// (agents that joined serve a self-signed certificate), and how a
/// joining agent first fetches the CA it then checks by hash.
pub fn client_config_unverified(client: Option<&CertKey>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    match client {
        Some(c) => builder
            .with_client_auth_cert(certs(&c.cert_pem)?, key(&c.key_pem)?)
            .map_err(|e| Error::Tls(e.to_string())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any server certificate; still checks that the server holds
/// its key.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens a TLS connection to `host:port`, checking the server's
/// certificate names `host`.
pub async fn connect_tls(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let addr = format!("{host}:{port}");
    let connect_err = |source| Error::Connect {
        addr: addr.clone(),
        source,
    };
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Error::Tls(format!("server name {host:?}: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(connect_err)
}

/// The certificates of a PEM bundle, DER.
pub fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, Error> {
    Ok(certs(pem)?.into_iter().map(|c| c.to_vec()).collect())
}

/// Fetches the cluster CA from a server's `/cacerts` without trusting
/// anyone yet, and accepts it only if its SHA-256 is `sha256_hex` (the
/// hash a join token carries).
pub async fn fetch_ca(host: &str, port: u16, sha256_hex: &str) -> Result<String, Error> {
    let config = Arc::new(client_config_unverified(None)?);
    let io = connect_tls(config, host, port).await?;
    let addr = format!("{host}:{port}");
    let forward_err = |source| Error::Forward {
        addr: addr.clone(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(forward_err)?;
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/cacerts")
        .header(header::HOST, &addr)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await.map_err(forward_err)?;
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(forward_err)?
        .to_bytes();
    let pem = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(Error::Tls(format!("{addr}/cacerts answered {status}")));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if hex != sha256_hex {
        return Err(Error::Tls(format!(
            "the CA that {addr} serves does not match the token (sha256 {hex}): wrong server or wrong token"
        )));
    }
    Ok(pem)
}

/// Whether the request asks to upgrade its connection.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && req.headers().contains_key(header::UPGRADE)
}

/// Sends `req` to `path_and_query` on the server at the other end of
/// `io` (named `authority` in the Host header) and returns its response.
/// If the request is an upgrade and the server switches protocols, the
/// client's connection and the server's are spliced until either closes.
pub async fn forward<I>(
    mut req: Request<Incoming>,
    io: I,
    authority: &str,
    path_and_query: &str,
) -> Result<Response<Incoming>, Error>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let upgrade = is_upgrade(&req);
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = Request::builder()
        .method(parts.method)
        .uri(path_and_query)
        .body(body)?;
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::AUTHORIZATION {
            out.headers_mut().append(name, value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(authority) {
        out.headers_mut().insert(header::HOST, host);
    }
    let forward_err = |source| Error::Forward {
        addr: authority.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(forward_err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("forwarded connection: {e}");
        }
    });
    let mut resp = sender.send_request(out).await.map_err(forward_err)?;
    if let Some(client_side) = client_side
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let server_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_side, server_side) {
                Ok((a, b)) => {
                    let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                        tracing::debug!("spliced stream ended: {e}");
                    }
                }
                Err(e) => tracing::debug!("upgrading a forwarded stream: {e}"),
            }
        });
    }
    Ok(resp)
}

/// A query string as decoded pairs, in order (`+` is a space).
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; malformed escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_survive_decoding_and_encoding() {
        let pairs = query_pairs("command=sh&command=echo%20a%2Bb+c&x&bad=%zz&end=%4&u=%C3%A9");
        let expected: Vec<(String, String)> = [
            ("command", "sh"),
            ("command", "echo a+b c"),
            ("x", ""),
            ("bad", "%zz"),
            ("end", "%4"),
            ("u", "é"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
        assert_eq!(percent_encode("echo a+b/c"), "echo%20a%2Bb%2Fc");
        assert_eq!(percent_decode(&percent_encode("é x")), "é x");
    }
}
