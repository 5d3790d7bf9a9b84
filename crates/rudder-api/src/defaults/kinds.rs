//! Defaults of the kinds beyond the workloads: storage, endpoints,
//! policies, RBAC, autoscaling (kubernetes pkg/apis/*/v1*/defaults.go).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{each, obj, pod_spec, set_default};

/// Applies the defaults of `kind`; `false` when it is not one of these.
pub(super) fn apply(group: &str, kind: &str, version: &str, object: &mut Value) -> bool {
    match (group, kind) {
        ("", "PersistentVolume") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "persistentVolumeReclaimPolicy", "Retain".into());
                set_default(spec, "volumeMode", "Filesystem".into());
                if let Some(h) = spec.get_mut("hostPath").and_then(obj) {
                    set_default(h, "type", "".into());
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "volumeMode", "Filesystem".into());
            }
        }
        ("", "Endpoints") => {
            for subset in each(object.get_mut("subsets")) {
                for port in each(subset.get_mut("ports")).filter_map(obj) {
                    set_default(port, "protocol", "TCP".into());
                }
            }
        }
        ("", "LimitRange") => {
            let limits = object.get_mut("spec").and_then(|s| s.get_mut("limits"));
            for item in each(limits).filter_map(obj) {
                limit_range_item(item);
            }
        }
        ("", "PodTemplate") => {
            if let Some(spec) = object.get_mut("template").and_then(|t| t.get_mut("spec")) {
                pod_spec(spec);
            }
        }
        ("", "Secret") => {
            if let Some(o) = obj(object) {
                set_default(o, "type", "Opaque".into());
                string_data(o);
            }
        }
        ("", "Node") => {
            if let Some(o) = obj(object) {
                set_default(o, "spec", json!({}));
            }
            // SetDefaults_NodeStatus: what is not allocatable is what is there.
            if let Some(status) = object.get_mut("status").and_then(obj)
                && let Some(capacity) = status.get("capacity").cloned()
            {
                set_default(status, "allocatable", capacity);
            }
        }
        ("", "Event") => {
            if let Some(o) = obj(object) {
                set_default(o, "source", json!({}));
                set_default(o, "reportingComponent", "".into());
                set_default(o, "reportingInstance", "".into());
            }
        }
        ("events.k8s.io", "Event") => {
            if let Some(o) = obj(object) {
                set_default(o, "deprecatedSource", json!({}));
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "minReplicas", 1.into());
                if version == "v1" {
                    set_default(spec, "targetCPUUtilizationPercentage", 80.into());
                } else {
                    hpa_v2(spec);
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                network_policy(spec);
            }
        }
        ("networking.k8s.io", "IngressClass") => {
            if let Some(p) = object
                .get_mut("spec")
                .and_then(|s| s.get_mut("parameters"))
                .and_then(obj)
            {
                set_default(p, "scope", "Cluster".into());
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(r) = object.get_mut("roleRef").and_then(obj)
                && r.get("apiGroup")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                r.insert("apiGroup".into(), RBAC.into());
            }
            for subject in each(object.get_mut("subjects")).filter_map(obj) {
                // A ServiceAccount's group is the core one, written as none.
                let person = matches!(
                    subject.get("kind").and_then(Value::as_str),
                    Some("User" | "Group")
                );
                if person
                    && subject
                        .get("apiGroup")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    subject.insert("apiGroup".into(), RBAC.into());
                }
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Some(o) = obj(object) {
                set_default(o, "reclaimPolicy", "Delete".into());
                set_default(o, "volumeBindingMode", "Immediate".into());
            }
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "attachRequired", true.into());
                set_default(spec, "podInfoOnMount", false.into());
                set_default(spec, "storageCapacity", false.into());
                set_default(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType".into());
                set_default(spec, "volumeLifecycleModes", json!(["Persistent"]));
                set_default(spec, "requiresRepublish", false.into());
                set_default(spec, "seLinuxMount", false.into());
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in each(object.get_mut("ports")).filter_map(obj) {
                set_default(port, "name", "".into());
                set_default(port, "protocol", "TCP".into());
            }
            for endpoint in each(object.get_mut("endpoints")).filter_map(obj) {
                set_default(endpoint, "conditions", json!({}));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(o) = obj(object) {
                set_default(o, "preemptionPolicy", "PreemptLowerPriority".into());
            }
        }
        _ => return false,
    }
    true
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// SetDefaults_LimitRangeItem: a container's default limit is the max, its
/// default request the default limit, else the min.
fn limit_range_item(item: &mut Map<String, Value>) {
    if item.get("type") != Some(&Value::from("Container")) {
        return;
    }
    let list = |item: &Map<String, Value>, key: &str| -> Map<String, Value> {
        item.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut default = list(item, "default");
    for (k, v) in list(item, "max") {
        default.entry(k).or_insert(v);
    }
    let mut request = list(item, "defaultRequest");
    for (k, v) in default.iter().chain(list(item, "min").iter()) {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (key, map) in [("default", default), ("defaultRequest", request)] {
        if !map.is_empty() {
            item.insert(key.into(), Value::Object(map));
        }
    }
}

/// A Secret's `stringData` is written into `data`, base64-encoded (it wins
/// over a `data` key of the same name), and is not stored itself.
fn string_data(secret: &mut Map<String, Value>) {
    let Some(Value::Object(strings)) = secret.remove("stringData") else {
        return;
    };
    set_default(secret, "data", json!({}));
    if let Some(data) = secret.get_mut("data").and_then(obj) {
        for (k, v) in strings {
            let text = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, encoded.into());
        }
    }
}

/// autoscaling/v2's SetDefaults_HorizontalPodAutoscaler: 80% CPU when no
/// metric is given, and a given behavior filled in with the default rules.
fn hpa_v2(spec: &mut Map<String, Value>) {
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    let Some(behavior) = spec.get_mut("behavior").and_then(obj) else {
        return;
    };
    let rules = [
        (
            "scaleUp",
            Some(0),
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            None,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (direction, window, policies) in rules {
        set_default(behavior, direction, json!({}));
        let Some(r) = behavior.get_mut(direction).and_then(obj) else {
            continue;
        };
        if let Some(window) = window {
            set_default(r, "stabilizationWindowSeconds", window.into());
        }
        set_default(r, "selectPolicy", "Max".into());
        if r.get("policies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            r.insert("policies".into(), policies);
        }
    }
}

/// SetDefaults_NetworkPolicy and SetDefaults_NetworkPolicyPort.
fn network_policy(spec: &mut Map<String, Value>) {
    for direction in ["ingress", "egress"] {
        for rule in each(spec.get_mut(direction)) {
            for port in each(rule.get_mut("ports")).filter_map(obj) {
                set_default(port, "protocol", "TCP".into());
            }
        }
    }
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let mut types = vec![Value::from("Ingress")];
        if spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty())
        {
            types.push("Egress".into());
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_ranges_default_limits_from_max_and_requests_from_limits_or_min() {
        let mut lr = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}});
        assert!(apply("", "LimitRange", "v1", &mut lr));
        assert_eq!(
            lr["spec"]["limits"][0],
            json!({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
                   "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "64Mi"}})
        );
        assert_eq!(
            lr["spec"]["limits"][1],
            json!({"type": "Pod", "max": {"cpu": "4"}})
        );
    }

    #[test]
    fn secrets_store_string_data_as_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hi", "c": "yo"}});
        assert!(apply("", "Secret", "v1", &mut s));
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"a": "eA==", "b": "aGk=", "c": "eW8="}})
        );
    }

    #[test]
    fn bindings_policies_and_autoscalers_get_their_defaults() {
        let mut rb = json!({"roleRef": {"kind": "Role", "name": "r"},
                            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]});
        assert!(apply(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "v1",
            &mut rb
        ));
        assert_eq!(rb["roleRef"]["apiGroup"], RBAC);
        assert_eq!(rb["subjects"][0]["apiGroup"], RBAC);
        assert!(rb["subjects"][1].get("apiGroup").is_none());

        let mut np = json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}});
        assert!(apply("networking.k8s.io", "NetworkPolicy", "v1", &mut np));
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

        let mut hpa = json!({"spec": {"maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        assert!(apply(
            "autoscaling",
            "HorizontalPodAutoscaler",
            "v2",
            &mut hpa
        ));
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let b = &hpa["spec"]["behavior"];
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(b["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(b["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(
            b["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
    }
}
