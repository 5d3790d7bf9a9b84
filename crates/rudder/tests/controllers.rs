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

/// Polls `check` until it holds (a hang guard of a minute, not a timing
/// assertion); returns whether it did.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// A ReplicaSet keeps its replicas: creates them, replaces a deleted pod,
/// scales down, adopts a matching orphan and lets go of a relabelled pod;
/// its status and events say so, as `kubectl get rs` and `describe` show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_keeps_its_replicas() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    let (c, _nodes) = tokio::task::spawn_blocking(|| {
        let c = Cluster::start(&[]);
        let nodes = SimNodes::join(&c, &["--nodes", "3"]);
        (c, nodes)
    })
    .await
    .unwrap();
    let client = c.kube_client().await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let rs = sets.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let web = ListParams::default().labels("app=web");
    let ready = |n: i32| {
        let sets = sets.clone();
        async move {
            let s = sets.get("web").await.unwrap().status.unwrap_or_default();
            s.replicas == n && s.ready_replicas == Some(n) && s.available_replicas == Some(n)
        }
    };
    assert!(
        eventually(|| ready(3)).await,
        "{:?}",
        sets.get("web").await.unwrap().status
    );
    let listed = pods.list(&web).await.unwrap().items;
    assert_eq!(listed.len(), 3);
    for p in &listed {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true))
        );
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
    }

    // A deleted pod is replaced.
    let victim = listed[0].metadata.name.clone().unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    let replaced = || {
        let pods = pods.clone();
        let victim = victim.clone();
        let web = web.clone();
        async move {
            let items = pods.list(&web).await.unwrap().items;
            items.len() == 3
                && items
                    .iter()
                    .all(|p| p.metadata.name.as_ref() != Some(&victim))
        }
    };
    assert!(eventually(replaced).await);
    assert!(eventually(|| ready(3)).await);

    // Scaled down to one.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let count = |n: usize| {
        let pods = pods.clone();
        let web = web.clone();
        async move { pods.list(&web).await.unwrap().items.len() == n }
    };
    assert!(eventually(|| count(1)).await);
    assert!(eventually(|| ready(1)).await);

    // A matching orphan is adopted (and, one too many, one pod goes); a
    // relabelled pod is let go and replaced.
    let orphan: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let adopted_or_gone = || {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            match pods.get_opt("orphan").await.unwrap() {
                None => true,
                Some(p) => p
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.uid == uid && r.controller == Some(true)),
            }
        }
    };
    assert!(eventually(adopted_or_gone).await);
    assert!(eventually(|| count(1)).await);
    let kept = pods.list(&web).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.patch(
        &kept,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    let released = || {
        let pods = pods.clone();
        let kept = kept.clone();
        async move {
            let p = pods.get(&kept).await.unwrap();
            p.metadata
                .owner_references
                .unwrap_or_default()
                .iter()
                .all(|r| r.controller != Some(true))
        }
    };
    assert!(eventually(released).await);
    assert!(eventually(|| count(1)).await);
    assert!(eventually(|| ready(1)).await);

    // What kubectl shows.
    let shown = tokio::task::block_in_place(|| {
        (
            c.ok(33, &["get", "rs", "web", "--no-headers"]),
            c.ok(33, &["describe", "rs", "web"]),
        )
    });
    let columns: Vec<&str> = shown.0.split_whitespace().collect();
    assert_eq!(&columns[..4], ["web", "1", "1", "1"], "{}", shown.0);
    assert!(
        shown.1.contains("SuccessfulCreate") && shown.1.contains("Created pod: web-"),
        "{}",
        shown.1
    );
    assert!(shown.1.contains("SuccessfulDelete"), "{}", shown.1);
}
