//! The `kube` crate (kube-rs), which Rudder's own controllers will use,
//! against a real server: pagination, the watcher, server-side apply.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Cluster;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;

async fn client(c: &Cluster) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_pages_watches_and_applies() {
    let c = tokio::task::spawn_blocking(|| Cluster::start(&[]))
        .await
        .unwrap();
    let client = client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .unwrap();
    }

    // Pagination with continue tokens.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&params).await.unwrap();
        pages += 1;
        names.extend(
            page.items
                .iter()
                .map(|cm| cm.metadata.name.clone().unwrap()),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 7);

    // The watcher: initial list, then live changes.
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut initial = 0;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 7);
    cms.create(&PostParams::default(), &configmap("live"))
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(cm) = event
            && cm.metadata.name.as_deref() == Some("live")
        {
            break;
        }
    }

    // Server-side apply creates, then updates.
    let params = PatchParams::apply("rudder-test");
    let applied = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    cms.patch("ssa", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    let changed = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}});
    let cm = cms
        .patch("ssa", &params, &Patch::Apply(&changed))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["a"], "2");
}
