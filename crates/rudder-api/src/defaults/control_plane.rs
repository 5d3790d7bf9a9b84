//! Defaults of the kinds the control plane's own clients use: admission
//! policies, API priority and fairness, dynamic resource allocation
//! (kubernetes pkg/apis/{admissionregistration,flowcontrol,resource}/v1
//! defaults.go and zz_generated.defaults.go).

use serde_json::{Map, Value, json};

use super::{obj, set_default};

/// Applies the defaults of `kind`; `false` when it is not one of these.
pub(super) fn apply(group: &str, kind: &str, object: &mut Value) -> bool {
    let spec = object.get_mut("spec").and_then(obj);
    match (group, kind) {
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy",
        ) => {
            if let Some(spec) = spec {
                set_default(spec, "failurePolicy", "Fail".into());
                if let Some(m) = spec.get_mut("matchConstraints").and_then(obj) {
                    match_resources(m);
                }
            }
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding",
        ) => {
            if let Some(m) = spec.and_then(|s| s.get_mut("matchResources")).and_then(obj) {
                match_resources(m);
            }
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => {
            if let Some(spec) = spec
                && spec
                    .get("matchingPrecedence")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    == 0
            {
                spec.insert("matchingPrecedence".into(), 1000.into());
            }
        }
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            let Some(spec) = spec else { return true };
            if let Some(exempt) = spec.get_mut("exempt").and_then(obj) {
                set_default(exempt, "nominalConcurrencyShares", 0.into());
                set_default(exempt, "lendablePercent", 0.into());
            }
            if let Some(limited) = spec.get_mut("limited").and_then(obj) {
                set_default(limited, "nominalConcurrencyShares", 30.into());
                set_default(limited, "lendablePercent", 0.into());
                if let Some(queuing) = limited
                    .get_mut("limitResponse")
                    .and_then(|r| r.get_mut("queuing"))
                    .and_then(obj)
                {
                    for (field, default) in
                        [("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)]
                    {
                        if queuing.get(field).and_then(Value::as_i64).unwrap_or(0) == 0 {
                            queuing.insert(field.into(), default.into());
                        }
                    }
                }
            }
        }
        ("resource.k8s.io", "ResourceClaim") => {
            if let Some(devices) = spec.and_then(|s| s.get_mut("devices")) {
                device_requests(devices);
            }
        }
        ("resource.k8s.io", "ResourceClaimTemplate") => {
            if let Some(devices) = spec
                .and_then(|s| s.get_mut("spec"))
                .and_then(|s| s.get_mut("devices"))
            {
                device_requests(devices);
            }
        }
        ("resource.k8s.io", "ResourceSlice") => {
            let devices = spec
                .and_then(|s| s.get_mut("devices"))
                .and_then(Value::as_array_mut);
            for device in devices.into_iter().flatten() {
                let taints = device.get_mut("taints").and_then(Value::as_array_mut);
                for taint in taints.into_iter().flatten().filter_map(obj) {
                    set_default(taint, "timeAdded", crate::time::rfc3339_now().into());
                }
            }
        }
        _ => return false,
    }
    true
}

/// SetDefaults_MatchResources and SetDefaults_Rule.
fn match_resources(m: &mut Map<String, Value>) {
    set_default(m, "matchPolicy", "Equivalent".into());
    set_default(m, "namespaceSelector", json!({}));
    set_default(m, "objectSelector", json!({}));
    for rules in ["resourceRules", "excludeResourceRules"] {
        let rules = m.get_mut(rules).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten().filter_map(obj) {
            set_default(rule, "scope", "*".into());
        }
    }
}

/// SetDefaults_ExactDeviceRequest and SetDefaults_DeviceSubRequest, and
/// tolerations' `operator: Equal`.
fn device_requests(devices: &mut Value) {
    let requests = devices.get_mut("requests").and_then(Value::as_array_mut);
    for request in requests.into_iter().flatten() {
        if let Some(exactly) = request.get_mut("exactly").and_then(obj) {
            device_request(exactly);
        }
        let subs = request
            .get_mut("firstAvailable")
            .and_then(Value::as_array_mut);
        for sub in subs.into_iter().flatten().filter_map(obj) {
            device_request(sub);
        }
    }
}

fn device_request(r: &mut Map<String, Value>) {
    set_default(r, "allocationMode", "ExactCount".into());
    if r.get("allocationMode") == Some(&Value::from("ExactCount"))
        && r.get("count").and_then(Value::as_i64).unwrap_or(0) == 0
    {
        r.insert("count".into(), 1.into());
    }
    let tolerations = r.get_mut("tolerations").and_then(Value::as_array_mut);
    for t in tolerations.into_iter().flatten().filter_map(obj) {
        set_default(t, "operator", "Equal".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, mut v: Value) -> Value {
        assert!(apply(group, kind, &mut v));
        v
    }

    #[test]
    fn admission_policies_fail_closed_and_match_equivalent_requests() {
        let vap = defaulted(
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy",
            json!({"spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"]}]}}}),
        );
        assert_eq!(
            vap["spec"],
            json!({"failurePolicy": "Fail", "matchConstraints": {
                "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
                "resourceRules": [{"operations": ["CREATE"], "scope": "*"}]}})
        );
        let given = json!({"spec": {"failurePolicy": "Ignore"}});
        let map = defaulted(
            "admissionregistration.k8s.io",
            "MutatingAdmissionPolicy",
            given.clone(),
        );
        assert_eq!(map, given);
    }

    #[test]
    fn flow_control_gets_its_documented_numbers() {
        let fs = defaulted(
            "flowcontrol.apiserver.k8s.io",
            "FlowSchema",
            json!({"spec": {}}),
        );
        assert_eq!(fs["spec"]["matchingPrecedence"], 1000);
        let plc = defaulted(
            "flowcontrol.apiserver.k8s.io",
            "PriorityLevelConfiguration",
            json!({"spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 7}}}}}),
        );
        assert_eq!(
            plc["spec"]["limited"],
            json!({"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {
                "type": "Queue", "queuing": {"queues": 7, "handSize": 8, "queueLengthLimit": 50}}})
        );
        let exempt = defaulted(
            "flowcontrol.apiserver.k8s.io",
            "PriorityLevelConfiguration",
            json!({"spec": {"type": "Exempt", "exempt": {}}}),
        );
        assert_eq!(
            exempt["spec"]["exempt"],
            json!({"nominalConcurrencyShares": 0, "lendablePercent": 0})
        );
    }

    #[test]
    fn device_requests_ask_for_exactly_one_device() {
        let claim = defaulted(
            "resource.k8s.io",
            "ResourceClaim",
            json!({"spec": {"devices": {"requests": [
                {"name": "a", "exactly": {"deviceClassName": "c", "tolerations": [{"key": "k"}]}},
                {"name": "b", "exactly": {"deviceClassName": "c", "allocationMode": "All"}},
                {"name": "c", "firstAvailable": [{"name": "x", "deviceClassName": "c"}]}]}}}),
        );
        let r = &claim["spec"]["devices"]["requests"];
        assert_eq!(r[0]["exactly"]["allocationMode"], "ExactCount");
        assert_eq!(r[0]["exactly"]["count"], 1);
        assert_eq!(r[0]["exactly"]["tolerations"][0]["operator"], "Equal");
        assert!(r[1]["exactly"].get("count").is_none(), "All takes no count");
        assert_eq!(r[2]["firstAvailable"][0]["count"], 1);
    }
}
