//! Per-kind behaviour on create and update, kept apart from the generic
//! storage code (Kubernetes' `PrepareForCreate` / `PrepareForUpdate`).
//! Kinds not named here get the generic behaviour.

use rudder_api::{Resource, StatusError};

use crate::services::{self, ServiceRanges};
use serde_json::{Value, json};

/// Fills what the server owns on a new object of this kind.
pub(crate) fn prepare_for_create(r: &Resource, obj: &mut Value) {
    // Status is written by controllers, never by the creating client
    // (but for the kinds whose strategy keeps it: a kubelet registers its
    // Node with its status); what is left is the status Go writes for a
    // zero one.
    let keeps_status = matches!(
        (r.group, r.kind),
        ("", "Namespace" | "Node") | ("networking.k8s.io", "ServiceCIDR")
    );
    if r.status
        && let Some(map) = obj.as_object_mut()
    {
        if !keeps_status {
            map.remove("status");
        }
        if map.get("status").is_none_or(Value::is_null)
            && let Some(zero) = zero_status(r)
        {
            map.insert("status".into(), zero);
        }
    }
    if (r.group, r.kind) == ("", "PersistentVolume") {
        obj["status"]["lastPhaseTransitionTime"] = rudder_api::time::rfc3339_now().into();
    }
    if (r.group, r.kind) == ("apps", "DaemonSet") {
        // The template's generation, as apps/v1 shows it.
        set_or_remove(
            &mut obj["metadata"],
            "annotations",
            TEMPLATE_GENERATION,
            Some("1".into()),
        );
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
        if let Some(finalizers) = obj["spec"]["finalizers"].as_array_mut()
            && !finalizers.iter().any(|f| f == "kubernetes")
        {
            finalizers.push("kubernetes".into());
        }
        obj["status"] = json!({"phase": "Active"});
    }
    // The Job's generated labels first: a Job without labels of its own
    // takes its template's (SetDefaults_Job).
    if (r.group, r.kind) == ("batch", "Job") && obj["spec"]["manualSelector"] != true {
        generate_job_selector(obj);
    }
    rudder_api::defaults::apply(r.group, r.version, r.kind, obj);
    if (r.group, r.kind) == ("", "Pod") {
        rudder_api::defaults::pod_admission(obj);
    }
}

/// The annotation apps/v1 DaemonSets carry their template's generation in.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// The status Go writes for a kind's zero status: fields without
/// `omitempty` are there (`replicas: 0`), structs are `{}`.
fn zero_status(r: &Resource) -> Option<Value> {
    Some(match (r.group, r.kind) {
        ("", "Service") | ("networking.k8s.io", "Ingress") => json!({"loadBalancer": {}}),
        ("", "PersistentVolume" | "PersistentVolumeClaim") => json!({"phase": "Pending"}),
        ("", "ReplicationController") | ("apps", "ReplicaSet") => json!({"replicas": 0}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "DaemonSet") => json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                                         "numberMisscheduled": 0, "numberReady": 0}),
        ("policy", "PodDisruptionBudget") => json!({"currentHealthy": 0, "desiredHealthy": 0,
                                                     "disruptionsAllowed": 0, "expectedPods": 0}),
        ("autoscaling", "HorizontalPodAutoscaler") if r.version == "v1" => {
            json!({"currentReplicas": 0, "desiredReplicas": 0})
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            json!({"currentMetrics": null, "desiredReplicas": 0})
        }
        ("storage.k8s.io", "VolumeAttachment") => json!({"attached": false}),
        ("", "Node") => json!({
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                         "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "",
                         "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""},
        }),
        // The namespace strategy writes its phase below.
        ("", "Namespace") => return None,
        // The pod strategy writes its own (phase and QoS class).
        ("", "Pod") => return None,
        _ => json!({}),
    })
}

/// Kubernetes' Job strategy (`generateSelector`): a Job without
/// `manualSelector: true` selects its pods by its uid, and its template
/// labels them with its name and uid (the `batch.kubernetes.io/` labels and
/// the legacy ones), keeping labels the template sets itself.
fn generate_job_selector(job: &mut Value) {
    /// `parent[key]` as a map, made one where it is absent; `None` where
    /// the input holds something else there (validation answers that).
    fn map<'a>(
        parent: &'a mut serde_json::Map<String, Value>,
        key: &str,
    ) -> Option<&'a mut serde_json::Map<String, Value>> {
        let v = parent.entry(key).or_insert_with(|| json!({}));
        if v.is_null() {
            *v = json!({});
        }
        v.as_object_mut()
    }
    let name = job["metadata"]["name"].clone();
    let uid = job["metadata"]["uid"].clone();
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(labels) = map(spec, "template")
        .and_then(|t| map(t, "metadata"))
        .and_then(|m| map(m, "labels"))
    {
        for (label, value) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            labels.entry(label).or_insert_with(|| value.clone());
        }
    }
    if let Some(match_labels) = map(spec, "selector").and_then(|s| map(s, "matchLabels")) {
        match_labels
            .entry("batch.kubernetes.io/controller-uid")
            .or_insert(uid);
    }
}

