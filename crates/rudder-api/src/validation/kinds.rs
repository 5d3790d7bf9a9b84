//! What the API server checks in the spec of the kinds served for the
//! control plane's own clients, with Kubernetes' messages
//! (pkg/apis/{certificates,networking,storage,admissionregistration,
//! flowcontrol,coordination,resource}/validation): the required fields and
//! enumerations a user meets first. Objects are checked after defaulting.

use serde_json::Value;

use crate::status::Cause;

/// The spec problems of `object` (empty: valid).
pub fn validate_spec(group: &str, kind: &str, object: &Value) -> Vec<Cause> {
    let mut c = Checker::default();
    let spec = &object["spec"];
    match (group, kind) {
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            c.required(spec, "request", "spec.request");
            c.required(spec, "signerName", "spec.signerName");
            if empty(&spec["usages"]) {
                c.push(Cause::required("spec.usages", ""));
            }
            if let Some(s) = spec["expirationSeconds"].as_i64()
                && s < 600
            {
                c.push(Cause::invalid(
                    "spec.expirationSeconds",
                    &s.to_string(),
                    "may not specify a duration less than 600 seconds (10 minutes)",
                ));
            }
        }
        ("networking.k8s.io", "IPAddress") => {
            let parent = &spec["parentRef"];
            if parent.is_object() {
                c.required(parent, "resource", "spec.parentRef.resource");
                c.required(parent, "name", "spec.parentRef.name");
            } else {
                c.push(Cause::required("spec.parentRef", ""));
            }
        }
        ("networking.k8s.io", "ServiceCIDR") => {
            let cidrs = spec["cidrs"].as_array().map_or(&[][..], Vec::as_slice);
            if cidrs.is_empty() {
                c.push(Cause::required("spec.cidrs", "at least one CIDR required"));
            } else if cidrs.len() > 2 {
                c.push(Cause::invalid(
                    "spec.cidrs",
                    &spec["cidrs"].to_string(),
                    "may only hold up to 2 values",
                ));
            }
            for (i, cidr) in cidrs.iter().enumerate() {
                let text = cidr.as_str().unwrap_or_default();
                if !is_cidr(text) {
                    c.push(Cause::invalid(
                        &format!("spec.cidrs[{i}]"),
                        &quote(text),
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    ));
                }
            }
        }
        ("storage.k8s.io", "VolumeAttributesClass") => {
            c.required(object, "driverName", "driverName");
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            c.policy(spec);
            let validations = spec["validations"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            if validations.is_empty() && empty(&spec["auditAnnotations"]) {
                let why = "validations or auditAnnotations must contain at least one item";
                c.push(Cause::required("spec.validations", why));
                c.push(Cause::required("spec.auditAnnotations", why));
            }
            for (i, v) in validations.iter().enumerate() {
                if v["expression"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(
                        &format!("spec.validations[{i}].expression"),
                        "expression is not specified",
                    ));
                }
            }
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            c.required(spec, "policyName", "spec.policyName");
            let actions = spec["validationActions"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            if actions.is_empty() {
                c.push(Cause::required(
                    "spec.validationActions",
                    "at least one validation action is required",
                ));
            }
            for (i, a) in actions.iter().enumerate() {
                c.supported(
                    a,
                    &format!("spec.validationActions[{i}]"),
                    &["Audit", "Deny", "Warn"],
                );
            }
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => {
            c.policy(spec);
            let mutations = spec["mutations"].as_array().map_or(&[][..], Vec::as_slice);
            if mutations.is_empty() {
                c.push(Cause::required(
                    "spec.mutations",
                    "mutations must contain at least one item",
                ));
            }
            for (i, m) in mutations.iter().enumerate() {
                let field = format!("spec.mutations[{i}].patchType");
                if m["patchType"].is_null() {
                    c.push(Cause::required(&field, ""));
                } else {
                    c.supported(
                        &m["patchType"],
                        &field,
                        &["ApplyConfiguration", "JSONPatch"],
                    );
                }
            }
            c.one_of(
                spec,
                "reinvocationPolicy",
                "spec.reinvocationPolicy",
                &["Never", "IfNeeded"],
            );
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => {
            c.required(spec, "policyName", "spec.policyName");
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => {
            if spec["priorityLevelConfiguration"]["name"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                c.push(Cause::required(
                    "spec.priorityLevelConfiguration.name",
                    "must reference a priority level",
                ));
            }
            match spec["matchingPrecedence"].as_i64() {
                Some(p) if p <= 0 => c.push(Cause::invalid(
                    "spec.matchingPrecedence",
                    &p.to_string(),
                    "must be a positive value",
                )),
                Some(p) if p > 10000 => c.push(Cause::invalid(
                    "spec.matchingPrecedence",
                    &p.to_string(),
                    "must not be greater than 10000",
                )),
                _ => {}
            }
            if spec["distinguisherMethod"].is_object() {
                c.supported(
                    &spec["distinguisherMethod"]["type"],
                    "spec.distinguisherMethod.type",
                    &["ByNamespace", "ByUser"],
                );
            }
        }
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            priority_level(&mut c, object);
        }
        ("coordination.k8s.io", "LeaseCandidate") => {
            c.required(spec, "leaseName", "spec.leaseName");
            c.required(spec, "binaryVersion", "spec.binaryVersion");
            c.required(spec, "strategy", "spec.strategy");
        }
        ("resource.k8s.io", "ResourceClaim") => {
            device_claim(&mut c, &spec["devices"], "spec.devices")
        }
        ("resource.k8s.io", "ResourceClaimTemplate") => {
            device_claim(&mut c, &spec["spec"]["devices"], "spec.spec.devices");
        }
        ("resource.k8s.io", "ResourceSlice") => {
            c.required(spec, "driver", "spec.driver");
            c.required(&spec["pool"], "name", "spec.pool.name");
            if spec["pool"]["resourceSliceCount"].as_i64().unwrap_or(0) <= 0 {
                c.push(Cause::invalid(
                    "spec.pool.resourceSliceCount",
                    &spec["pool"]["resourceSliceCount"]
                        .as_i64()
                        .unwrap_or(0)
                        .to_string(),
                    "must be greater than zero",
                ));
            }
            let set = [
                "nodeName",
                "nodeSelector",
                "allNodes",
                "perDeviceNodeSelection",
            ]
            .iter()
            .filter(|k| {
                let v = &spec[**k];
                !(v.is_null() || v == false || v == "")
            })
            .count();
            if set != 1 {
                let why = if set == 0 {
                    ""
                } else {
                    ", but multiple fields are set"
                };
                c.push(Cause::required(
                    "spec",
                    &format!(
                        "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required{why}"
                    ),
                ));
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("", "ReplicationController") => workload(&mut c, kind, spec),
        ("batch", "CronJob") => cron_job(&mut c, object),
        ("batch", "Job") => job_spec(&mut c, spec, "spec"),
        _ => {}
    }
    c.0
}

/// What an update may not change (`ValidateXUpdate`): a workload's
/// selector, a Job's template, most of a StatefulSet's spec.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut c = Checker::default();
    let (was, is) = (&old["spec"], &new["spec"]);
    let immutable = |c: &mut Checker, field: &str| {
        if was[field] != is[field] {
            c.push(Cause::invalid(
                &format!("spec.{field}"),
                &is[field].to_string(),
                "field is immutable",
            ));
        }
    };
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => immutable(&mut c, "selector"),
        ("apps", "StatefulSet") => {
            const MUTABLE: &[&str] = &[
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let others = |spec: &Value| -> serde_json::Map<String, Value> {
                spec.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| !MUTABLE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            if others(was) != others(is) {
                c.push(Cause::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("batch", "Job") => {
            immutable(&mut c, "selector");
            immutable(&mut c, "completions");
            // The template may change only while the Job is suspended.
            if is["suspend"] != true {
                immutable(&mut c, "template");
            }
        }
        _ => {}
    }
    c.0
}

/// A CronJob's schedule, time zone, policies and Job template (kube's
/// `ValidateCronJobCreate`).
fn cron_job(c: &mut Checker, object: &Value) {
    let spec = &object["spec"];
    if let Some(name) = object["metadata"]["name"].as_str()
        && name.len() > 52
    {
        c.push(Cause::invalid(
            "metadata.name",
            &Value::from(name).to_string(),
            "must be no more than 52 characters",
        ));
    }
    match spec["schedule"].as_str() {
        None | Some("") => c.push(Cause::required("spec.schedule", "")),
        Some(schedule) => {
            if let Err(e) = crate::cron::parse(schedule) {
                c.push(Cause::invalid(
                    "spec.schedule",
                    &Value::from(schedule).to_string(),
                    &e,
                ));
            } else if schedule.contains("TZ") {
                c.push(Cause::invalid(
                    "spec.schedule",
                    &Value::from(schedule).to_string(),
                    crate::cron::TZ_IN_SCHEDULE,
                ));
            }
        }
    }
    if let Some(zone) = spec["timeZone"].as_str()
        && let Err(e) = crate::cron::Zone::load(zone)
    {
        c.push(Cause::invalid(
            "spec.timeZone",
            &Value::from(zone).to_string(),
            &e,
        ));
    }
    c.one_of(
        spec,
        "concurrencyPolicy",
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
    );
    c.non_negative(
        spec,
        "startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
    );
    c.non_negative(
        spec,
        "successfulJobsHistoryLimit",
        "spec.successfulJobsHistoryLimit",
    );
    c.non_negative(
        spec,
        "failedJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
    );
    job_spec(c, &spec["jobTemplate"]["spec"], "spec.jobTemplate.spec");
}

/// A Job's spec at `path`: counts not negative, its pods OnFailure or
/// Never.
fn job_spec(c: &mut Checker, spec: &Value, path: &str) {
    c.non_negative(spec, "parallelism", &format!("{path}.parallelism"));
    c.non_negative(spec, "completions", &format!("{path}.completions"));
    c.non_negative(spec, "backoffLimit", &format!("{path}.backoffLimit"));
    let policy = &spec["template"]["spec"]["restartPolicy"];
    if policy != "OnFailure" && policy != "Never" {
        c.push(Cause::not_supported(
            &format!("{path}.template.spec.restartPolicy"),
            &policy.to_string(),
            &["OnFailure", "Never"],
        ));
    }
}

/// A workload's selector (required, not empty, matching its template's
/// labels) and replicas (kube's `ValidateDeploymentSpec` and its siblings).
fn workload(c: &mut Checker, kind: &str, spec: &Value) {
    c.non_negative(spec, "replicas", "spec.replicas");
    let selector = &spec["selector"];
    let labels = &spec["template"]["metadata"]["labels"];
    // A ReplicationController's selector is a plain map, defaulted from
    // its template's labels.
    let matches = if kind == "ReplicationController" {
        selector
            .as_object()
            .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    } else {
        if selector.is_null() {
            c.push(Cause::required("spec.selector", ""));
            return;
        }
        let empty = selector["matchLabels"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty)
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if empty {
            let word = match kind {
                "StatefulSet" => "statefulset",
                "DaemonSet" => "daemonset",
                // kube's ReplicaSet validation says "deployment" too.
                _ => "deployment",
            };
            c.push(Cause::invalid(
                "spec.selector",
                &selector.to_string(),
                &format!("empty selector is invalid for {word}"),
            ));
            return;
        }
        let text = crate::selector::selector_string(selector);
        let labels_map = labels.as_object();
        crate::selector::LabelSelector::parse(&text).is_ok_and(|s| s.matches(labels_map))
    };
    if !matches {
        c.push(Cause::invalid(
            "spec.template.metadata.labels",
            &go_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// A string map as Go prints it (`map[string]string{"app":"web"}`).
fn go_map(v: &Value) -> String {
    let entries: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{}", v))
        .collect();
    format!("map[string]string{{{}}}", entries.join(", "))
}

fn priority_level(c: &mut Checker, object: &Value) {
    let spec = &object["spec"];
    let exempt_name = object["metadata"]["name"] == "exempt";
    let kind = spec["type"].as_str().unwrap_or_default();
    if !matches!(kind, "Exempt" | "Limited") {
        c.supported(&spec["type"], "spec.type", &["Exempt", "Limited"]);
        return;
    }
    if (kind == "Exempt") != exempt_name {
        c.push(Cause::invalid(
            "spec.type",
            &quote(kind),
            "type must be 'Exempt' if and only if name is 'exempt'",
        ));
    }
    let limited = &spec["limited"];
    if kind == "Exempt" {
        if !limited.is_null() {
            c.push(Cause::forbidden(
                "spec.limited",
                "must be nil if the type is not Limited",
            ));
        }
        return;
    }
    if !spec["exempt"].is_null() {
        c.push(Cause::forbidden(
            "spec.exempt",
            "must be nil if the type is Limited",
        ));
    }
    if !limited.is_object() {
        c.push(Cause::required(
            "spec.limited",
            "must not be empty when type is Limited",
        ));
        return;
    }
    if let Some(n) = limited["nominalConcurrencyShares"].as_i64()
        && n <= 0
    {
        c.push(Cause::invalid(
            "spec.limited.nominalConcurrencyShares",
            &n.to_string(),
            "must be positive",
        ));
    }
    let response = &limited["limitResponse"];
    let response_type = response["type"].as_str().unwrap_or_default();
    c.supported(
        &response["type"],
        "spec.limited.limitResponse.type",
        &["Queue", "Reject"],
    );
    let queuing = &response["queuing"];
    match (response_type, queuing.is_object()) {
        ("Queue", false) => c.push(Cause::required(
            "spec.limited.limitResponse.queuing",
            "must not be empty if limited.limitResponse.type is Limited",
        )),
        ("Reject", true) => c.push(Cause::forbidden(
            "spec.limited.limitResponse.queuing",
            "must be nil if limited.limitResponse.type is not Limited",
        )),
        ("Queue", true) => {
            for field in ["queues", "handSize", "queueLengthLimit"] {
                if let Some(n) = queuing[field].as_i64()
                    && n <= 0
                {
                    c.push(Cause::invalid(
                        &format!("spec.limited.limitResponse.queuing.{field}"),
                        &n.to_string(),
                        "must be positive",
                    ));
                }
            }
            let (queues, hand) = (queuing["queues"].as_i64(), queuing["handSize"].as_i64());
            if let (Some(q), Some(h)) = (queues, hand)
                && q > 0
                && h > q
            {
                c.push(Cause::invalid(
                    "spec.limited.limitResponse.queuing.handSize",
                    &h.to_string(),
                    &format!("should not be greater than queues ({q})"),
                ));
            }
        }
        _ => {}
    }
}

/// A claim's (or a claim template's) device requests.
fn device_claim(c: &mut Checker, devices: &Value, path: &str) {
    let requests = devices["requests"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for (i, r) in requests.iter().enumerate() {
        let at = format!("{path}.requests[{i}]");
        c.required(r, "name", &format!("{at}.name"));
        match (r["exactly"].is_object(), r["firstAvailable"].is_array()) {
            (true, true) => c.push(Cause::required(
                &at,
                "exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set",
            )),
            (false, false) => c.push(Cause::required(
                &at,
                "exactly one of `exactly` or `firstAvailable` is required",
            )),
            (true, false) => {
                let exactly = &r["exactly"];
                c.required(exactly, "deviceClassName", &format!("{at}.exactly.deviceClassName"));
                c.supported(
                    &exactly["allocationMode"],
                    &format!("{at}.exactly.allocationMode"),
                    &["All", "ExactCount"],
                );
                if exactly["allocationMode"] == "ExactCount"
                    && exactly["count"].as_i64().unwrap_or(0) <= 0
                {
                    c.push(Cause::invalid(
                        &format!("{at}.exactly.count"),
                        &exactly["count"].as_i64().unwrap_or(0).to_string(),
                        "must be greater than zero",
                    ));
                }
            }
            (false, true) => {}
        }
    }
}

#[derive(Default)]
struct Checker(Vec<Cause>);

impl Checker {
    fn push(&mut self, cause: Cause) {
        self.0.push(cause);
    }

    /// `parent[key]`, when set, must not be negative.
    fn non_negative(&mut self, parent: &Value, key: &str, path: &str) {
        if let Some(n) = parent[key].as_i64()
            && n < 0
        {
            self.push(Cause::invalid(
                path,
                &n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }

    /// `parent[key]` must be a non-empty string.
    fn required(&mut self, parent: &Value, key: &str, path: &str) {
        if parent[key].as_str().is_none_or(str::is_empty) {
            self.push(Cause::required(path, ""));
        }
    }

    /// `parent[key]`, which defaulting sets, must be one of `supported`.
    fn one_of(&mut self, parent: &Value, key: &str, path: &str, supported: &[&str]) {
        if parent[key].is_null() {
            self.push(Cause::required(path, ""));
        } else {
            self.supported(&parent[key], path, supported);
        }
    }

    /// A value that, when set, must be one of `supported`.
    fn supported(&mut self, v: &Value, path: &str, supported: &[&str]) {
        if v.is_null() || v.as_str().is_some_and(|s| supported.contains(&s)) {
            return;
        }
        self.push(Cause::not_supported(path, &v.to_string(), supported));
    }

    /// An admission policy's failure policy and `matchConstraints` with
    /// resource rules.
    fn policy(&mut self, spec: &Value) {
        self.one_of(
            spec,
            "failurePolicy",
            "spec.failurePolicy",
            &["Fail", "Ignore"],
        );
        let m = &spec["matchConstraints"];
        if !m.is_object() {
            self.push(Cause::required("spec.matchConstraints", ""));
        } else if empty(&m["resourceRules"]) {
            self.push(Cause::required("spec.matchConstraints.resourceRules", ""));
        }
    }
}

fn empty(v: &Value) -> bool {
    v.as_array().is_none_or(Vec::is_empty)
}

fn quote(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("\"{v}\""))
}

/// `10.0.0.0/8`, `2001:db8::/64`: an address and a prefix length that
/// fits it, with no bits set past the prefix.
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            bits <= 32 && u32::from(a).checked_shl(bits).unwrap_or(0) == 0
        }
        Ok(std::net::IpAddr::V6(a)) => {
            bits <= 128 && u128::from(a).checked_shl(bits).unwrap_or(0) == 0
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(group: &str, kind: &str, obj: Value) -> Vec<String> {
        validate_spec(group, kind, &obj)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn required_fields_and_enumerations_are_named() {
        assert_eq!(
            messages(
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema",
                json!({"spec": {"matchingPrecedence": 20000}})
            ),
            [
                "spec.priorityLevelConfiguration.name: Required value: must reference a priority level",
                "spec.matchingPrecedence: Invalid value: 20000: must not be greater than 10000"
            ]
        );
        assert_eq!(
            messages(
                "flowcontrol.apiserver.k8s.io",
                "PriorityLevelConfiguration",
                json!({"metadata": {"name": "p"}, "spec": {"type": "Limited",
                            "limited": {"nominalConcurrencyShares": 30, "limitResponse": {"type": "Queue"}}}})
            ),
            [
                "spec.limited.limitResponse.queuing: Required value: must not be empty if limited.limitResponse.type is Limited"
            ]
        );
        assert_eq!(
            messages(
                "flowcontrol.apiserver.k8s.io",
                "PriorityLevelConfiguration",
                json!({"metadata": {"name": "p"}, "spec": {"type": "Sometimes"}})
            ),
            [r#"spec.type: Unsupported value: "Sometimes": supported values: "Exempt", "Limited""#]
        );
        assert_eq!(
            messages(
                "admissionregistration.k8s.io",
                "ValidatingAdmissionPolicyBinding",
                json!({"spec": {"validationActions": ["Deny", "Block"]}})
            ),
            [
                "spec.policyName: Required value",
                r#"spec.validationActions[1]: Unsupported value: "Block": supported values: "Audit", "Deny", "Warn""#
            ]
        );
        assert_eq!(
            messages(
                "networking.k8s.io",
                "ServiceCIDR",
                json!({"spec": {"cidrs": ["10.0.0.1/8"]}})
            ),
            [
                r#"spec.cidrs[0]: Invalid value: "10.0.0.1/8": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#
            ]
        );
        assert!(
            messages(
                "networking.k8s.io",
                "ServiceCIDR",
                json!({"spec": {"cidrs": ["10.0.0.0/8", "fd00::/64"]}})
            )
            .is_empty()
        );
        assert_eq!(
            messages(
                "resource.k8s.io",
                "ResourceClaim",
                json!({"spec": {"devices": {"requests": [{"name": "a"}]}}})
            ),
            [
                "spec.devices.requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required"
            ]
        );
        assert_eq!(
            messages("storage.k8s.io", "VolumeAttributesClass", json!({})),
            ["driverName: Required value"]
        );
    }

    #[test]
    fn workloads_need_a_selector_that_matches_their_template() {
        let template = json!({"metadata": {"labels": {"app": "web"}}});
        assert_eq!(
            messages(
                "apps",
                "Deployment",
                json!({"spec": {"template": template}})
            ),
            ["spec.selector: Required value"]
        );
        assert_eq!(
            messages(
                "apps",
                "Deployment",
                json!({"spec": {"replicas": -1, "template": template,
                "selector": {"matchLabels": {"app": "db"}}}})
            ),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#
            ]
        );
        assert_eq!(
            messages(
                "apps",
                "StatefulSet",
                json!({"spec": {"template": template, "selector": {}}})
            ),
            ["spec.selector: Invalid value: {}: empty selector is invalid for statefulset"]
        );
        assert!(messages("apps", "ReplicaSet", json!({"spec": {"template": template,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}})).is_empty());
        assert_eq!(
            messages(
                "batch",
                "Job",
                json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}})
            ),
            [
                r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#
            ]
        );
    }

    #[test]
    fn selectors_and_job_templates_do_not_change() {
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "replicas": 1,
                                   "template": {"spec": {"containers": []}}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(5);
        assert!(validate_update("apps", "Deployment", &old, &new).is_empty());
        new["spec"]["selector"] = json!({"matchLabels": {"a": "2"}});
        let causes = validate_update("apps", "Deployment", &old, &new);
        assert_eq!(causes[0].field, "spec.selector");
        assert!(causes[0].message.ends_with("field is immutable"));
        let mut job = old.clone();
        job["spec"]["template"]["spec"]["containers"] = json!([{"name": "x"}]);
        assert_eq!(
            validate_update("batch", "Job", &old, &job)[0].field,
            "spec.template"
        );
        job["spec"]["suspend"] = json!(true);
        assert!(validate_update("batch", "Job", &old, &job).is_empty());
        let mut sts = old.clone();
        sts["spec"]["serviceName"] = json!("other");
        assert_eq!(
            validate_update("apps", "StatefulSet", &old, &sts)[0].field,
            "spec"
        );
    }
}
