//! The server's controllers against a real `rudder server` with simulated
//! nodes (issue 14): each is driven by kube-runtime's controller runtime
//! and must hold up when many objects change at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Cluster, SimNodes};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// Nodes registering all at once each get a /24 of their own: the IPAM
/// controller's expectations keep a stale cache from handing one out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_registering_at_once_get_distinct_pod_cidrs() {
    let (c, _nodes) = tokio::task::spawn_blocking(|| {
        let c = Cluster::start(&[]);
        let nodes = SimNodes::join(&c, &["--nodes", "30"]);
        (c, nodes)
    })
    .await
    .unwrap();
    let client = c.kube_client().await;
    let nodes: Api<Node> = Api::all(client);
    let mut cidrs = Vec::new();
    // A hang guard, not a timing assertion: the controller assigns as the
    // nodes arrive.
    for _ in 0..600 {
        cidrs = nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        if cidrs.len() == 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cidrs.len(), 30, "{cidrs:?}");
    let distinct: std::collections::BTreeSet<&String> = cidrs.iter().collect();
    assert_eq!(
        distinct.len(),
        30,
        "a range was handed out twice: {cidrs:?}"
    );
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.42.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );
}
