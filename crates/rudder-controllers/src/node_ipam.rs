//! Node IPAM: each node gets a podCIDR, the first free /24 of the
//! cluster CIDR, when it registers (kube-controller-manager's range
//! allocator). A node keeps its podCIDR for life. The decision is
//! [`plan`]; [`run`] drives it from kube-runtime's `Controller` (work
//! queue, de-duplicated keys, requeues on error).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::json;

/// Parses `10.42.0.0/16`: the subnets handed out are /24s, so the
/// prefix must be 24 or shorter.
pub fn parse_cidr(cidr: &str) -> Result<(u32, u8), String> {
    rudder_api::net::parse_ipv4_cidr(cidr, 1..=24)
}

/// The first /24 of the cluster CIDR not in `used`.
pub fn next_free(network: u32, len: u8, used: &BTreeSet<String>) -> Option<String> {
    let count = 1u32 << (24 - len);
    (0..count)
        .map(|i| format!("{}/24", Ipv4Addr::from(network + (i << 8))))
        .find(|c| !used.contains(c))
}

/// A node's podCIDR, if it has one.
fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .filter(|c| !c.is_empty())
}

/// What to do for a node.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// It has its range.
    Keep,
    /// Give it this range.
    Assign(String),
    /// No range is left.
    Full,
}

/// The decision for `node`, given the ranges the other nodes hold: those
/// the cache shows and those this controller assigned that the cache may
/// not show yet (its expectations).
pub fn plan(node: &Node, held: &BTreeSet<String>, network: u32, len: u8) -> Plan {
    if pod_cidr(node).is_some() {
        return Plan::Keep;
    }
    next_free(network, len, held).map_or(Plan::Full, Plan::Assign)
}

/// What the reconciler keeps between calls.
struct Context {
    nodes: Api<Node>,
    cache: Store<Node>,
    network: u32,
    len: u8,
    cluster_cidr: String,
    /// Ranges assigned, by node, until the cache shows them (a stale cache
    /// must not hand the same range out twice).
    assigned: Mutex<BTreeMap<String, String>>,
    /// Whether "no range left" was said (it is said once).
    told_full: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Error(#[from] kube::Error);

/// Hands out podCIDRs until the process ends: a controller over Nodes
/// (one at a time, so that two new nodes never race for one range).
pub async fn run(client: kube::Client, cluster_cidr: String) {
    let (network, len) = match parse_cidr(&cluster_cidr) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!("node IPAM is off: {e}");
            return;
        }
    };
    let nodes: Api<Node> = Api::all(client);
    let controller = Controller::new(nodes.clone(), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(1));
    let context = Arc::new(Context {
        nodes,
        cache: controller.store(),
        network,
        len,
        cluster_cidr,
        assigned: Mutex::new(BTreeMap::new()),
        told_full: AtomicBool::new(false),
    });
    controller
        .run(reconcile, error_policy, context)
        .for_each(|_| std::future::ready(()))
        .await;
}

async fn reconcile(node: Arc<Node>, cx: Arc<Context>) -> Result<Action, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let cached = cx.cache.state();
    let held = {
        let mut assigned = cx.assigned.lock().unwrap_or_else(|p| p.into_inner());
        // What the cache shows needs no expectation; nodes gone free theirs.
        assigned.retain(|n, _| {
            cached
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(n.as_str()) && pod_cidr(c).is_none())
        });
        let mut held: BTreeSet<String> = cached
            .iter()
            .filter_map(|c| pod_cidr(c).map(String::from))
            .collect();
        held.extend(assigned.values().cloned());
        if assigned.contains_key(&name) {
            return Ok(Action::await_change());
        }
        held
    };
    let cidr = match plan(&node, &held, cx.network, cx.len) {
        Plan::Keep => return Ok(Action::await_change()),
        Plan::Full => {
            if !cx.told_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(node = %name, "node IPAM: no free /24 left in {}; nodes registering from now on get no podCIDR", cx.cluster_cidr);
            } else {
                tracing::debug!(node = %name, "node IPAM: no free /24 left in {}", cx.cluster_cidr);
            }
            return Ok(Action::await_change());
        }
        Plan::Assign(cidr) => cidr,
    };
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    });
    cx.nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(node = %name, %cidr, "node IPAM: assigned podCIDR");
    cx.assigned
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name, cidr);
    Ok(Action::await_change())
}

/// A node changed meanwhile (its agent wrote its status) or the API failed:
/// try again shortly, with the node as the cache then shows it.
fn error_policy(node: Arc<Node>, error: &Error, _: Arc<Context>) -> Action {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    match &error.0 {
        kube::Error::Api(e) if e.code == 409 => {
            tracing::debug!(node = %name, "node IPAM: the node changed meanwhile; trying again");
        }
        e => tracing::warn!(node = %name, "node IPAM: {e}"),
    }
    Action::requeue(Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_the_first_free_slash_24() {
        let (net, len) = parse_cidr("10.42.0.0/16").unwrap_or_default();
        let mut used = BTreeSet::new();
        assert_eq!(next_free(net, len, &used).as_deref(), Some("10.42.0.0/24"));
        used.insert("10.42.0.0/24".to_string());
        assert_eq!(next_free(net, len, &used).as_deref(), Some("10.42.1.0/24"));
        let (net, len) = parse_cidr("10.9.9.0/24").unwrap_or_default();
        used.insert("10.9.9.0/24".to_string());
        assert_eq!(next_free(net, len, &used), None);
        assert!(parse_cidr("10.0.0.0/25").is_err());
        assert!(parse_cidr("nonsense").is_err());
    }

    #[test]
    fn a_node_keeps_its_range_and_a_new_one_gets_the_first_not_held() {
        let node = |cidr: Option<&str>| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": cidr}}))
                .unwrap_or_default()
        };
        let (net, len) = parse_cidr("10.42.0.0/23").unwrap_or_default();
        let held: BTreeSet<String> = ["10.42.0.0/24".to_string()].into();
        assert_eq!(
            plan(&node(Some("10.42.0.0/24")), &held, net, len),
            Plan::Keep
        );
        assert_eq!(
            plan(&node(None), &held, net, len),
            Plan::Assign("10.42.1.0/24".into())
        );
        // One assigned but not yet seen in the cache counts as held.
        let both: BTreeSet<String> = ["10.42.0.0/24".into(), "10.42.1.0/24".into()].into();
        assert_eq!(plan(&node(None), &both, net, len), Plan::Full);
        assert_eq!(plan(&node(Some("")), &both, net, len), Plan::Full);
    }
}
