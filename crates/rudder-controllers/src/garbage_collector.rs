//! The garbage collector: objects whose owners are gone are deleted, and
//! the `orphan` and `foregroundDeletion` finalizers that a delete's
//! propagation policy leaves are carried out (kube-controller-manager's
//! garbagecollector, level-triggered).
//!
//! It watches the metadata of every kind that can own or be owned (all
//! served kinds but Events) and keeps, per object, only its identity, owner references and
//! deletion state. After changes (and every 30 s) it makes one pass:
//! - an owner being deleted with `orphan`: its dependents lose their
//!   reference to it, then the finalizer goes;
//! - an owner being deleted with `foregroundDeletion`: its dependents are
//!   deleted; once none with `blockOwnerDeletion` is left, the finalizer
//!   goes;
//! - a dependent whose owners are all gone is deleted (Background); one
//!   with some owners gone loses the dangling references.
//!
//! "Gone" is confirmed with a GET before acting: an owner created a moment
//! ago may not have reached this controller's watch yet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use rudder_api::registry::{RESOURCES, Resource, by_kind, split_api_version};
use serde_json::{Value, json};
use tokio::sync::Notify;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// A full pass even without changes, for what a failed action left over.
const RESYNC: Duration = Duration::from_secs(30);
/// Changes arriving together are handled in one pass.
const SETTLE: Duration = Duration::from_millis(50);

/// What the collector knows of one object.
#[derive(Debug, Clone)]
struct Node {
    resource: &'static Resource,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    /// Whether a pass may act on it: it has owners, or is being deleted
    /// with one of the collector's finalizers.
    fn interesting(&self) -> bool {
        !self.owners.is_empty()
            || (self.deleting
                && self
                    .finalizers
                    .iter()
                    .any(|f| f == ORPHAN || f == FOREGROUND))
    }
}

type Key = (usize, String, String);

#[derive(Debug, Default)]
struct Nodes {
    by_key: HashMap<Key, Node>,
    /// How many nodes have each uid (a uid is one object, but a watch may
    /// briefly show an object under its old and new key).
    uids: HashMap<String, usize>,
}

