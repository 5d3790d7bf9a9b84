//! Events, as Kubernetes components record them (`source.component`
//! naming the kubelet or the scheduler, `involvedObject.fieldPath` naming a
//! container), so that `kubectl describe` tells what happened. Repeats of
//! the same event raise its `count` instead of adding another, as
//! client-go's correlator does. Writes never block the caller: they run
//! in the background, a bounded number at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How many distinct events are remembered for counting repeats.
const REMEMBERED: usize = 4096;

/// (pod uid, fieldPath, reason, message).
type Key = (String, String, String, String);

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    /// `source.component` and `reportingComponent`: `kubelet`, `default-scheduler`.
    component: &'static str,
    /// `source.host` and `reportingInstance`: the node (for the kubelet) or
    /// the host the component runs on.
    host: String,
    /// Each event's name and count.
    seen: Arc<Mutex<HashMap<Key, (String, i32)>>>,
    /// Bounds the API writes in flight.
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .field("host", &self.host)
            .finish()
    }
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

impl Recorder {
    /// A recorder for `component` running on `host`, writing at most
    /// `slots` events at once.
    pub fn new(
        client: kube::Client,
        component: &'static str,
        host: String,
        slots: Arc<tokio::sync::Semaphore>,
    ) -> Self {
        Self {
            client,
            component,
            host,
            seen: Arc::default(),
            slots,
        }
    }

    /// Records an event about the node (its Ready transitions).
    pub fn record_node(&self, node: &str, reason: &str, message: String) {
        let involved = json!({"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"});
        self.emit("default", involved, node, Kind::Normal, reason, message);
    }

    /// Records an event about any object (a controller's about its
    /// ReplicaSet, Deployment, Job, …).
    pub fn record_object(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
        let involved = serde_json::to_value(object).unwrap_or_default();
        let name = object.name.as_deref().unwrap_or_default();
        self.emit(&ns, involved, name, kind, reason, message);
    }

    /// Records an event about `pod` (about one of its containers if
    /// `field_path` is `spec.containers{name}`) without waiting for the API.
    pub fn record(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let meta = &pod.metadata;
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let mut involved = json!({
            "kind": "Pod", "apiVersion": "v1", "namespace": ns,
            "name": meta.name, "uid": meta.uid, "resourceVersion": meta.resource_version,
        });
        if let Some(path) = &field_path {
            involved["fieldPath"] = json!(path);
        }
        let name = meta.name.as_deref().unwrap_or_default();
        self.emit(&ns, involved, name, kind, reason, message);
    }

    /// Creates the event, or counts a repeat of one already made.
    fn emit(
        &self,
        ns: &str,
        involved: serde_json::Value,
        name_prefix: &str,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let key = (
            involved["uid"].as_str().unwrap_or_default().to_string(),
            involved["fieldPath"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            reason.to_string(),
            message.clone(),
        );
        let (name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > REMEMBERED {
                seen.clear();
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let entry = seen
                .entry(key)
                .or_insert_with(|| (format!("{name_prefix}.{nanos:x}"), 0));
            entry.1 += 1;
            entry.clone()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let now = rudder_api::time::rfc3339_now();
        let event_type = match kind {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        };
        let event = serde_json::from_value::<Event>(json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }));
        let slots = Arc::clone(&self.slots);
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = match event {
                Ok(event) if count == 1 => events
                    .create(&PostParams::default(), &event)
                    .await
                    .map(drop),
                Ok(_) => events
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"count": count, "lastTimestamp": now})),
                    )
                    .await
                    .map(drop),
                Err(e) => Err(kube::Error::SerdeError(e)),
            };
            if let Err(e) = result {
                tracing::debug!("recording an event: {e}");
            }
        });
    }
}
