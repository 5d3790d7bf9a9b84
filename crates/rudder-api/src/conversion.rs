//! Conversion between the versions a resource is served in: an object is
//! stored in the version it was written in and converted when read in
//! another (Kubernetes converts through an internal version; with two
//! versions a direct conversion is the same thing).
//!
//! - `autoscaling/v1` ↔ `autoscaling/v2` HorizontalPodAutoscaler: v1 has
//!   one CPU utilization target; other v2 metrics do not survive in v1.
//! - core `v1` ↔ `events.k8s.io/v1` Event: the same object, renamed
//!   fields (`involvedObject` ↔ `regarding`, `message` ↔ `note`, …).

use serde_json::{Map, Value, json};

/// Converts `obj` to `api_version` in place, if it is in another version
/// of the same resource. Objects of other kinds are left alone.
pub fn convert(obj: &mut Value, api_version: &str) {
    let from = obj["apiVersion"].as_str().unwrap_or("").to_string();
    if from == api_version {
        return;
    }
    match (obj["kind"].as_str(), from.as_str(), api_version) {
        (Some("HorizontalPodAutoscaler"), "autoscaling/v2", "autoscaling/v1") => hpa_v2_to_v1(obj),
        (Some("HorizontalPodAutoscaler"), "autoscaling/v1", "autoscaling/v2") => hpa_v1_to_v2(obj),
        (Some("Event"), "v1", "events.k8s.io/v1") => event_core_to_events(obj),
        (Some("Event"), "events.k8s.io/v1", "v1") => event_events_to_core(obj),
        _ => return,
    }
    obj["apiVersion"] = Value::String(api_version.into());
}

fn take(obj: &mut Value, field: &str) -> Option<Value> {
    obj.as_object_mut()?.remove(field).filter(|v| !v.is_null())
}

fn put(obj: &mut Value, field: &str, value: Option<Value>) {
    if let (Some(map), Some(value)) = (obj.as_object_mut(), value) {
        map.insert(field.into(), value);
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource" && m["resource"]["name"] == "cpu"
}

fn hpa_v2_to_v1(obj: &mut Value) {
    let spec = &mut obj["spec"];
    let metrics = take(spec, "metrics").unwrap_or(Value::Null);
    let cpu = metrics
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| is_cpu_utilization(m))
        .and_then(|m| m["resource"]["target"]["averageUtilization"].as_i64());
    put(spec, "targetCPUUtilizationPercentage", cpu.map(Value::from));
    take(spec, "behavior");
    let status = &mut obj["status"];
    if status.is_object() {
        let current = take(status, "currentMetrics").unwrap_or(Value::Null);
        let cpu = current
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| is_cpu_utilization(m))
            .and_then(|m| m["resource"]["current"]["averageUtilization"].as_i64());
        put(
            status,
            "currentCPUUtilizationPercentage",
            cpu.map(Value::from),
        );
        take(status, "conditions");
    }
}

fn hpa_v1_to_v2(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if let Some(cpu) = take(spec, "targetCPUUtilizationPercentage") {
        put(
            spec,
            "metrics",
            Some(
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]),
            ),
        );
    }
    let status = &mut obj["status"];
    if status.is_object()
        && let Some(cpu) = take(status, "currentCPUUtilizationPercentage")
    {
        put(
            status,
            "currentMetrics",
            Some(
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
            ),
        );
    }
}

/// (core v1 field, events.k8s.io/v1 field)
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("source", "deprecatedSource"),
];

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let mut moved = Map::new();
    for (from, to) in pairs {
        if let Some(v) = map.remove(from) {
            moved.insert(to.into(), v);
        }
    }
    map.extend(moved);
}

fn event_core_to_events(obj: &mut Value) {
    rename(obj, EVENT_FIELDS.iter().copied());
}

fn event_events_to_core(obj: &mut Value) {
    rename(
        obj,
        EVENT_FIELDS.iter().map(|(core, events)| (*events, *core)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_its_cpu_target() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}
        });
        let mut v2 = v1.clone();
        convert(&mut v2, "autoscaling/v2");
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            20
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
        let mut back = v2;
        convert(&mut back, "autoscaling/v1");
        assert_eq!(back, v1);
    }

    #[test]
    fn events_rename_their_fields_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "Started",
            "type": "Normal", "count": 2, "source": {"component": "kubelet"}, "reportingComponent": "kubelet"
        });
        let mut new = core.clone();
        convert(&mut new, "events.k8s.io/v1");
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["note"], "hi");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(new["reportingController"], "kubelet");
        convert(&mut new, "v1");
        assert_eq!(new, core);
        let mut other = json!({"apiVersion": "v1", "kind": "Pod"});
        convert(&mut other, "apps/v1");
        assert_eq!(other["apiVersion"], "v1");
    }
}