impl Nodes {
    fn insert(&mut self, key: Key, node: Node) {
        *self.uids.entry(node.uid.clone()).or_default() += 1;
        if let Some(old) = self.by_key.insert(key, node) {
            self.forget(&old.uid);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.by_key.remove(key) {
            self.forget(&old.uid);
        }
    }

    fn forget(&mut self, uid: &str) {
        if let Some(n) = self.uids.get_mut(uid) {
            *n -= 1;
            if *n == 0 {
                self.uids.remove(uid);
            }
        }
    }

    /// Nodes with owners or a finalizer of the collector's: the only ones
    /// a pass acts on.
    fn interesting(&self) -> (Vec<Node>, HashSet<String>) {
        let nodes: Vec<Node> = self
            .by_key
            .values()
            .filter(|n| n.interesting())
            .cloned()
            .collect();
        let owners_present = nodes
            .iter()
            .flat_map(|n| n.owners.iter().map(|o| o.uid.clone()))
            .filter(|uid| self.uids.contains_key(uid))
            .collect();
        (nodes, owners_present)
    }
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Mutex<Nodes>,
    changed: Notify,
}

impl Graph {
    fn lock(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the collector until the process ends.
pub async fn run(client: kube::Client) {
    let graph = Arc::new(Graph::default());
    for (index, r) in RESOURCES.iter().enumerate() {
        if r.kind != "Event" {
            tokio::spawn(watch(client.clone(), index, r, graph.clone()));
        }
    }
    loop {
        let _ = tokio::time::timeout(RESYNC, graph.changed.notified()).await;
        tokio::time::sleep(SETTLE).await;
        let (nodes, owners_present) = graph.lock().interesting();
        pass(&client, &nodes, &owners_present).await;
    }
}

fn api_resource(r: &Resource) -> ApiResource {
    ApiResource {
        group: r.group.into(),
        version: r.version.into(),
        api_version: r.api_version(),
        kind: r.kind.into(),
        plural: r.plural.into(),
    }
}

fn api(client: &kube::Client, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if r.namespaced => Api::namespaced_with(client.clone(), ns, &api_resource(r)),
        _ => Api::all_with(client.clone(), &api_resource(r)),
    }
}

/// Keeps the graph's nodes of one resource current.
async fn watch(client: kube::Client, index: usize, r: &'static Resource, graph: Arc<Graph>) {
    // Metadata only (PartialObjectMetadata), as kube-controller-manager's
    // collector watches: owners and finalizers are all it needs.
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &api_resource(r));
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = HashSet::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(resource = r.plural, "garbage collector watch: {e}");
                continue;
            }
        };
        // Only what can give the collector work wakes it: objects with
        // owners or its finalizers, deletions (an owner may be gone), and
        // a finished (re)list.
        let mut wake = true;
        match event {
            watcher::Event::Init => {
                listed.clear();
                wake = false;
            }
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                if let Some(node) = node(r, &obj) {
                    let key = (
                        index,
                        node.namespace.clone().unwrap_or_default(),
                        node.name.clone(),
                    );
                    wake = node.interesting();
                    listed.insert(key.clone());
                    graph.lock().insert(key, node);
                }
            }
            watcher::Event::Delete(obj) => {
                let key = (
                    index,
                    obj.metadata.namespace.clone().unwrap_or_default(),
                    obj.metadata.name.clone().unwrap_or_default(),
                );
                graph.lock().remove(&key);
            }
            watcher::Event::InitDone => {
                let mut nodes = graph.lock();
                let gone: Vec<Key> = nodes
                    .by_key
                    .keys()
                    .filter(|key| key.0 == index && !listed.contains(*key))
                    .cloned()
                    .collect();
                for key in &gone {
                    nodes.remove(key);
                }
            }
        }
        if wake {
            graph.changed.notify_one();
        }
    }
}

