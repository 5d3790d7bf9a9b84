//! Shared informers: one watch per kind per process, whatever the number
//! of controllers reading it (client-go's `SharedInformerFactory`). Each
//! kind's objects are kept once, in a kube-runtime reflector store, and
//! every subscriber gets every change, deletions included, to drive its
//! `Controller` (`for_stream`, `owns_stream`, `watches_stream`).
//!
//! Everything is registered first ([`Informers::store`],
//! [`Informers::subscribe`]), then [`Informers::run`] starts the watches;
//! [`Informers::synced`] resolves once every store holds its first list,
//! so that no controller decides from an empty cache.
//!
//! kube-runtime's own shared reflector (`store_shared`) is not used: it
//! does not pass deletions on, and an owner must hear of its child's.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// What a kind needs to be shared.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One kind's informer before it runs: its store's writer and its
/// subscribers.
struct Shared<K: Kind> {
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<K>>,
}

/// A kind's informer, type-erased: its watch, once started.
type Start = Box<dyn FnOnce(&mut Registry) -> Task + Send>;

#[derive(Default)]
struct Registry {
    kinds: HashMap<TypeId, Box<dyn Any + Send>>,
    starts: Vec<Start>,
    ready: Vec<Task>,
}

/// The process's informers, by kind.
pub struct Informers {
    client: kube::Client,
    registry: Mutex<Registry>,
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = self.registry.lock().map(|r| r.kinds.len()).unwrap_or(0);
        f.debug_struct("Informers").field("kinds", &kinds).finish()
    }
}

impl Informers {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            registry: Mutex::new(Registry::default()),
        }
    }

    /// The API client the informers watch with.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Registers `K` (once) and runs `f` on its informer.
    fn with<K: Kind, T>(&self, f: impl FnOnce(&mut Shared<K>) -> T) -> T {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let id = TypeId::of::<K>();
        if !registry.kinds.contains_key(&id) {
            let writer = Writer::<K>::default();
            let reader = writer.as_reader();
            registry.ready.push(Box::pin(async move {
                // Err only if the writer is dropped: nothing to wait for.
                let _ = reader.wait_until_ready().await;
            }));
            registry.kinds.insert(
                id,
                Box::new(Shared::<K> {
                    writer,
                    subscribers: Vec::new(),
                }),
            );
            let client = self.client.clone();
            registry
                .starts
                .push(Box::new(move |registry: &mut Registry| -> Task {
                    let shared = registry
                        .kinds
                        .remove(&TypeId::of::<K>())
                        .and_then(|s| s.downcast::<Shared<K>>().ok());
                    match shared {
                        Some(shared) => Box::pin(watch(client, *shared)),
                        None => Box::pin(std::future::ready(())),
                    }
                }));
        }
        let shared = registry
            .kinds
            .get_mut(&id)
            .and_then(|s| s.downcast_mut::<Shared<K>>())
            .expect("the informer of K is registered under K's TypeId");
        f(shared)
    }

    /// The store of every `K` in the cluster.
    pub fn store<K: Kind>(&self) -> Store<K> {
        self.with::<K, _>(|s| s.writer.as_reader())
    }

    /// Every change to a `K` (the object as it is, or as it was when
    /// deleted; after a relist, every object), for a controller to be
    /// woken by.
    pub fn subscribe<K: Kind>(
        &self,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        self.with::<K, _>(|s| s.subscribers.push(tx));
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|k| (Ok(k), rx)) },
        )
    }

    /// Resolves once every store registered so far holds its first list.
    pub fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let ready = std::mem::take(
            &mut self
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ready,
        );
        async move {
            futures_util::future::join_all(ready).await;
        }
    }

    /// Starts every registered kind's watch; runs until the process ends.
    /// Kinds registered after this are not watched.
    pub async fn run(&self) {
        let tasks: Vec<Task> = {
            let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            let starts = std::mem::take(&mut registry.starts);
            starts.into_iter().map(|s| s(&mut registry)).collect()
        };
        futures_util::future::join_all(tasks).await;
    }
}

/// One kind's watch: each event goes into the store, then to every
/// subscriber (a relist sends every object once it is complete).
async fn watch<K: Kind>(client: kube::Client, shared: Shared<K>) {
    let Shared {
        mut writer,
        mut subscribers,
    } = shared;
    let reader = writer.as_reader();
    let api: Api<K> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let send = |o: &K, subscribers: &mut Vec<mpsc::UnboundedSender<K>>| {
        subscribers.retain(|s| s.send(o.clone()).is_ok());
    };
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        writer.apply_watcher_event(&event);
        match &event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => send(o, &mut subscribers),
            watcher::Event::InitDone => {
                let all: Vec<Arc<K>> = reader.state();
                for o in all {
                    send(&o, &mut subscribers);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}
