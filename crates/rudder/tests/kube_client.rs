//! The `kube` crate (kube-rs), which Rudder's own controllers will use,
//! against a real server: pagination, the watcher, server-side apply.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Cluster;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_pages_watches_and_applies() {
    let (_server, client) = Cluster::start_with_kube_client().await;
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
    // Seven and the root CA ConfigMap.
    assert_eq!(names.len(), 8, "{names:?}");

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
    assert_eq!(initial, 8);
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

/// The `rudder_store_request_duration_seconds_count` of store watches.
/// How many watches the server has opened on its store for ConfigMaps.
async fn store_watches(client: &kube::Client) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(r#"rudder_store_watches_total{prefix="/registry/core/configmaps/"} "#)
        })
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_share_one_store_watch_and_get_bookmarks() {
    use kube::api::{WatchEvent, WatchParams};
    let (_server, client) = Cluster::start_with_kube_client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("first"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.unwrap();
    // The first watch starts the cache (one store watch) ...
    let mut streams = vec![
        cms.watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed(),
    ];
    let before = store_watches(&client).await;
    // ... and a hundred more from a version the cache has (a list served
    // from it: other writes in the cluster may have moved its start past
    // `rv`) cost the store nothing.
    let cached = cms
        .list(&ListParams::default().match_any())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for _ in 0..100 {
        streams.push(
            cms.watch(&WatchParams::default(), &cached)
                .await
                .unwrap()
                .boxed(),
        );
    }
    let created = cms
        .create(&PostParams::default(), &configmap("second"))
        .await
        .unwrap();
    for stream in &mut streams {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("second")),
            other => panic!("expected ADDED, got {other:?}"),
        }
    }
    // One store watch per watcher would add 100 (the server's own
    // ConfigMap watchers may add one).
    let added = store_watches(&client).await - before;
    assert!(added < 5, "{added} store watches for 100 watchers");

    // A watch from a version older than the cache's history replays from
    // the store; one from a version the cache has replays from memory.
    let mut from_start = cms
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    while names.len() < 2 {
        if let WatchEvent::Added(cm) = from_start.next().await.unwrap().unwrap()
            && cm.metadata.name.as_deref() != Some(common::ROOT_CA)
        {
            names.push(cm.metadata.name.unwrap());
        }
    }
    assert_eq!(names, ["first", "second"]);

    // Bookmarks: one before a 3 s watch times out, at the latest version.
    let created_rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    let params = WatchParams::default().timeout(3);
    let mut stream = cms.watch(&params, &rv).await.unwrap().boxed();
    let mut bookmark = None;
    while let Some(event) = stream.next().await {
        if let WatchEvent::Bookmark(b) = event.unwrap() {
            bookmark = Some(b.metadata.resource_version.parse::<u64>().unwrap());
        }
    }
    assert!(bookmark.is_some_and(|b| b >= created_rv), "{bookmark:?}");

    // The WatchList protocol: current objects, then a bookmark saying so.
    let params = WatchParams::default().initial_events();
    let mut stream = cms.watch(&params, "").await.unwrap().boxed();
    let mut initial = Vec::new();
    loop {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(cm) => initial.push(cm.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, ["first", common::ROOT_CA, "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_bodies_are_accepted_and_malformed_ones_refused() {
    let (_server, client) = Cluster::start_with_kube_client().await;
    let post = |body: &'static str, content_type: &'static str| {
        http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: \"1\"\n";
    client
        .request_text(post(yaml, "application/yaml"))
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(cms.get("from-yaml").await.unwrap().data.unwrap()["a"], "1");

    let err = client
        .request_text(post("metadata: [unclosed", "application/yaml"))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 400);
    assert!(
        status.message.contains("could not be decoded as YAML"),
        "{}",
        status.message
    );

    // An apply patch written as YAML.
    let apply = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=yaml-test&force=true",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: \"2\"\n"
            .to_vec(),
    )
    .unwrap();
    client.request_text(apply).await.unwrap();
    assert_eq!(cms.get("from-yaml").await.unwrap().data.unwrap()["a"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_lists_and_watches() {
    use kube::api::WatchEvent;
    use kube::core::PartialObjectMeta;
    let (_server, client) = Cluster::start_with_kube_client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("meta"))
        .await
        .unwrap();
    let raw = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&client.request_text(raw).await.unwrap()).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "meta")
        .unwrap();
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert!(item.get("data").is_none(), "{item}");

    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "default");
    let got = metas.get("meta").await.unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("meta"));
    let rv = got.metadata.resource_version.clone().unwrap();
    let mut stream = metas
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let created = cms
        .create(&PostParams::default(), &configmap("meta-2"))
        .await
        .unwrap();
    let created_rv: u64 = created
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Added(m) => {
            assert_eq!(m.metadata.name.as_deref(), Some("meta-2"));
            assert_eq!(m.metadata.uid, created.metadata.uid);
            assert_eq!(
                m.metadata.resource_version,
                created.metadata.resource_version
            );
            assert_eq!(m.types.as_ref().unwrap().kind, "PartialObjectMetadata");
        }
        other => panic!("{other:?}"),
    }
    cms.delete("meta-2", &Default::default()).await.unwrap();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Deleted(m) => {
            assert_eq!(m.metadata.name.as_deref(), Some("meta-2"));
            let rv: u64 = m.metadata.resource_version.unwrap().parse().unwrap();
            assert!(rv > created_rv, "{rv} after {created_rv}");
        }
        other => panic!("{other:?}"),
    }
}
