//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: checked
//! here as kube-apiserver checks them (the container exists, the pod has
//! a node), then forwarded to the pod's node agent over HTTPS with the
//! API server's kubelet client certificate. Exec, attach and port-forward
//! streams (SPDY/3.1, WebSocket v4 and older) are upgraded end to end: the
//! bytes pass through unchanged. WebSocket exec `v5.channel.k8s.io` and
//! port-forward tunnelled in WebSocket, which the node's runtime does not
//! speak, are translated to SPDY here, as kube-apiserver does.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use rudder_api::StatusError;
use rudder_api::registry;
use rudder_http::streams::Translation;
use serde_json::Value;

use crate::State;
use crate::http::Body;
use crate::objects::Target;

/// The subresources served by the pod's node.
pub(crate) const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

pub(crate) async fn pod_subresource(
    state: &State,
    req: Request<Incoming>,
    pods: &Target,
    sub: &str,
) -> Result<Response<Body>, StatusError> {
    let name = pods.name.clone().unwrap_or_default();
    let ns = pods.namespace.clone().unwrap_or_default();
    let pod = state.objects.get(pods, &name).await?;
    let query = rudder_http::query_pairs(req.uri().query().unwrap_or(""));
    let container = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone());
    let path = if sub == "portforward" {
        format!("/portForward/{ns}/{name}")
    } else {
        let container = choose_container(&pod, &name, container.as_deref())?;
        let prefix = match sub {
            "log" => "containerLogs",
            other => other,
        };
        format!("/{prefix}/{ns}/{name}/{container}")
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(StatusError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let rest: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "container")
        .map(|(k, v)| {
            format!(
                "{}={}",
                rudder_http::percent_encode(k),
                rudder_http::percent_encode(v)
            )
        })
        .collect();
    let path_and_query = if rest.is_empty() {
        path
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    let translation = Translation::of(req.headers(), sub);
    to_node(state, req, node_name, &path_and_query, translation).await
}

/// `nodes/NAME/proxy/PATH`: the path on the node's agent
/// (`/stats/summary`, `/healthz`, `/containerLogs/…`).
pub(crate) async fn node_path(
    state: &State,
    req: Request<Incoming>,
    node: &str,
    path: &str,
) -> Result<Response<Body>, StatusError> {
    let path = if path.is_empty() { "/" } else { path };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    to_node(state, req, node, &path_and_query, None).await
}

/// Forwards the request to the agent of `node_name`, or translates it.
async fn to_node(
    state: &State,
    mut req: Request<Incoming>,
    node_name: &str,
    path_and_query: &str,
    translation: Option<Translation>,
) -> Result<Response<Body>, StatusError> {
    let nodes = Target {
        resource: registry::lookup("", "v1", "nodes").expect("nodes are registered"),
        namespace: None,
        name: Some(node_name.to_string()),
        subresource: None,
    };
    let node = state.objects.get(&nodes, node_name).await?;
    let (host, port) = kubelet_address(&node).ok_or_else(|| {
        StatusError::unavailable(format!("node {node_name} has no address for its agent"))
    })?;
    let unreachable = |e: rudder_http::Error| {
        StatusError::unavailable(format!(
            "error dialing backend: the agent of node {node_name} is not reachable: {e}"
        ))
    };
    let io = rudder_http::connect_tls(Arc::clone(&state.kubelet_tls), &host, port)
        .await
        .map_err(unreachable)?;
    let authority = format!("{host}:{port}");
    let Some(translation) = translation else {
        let resp = rudder_http::forward(req, io, &authority, path_and_query)
            .await
            .map_err(unreachable)?;
        return Ok(resp.map(|b| b.map_err(std::io::Error::other).boxed()));
    };
    // The node switches to SPDY first, so that a refusal (a container
    // that is gone, …) reaches the client as the node's own answer.
    let node = match translation
        .connect(io, &authority, path_and_query)
        .await
        .map_err(unreachable)?
    {
        Ok(node) => node,
        Err(refused) => return Ok(refused.map(|b| b.map_err(std::io::Error::other).boxed())),
    };
    let accept = translation.accept(req.headers());
    let client = hyper::upgrade::on(&mut req);
    let query = rudder_http::query_pairs(path_and_query.split_once('?').map_or("", |(_, q)| q));
    tokio::spawn(async move {
        match client.await {
            Ok(client) => translation.run(client, node, &query).await,
            Err(e) => tracing::debug!("upgrading a client's stream: {e}"),
        }
    });
    Ok(accept.map(|()| crate::http::full(bytes::Bytes::new())))
}

/// The container a request is for: the one named, or the only one.
fn choose_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, StatusError> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            let all: Vec<String> = containers
                .iter()
                .cloned()
                .chain(names("initContainers"))
                .chain(names("ephemeralContainers"))
                .collect();
            if all.iter().any(|n| n == c) {
                Ok(c.to_string())
            } else {
                Err(StatusError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(StatusError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The node's InternalIP (else its first address) and its agent's port.
fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array()?;
    let address = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some((address, port))
}
