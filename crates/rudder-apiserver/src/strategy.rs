//! Per-kind behaviour on create and update, kept apart from the generic
//! storage code (Kubernetes' `PrepareForCreate` / `PrepareForUpdate`).
//! Kinds not named here get the generic behaviour.

use rudder_api::Resource;
use serde_json::{Value, json};

/// Fills what the server owns on a new object of this kind.
pub(crate) fn prepare_for_create(r: &Resource, obj: &mut Value) {
    if r.status && r.kind != "Namespace" {
        // Status is written by controllers, never by the creating client.
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    if (r.group, r.kind) == ("", "Namespace") {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Kubernetes labels every namespace with its name (since 1.21).
        let labels = &mut obj["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kubernetes.io/metadata.name"] = Value::String(name);
        if obj["spec"]["finalizers"].is_null() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        obj["status"] = json!({"phase": "Active"});
    }
}

/// Whether objects of this kind carry `metadata.generation`, bumped on
/// every change to their spec.
pub(crate) fn has_generation(obj: &Value) -> bool {
    obj.get("spec").is_some()
}