fn node(r: &'static Resource, obj: &PartialObjectMeta<DynamicObject>) -> Option<Node> {
    let meta = &obj.metadata;
    Some(Node {
        resource: r,
        namespace: meta.namespace.clone(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        owners: meta.owner_references.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    })
}

async fn pass(client: &kube::Client, nodes: &[Node], owners_present: &HashSet<String>) {
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in nodes {
        for o in &n.owners {
            dependents.entry(o.uid.as_str()).or_default().push(n);
        }
    }
    for n in nodes {
        let deps = dependents
            .get(n.uid.as_str())
            .map_or(&[][..], Vec::as_slice);
        if n.deleting && n.finalizers.iter().any(|f| f == ORPHAN) {
            orphan(client, n, deps).await;
        } else if n.deleting && n.finalizers.iter().any(|f| f == FOREGROUND) {
            delete_dependents(client, n, deps).await;
        } else if !n.owners.is_empty() && !n.deleting {
            collect_if_owners_gone(client, n, owners_present).await;
        }
    }
}

/// `orphan`: the dependents lose their reference to `owner`, then the
/// owner's finalizer goes.
async fn orphan(client: &kube::Client, owner: &Node, deps: &[&Node]) {
    let mut done = true;
    for d in deps {
        done &= remove_owner_refs(client, d, &[owner.uid.as_str()]).await;
    }
    if done {
        remove_finalizer(client, owner, ORPHAN).await;
    }
}

/// `foregroundDeletion`: the dependents are deleted; the owner goes once
/// none that blocks it is left.
async fn delete_dependents(client: &kube::Client, owner: &Node, deps: &[&Node]) {
    let mut blocked = false;
    for d in deps {
        let blocks = d
            .owners
            .iter()
            .any(|o| o.uid == owner.uid && o.block_owner_deletion == Some(true));
        blocked |= blocks;
        if !d.deleting {
            // Dependents that block go the same way, so their own
            // dependents go first too.
            let policy = if blocks {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            delete(client, d, policy).await;
        }
    }
    if !blocked {
        remove_finalizer(client, owner, FOREGROUND).await;
    }
}

async fn collect_if_owners_gone(client: &kube::Client, n: &Node, owners_present: &HashSet<String>) {
    let mut gone = Vec::new();
    for o in &n.owners {
        if owners_present.contains(&o.uid) {
            continue;
        }
        if owner_gone(client, n, o).await {
            gone.push(o.uid.as_str());
        }
    }
    if gone.is_empty() {
        return;
    }
    if gone.len() == n.owners.len() {
        tracing::info!(
            kind = n.resource.kind,
            namespace = n.namespace.as_deref().unwrap_or(""),
            name = %n.name,
            "garbage collector: deleting an object whose owners are gone"
        );
        delete(client, n, PropagationPolicy::Background).await;
    } else {
        remove_owner_refs(client, n, &gone).await;
    }
}

/// Whether the owner `o` of `n` is gone (absent, or replaced by another
/// object of the same name), asked of the API server. Owners of kinds this
/// server does not know are taken to exist.
async fn owner_gone(client: &kube::Client, n: &Node, o: &OwnerReference) -> bool {
    let (group, version) = split_api_version(&o.api_version);
    let Some(r) = by_kind(group, version, &o.kind) else {
        return false;
    };
    match api(client, r, n.namespace.as_deref())
        .get_opt(&o.name)
        .await
    {
        Ok(None) => true,
        Ok(Some(obj)) => obj.metadata.uid.as_deref() != Some(o.uid.as_str()),
        Err(e) => {
            tracing::debug!("garbage collector: looking up owner {}: {e}", o.name);
            false
        }
    }
}

async fn delete(client: &kube::Client, n: &Node, policy: PropagationPolicy) {
    let params = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(n.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let api = api(client, n.resource, n.namespace.as_deref());
    match api.delete(&n.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(name = %n.name, "garbage collector: delete failed: {e}"),
    }
}

/// JSON patch ops that remove the listed entries of an array, each checked
/// first (a stale view fails the patch instead of removing the wrong one):
/// `(index, what is at index + test_suffix)`.
fn remove_entries(path: &str, test_suffix: &str, entries: &[(usize, Value)]) -> Value {
    let mut ops = Vec::new();
    for (i, value) in entries.iter().rev() {
        ops.push(json!({"op": "test", "path": format!("{path}/{i}{test_suffix}"), "value": value}));
        ops.push(json!({"op": "remove", "path": format!("{path}/{i}")}));
    }
    Value::Array(ops)
}

async fn patch(client: &kube::Client, n: &Node, ops: Value) -> bool {
    let api = api(client, n.resource, n.namespace.as_deref());
    let patch: Patch<Value> = Patch::Json(match serde_json::from_value(ops) {
        Ok(p) => p,
        Err(_) => return false,
    });
    match api.patch(&n.name, &PatchParams::default(), &patch).await {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 404 => true,
        Err(e) => {
            tracing::debug!(name = %n.name, "garbage collector: patch failed: {e}");
            false
        }
    }
}

async fn remove_owner_refs(client: &kube::Client, n: &Node, uids: &[&str]) -> bool {
    let entries: Vec<(usize, Value)> = n
        .owners
        .iter()
        .enumerate()
        .filter(|(_, o)| uids.contains(&o.uid.as_str()))
        .map(|(i, o)| (i, Value::String(o.uid.clone())))
        .collect();
    if entries.is_empty() {
        return true;
    }
    let ops = remove_entries("/metadata/ownerReferences", "/uid", &entries);
    patch(client, n, ops).await
}

async fn remove_finalizer(client: &kube::Client, n: &Node, finalizer: &str) -> bool {
    let entries: Vec<(usize, Value)> = n
        .finalizers
        .iter()
        .enumerate()
        .filter(|(_, f)| *f == finalizer)
        .map(|(i, f)| (i, Value::String(f.clone())))
        .collect();
    patch(
        client,
        n,
        remove_entries("/metadata/finalizers", "", &entries),
    )
    .await
}
