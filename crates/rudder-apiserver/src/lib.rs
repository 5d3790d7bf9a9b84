//! Rudder's Kubernetes API server: HTTPS with the cluster CA, client
//! certificate and bearer token authentication, discovery, `/version` and
//! health, and the generic verbs (get, list, watch, create, update,
//! delete) for every kind in `rudder_api::registry`, over the store.
//!
//! Start at [`serve`]; requests are routed in [`route`]. Per-kind
//! behaviour lives in `strategy`, generic storage in `objects`, watches in
//! `watch`.

mod auth;
mod discovery;
mod events;
mod http;
mod metrics;
mod node_proxy;
mod objects;
mod openapi;
mod pki;
mod reviews;
mod services;
mod strategy;
mod watch;
mod watchcache;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ::http::{Method, Request, Response, StatusCode, header};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rudder_api::{Resource, StatusError, registry};
use rudder_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use auth::{Tokens, User};
use http::{Body, Query};
use objects::{Objects, Target};
pub use pki::write_atomic;
pub use rudder_http::CertKey;

/// Namespaces that exist from the first start, as in Kubernetes.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct Config {
    /// The server's own state (`tls/` lives under it).
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Admin kubeconfigs to write once the API serves.
    pub kubeconfigs: Vec<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// Extra names and addresses for the serving certificate; the first
    /// non-loopback IPv4 among them is advertised in the `kubernetes`
    /// Service's endpoints.
    pub extra_sans: Vec<String>,
    /// Where Service cluster IPs come from (`--service-cidr`).
    pub service_cidr: String,
    /// How long events are kept after their last update (`--event-ttl`).
    pub event_ttl: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up TLS: {0}")]
    Tls(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--token-auth-file {0}")]
    Tokens(String),
    #[error("creating the system namespaces and the kubernetes Service: {0}")]
    Bootstrap(String),
    #[error("--service-cidr: {0}")]
    ServiceCidr(String),
}

struct State {
    objects: Objects,
    metrics: Arc<metrics::Metrics>,
    tokens: Tokens,
    server_address: String,
    /// How the API server connects to node agents (its kubelet client
    /// certificate; agents' certificates chain to the cluster CA).
    kubelet_tls: Arc<rustls::ClientConfig>,
    ca_pem: String,
}

