//! Per-kind behaviour on create and update, kept apart from the generic
//! storage code (Kubernetes' `PrepareForCreate` / `PrepareForUpdate`).
//! Kinds not named here get the generic behaviour.

use rudder_api::{Resource, StatusError};

use crate::services::{self, ServiceRanges};
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
    rudder_api::defaults::apply(r.group, r.kind, obj);
    if (r.group, r.kind) == ("", "Pod") {
        rudder_api::defaults::pod_admission(obj);
    }
}

/// Whether objects of this kind carry `metadata.generation`, bumped on
/// every change to their spec (the kinds whose Kubernetes strategy sets it).
pub(crate) fn has_generation(r: &Resource) -> bool {
    matches!(
        (r.group, r.kind),
        (
            "apps",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("", "ReplicationController")
            | ("batch", "Job" | "CronJob")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("policy", "PodDisruptionBudget")
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
    )
}

fn is_service(r: &Resource) -> bool {
    (r.group, r.kind) == ("", "Service")
}

/// Namespaces are deleted in steps (Terminating, contents, then itself).
pub(crate) fn is_namespace(r: &Resource) -> bool {
    (r.group, r.kind) == ("", "Namespace")
}

/// Pods have the binding and eviction subresources.
pub(crate) fn is_pod(r: &Resource) -> bool {
    (r.group, r.kind) == ("", "Pod")
}

/// Draws what a new object needs from shared ranges (a Service's cluster IP
/// and node ports); called again with a fresh copy after a collision.
pub(crate) fn allocate(
    r: &Resource,
    ranges: &ServiceRanges,
    obj: &mut Value,
) -> Result<(), StatusError> {
    if is_service(r) {
        services::prepare_create(r, ranges, obj)
    } else {
        Ok(())
    }
}

/// Keeps, checks or draws allocations on an update.
pub(crate) fn reallocate(
    r: &Resource,
    ranges: &ServiceRanges,
    old: &Value,
    new: &mut Value,
) -> Result<(), StatusError> {
    if is_service(r) {
        services::prepare_update(r, ranges, old, new)
    } else {
        Ok(())
    }
}

/// The reservation keys an object holds in the store.
pub(crate) fn reservations(r: &Resource, obj: &Value) -> Vec<String> {
    if is_service(r) {
        services::reservations(obj)
    } else {
        Vec::new()
    }
}

/// Seconds a deletion waits for the object's owner to shut it down: for a
/// pod on a node, its termination grace period (or the one the delete asks
/// for); 0 for everything else (Kubernetes' CheckGracefulDelete).
pub(crate) fn grace_period(r: &Resource, obj: &Value, options: &Value) -> i64 {
    if (r.group, r.kind) != ("", "Pod") {
        return 0;
    }
    let unscheduled = obj["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        return 0;
    }
    let default = obj["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    options["gracePeriodSeconds"]
        .as_i64()
        .unwrap_or(default)
        .max(0)
}

/// Refuses objects whose structure the server relies on is wrong: the
/// top-level sections must be objects, a Service's ports a list of objects.
/// (Full schema validation comes with the typed kinds.)
pub(crate) fn check_shape(r: &Resource, obj: &Value) -> Result<(), StatusError> {
    for field in ["metadata", "spec", "status"] {
        if let Some(v) = obj.get(field)
            && !v.is_object()
            && !v.is_null()
        {
            return Err(StatusError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {field} must be an object",
                r.kind, r.version, r.kind
            )));
        }
    }
    if is_service(r)
        && let Some(ports) = obj["spec"].get("ports").filter(|p| !p.is_null())
        && !ports
            .as_array()
            .is_some_and(|ps| ps.iter().all(Value::is_object))
    {
        return Err(StatusError::bad_request(
            "spec.ports must be a list of objects",
        ));
    }
    Ok(())
}
