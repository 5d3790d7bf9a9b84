//! Node IPAM: each node gets a podCIDR, the first free /24 of the
//! cluster CIDR, when it registers (kube-controller-manager's range
//! allocator). A node keeps its podCIDR for life.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
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

/// Hands out podCIDRs until the process ends.
pub async fn run(client: kube::Client, cluster_cidr: String) {
    let (network, len) = match parse_cidr(&cluster_cidr) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!("node IPAM is off: {e}");
            return;
        }
    };
    let nodes: Api<Node> = Api::all(client);
    let mut events = watcher(nodes.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    // The ranges in use, by node, from the watch: the only writer of
    // podCIDRs is this loop, so what it assigned counts at once.
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    // Nodes seen during a relist, handled once it is complete (until then
    // `used` is partial).
    let mut listing: Option<Vec<Node>> = None;
    // Nodes already told the range is full (said once, not on every update).
    let mut told_full: BTreeSet<String> = BTreeSet::new();
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        let pending = match event {
            watcher::Event::Init => {
                listing = Some(Vec::new());
                used.clear();
                continue;
            }
            watcher::Event::InitApply(node) => {
                note(&mut used, &node);
                if let Some(l) = listing.as_mut() {
                    l.push(node);
                }
                continue;
            }
            watcher::Event::InitDone => listing.take().unwrap_or_default(),
            watcher::Event::Apply(node) => {
                note(&mut used, &node);
                vec![node]
            }
            watcher::Event::Delete(node) => {
                if let Some(name) = &node.metadata.name {
                    used.remove(name);
                    told_full.remove(name);
                }
                continue;
            }
        };
        for node in pending {
            let Some(name) = node.metadata.name.clone() else {
                continue;
            };
            if pod_cidr(&node).is_some() || used.contains_key(&name) {
                continue;
            }
            let taken: BTreeSet<String> = used.values().cloned().collect();
            let Some(cidr) = next_free(network, len, &taken) else {
                // Said once as a warning; the nodes after it only at debug.
                if told_full.is_empty() {
                    tracing::warn!(node = %name, "node IPAM: no free /24 left in {cluster_cidr}; nodes registering from now on get no podCIDR");
                } else if !told_full.contains(&name) {
                    tracing::debug!(node = %name, "node IPAM: no free /24 left in {cluster_cidr}");
                }
                told_full.insert(name.clone());
                continue;
            };
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            });
            match nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = %name, %cidr, "node IPAM: assigned podCIDR");
                    used.insert(name, cidr);
                }
                // The node changed meanwhile (its agent wrote its status):
                // the watch brings the newer version, and the next try.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tracing::debug!(node = %name, "node IPAM: the node changed meanwhile; trying again");
                }
                Err(e) => tracing::warn!(node = %name, "node IPAM: {e}"),
            }
        }
    }
}

/// Records a node's podCIDR as used.
fn note(used: &mut BTreeMap<String, String>, node: &Node) {
    if let (Some(name), Some(cidr)) = (&node.metadata.name, pod_cidr(node)) {
        used.insert(name.clone(), cidr.to_string());
    }
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
}