/// A bound API server, ready to [`ApiServer::run`].
pub struct ApiServer {
    pki: pki::Pki,
    controller_kubeconfig: String,
    event_ttl: std::time::Duration,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    addr: SocketAddr,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Sets up TLS, creates the system namespaces, binds the port and writes
/// the admin kubeconfigs (atomically, once the port is bound: their
/// appearance means the API is ready).
pub async fn bind(config: Config, store: Arc<dyn Store>) -> Result<ApiServer, Error> {
    let mut tokens = match &config.token_file {
        Some(path) => Tokens::load(path).map_err(Error::Tokens)?,
        None => Tokens::default(),
    };
    let pki =
        pki::Pki::load_or_create(&config.dir.join("tls")).map_err(|e| Error::Tls(e.to_string()))?;
    let node_token = node_token(&config.dir, pki.ca_pem()).map_err(Error::Tokens)?;
    if let Some((_, secret)) = node_token.split_once("::") {
        tokens.insert(secret, "system:node-agent", &["system:nodes"]);
    }
    let mut sans: Vec<String> = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sans.push("kubernetes.default.svc.cluster.local".into());
    sans.push("10.43.0.1".into());
    sans.extend(config.extra_sans.iter().cloned());
    let serving = pki
        .serving_cert(&sans)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let tls = tls_config(&pki, &serving).map_err(Error::Tls)?;
    let ranges =
        services::ServiceRanges::parse(&config.service_cidr).map_err(Error::ServiceCidr)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let store: Arc<dyn Store> = Arc::new(metrics::MeteredStore::new(store, metrics.clone()));
    let objects = Objects::new(store, ranges);
    bootstrap(&objects)
        .await
        .map_err(|e| Error::Bootstrap(e.to_string()))?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let advertise = config
        .extra_sans
        .iter()
        .filter_map(|s| s.parse::<std::net::Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    kubernetes_service(&objects, ranges, advertise, addr.port())
        .await
        .map_err(|e| Error::Bootstrap(e.to_string()))?;
    bootstrap_cluster_config(&objects, &config.service_cidr)
        .await
        .map_err(|e| Error::Bootstrap(e.to_string()))?;
    let kubelet_client = pki
        .client_cert("kube-apiserver-kubelet-client", Some("system:masters"))
        .map_err(|e| Error::Tls(e.to_string()))?;
    // As kube-apiserver without --kubelet-certificate-authority: agents'
    // serving certificates are not checked (joined agents make their own).
    let kubelet_tls = rudder_http::client_config_unverified(Some(&kubelet_client))
        .map_err(|e| Error::Tls(e.to_string()))?;
    let state = Arc::new(State {
        metrics,
        objects,
        tokens,
        server_address: addr.to_string(),
        kubelet_tls: Arc::new(kubelet_tls),
        ca_pem: pki.ca_pem().to_string(),
    });

    let admin = pki
        .client_cert("admin", Some("system:masters"))
        .map_err(|e| Error::Tls(e.to_string()))?;
    let admin_kubeconfig = kubeconfig(
        &format!("https://127.0.0.1:{}", addr.port()),
        pki.ca_pem(),
        &admin,
    );
    for path in &config.kubeconfigs {
        write_atomic(path, admin_kubeconfig.as_bytes(), true).map_err(|source| {
            Error::Kubeconfig {
                path: path.clone(),
                source,
            }
        })?;
    }
    let controllers = pki
        .client_cert("system:kube-controller-manager", None)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let controller_kubeconfig = kubeconfig(
        &format!("https://127.0.0.1:{}", addr.port()),
        pki.ca_pem(),
        &controllers,
    );
    tracing::info!(%addr, kubeconfig = ?config.kubeconfigs, "API server listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    Ok(ApiServer {
        pki,
        controller_kubeconfig,
        event_ttl: config.event_ttl,
        listener,
        acceptor,
        state,
        addr,
    })
}

impl ApiServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) with a new client certificate for `user` in
    /// `group`, over loopback: how in-process components (the node agent)
    /// reach the API.
    pub fn kubeconfig_for(&self, user: &str, group: Option<&str>) -> Result<String, Error> {
        let cert = self
            .pki
            .client_cert(user, group)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(kubeconfig(
            &format!("https://127.0.0.1:{}", self.addr.port()),
            self.pki.ca_pem(),
            &cert,
        ))
    }

    /// The cluster CA (PEM) and a serving certificate for a node agent
    /// reachable under `names` (its addresses and host name).
    pub fn agent_serving_cert(&self, names: &[String]) -> Result<(String, CertKey), Error> {
        let cert = self
            .pki
            .serving_cert(names)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok((self.pki.ca_pem().to_string(), cert))
    }

    /// The cluster CA, PEM: what the root CA publisher puts in every
    /// namespace.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// A kubeconfig (YAML) for the in-process controllers: user
    /// `system:kube-controller-manager`, over loopback.
    pub fn controller_kubeconfig(&self) -> &str {
        &self.controller_kubeconfig
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Self {
            listener,
            acceptor,
            state,
            event_ttl,
            ..
        } = self;
        let sweeper = tokio::spawn(events::sweep_forever(
            state.objects.store().clone(),
            event_ttl,
        ));
        serve_loop(listener, acceptor, state, shutdown).await;
        sweeper.abort();
    }
}

async fn serve_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let cert_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| auth::user_from_cert(c));
            let service = hyper::service::service_fn(move |req| {
                let (state, user) = (state.clone(), cert_user.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(state, user, req).await) }
            });
            // A client that opens a connection and sends nothing (or
            // dribbles its headers) is dropped instead of holding it forever.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("API server stopped accepting connections");
}

fn tls_config(pki: &pki::Pki, serving: &pki::CertKey) -> Result<rustls::ServerConfig, String> {
    // Client certificates are optional (tokens are the other way in); when
    // one is sent it must chain to the cluster CA.
    rudder_http::server_config(pki.ca_pem(), serving, true).map_err(|e| e.to_string())
}