/// The part of an object a write replaces, by the endpoint it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The resource itself: everything but the status.
    Main,
    /// `/status`: the status, and metadata as the kind's status strategy says.
    Status,
    /// `namespaces/NAME/finalize`: a namespace's spec (its finalizers).
    Finalize,
    /// `certificatesigningrequests/NAME/approval`: a CSR's conditions.
    Approval,
}

impl Part {
    pub(crate) fn of(subresource: Option<&str>) -> Self {
        match subresource {
            Some("status") => Self::Status,
            Some("finalize") => Self::Finalize,
            Some("approval") => Self::Approval,
            _ => Self::Main,
        }
    }
}

/// The object a PUT of `body` onto `old` stores, before the server-owned
/// metadata is put back (kube's `PrepareForUpdate` of the endpoint's
/// strategy).
pub(crate) fn prepare_for_update(r: &Resource, old: &Value, body: &Value, part: Part) -> Value {
    let mut new = match part {
        Part::Main | Part::Finalize => body.clone(),
        Part::Status | Part::Approval => {
            let mut new = old.clone();
            if part == Part::Status {
                new["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            } else {
                // Approving or denying changes the conditions only.
                let conditions = body["status"].get("conditions").cloned();
                set_or_remove(&mut new, "status", "conditions", conditions);
            }
            if let Some(meta) = body.get("metadata").filter(|m| m.is_object()) {
                new["metadata"] = meta.clone();
            }
            if part == Part::Status {
                prepare_status_update(r, old, &mut new);
            }
            return new;
        }
    };
    if r.status {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    match (r.group, r.kind) {
        // A CSR's request is what was asked for: only its metadata changes
        // here (conditions through `approval`, the certificate `status`).
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            let spec = old.get("spec").cloned();
            if let Some(map) = new.as_object_mut() {
                match spec {
                    Some(spec) => map.insert("spec".into(), spec),
                    None => map.remove("spec"),
                };
            }
        }
        // A changed template is a new template generation.
        ("apps", "DaemonSet") => {
            let stored = old["metadata"]["annotations"][TEMPLATE_GENERATION]
                .as_str()
                .and_then(|g| g.parse::<i64>().ok());
            let generation = match stored {
                Some(g) if old["spec"]["template"] != new["spec"]["template"] => Some(g + 1),
                g => g,
            };
            set_or_remove(
                &mut new["metadata"],
                "annotations",
                TEMPLATE_GENERATION,
                generation.map(|g| g.to_string().into()),
            );
        }
        _ => {}
    }
    // A namespace's finalizers change through `finalize` only.
    if is_namespace(r) && part == Part::Main {
        let finalizers = old["spec"].get("finalizers").cloned();
        set_or_remove(&mut new, "spec", "finalizers", finalizers);
    }
    new
}

/// Sets `obj[section][field]` (making the section an object where it is
/// absent), or removes the field when `value` is `None`; a section of
/// another shape is left for validation to refuse.
fn set_or_remove(obj: &mut Value, section: &str, field: &str, value: Option<Value>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let entry = map.entry(section).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    if let Some(section) = entry.as_object_mut() {
        match value {
            Some(v) => section.insert(field.to_string(), v),
            None => section.remove(field),
        };
    }
}

/// What a kind's status strategy keeps from the stored object on a write
/// to `/status`, beyond its spec (kube's `*StatusStrategy.PrepareForUpdate`
/// in `pkg/registry/*/*/strategy.go`): most kinds store the request's
/// labels and annotations; a Deployment keeps its labels, a Pod its owner
/// references, and the kinds that call `ResetObjectMetaForStatus` their
/// labels, annotations, finalizers and owner references.
fn prepare_status_update(r: &Resource, old: &Value, new: &mut Value) {
    let keep: &[&str] = match (r.group, r.kind) {
        ("apps", "Deployment") => &["labels"],
        ("", "Pod") => &["ownerReferences"],
        ("storage.k8s.io", "VolumeAttachment")
        | ("networking.k8s.io", "ServiceCIDR")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        | ("resource.k8s.io", "ResourceClaim")
        | ("internal.apiserver.k8s.io", "StorageVersion")
        | ("apiregistration.k8s.io", "APIService") => {
            &["labels", "annotations", "finalizers", "ownerReferences"]
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            // All of the stored metadata but managedFields.
            let managed = new["metadata"].get("managedFields").cloned();
            new["metadata"] = old["metadata"].clone();
            if let (Some(meta), Some(managed)) = (new["metadata"].as_object_mut(), managed) {
                meta.insert("managedFields".into(), managed);
            }
            return;
        }
        _ => &[],
    };
    keep_metadata(old, new, keep);
}

/// Sets these `metadata` fields of `new` to `old`'s (absent where `old`
/// has none).
pub(crate) fn keep_metadata(old: &Value, new: &mut Value, fields: &[&str]) {
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for field in fields {
        match old["metadata"].get(*field) {
            Some(v) => new["metadata"][*field] = v.clone(),
            None => {
                if let Some(meta) = new["metadata"].as_object_mut() {
                    meta.remove(*field);
                }
            }
        }
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
            // Pods since 1.33.
            | ("", "Pod")
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
            | (
                "admissionregistration.k8s.io",
                "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
                    | "MutatingAdmissionPolicy"
                    | "MutatingAdmissionPolicyBinding"
            )
            | ("resource.k8s.io", "DeviceClass" | "ResourceSlice")
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
