//! Events about pods, as the kubelet records them (source `kubelet`,
//! `involvedObject.fieldPath` naming the container), so that
//! `kubectl describe pod` tells what happened. Repeats of the same event
//! raise its `count` instead of adding another, as client-go's
//! correlator does.

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
pub(crate) struct Recorder {
    client: kube::Client,
    node: String,
    /// Each event's name and count.
    seen: Arc<Mutex<HashMap<Key, (String, i32)>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("node", &self.node)
            .finish()
    }
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Normal,
    Warning,
}

impl Recorder {
    pub(crate) fn new(client: kube::Client, node: String) -> Self {
        Self {
            client,
            node,
            seen: Arc::default(),
        }
    }

    /// Records an event about the node (its Ready transitions).
    pub(crate) fn record_node(&self, node: &str, reason: &str, message: String) {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let now = rudder_api::time::rfc3339_now();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let event = serde_json::from_value::<Event>(json!({
            "metadata": {"name": format!("{node}.{nanos:x}"), "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"},
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }));
        tokio::spawn(async move {
            if let Ok(event) = event
                && let Err(e) = events.create(&PostParams::default(), &event).await
            {
                tracing::debug!("recording a node event: {e}");
            }
        });
    }

    /// Records an event about `pod` (about one of its containers if
    /// `container` is `spec.containers{name}`-style field path) without
    /// waiting for the API.
    pub(crate) fn record(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let meta = &pod.metadata;
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let uid = meta.uid.clone().unwrap_or_default();
        let key = (
            uid.clone(),
            field_path.clone().unwrap_or_default(),
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
            let entry = seen.entry(key).or_insert_with(|| {
                let pod = meta.name.as_deref().unwrap_or_default();
                (format!("{pod}.{nanos:x}"), 0)
            });
            entry.1 += 1;
            entry.clone()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = rudder_api::time::rfc3339_now();
        let event_type = match kind {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        };
        let mut involved = json!({
            "kind": "Pod", "apiVersion": "v1", "namespace": ns,
            "name": meta.name, "uid": uid, "resourceVersion": meta.resource_version,
        });
        if let Some(path) = &field_path {
            involved["fieldPath"] = json!(path);
        }
        let event = serde_json::from_value::<Event>(json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }));
        tokio::spawn(async move {
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