fn kubeconfig(server: &str, ca_pem: &str, admin: &pki::CertKey) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(&admin.cert_pem),
        b64(&admin.key_pem),
    )
}

/// The token nodes join with, `K10<sha256 of the CA>::node:<secret>` as
/// k3s writes it, kept in `<dir>/node-token` (made at the first start).
fn node_token(dir: &std::path::Path, ca_pem: &str) -> Result<String, String> {
    let path = dir.join("node-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_string());
    }
    let hash = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let token = format!("K10{}::node:{secret}", hex(hash.as_ref()));
    write_atomic(&path, format!("{token}\n").as_bytes(), true)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "wrote the node join token (rudder agent --token)");
    Ok(token)
}

/// Creates the system namespaces that are missing.
async fn bootstrap(objects: &Objects) -> Result<(), StatusError> {
    let nsr = registry::lookup("", "v1", "namespaces").expect("namespaces are registered");
    let target = Target {
        resource: nsr,
        namespace: None,
        name: None,
        subresource: None,
    };
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match objects.create(&target, obj, &Query::default()).await {
            Ok(_) => tracing::info!(namespace = ns, "created namespace"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    // kube-apiserver records since when it tracks the use of legacy
    // ServiceAccount token Secrets (the token cleaner reads the date).
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-apiserver-legacy-service-account-token-tracking",
                     "namespace": "kube-system"},
        "data": {"since": rudder_api::time::rfc3339_now()[..10].to_string()},
    });
    let target = Target {
        resource: registry::lookup("", "v1", "configmaps").expect("configmaps are registered"),
        namespace: Some("kube-system".into()),
        name: None,
        subresource: None,
    };
    match objects.create(&target, cm, &Query::default()).await {
        Ok(_) | Err(StatusError { code: 409, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The API priority and fairness configuration kube-apiserver creates
/// (its mandatory and suggested FlowSchemas and priority levels, as of
/// 1.34), where missing; the default ServiceCIDR, naming the range Service
/// IPs come from.
async fn bootstrap_cluster_config(
    objects: &Objects,
    service_cidr: &str,
) -> Result<(), StatusError> {
    let defaults: Vec<Value> =
        serde_json::from_str(include_str!("flowcontrol-bootstrap.json")).unwrap_or_default();
    let cidr = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": [service_cidr]},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "",
            "message": "Kubernetes default Service CIDR is ready",
            "lastTransitionTime": rudder_api::time::rfc3339_now()}]},
    });
    let mut created = 0;
    for obj in defaults.into_iter().chain([cidr]) {
        let (group, version) =
            registry::split_api_version(obj["apiVersion"].as_str().unwrap_or_default());
        let Some(resource) =
            registry::by_kind(group, version, obj["kind"].as_str().unwrap_or_default())
        else {
            continue;
        };
        let target = Target {
            resource,
            namespace: None,
            name: None,
            subresource: None,
        };
        match objects.create(&target, obj, &Query::default()).await {
            Ok(_) => created += 1,
            Err(StatusError { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if created > 0 {
        tracing::info!(
            created,
            "created the default flow control configuration and ServiceCIDR"
        );
    }
    Ok(())
}

/// The `kubernetes` Service in `default`: the first service IP, port 443,
/// pointing at this API server.
async fn kubernetes_service(
    objects: &Objects,
    ranges: services::ServiceRanges,
    advertise: std::net::Ipv4Addr,
    port: u16,
) -> Result<(), StatusError> {
    let target = |plural: &str| Target {
        resource: registry::lookup("", "v1", plural).expect("core resources are registered"),
        namespace: Some("default".into()),
        name: None,
        subresource: None,
    };
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ranges.first().to_string(), "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    match objects
        .create(&target("services"), svc, &Query::default())
        .await
    {
        Ok(_) => tracing::info!(ip = %ranges.first(), "created the kubernetes Service"),
        Err(e) if e.reason == "AlreadyExists" => {}
        Err(e) => return Err(e),
    }
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise.to_string()}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let t = target("endpoints");
    match objects
        .create(&t, endpoints.clone(), &Query::default())
        .await
    {
        Err(e) if e.reason == "AlreadyExists" => {
            // A restart may listen elsewhere: point the endpoints here.
            objects
                .update(&t, "kubernetes", endpoints, &Query::default())
                .await
                .map(drop)
        }
        other => other.map(drop),
    }
}

async fn handle(
    state: Arc<State>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Response<Body> {
    let user = cert_user.or_else(|| {
        let authz = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        state.tokens.user(authz)
    });
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let watch = Query::parse(req.uri().query()).flag("watch") || path.contains("/watch/");
    let started = std::time::Instant::now();
    let protobuf_accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|accept| http::prefers_protobuf(Some(accept)))
        .map(String::from);
    // The cluster CA is public: agents joining with a token fetch it
    // here and check it against the hash their token carries.
    let resp = match user {
        None if path == "/cacerts" => {
            Response::new(http::full(bytes::Bytes::from(state.ca_pem.clone())))
        }
        None => http::error(&StatusError::unauthorized()),
        Some(user) => {
            // No input should reach a panic; if one does, the client gets a
            // 500 and the server goes on.
            let routed = std::panic::AssertUnwindSafe(route(&state, &user, req))
                .catch_unwind()
                .await;
            match routed {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => http::error(&e),
                Err(_) => {
                    tracing::error!(%method, %path, "request handler panicked");
                    http::error(&StatusError::internal(
                        "the server failed while handling this request",
                    ))
                }
            }
        }
    };
    let resp = match &protobuf_accept {
        Some(accept) => http::protobuf_response(resp, Some(accept)).await,
        None => resp,
    };
    let (verb, resource) = metrics::labels(&method, &path, watch);
    state
        .metrics
        .request(&verb, &resource, resp.status().as_u16(), started.elapsed());
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn route(
    state: &State,
    user: &User,
    req: Request<Incoming>,
) -> Result<Response<Body>, StatusError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = Query::parse(req.uri().query()).with_user_agent(
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let ok = |v: Value| Ok(http::json(StatusCode::OK, &v));
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["metrics"] => {
            let mut resp = Response::new(http::full(state.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                ::http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        ["healthz" | "livez" | "readyz", ..] => Ok(http::text(StatusCode::OK, "ok")),
        ["api" | "apis"] => {
            let core = segs[0] == "api";
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            match discovery::aggregated_version(accept) {
                Some(v) => {
                    let body = bytes::Bytes::from(
                        serde_json::to_vec(&discovery::aggregated(core, v)).unwrap_or_default(),
                    );
                    let mut resp = http::json_bytes(StatusCode::OK, body);
                    let ct = if v == "v2" {
                        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
                    } else {
                        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
                    };
                    resp.headers_mut()
                        .insert(header::CONTENT_TYPE, ::http::HeaderValue::from_static(ct));
                    Ok(resp)
                }
                None if core => ok(discovery::api_versions(&state.server_address)),
                None => ok(discovery::api_group_list()),
            }
        }
        ["api", "v1"] => discovery::resource_list("", "v1")
            .map_or_else(|| Err(StatusError::not_found_path()), ok),
        ["apis", group] => {
            discovery::api_group(group).map_or_else(|| Err(StatusError::not_found_path()), ok)
        }
        ["apis", group, version] => discovery::resource_list(group, version)
            .map_or_else(|| Err(StatusError::not_found_path()), ok),
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => Ok(openapi_v2_empty()),
        ["openapi", "v3"] => Ok(http::json_bytes(StatusCode::OK, openapi::openapi().index())),
        ["openapi", "v3", gv @ ..] => openapi::openapi()
            .document(&gv.join("/"))
            .map(|doc| http::json_bytes(StatusCode::OK, doc))
            .ok_or_else(StatusError::not_found_path),
        ["apis", group, version, plural]
            if req.method() == Method::POST
                && reviews::REVIEWS
                    .iter()
                    .any(|r| r.0 == *group && r.1 == *version && r.2 == *plural) =>
        {
            let (group, version, plural) =
                (group.to_string(), version.to_string(), plural.to_string());
            // A review has no Table or metadata form: a client that accepts
            // nothing else gets 406, as from kube-apiserver.
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            if !matches!(http::negotiate(accept), http::Format::Json)
                && !http::accepts_object(accept)
            {
                return Err(StatusError::not_acceptable(http::NOT_ACCEPTABLE));
            }
            let body = read_body(req).await?;
            let answer = reviews::review(&group, &version, &plural, user, &body)
                .unwrap_or_else(|| Err(StatusError::not_found_path()))?;
            Ok(http::json(StatusCode::CREATED, &answer))
        }
        ["api", "v1", rest @ ..] => resource(state, req, "", "v1", rest, query).await,
        ["apis", group, version, rest @ ..] => {
            let (group, version) = (group.to_string(), version.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            resource(state, req, &group, &version, &rest, query).await
        }
        _ => Err(StatusError::not_found_path()),
    }
}

/// `fieldValidation`: `Strict` refuses an object with fields its kind does
/// not have (400, naming each), `Warn` (the default) accepts it and returns
/// the warnings to send, `Ignore` does neither.
fn check_fields(r: &Resource, query: &Query, obj: &Value) -> Result<Vec<String>, StatusError> {
    let mode = query.get("fieldValidation").unwrap_or("Warn");
    if !matches!(mode, "Strict" | "Warn" | "Ignore") {
        return Err(StatusError::bad_request(format!(
            "fieldValidation parameter unsupported: {mode}; supported values: Ignore, Warn, Strict"
        )));
    }
    if mode == "Ignore" {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = openapi::openapi()
        .unknown_fields(r.group, r.version, r.kind, obj)
        .into_iter()
        .map(|path| format!("unknown field {path:?}"))
        .collect();
    if mode == "Strict" && !unknown.is_empty() {
        return Err(StatusError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = r.kind,
            version = r.version,
        )));
    }
    Ok(unknown)
}

/// Adds `Warning: 299 - "…"` headers, which kubectl prints as `Warning: …`.
fn warn(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(value) = ::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, value);
        }
    }
    resp
}

/// An empty OpenAPI v2 document (a zero-length protobuf): enough for
/// kubectl's default client-side validation to pass unknown fields through
/// to the server (see shared/notes/kubectl-protocol.md §4, O2).
fn openapi_v2_empty() -> Response<Body> {
    let mut resp = Response::new(http::full(bytes::Bytes::new()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        ::http::HeaderValue::from_static(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        ),
    );
    resp
}

/// `[NAME[/SUB]]` after a resource in a path.
fn name_and_subresource(more: &[&str]) -> Result<(Option<String>, Option<String>), StatusError> {
    match more {
        [] => Ok((None, None)),
        // nodes/NAME/proxy/PATH…: the node agent's own paths.
        [name, "proxy", rest @ ..] => Ok((
            Some(name.to_string()),
            Some(format!("proxy/{}", rest.join("/"))),
        )),
        [name] => Ok((Some(name.to_string()), None)),
        [name, sub] => Ok((Some(name.to_string()), Some(sub.to_string()))),
        _ => Err(StatusError::not_found_path()),
    }
}

/// Resolves `[watch/][namespaces/NS/]RESOURCE[/NAME[/SUB]]` under a group-version.
fn target(group: &str, version: &str, rest: &[&str]) -> Result<(Target, bool), StatusError> {
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let find = |plural: &str| {
        registry::lookup(group, version, plural).ok_or_else(StatusError::not_found_path)
    };
    let t = match rest {
        ["namespaces", ns, plural, more @ ..]
            if registry::lookup(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let (name, sub) = name_and_subresource(more)?;
            Target {
                resource: find(plural)?,
                namespace: Some(ns.to_string()),
                name,
                subresource: sub,
            }
        }
        [plural, more @ ..] => {
            let (name, sub) = name_and_subresource(more)?;
            Target {
                resource: find(plural)?,
                namespace: None,
                name,
                subresource: sub,
            }
        }
        [] => return Err(StatusError::not_found_path()),
    };
    if let Some(sub) = &t.subresource
        && !(sub == "status" && t.resource.status)
        && !(sub == "scale" && t.resource.has_scale())
        && !(sub == "finalize" && strategy::is_namespace(t.resource))
        && !(sub == "approval"
            && (t.resource.group, t.resource.kind)
                == ("certificates.k8s.io", "CertificateSigningRequest"))
        && !((matches!(sub.as_str(), "binding" | "eviction")
            || node_proxy::SUBRESOURCES.contains(&sub.as_str()))
            && strategy::is_pod(t.resource))
        && !(sub.starts_with("proxy/") && (t.resource.group, t.resource.plural) == ("", "nodes"))
    {
        return Err(StatusError::not_found_path());
    }
    Ok((t, watch_path))
}

/// A PATCH body, in the format its content type names.
async fn read_patch(req: Request<Incoming>) -> Result<objects::Patch, StatusError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    objects::Patch::parse(&content_type, &read_body(req).await?)
}

/// A request body, as JSON: protobuf bodies (kubectl 1.32+ typed clients)
/// are decoded here, so everything after sees one format.
async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, StatusError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protobuf = content_type.starts_with("application/vnd.kubernetes.protobuf");
    let yaml = content_type.starts_with("application/yaml");
    match Limited::new(req.into_body(), http::MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) if protobuf => {
            let obj = rudder_api::protobuf::decode(&collected.to_bytes()).map_err(|e| {
                StatusError::bad_request(format!(
                    "the body of the request could not be decoded as protobuf: {e}"
                ))
            })?;
            Ok(serde_json::to_vec(&obj).unwrap_or_default().into())
        }
        Ok(collected) if yaml => {
            let obj = objects::parse_yaml(&collected.to_bytes())?;
            Ok(serde_json::to_vec(&obj).unwrap_or_default().into())
        }
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(StatusError::too_large(http::MAX_BODY_BYTES))
        }
        Err(e) => Err(StatusError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

async fn resource(
    state: &State,
    req: Request<Incoming>,
    group: &str,
    version: &str,
    rest: &[&str],
    query: Query,
) -> Result<Response<Body>, StatusError> {
    let (t, watch_path) = target(group, version, rest)?;
    let objects = &state.objects;
    let method = req.method().clone();
    let format = http::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let r = t.resource;
    let as_table = |objs: &[Value], list_meta: Value| match format {
        http::Format::Table(api_version) => {
            let opts = rudder_api::table::TableOptions {
                api_version,
                include: rudder_api::table::IncludeObject::parse(query.get("includeObject")),
                with_columns: true,
                now: rudder_api::time::now(),
            };
            Some(rudder_api::table::table(
                r.group, r.kind, objs, list_meta, &opts,
            ))
        }
        http::Format::Json | http::Format::Metadata(_) => None,
    };
    let created = |v: Value| Ok(http::json(StatusCode::CREATED, &v));
    let ok = |v: Value| Ok(http::json(StatusCode::OK, &v));
    if t.resource.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(StatusError::not_found_path());
    }
    if let Some(path) = t
        .subresource
        .as_deref()
        .and_then(|s| s.strip_prefix("proxy"))
        && t.name.is_some()
    {
        let node = t.name.clone().unwrap_or_default();
        return node_proxy::node_path(state, req, &node, path).await;
    }
    if let Some(sub) = t.subresource.as_deref()
        && node_proxy::SUBRESOURCES.contains(&sub)
        && t.name.is_some()
    {
        let allowed = match sub {
            "log" => method == Method::GET,
            _ => method == Method::GET || method == Method::POST,
        };
        if !allowed {
            return Err(StatusError::method_not_allowed(format!(
                "pods/{sub} does not support {method}"
            )));
        }
        let main = Target {
            subresource: None,
            ..t.clone()
        };
        return node_proxy::pod_subresource(state, req, &main, sub).await;
    }
    if let Some(sub @ ("binding" | "eviction")) = t.subresource.as_deref() {
        if method != Method::POST {
            return Err(StatusError::method_not_allowed(format!(
                "pods/{sub} supports create only"
            )));
        }
        let name = t.name.clone().unwrap_or_default();
        let body = objects::parse_body(&read_body(req).await?)?;
        let main = Target {
            subresource: None,
            ..t.clone()
        };
        let status = if sub == "binding" {
            objects.bind(&main, &name, &body, &query).await?
        } else {
            objects.evict(&main, &name, &body, &query).await?
        };
        return Ok(http::json(StatusCode::CREATED, &status));
    }
    if t.subresource.as_deref() == Some("scale") {
        let name = t.name.clone().unwrap_or_default();
        return match method {
            Method::GET => ok(objects.get_scale(&t, &name).await?),
            Method::PUT => {
                let body = objects::parse_body(&read_body(req).await?)?;
                let strict = body["metadata"]
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                ok(objects
                    .update_scale(&t, &name, &query, strict, |_| Ok(body.clone()))
                    .await?)
            }
            Method::PATCH => {
                let patch = read_patch(req).await?;
                ok(objects
                    .update_scale(&t, &name, &query, patch.strict(), |scale| {
                        patch.apply("Scale", scale)
                    })
                    .await?)
            }
            _ => Err(StatusError::method_not_allowed(
                "the scale subresource supports get, update and patch",
            )),
        };
    }
    if t.subresource.as_deref() == Some("finalize") && method != Method::PUT {
        return Err(StatusError::method_not_allowed(
            "namespaces/finalize supports update only",
        ));
    }
    match (&method, t.name.clone()) {
        (&Method::GET, _) if watch_path || query.flag("watch") => {
            watch::watch(objects, &t, &query, format, &state.metrics).await
        }
        (&Method::GET, Some(name)) => {
            let obj = objects.get(&t, &name).await?;
            if let http::Format::Metadata(api_version) = format {
                return ok(http::partial_metadata(api_version, &obj));
            }
            let rv = obj["metadata"]["resourceVersion"].clone();
            ok(as_table(std::slice::from_ref(&obj), json!({"resourceVersion": rv})).unwrap_or(obj))
        }
        (&Method::GET, None) => {
            let list = objects.list(&t, &query).await?;
            match format {
                http::Format::Json => Ok(http::json_bytes(StatusCode::OK, list.to_json())),
                http::Format::Table(_) => {
                    let items = list.values()?;
                    ok(as_table(&items, list.metadata.clone()).unwrap_or_default())
                }
                http::Format::Metadata(api_version) => {
                    let items: Vec<Value> = list
                        .values()?
                        .iter()
                        .map(|o| http::partial_metadata(api_version, o))
                        .collect();
                    ok(json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": api_version,
                        "metadata": list.metadata,
                        "items": items,
                    }))
                }
            }
        }
        (&Method::POST, None) => {
            if t.resource.namespaced && t.namespace.is_none() {
                return Err(StatusError::not_found_path());
            }
            let body = objects::parse_body(&read_body(req).await?)?;
            let warnings = check_fields(r, &query, &body)?;
            created(objects.create(&t, body, &query).await?).map(|resp| warn(resp, &warnings))
        }
        (&Method::PUT, Some(name)) => {
            let body = objects::parse_body(&read_body(req).await?)?;
            let warnings = check_fields(r, &query, &body)?;
            ok(objects.update(&t, &name, body, &query).await?).map(|resp| warn(resp, &warnings))
        }
        (&Method::PATCH, Some(name)) => {
            let patch = read_patch(req).await?;
            let warnings = match patch.object() {
                Some(fields) => check_fields(r, &query, fields)?,
                None => Vec::new(),
            };
            let (obj, created_now) = objects.patch(&t, &name, &patch, &query).await?;
            if created_now { created(obj) } else { ok(obj) }.map(|resp| warn(resp, &warnings))
        }
        (&Method::DELETE, name) => {
            let raw = read_body(req).await?;
            let options: Value = if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw)
                    .map_err(|e| StatusError::bad_request(format!("invalid delete options: {e}")))?
            };
            match name {
                Some(name) => ok(objects.delete(&t, &name, &options, &query).await?),
                None => {
                    // deletecollection: every object the selectors match.
                    let list = objects.list(&t, &query).await?;
                    for obj in list.values()? {
                        let name = obj["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let ns = obj["metadata"]["namespace"].as_str().map(String::from);
                        let one = Target {
                            namespace: ns.or_else(|| t.namespace.clone()),
                            ..t.clone()
                        };
                        match objects.delete(&one, &name, &options, &query).await {
                            Ok(_) => {}
                            // Gone meanwhile: that is what was asked.
                            Err(e) if e.code == 404 => {}
                            Err(e) => return Err(e),
                        }
                    }
                    ok(
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                    )
                }
            }
        }
        _ => Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}
