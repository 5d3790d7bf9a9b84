//! Server-side printing: the `meta.k8s.io` Table that `kubectl get` asks
//! for, with the columns of kubernetes/kubernetes
//! pkg/printers/internalversion/printers.go. Kinds without a printer here
//! get Kubernetes' default (NAME, AGE).

use serde_json::{Value, json};

use crate::selector::selector_string;
use crate::time::{human_duration, parse_rfc3339};

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        priority: 0,
    }
}
const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        priority: 0,
    }
}
const fn wide(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        priority: 1,
    }
}

/// What a row's `object` carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The column definitions and a row function for a kind.
pub fn columns(group: &str, kind: &str) -> &'static [Column] {
    // events.k8s.io Events print as core Events (converted to them).
    let group = if (group, kind) == ("events.k8s.io", "Event") {
        ""
    } else {
        group
    };
    match (group, kind) {
        ("", "Pod") => {
            const C: &[Column] = &[
                col("Name"),
                col("Ready"),
                col("Status"),
                int("Restarts"),
                col("Age"),
                wide("IP"),
                wide("Node"),
                wide("Nominated Node"),
                wide("Readiness Gates"),
            ];
            C
        }
        ("apps", "Deployment") => {
            const C: &[Column] = &[
                col("Name"),
                col("Ready"),
                int("Up-to-date"),
                int("Available"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ];
            C
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            const C: &[Column] = &[
                col("Name"),
                int("Desired"),
                int("Current"),
                int("Ready"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ];
            C
        }
        ("apps", "StatefulSet") => {
            const C: &[Column] = &[
                col("Name"),
                col("Ready"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
            ];
            C
        }
        ("apps", "DaemonSet") => {
            const C: &[Column] = &[
                col("Name"),
                int("Desired"),
                int("Current"),
                int("Ready"),
                int("Up-to-date"),
                int("Available"),
                col("Node Selector"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ];
            C
        }
        ("batch", "Job") => {
            const C: &[Column] = &[
                col("Name"),
                col("Status"),
                col("Completions"),
                col("Duration"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ];
            C
        }
        ("batch", "CronJob") => {
            const C: &[Column] = &[
                col("Name"),
                col("Schedule"),
                col("Timezone"),
                col("Suspend"),
                int("Active"),
                col("Last Schedule"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ];
            C
        }
        ("", "Service") => {
            const C: &[Column] = &[
                col("Name"),
                col("Type"),
                col("Cluster-IP"),
                col("External-IP"),
                col("Port(s)"),
                col("Age"),
                wide("Selector"),
            ];
            C
        }
        ("", "Node") => {
            const C: &[Column] = &[
                col("Name"),
                col("Status"),
                col("Roles"),
                col("Age"),
                col("Version"),
                wide("Internal-IP"),
                wide("External-IP"),
                wide("OS-Image"),
                wide("Kernel-Version"),
                wide("Container-Runtime"),
            ];
            C
        }
        ("", "Namespace") => {
            const C: &[Column] = &[col("Name"), col("Status"), col("Age")];
            C
        }
        ("", "ConfigMap") => {
            const C: &[Column] = &[col("Name"), int("Data"), col("Age")];
            C
        }
        ("", "Secret") => {
            const C: &[Column] = &[col("Name"), col("Type"), int("Data"), col("Age")];
            C
        }
        ("", "ServiceAccount") => {
            const C: &[Column] = &[col("Name"), int("Secrets"), col("Age")];
            C
        }
        ("", "Event") => {
            const C: &[Column] = &[
                col("Last Seen"),
                col("Type"),
                col("Reason"),
                col("Object"),
                wide("Subobject"),
                wide("Source"),
                col("Message"),
                wide("First Seen"),
                Column {
                    name: "Count",
                    kind: "integer",
                    priority: 1,
                },
                wide("Name"),
            ];
            C
        }
        ("", "Endpoints") => {
            const C: &[Column] = &[col("Name"), col("Endpoints"), col("Age")];
            C
        }
        ("", "PersistentVolumeClaim") => {
            const C: &[Column] = &[
                col("Name"),
                col("Status"),
                col("Volume"),
                col("Capacity"),
                col("Access Modes"),
                col("StorageClass"),
                col("VolumeAttributesClass"),
                col("Age"),
                wide("VolumeMode"),
            ];
            C
        }
        ("coordination.k8s.io", "Lease") => {
            const C: &[Column] = &[col("Name"), col("Holder"), col("Age")];
            C
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            const C: &[Column] = &[
                col("Name"),
                int("Value"),
                Column {
                    name: "Global-Default",
                    kind: "boolean",
                    priority: 0,
                },
                col("Age"),
                col("PreemptionPolicy"),
            ];
            C
        }
        ("", "PersistentVolume") => {
            const C: &[Column] = &[
                col("Name"),
                col("Capacity"),
                col("Access Modes"),
                col("Reclaim Policy"),
                col("Status"),
                col("Claim"),
                col("StorageClass"),
                col("VolumeAttributesClass"),
                col("Reason"),
                col("Age"),
                wide("VolumeMode"),
            ];
            C
        }
        ("", "ResourceQuota") => {
            const C: &[Column] = &[col("Name"), col("Age"), col("Request"), col("Limit")];
            C
        }
        ("", "PodTemplate") => {
            const C: &[Column] = &[
                col("Name"),
                col("Containers"),
                col("Images"),
                col("Pod Labels"),
            ];
            C
        }
        ("apps", "ControllerRevision") => {
            const C: &[Column] = &[col("Name"), col("Controller"), int("Revision"), col("Age")];
            C
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            const C: &[Column] = &[
                col("Name"),
                col("Reference"),
                col("Targets"),
                col("MinPods"),
                int("MaxPods"),
                int("Replicas"),
                col("Age"),
            ];
            C
        }
        ("networking.k8s.io", "Ingress") => {
            const C: &[Column] = &[
                col("Name"),
                col("Class"),
                col("Hosts"),
                col("Address"),
                col("Ports"),
                col("Age"),
            ];
            C
        }
        ("networking.k8s.io", "IngressClass") => {
            const C: &[Column] = &[
                col("Name"),
                col("Controller"),
                col("Parameters"),
                col("Age"),
            ];
            C
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            const C: &[Column] = &[col("Name"), col("Pod-Selector"), col("Age")];
            C
        }
        ("policy", "PodDisruptionBudget") => {
            const C: &[Column] = &[
                col("Name"),
                col("Min Available"),
                col("Max Unavailable"),
                int("Allowed Disruptions"),
                col("Age"),
            ];
            C
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            const C: &[Column] = &[
                col("Name"),
                col("Role"),
                col("Age"),
                wide("Users"),
                wide("Groups"),
                wide("ServiceAccounts"),
            ];
            C
        }
        ("storage.k8s.io", "StorageClass") => {
            const C: &[Column] = &[
                col("Name"),
                col("Provisioner"),
                col("ReclaimPolicy"),
                col("VolumeBindingMode"),
                boolean("AllowVolumeExpansion"),
                col("Age"),
            ];
            C
        }
        ("storage.k8s.io", "CSIDriver") => {
            const C: &[Column] = &[
                col("Name"),
                boolean("AttachRequired"),
                boolean("PodInfoOnMount"),
                boolean("StorageCapacity"),
                col("TokenRequests"),
                boolean("RequiresRepublish"),
                col("Modes"),
                col("Age"),
            ];
            C
        }
        ("storage.k8s.io", "CSINode") => {
            const C: &[Column] = &[col("Name"), int("Drivers"), col("Age")];
            C
        }
        ("storage.k8s.io", "VolumeAttachment") => {
            const C: &[Column] = &[
                col("Name"),
                col("Attacher"),
                col("PV"),
                col("Node"),
                boolean("Attached"),
                col("Age"),
            ];
            C
        }
        ("storage.k8s.io", "CSIStorageCapacity") => {
            const C: &[Column] = &[col("Name"), col("StorageClassName"), col("Capacity")];
            C
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            const C: &[Column] = &[
                col("Name"),
                col("AddressType"),
                col("Ports"),
                col("Endpoints"),
                col("Age"),
            ];
            C
        }
        ("node.k8s.io", "RuntimeClass") => {
            const C: &[Column] = &[col("Name"), col("Handler"), col("Age")];
            C
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            const C: &[Column] = &[
                col("Name"),
                col("Age"),
                col("SignerName"),
                col("Requestor"),
                col("RequestedDuration"),
                col("Condition"),
            ];
            C
        }
        // Kubernetes declares no Age column here, though its row carries an
        // age cell; kubectl drops cells past the last column (issue 66379).
        ("networking.k8s.io", "IPAddress") => {
            const C: &[Column] = &[col("Name"), col("ParentRef")];
            C
        }
        ("networking.k8s.io", "ServiceCIDR") => {
            const C: &[Column] = &[col("Name"), col("CIDRs"), col("Age")];
            C
        }
        ("storage.k8s.io", "VolumeAttributesClass") => {
            const C: &[Column] = &[col("Name"), col("DriverName"), col("Age")];
            C
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            const C: &[Column] = &[
                col("Name"),
                int("Validations"),
                col("ParamKind"),
                col("Age"),
            ];
            C
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => {
            const C: &[Column] = &[col("Name"), int("Mutations"), col("ParamKind"), col("Age")];
            C
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding",
        ) => {
            const C: &[Column] = &[col("Name"), col("PolicyName"), col("ParamRef"), col("Age")];
            C
        }
        // Declared `string` though the MatchingPrecedence cell is an integer.
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => {
            const C: &[Column] = &[
                col("Name"),
                col("PriorityLevel"),
                col("MatchingPrecedence"),
                col("DistinguisherMethod"),
                col("Age"),
                col("MissingPL"),
            ];
            C
        }
        // All declared `string`: the cells are integers or `<none>`.
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            const C: &[Column] = &[
                col("Name"),
                col("Type"),
                col("NominalConcurrencyShares"),
                col("Queues"),
                col("HandSize"),
                col("QueueLengthLimit"),
                col("Age"),
            ];
            C
        }
        ("coordination.k8s.io", "LeaseCandidate") => {
            const C: &[Column] = &[
                col("Name"),
                col("LeaseName"),
                col("BinaryVersion"),
                col("EmulationVersion"),
                col("Age"),
            ];
            C
        }
        ("resource.k8s.io", "ResourceClaim") => {
            const C: &[Column] = &[col("Name"), col("State"), col("Age")];
            C
        }
        ("resource.k8s.io", "ResourceSlice") => {
            const C: &[Column] = &[
                col("Name"),
                col("Node"),
                col("Driver"),
                col("Pool"),
                col("Age"),
            ];
            C
        }
        // Kinds without a printer of their own get the default table
        // convertor's columns (apiserver pkg/registry/rest/table.go).
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") | ("", "LimitRange") => {
            const C: &[Column] = &[
                col("Name"),
                Column {
                    name: "Created At",
                    kind: "date",
                    priority: 0,
                },
            ];
            C
        }
        _ => {
            const C: &[Column] = &[col("Name"), col("Age")];
            C
        }
    }
}

const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        kind: "boolean",
        priority: 0,
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn access_modes(v: &Value) -> String {
    strings(v)
        .iter()
        .map(|m| match *m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A JSON scalar as Kubernetes prints it (an int-or-string, a quantity).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `a=b,c=d` of a label map, `<none>` when empty.
fn labels_string(v: &Value) -> Value {
    let pairs: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    or_none(pairs.join(","))
}

/// `used/hard` per resource, `pods: 1/10, requests.cpu: 0/2`, split into
/// requests and limits as `kubectl get quota` shows them.
fn quota_usage(obj: &Value) -> (String, String) {
    let hard = obj["status"]["hard"]
        .as_object()
        .or(obj["spec"]["hard"].as_object());
    let used = &obj["status"]["used"];
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (name, h) in hard.into_iter().flatten() {
        let u = used.get(name).map_or_else(|| "0".to_string(), scalar);
        let cell = format!("{name}: {u}/{}", scalar(h));
        if name.starts_with("limits.") {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    (requests.join(", "), limits.join(", "))
}

/// The HPA's targets: `cpu: 20%/50%`, `<unknown>` until measured.
fn hpa_targets(obj: &Value) -> String {
    let spec = &obj["spec"];
    // autoscaling/v1 stores a single CPU target.
    if let Some(target) = spec["targetCPUUtilizationPercentage"].as_i64() {
        let current = obj["status"]["currentCPUUtilizationPercentage"]
            .as_i64()
            .map_or_else(|| "<unknown>".to_string(), |c| format!("{c}%"));
        return format!("cpu: {current}/{target}%");
    }
    let metrics: Vec<&Value> = spec["metrics"].as_array().into_iter().flatten().collect();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current: Vec<&Value> = obj["status"]["currentMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut out = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let kind = s(&m["type"]);
        let field = match kind {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            _ => "",
        };
        let source = &m[field];
        let target = &source["target"];
        let cur = current.get(i).map(|c| &c[field]["current"]);
        let (want, have) = match target["averageUtilization"].as_i64() {
            Some(u) => (
                format!("{u}%"),
                cur.and_then(|c| c["averageUtilization"].as_i64())
                    .map(|c| format!("{c}%")),
            ),
            None => {
                let want = target
                    .get("averageValue")
                    .or(target.get("value"))
                    .map(scalar)
                    .unwrap_or_default();
                let have = cur
                    .and_then(|c| c.get("averageValue").or(c.get("value")))
                    .map(scalar);
                (want, have)
            }
        };
        let name = match kind {
            "Resource" | "ContainerResource" => s(&source["name"]).to_string(),
            _ => s(&source["metric"]["name"]).to_string(),
        };
        let have = have.unwrap_or_else(|| "<unknown>".into());
        out.push(format!("{name}: {have}/{want}"));
    }
    if out.len() > 2 {
        let more = out.len() - 2;
        out.truncate(2);
        return format!("{} + {more} more...", out.join(", "));
    }
    out.join(", ")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(v: String) -> Value {
    Value::String(if v.is_empty() { "<none>".into() } else { v })
}

fn age(obj: &Value, now: i64) -> Value {
    match parse_rfc3339(s(&obj["metadata"]["creationTimestamp"])) {
        Some(t) => Value::String(human_duration(now - t)),
        None => Value::String("<unknown>".into()),
    }
}

fn containers_and_images(pod_spec: &Value) -> (Value, Value) {
    let cs: Vec<&Value> = pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<&str> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(&c["image"])).collect();
    (
        Value::String(names.join(",")),
        Value::String(images.join(",")),
    )
}

fn pod_status(pod: &Value) -> String {
    if pod["metadata"].get("deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut reason = s(&pod["status"]["phase"]).to_string();
    if let Some(r) = pod["status"]["reason"].as_str() {
        reason = r.to_string();
    }
    let gated = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".into();
    }
    for cs in pod["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(w) = cs["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| *r != "PodInitializing")
        {
            return format!("Init:{w}");
        }
    }
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
    {
        if let Some(w) = cs["state"]["waiting"]["reason"].as_str() {
            reason = w.to_string();
        } else if let Some(t) = cs["state"]["terminated"]["reason"].as_str() {
            reason = t.to_string();
        }
    }
    if reason.is_empty() {
        "Pending".into()
    } else {
        reason
    }
}

fn ports_string(svc: &Value) -> String {
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{}:{np}/{proto}", n(&p["port"])),
                None => format!("{}/{proto}", n(&p["port"])),
            }
        })
        .collect();
    ports.join(",")
}

/// The cells of one row, in column order.
pub fn cells(group: &str, kind: &str, obj: &Value, now: i64) -> Vec<Value> {
    if (group, kind) == ("events.k8s.io", "Event") {
        let mut core = obj.clone();
        crate::conversion::convert(&mut core, "v1");
        return cells("", kind, &core, now);
    }
    let name = Value::String(s(&obj["metadata"]["name"]).into());
    let spec = &obj["spec"];
    let status = &obj["status"];
    match (group, kind) {
        ("", "Pod") => {
            let statuses: Vec<&Value> = status["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
            vec![
                name,
                format!("{ready}/{total}").into(),
                pod_status(obj).into(),
                restarts.into(),
                age(obj, now),
                or_none(s(&status["podIP"]).into()),
                or_none(s(&spec["nodeName"]).into()),
                or_none(s(&status["nominatedNodeName"]).into()),
                "<none>".into(),
            ]
        }
        ("apps", "Deployment") => {
            let (c, i) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                format!("{}/{}", n(&status["readyReplicas"]), n(&spec["replicas"])).into(),
                n(&status["updatedReplicas"]).into(),
                n(&status["availableReplicas"]).into(),
                age(obj, now),
                c,
                i,
                selector_string(&spec["selector"]).into(),
            ]
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            let (c, i) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                n(&spec["replicas"]).into(),
                n(&status["replicas"]).into(),
                n(&status["readyReplicas"]).into(),
                age(obj, now),
                c,
                i,
                selector_string(&spec["selector"]).into(),
            ]
        }
        ("apps", "StatefulSet") => {
            let (c, i) = containers_and_images(&spec["template"]["spec"]);
            let ready = format!("{}/{}", n(&status["readyReplicas"]), n(&spec["replicas"]));
            vec![name, ready.into(), age(obj, now), c, i]
        }
        ("apps", "DaemonSet") => {
            let (c, i) = containers_and_images(&spec["template"]["spec"]);
            let node_selector = spec["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                n(&status["desiredNumberScheduled"]).into(),
                n(&status["currentNumberScheduled"]).into(),
                n(&status["numberReady"]).into(),
                n(&status["updatedNumberScheduled"]).into(),
                n(&status["numberAvailable"]).into(),
                or_none(node_selector),
                age(obj, now),
                c,
                i,
                selector_string(&spec["selector"]).into(),
            ]
        }
        ("batch", "Job") => {
            let (c, i) = containers_and_images(&spec["template"]["spec"]);
            let conditions: Vec<&Value> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let has = |t: &str| {
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let job_status = if has("Failed") {
                "Failed"
            } else if has("Complete") {
                "Complete"
            } else if has("Suspended") {
                "Suspended"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else if has("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let completions = match spec["completions"].as_i64() {
                Some(c) => format!("{}/{c}", n(&status["succeeded"])),
                None => format!(
                    "{}/1 of {}",
                    n(&status["succeeded"]),
                    spec["parallelism"].as_i64().unwrap_or(1)
                ),
            };
            let start = parse_rfc3339(s(&status["startTime"]));
            let end = parse_rfc3339(s(&status["completionTime"])).unwrap_or(now);
            let duration = start.map_or(String::new(), |st| human_duration(end - st));
            vec![
                name,
                job_status.into(),
                completions.into(),
                duration.into(),
                age(obj, now),
                c,
                i,
                selector_string(&spec["selector"]).into(),
            ]
        }
        ("batch", "CronJob") => {
            let (c, i) = containers_and_images(&spec["jobTemplate"]["spec"]["template"]["spec"]);
            let last = parse_rfc3339(s(&status["lastScheduleTime"]))
                .map_or("<none>".into(), |t| human_duration(now - t));
            vec![
                name,
                s(&spec["schedule"]).into(),
                or_none(s(&spec["timeZone"]).into()),
                // printBoolPtr: True, False or <unset>.
                match spec["suspend"].as_bool() {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }
                .into(),
                status["active"].as_array().map_or(0, Vec::len).into(),
                last.into(),
                age(obj, now),
                c,
                i,
                selector_string(&spec["jobTemplate"]["spec"]["selector"]).into(),
            ]
        }
        ("", "Service") => {
            let ty = spec["type"].as_str().unwrap_or("ClusterIP");
            let external: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| s(&i["ip"]).to_string())
                .chain(
                    spec["externalIPs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|i| s(i).to_string()),
                )
                .collect();
            let external = match (ty, external.is_empty()) {
                ("ExternalName", _) => s(&spec["externalName"]).to_string(),
                ("LoadBalancer", true) => "<pending>".into(),
                (_, true) => "<none>".into(),
                (_, false) => external.join(","),
            };
            vec![
                name,
                ty.into(),
                or_none(s(&spec["clusterIP"]).into()),
                external.into(),
                or_none(ports_string(obj)),
                age(obj, now),
                or_none(selector_string(&spec["selector"])),
            ]
        }
        ("", "Node") => {
            let conds: Vec<&Value> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let mut st = match conds
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| s(&c["status"]))
            {
                Some("True") => "Ready".to_string(),
                _ => "NotReady".to_string(),
            };
            if spec["unschedulable"] == true {
                st.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = obj["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let address = |t: &str| {
                status["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map_or("<none>".to_string(), |a| s(&a["address"]).to_string())
            };
            let info = &status["nodeInfo"];
            vec![
                name,
                st.into(),
                or_none(roles.join(",")),
                age(obj, now),
                s(&info["kubeletVersion"]).into(),
                address("InternalIP").into(),
                address("ExternalIP").into(),
                s(&info["osImage"]).into(),
                s(&info["kernelVersion"]).into(),
                s(&info["containerRuntimeVersion"]).into(),
            ]
        }
        ("", "Namespace") => vec![name, s(&status["phase"]).into(), age(obj, now)],
        ("", "ConfigMap") => {
            let count = obj["data"].as_object().map_or(0, |m| m.len())
                + obj["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, count.into(), age(obj, now)]
        }
        ("", "Secret") => {
            let count = obj["data"].as_object().map_or(0, |m| m.len());
            vec![
                name,
                obj["type"].as_str().unwrap_or("Opaque").into(),
                count.into(),
                age(obj, now),
            ]
        }
        ("", "ServiceAccount") => {
            vec![
                name,
                obj["secrets"].as_array().map_or(0, Vec::len).into(),
                age(obj, now),
            ]
        }
        ("", "Event") => {
            let seen = |v: &Value| parse_rfc3339(s(v));
            let last = seen(&obj["series"]["lastObservedTime"])
                .or_else(|| seen(&obj["lastTimestamp"]))
                .or_else(|| seen(&obj["eventTime"]))
                .or_else(|| seen(&obj["metadata"]["creationTimestamp"]));
            let first = seen(&obj["firstTimestamp"]).or_else(|| seen(&obj["eventTime"]));
            let ago =
                |t: Option<i64>| t.map_or("<unknown>".to_string(), |t| human_duration(now - t));
            let involved = &obj["involvedObject"];
            let object = format!(
                "{}/{}",
                s(&involved["kind"]).to_lowercase(),
                s(&involved["name"])
            );
            let source = match (s(&obj["source"]["component"]), s(&obj["source"]["host"])) {
                ("", _) => s(&obj["reportingComponent"]).to_string(),
                (c, "") => c.to_string(),
                (c, h) => format!("{c}, {h}"),
            };
            let count = obj["series"]["count"]
                .as_i64()
                .or_else(|| obj["count"].as_i64())
                .unwrap_or(1);
            vec![
                ago(last).into(),
                s(&obj["type"]).into(),
                s(&obj["reason"]).into(),
                object.into(),
                s(&involved["fieldPath"]).into(),
                source.into(),
                s(&obj["message"]).trim().into(),
                ago(first).into(),
                count.into(),
                name,
            ]
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in obj["subsets"].as_array().into_iter().flatten() {
                for addr in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", s(&addr["ip"]), n(&port["port"])));
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            vec![name, or_none(shown), age(obj, now)]
        }
        ("", "PersistentVolumeClaim") => {
            let modes: Vec<&str> = status["accessModes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            let short: Vec<&str> = modes
                .iter()
                .map(|m| match *m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect();
            vec![
                name,
                s(&status["phase"]).into(),
                s(&spec["volumeName"]).into(),
                s(&status["capacity"]["storage"]).into(),
                short.join(",").into(),
                or_none(s(&spec["storageClassName"]).into()),
                or_none(s(&spec["volumeAttributesClassName"]).into()),
                age(obj, now),
                s(&spec["volumeMode"]).into(),
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![name, s(&spec["holderIdentity"]).into(), age(obj, now)]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            n(&obj["value"]).into(),
            obj["globalDefault"].as_bool().unwrap_or(false).into(),
            age(obj, now),
            obj["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .into(),
        ],
        ("", "PersistentVolume") => {
            let claim = match spec["claimRef"]["name"].as_str() {
                Some(n) => format!("{}/{n}", s(&spec["claimRef"]["namespace"])),
                None => String::new(),
            };
            vec![
                name,
                s(&spec["capacity"]["storage"]).into(),
                access_modes(&spec["accessModes"]).into(),
                s(&spec["persistentVolumeReclaimPolicy"]).into(),
                s(&status["phase"]).into(),
                claim.into(),
                s(&spec["storageClassName"]).into(),
                or_unset(s(&spec["volumeAttributesClassName"])),
                s(&status["reason"]).into(),
                age(obj, now),
                spec["volumeMode"].as_str().unwrap_or("Filesystem").into(),
            ]
        }
        ("", "ResourceQuota") => {
            let (requests, limits) = quota_usage(obj);
            vec![name, age(obj, now), requests.into(), limits.into()]
        }
        ("", "PodTemplate") => {
            let (names, images) = containers_and_images(&obj["template"]["spec"]);
            vec![
                name,
                names,
                images,
                labels_string(&obj["template"]["metadata"]["labels"]),
            ]
        }
        ("apps", "ControllerRevision") => {
            let owner = obj["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["controller"].as_bool() == Some(true));
            let controller = owner.map_or_else(
                || "<none>".to_string(),
                |o| {
                    let group = s(&o["apiVersion"]).split_once('/').map_or("", |(g, _)| g);
                    let kind = s(&o["kind"]).to_lowercase();
                    let kind = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{kind}/{}", s(&o["name"]))
                },
            );
            vec![
                name,
                controller.into(),
                n(&obj["revision"]).into(),
                age(obj, now),
            ]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let target = &spec["scaleTargetRef"];
            vec![
                name,
                format!("{}/{}", s(&target["kind"]), s(&target["name"])).into(),
                hpa_targets(obj).into(),
                spec["minReplicas"]
                    .as_i64()
                    .map_or_else(|| "<unset>".to_string(), |m| m.to_string())
                    .into(),
                n(&spec["maxReplicas"]).into(),
                n(&status["currentReplicas"]).into(),
                age(obj, now),
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["host"].as_str().filter(|h| !h.is_empty()).unwrap_or("*"))
                .collect();
            let addresses: Vec<&str> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
            vec![
                name,
                or_none(s(&spec["ingressClassName"]).into()),
                hosts.join(",").into(),
                addresses.join(",").into(),
                if tls { "80, 443" } else { "80" }.into(),
                age(obj, now),
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
            let p = &spec["parameters"];
            let parameters = match p["name"].as_str() {
                Some(pname) => {
                    let group = p["apiGroup"].as_str().unwrap_or("core");
                    format!("{group}/{}/{pname}", s(&p["kind"]))
                }
                None => "<none>".into(),
            };
            vec![
                name,
                s(&spec["controller"]).into(),
                parameters.into(),
                age(obj, now),
            ]
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![
                name,
                or_none(selector_string(&spec["podSelector"])),
                age(obj, now),
            ]
        }
        ("policy", "PodDisruptionBudget") => {
            let or_na = |v: &Value| {
                if v.is_null() {
                    "N/A".to_string()
                } else {
                    scalar(v)
                }
            };
            vec![
                name,
                or_na(&spec["minAvailable"]).into(),
                or_na(&spec["maxUnavailable"]).into(),
                n(&status["disruptionsAllowed"]).into(),
                age(obj, now),
            ]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let role = &obj["roleRef"];
            let subjects: Vec<&Value> = obj["subjects"].as_array().into_iter().flatten().collect();
            let of = |kind: &str| -> Value {
                let names: Vec<String> = subjects
                    .iter()
                    .filter(|x| s(&x["kind"]) == kind)
                    .map(|x| match kind {
                        "ServiceAccount" => format!("{}/{}", s(&x["namespace"]), s(&x["name"])),
                        _ => s(&x["name"]).to_string(),
                    })
                    .collect();
                names.join(", ").into()
            };
            vec![
                name,
                format!("{}/{}", s(&role["kind"]), s(&role["name"])).into(),
                age(obj, now),
                of("User"),
                of("Group"),
                of("ServiceAccount"),
            ]
        }
        ("storage.k8s.io", "StorageClass") => {
            let annotations = &obj["metadata"]["annotations"];
            let default = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|a| annotations[*a] == "true");
            let shown = if default {
                format!("{} (default)", s(&obj["metadata"]["name"]))
            } else {
                s(&obj["metadata"]["name"]).to_string()
            };
            vec![
                shown.into(),
                s(&obj["provisioner"]).into(),
                obj["reclaimPolicy"].as_str().unwrap_or("Delete").into(),
                obj["volumeBindingMode"]
                    .as_str()
                    .unwrap_or("Immediate")
                    .into(),
                obj["allowVolumeExpansion"]
                    .as_bool()
                    .unwrap_or(false)
                    .into(),
                age(obj, now),
            ]
        }
        ("storage.k8s.io", "CSIDriver") => {
            let tokens: Vec<&str> = spec["tokenRequests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    t["audience"]
                        .as_str()
                        .filter(|a| !a.is_empty())
                        .unwrap_or("<api-server>")
                })
                .collect();
            let modes = strings(&spec["volumeLifecycleModes"]);
            vec![
                name,
                spec["attachRequired"].as_bool().unwrap_or(true).into(),
                spec["podInfoOnMount"].as_bool().unwrap_or(false).into(),
                spec["storageCapacity"].as_bool().unwrap_or(false).into(),
                or_unset(&tokens.join(",")),
                spec["requiresRepublish"].as_bool().unwrap_or(false).into(),
                if modes.is_empty() {
                    "Persistent".to_string()
                } else {
                    modes.join(",")
                }
                .into(),
                age(obj, now),
            ]
        }
        ("storage.k8s.io", "CSINode") => {
            let drivers = spec["drivers"].as_array().map_or(0, Vec::len);
            vec![name, drivers.into(), age(obj, now)]
        }
        ("storage.k8s.io", "VolumeAttachment") => vec![
            name,
            s(&spec["attacher"]).into(),
            s(&spec["source"]["persistentVolumeName"]).into(),
            s(&spec["nodeName"]).into(),
            status["attached"].as_bool().unwrap_or(false).into(),
            age(obj, now),
        ],
        ("storage.k8s.io", "CSIStorageCapacity") => vec![
            name,
            s(&obj["storageClassName"]).into(),
            or_unset(&scalar(&obj["capacity"])),
        ],
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = obj["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    p["port"]
                        .as_i64()
                        .map_or_else(|| "<unset>".to_string(), |p| p.to_string())
                })
                .collect();
            let addresses: Vec<&str> = obj["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| strings(&e["addresses"]))
                .collect();
            let shown = if addresses.len() > 3 {
                format!(
                    "{} + {} more...",
                    addresses[..3].join(","),
                    addresses.len() - 3
                )
            } else {
                addresses.join(",")
            };
            vec![
                name,
                s(&obj["addressType"]).into(),
                or_unset(&ports.join(",")),
                or_unset(&shown),
                age(obj, now),
            ]
        }
        ("node.k8s.io", "RuntimeClass") => vec![name, s(&obj["handler"]).into(), age(obj, now)],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            let duration = spec["expirationSeconds"]
                .as_i64()
                .map_or_else(|| "<none>".to_string(), human_duration);
            vec![
                name,
                age(obj, now),
                or_none(s(&spec["signerName"]).into()),
                s(&spec["username"]).into(),
                duration.into(),
                csr_condition(status).into(),
            ]
        }
        ("networking.k8s.io", "IPAddress") => {
            let r = &spec["parentRef"];
            let parent = if r.is_object() {
                let (group, resource) = (s(&r["group"]), s(&r["resource"]));
                // schema.GroupResource.String(), lower-cased.
                let mut p = if group.is_empty() {
                    resource.to_lowercase()
                } else {
                    format!("{resource}.{group}").to_lowercase()
                };
                if let Some(ns) = r["namespace"].as_str().filter(|ns| !ns.is_empty()) {
                    p = format!("{p}/{ns}");
                }
                format!("{p}/{}", s(&r["name"]))
            } else {
                "<none>".to_string()
            };
            // Kubernetes also appends the age, a third cell without a column.
            vec![name, parent.into()]
        }
        ("networking.k8s.io", "ServiceCIDR") => vec![
            name,
            strings(&spec["cidrs"]).join(",").into(),
            age(obj, now),
        ],
        // Through 1.33 the name got " (default)" from a default-class
        // annotation; storage.k8s.io/v1 (1.34+) prints the bare name.
        ("storage.k8s.io", "VolumeAttributesClass") => {
            vec![name, s(&obj["driverName"]).into(), age(obj, now)]
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy",
        ) => {
            let rules = if kind == "ValidatingAdmissionPolicy" {
                "validations"
            } else {
                "mutations"
            };
            let pk = &spec["paramKind"];
            let param_kind = if pk.is_object() {
                format!("{}/{}", s(&pk["apiVersion"]), s(&pk["kind"]))
            } else {
                "<unset>".to_string()
            };
            vec![
                name,
                spec[rules].as_array().map_or(0, Vec::len).into(),
                param_kind.into(),
                age(obj, now),
            ]
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding",
        ) => vec![
            name,
            s(&spec["policyName"]).into(),
            param_ref(&spec["paramRef"]).into(),
            age(obj, now),
        ],
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => {
            let dm = &spec["distinguisherMethod"];
            let method = if dm.is_object() {
                s(&dm["type"])
            } else {
                "<none>"
            };
            // The Dangling condition's status, `?` until one is written.
            let missing = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Dangling")
                .map_or("?", |c| s(&c["status"]));
            vec![
                name,
                s(&spec["priorityLevelConfiguration"]["name"]).into(),
                n(&spec["matchingPrecedence"]).into(),
                method.into(),
                age(obj, now),
                missing.into(),
            ]
        }
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            let limited = &spec["limited"];
            let queuing = &limited["limitResponse"]["queuing"];
            let (lim, q) = (limited.is_object(), queuing.is_object());
            let number = |v: &Value, present: bool| -> Value {
                if present {
                    n(v).into()
                } else {
                    "<none>".into()
                }
            };
            vec![
                name,
                s(&spec["type"]).into(),
                number(&limited["nominalConcurrencyShares"], lim),
                number(&queuing["queues"], q),
                number(&queuing["handSize"], q),
                number(&queuing["queueLengthLimit"], q),
                age(obj, now),
            ]
        }
        ("coordination.k8s.io", "LeaseCandidate") => vec![
            name,
            s(&spec["leaseName"]).into(),
            s(&spec["binaryVersion"]).into(),
            s(&spec["emulationVersion"]).into(),
            age(obj, now),
        ],
        ("resource.k8s.io", "ResourceClaim") => {
            vec![name, resource_claim_state(obj).into(), age(obj, now)]
        }
        ("resource.k8s.io", "ResourceSlice") => vec![
            name,
            s(&spec["nodeName"]).into(),
            s(&spec["driver"]).into(),
            s(&spec["pool"]["name"]).into(),
            age(obj, now),
        ],
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") | ("", "LimitRange") => {
            vec![name, obj["metadata"]["creationTimestamp"].clone()]
        }
        _ => vec![name, age(obj, now)],
    }
}

fn or_unset(v: &str) -> Value {
    Value::String(if v.is_empty() {
        "<unset>".into()
    } else {
        v.into()
    })
}

/// `Pending`, `Approved,Issued`, `Denied`, `Approved,Failed`: the types of a
/// CSR's conditions (their status is not looked at), then whether a
/// certificate was issued (kubernetes `extractCSRStatus`).
fn csr_condition(status: &Value) -> String {
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| s(&c["type"]))
        .collect();
    let has = |t: &str| types.contains(&t);
    let mut out = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !s(&status["certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}

/// A policy binding's parameter: `ns/name`, `*/name` when no namespace is
/// given, the selector as Go prints it, `<unset>` otherwise.
fn param_ref(r: &Value) -> String {
    if !r.is_object() {
        return "<unset>".into();
    }
    match (s(&r["name"]), s(&r["namespace"])) {
        ("", _) if r["selector"].is_object() => go_label_selector(&r["selector"]),
        ("", _) => "<unset>".into(),
        (name, "") => format!("*/{name}"),
        (name, ns) => format!("{ns}/{name}"),
    }
}

/// A label selector as the generated `(*metav1.LabelSelector).String()`
/// prints it: `&LabelSelector{MatchLabels:map[string]string{app: web,},
/// MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{
/// Key:env,Operator:In,Values:[prod dev],},},}` (one line; keys sorted).
fn go_label_selector(sel: &Value) -> String {
    let mut labels: Vec<(&String, &Value)> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    labels.sort_by(|a, b| a.0.cmp(b.0));
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("{k}: {},", s(v)))
        .collect();
    let exprs: String = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                s(&e["key"]),
                s(&e["operator"]),
                strings(&e["values"]).join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

/// `pending`, `allocated`, `allocated,reserved`, `deleted`,
/// `deleted,allocated,reserved` (kubernetes `resourceClaimState`).
fn resource_claim_state(obj: &Value) -> String {
    let deleted = !obj["metadata"]["deletionTimestamp"].is_null();
    let mut states = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if obj["status"]["allocation"].is_null() {
        if !deleted {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if obj["status"]["reservedFor"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            states.push("reserved");
        }
    }
    states.join(",")
}

/// How to render a Table: its apiVersion (`meta.k8s.io/v1` or
/// `…/v1beta1`, as the client asked), what rows carry, whether the column
/// definitions go along (not on later watch events), and the time ages are
/// computed from.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    pub api_version: &'static str,
    pub include: IncludeObject,
    pub with_columns: bool,
    pub now: i64,
}

/// A `meta.k8s.io` Table of `objects`.
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_meta: Value,
    opts: &TableOptions,
) -> Value {
    let TableOptions {
        api_version,
        include,
        with_columns,
        now,
    } = *opts;
    // Flow schemas are listed in the order they are matched in.
    let mut objects: Vec<&Value> = objects.iter().collect();
    if (group, kind) == ("flowcontrol.apiserver.k8s.io", "FlowSchema") {
        objects.sort_by(|a, b| {
            n(&a["spec"]["matchingPrecedence"])
                .cmp(&n(&b["spec"]["matchingPrecedence"]))
                .then_with(|| s(&a["metadata"]["name"]).cmp(s(&b["metadata"]["name"])))
        });
    }
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|obj| {
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Object => obj.clone(),
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": api_version,
                    "metadata": obj["metadata"],
                }),
            };
            json!({"cells": cells(group, kind, obj, now), "object": object})
        })
        .collect();
    let mut t =
        json!({"kind": "Table", "apiVersion": api_version, "metadata": list_meta, "rows": rows});
    if with_columns {
        let has_name_column = columns(group, kind).iter().any(|c| c.name == "Name");
        let defs: Vec<Value> = columns(group, kind)
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "name": c.name,
                    "type": c.kind,
                    // The name column: the first, or the one called Name.
                    "format": if c.name == "Name" || (i == 0 && !has_name_column) { "name" } else { "" },
                    "description": "",
                    "priority": c.priority,
                })
            })
            .collect();
        t["columnDefinitions"] = defs.into();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells_of(group: &str, kind: &str, obj: Value) -> Vec<Value> {
        let c = cells(group, kind, &obj, 1_000_000 + 300);
        assert_eq!(
            c.len(),
            columns(group, kind).len(),
            "{kind}: one cell per column"
        );
        c
    }

    const CREATED: &str = "1970-01-12T13:46:40Z"; // epoch 1_000_000

    #[test]
    fn pods_show_ready_status_restarts_and_age() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": CREATED},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells_of("", "Pod", pod);
        assert_eq!(
            c[..5],
            [
                json!("web-1"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!(3),
                json!("5m")
            ]
        );
        assert_eq!(c[5], "10.42.0.5");
        assert_eq!(c[6], "n1");
    }

    #[test]
    fn workloads_and_services_show_their_columns() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = cells_of("apps", "Deployment", d);
        assert_eq!(
            c,
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5m"),
                json!("nginx"),
                json!("nginx:1"),
                json!("app=web")
            ]
        );
        let svc = json!({"metadata": {"name": "s", "creationTimestamp": CREATED},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "ports": [{"port": 80, "nodePort": 30080}], "selector": {"app": "web"}}});
        let c = cells_of("", "Service", svc);
        assert_eq!(
            c[1..5],
            [
                json!("NodePort"),
                json!("10.43.0.9"),
                json!("<none>"),
                json!("80:30080/TCP")
            ]
        );
        let cm = cells_of(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
        );
        assert_eq!(cm[1], 2);
        assert_eq!(cm[2], "<unknown>");
        assert_eq!(
            cells_of(
                "",
                "Namespace",
                json!({"metadata": {"name": "x"}, "status": {"phase": "Active"}})
            )[1],
            "Active"
        );
        let sc = cells_of(
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "sc", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "p"}),
        );
        assert_eq!(
            sc[..5],
            [
                json!("sc (default)"),
                json!("p"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let hpa = cells_of(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}),
        );
        assert_eq!(
            hpa[..6],
            [
                json!("h"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/50%"),
                json!("<unset>"),
                json!(3),
                json!(0)
            ]
        );
        // Every column list and row agree in length, for every kind.
        for r in crate::registry::RESOURCES {
            assert_eq!(
                columns(r.group, r.kind).len(),
                cells(r.group, r.kind, &json!({}), 0).len(),
                "{}",
                r.kind
            );
        }
    }

    #[test]
    fn events_show_last_seen_type_reason_object_and_message() {
        let ev = json!({"metadata": {"name": "web.1", "creationTimestamp": CREATED},
            "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Warning", "reason": "BackOff",
            "message": "Back-off restarting\n", "lastTimestamp": CREATED, "count": 4,
            "source": {"component": "kubelet", "host": "n1"}});
        let c = cells_of("", "Event", ev);
        assert_eq!(
            c[..4],
            [
                json!("5m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web")
            ]
        );
        assert_eq!(c[5], "kubelet, n1");
        assert_eq!(c[6], "Back-off restarting");
        assert_eq!(c[8], 4);
        let opts = TableOptions {
            api_version: "meta.k8s.io/v1",
            include: IncludeObject::None,
            with_columns: true,
            now: 0,
        };
        let t = table("", "Event", &[], json!({}), &opts);
        assert_eq!(
            t["columnDefinitions"][0]["format"], "",
            "Last Seen is not the name column"
        );
        assert_eq!(t["columnDefinitions"][9]["format"], "name");
    }

    #[test]
    fn tables_carry_definitions_rows_and_metadata() {
        let objs = vec![json!({"metadata": {"name": "a", "labels": {"x": "y"}}})];
        let opts = TableOptions {
            api_version: "meta.k8s.io/v1",
            include: IncludeObject::Metadata,
            with_columns: true,
            now: 0,
        };
        let t = table(
            "",
            "ConfigMap",
            &objs,
            json!({"resourceVersion": "5"}),
            &opts,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["x"], "y");
        let opts = TableOptions {
            include: IncludeObject::None,
            with_columns: false,
            ..opts
        };
        let t = table("", "ConfigMap", &objs, json!({}), &opts);
        assert!(t.get("columnDefinitions").is_none());
        assert!(t["rows"][0]["object"].is_null());
    }

    #[test]
    fn cron_jobs_show_suspend_as_kubernetes_prints_booleans() {
        let cj = |suspend: Value| {
            cells_of(
                "batch",
                "CronJob",
                json!({"metadata": {"name": "c", "creationTimestamp": CREATED},
                       "spec": {"schedule": "*/5 * * * *", "suspend": suspend,
                                "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
            )[3]
                .clone()
        };
        assert_eq!(cj(json!(false)), "False");
        assert_eq!(cj(json!(true)), "True");
        assert_eq!(cj(Value::Null), "<unset>");
    }

    #[test]
    fn certificate_signing_requests_show_signer_requestor_duration_and_condition() {
        let csr = |spec: Value, status: Value| {
            cells_of(
                "certificates.k8s.io",
                "CertificateSigningRequest",
                json!({"metadata": {"name": "csr-1", "creationTimestamp": CREATED},
                    "spec": spec, "status": status}),
            )
        };
        assert_eq!(
            csr(
                json!({"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 3600}),
                json!({})
            ),
            [
                json!("csr-1"),
                json!("5m"),
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("60m"),
                json!("Pending")
            ]
        );
        let approved = json!({"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0tLS1CRUdJTg=="});
        let c = csr(
            json!({"signerName": "kubernetes.io/kubelet-serving", "expirationSeconds": 86400}),
            approved,
        );
        assert_eq!(c[3], "", "no username, no placeholder");
        assert_eq!(c[4], "24h");
        assert_eq!(c[5], "Approved,Issued");
        let c = csr(json!({}), json!({"conditions": [{"type": "Approved"}]}));
        assert_eq!(
            c[2..],
            [
                json!("<none>"),
                json!(""),
                json!("<none>"),
                json!("Approved")
            ]
        );
        let c = csr(
            json!({}),
            json!({"conditions": [{"type": "Approved"}, {"type": "Denied"}]}),
        );
        assert_eq!(c[5], "Denied", "Denied wins over Approved");
        let c = csr(
            json!({}),
            json!({"conditions": [{"type": "Approved"}, {"type": "Failed", "status": "True"}]}),
        );
        assert_eq!(c[5], "Approved,Failed");
        let c = csr(
            json!({"expirationSeconds": 600}),
            json!({"conditions": [{"type": "Failed"}], "certificate": "eA=="}),
        );
        assert_eq!(c[4..], [json!("10m"), json!("Pending,Failed,Issued")]);
    }

    #[test]
    fn flow_schemas_show_level_precedence_method_and_missing_level() {
        let fs = json!({"metadata": {"name": "workload-leader-election", "creationTimestamp": CREATED},
            "spec": {"priorityLevelConfiguration": {"name": "leader-election"}, "matchingPrecedence": 200,
                     "distinguisherMethod": {"type": "ByUser"}},
            "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
        assert_eq!(
            cells_of("flowcontrol.apiserver.k8s.io", "FlowSchema", fs),
            [
                json!("workload-leader-election"),
                json!("leader-election"),
                json!(200),
                json!("ByUser"),
                json!("5m"),
                json!("False")
            ]
        );
        let bare = json!({"metadata": {"name": "exempt", "creationTimestamp": CREATED},
            "spec": {"priorityLevelConfiguration": {"name": "exempt"}, "matchingPrecedence": 1}});
        let c = cells_of("flowcontrol.apiserver.k8s.io", "FlowSchema", bare);
        assert_eq!(c[3], "<none>");
        assert_eq!(c[5], "?", "no Dangling condition yet");
        let dangling = json!({"metadata": {"name": "x"}, "spec": {"priorityLevelConfiguration": {"name": "gone"}},
            "status": {"conditions": [{"type": "Dangling", "status": "True"}]}});
        assert_eq!(
            cells_of("flowcontrol.apiserver.k8s.io", "FlowSchema", dangling)[5],
            "True"
        );
        // Lists come sorted by precedence, then name.
        let fs = |name: &str, p: i64| json!({"metadata": {"name": name}, "spec": {"matchingPrecedence": p}});
        let opts = TableOptions {
            api_version: "meta.k8s.io/v1",
            include: IncludeObject::None,
            with_columns: false,
            now: 0,
        };
        let t = table(
            "flowcontrol.apiserver.k8s.io",
            "FlowSchema",
            &[fs("b", 1000), fs("a", 1000), fs("c", 50)],
            json!({}),
            &opts,
        );
        let names: Vec<&Value> = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["cells"][0])
            .collect();
        assert_eq!(names, [&json!("c"), &json!("a"), &json!("b")]);
    }

    #[test]
    fn priority_levels_show_shares_and_queuing_or_none() {
        let plc = |name: &str, spec: Value| {
            cells_of(
                "flowcontrol.apiserver.k8s.io",
                "PriorityLevelConfiguration",
                json!({"metadata": {"name": name, "creationTimestamp": CREATED}, "spec": spec}),
            )
        };
        assert_eq!(
            plc(
                "global-default",
                json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 20, "lendablePercent": 50,
                    "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}})
            ),
            [
                json!("global-default"),
                json!("Limited"),
                json!(20),
                json!(128),
                json!(6),
                json!(50),
                json!("5m")
            ]
        );
        assert_eq!(
            plc(
                "catch-all",
                json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 5, "lendablePercent": 0,
                    "limitResponse": {"type": "Reject"}}})
            )[1..6],
            [
                json!("Limited"),
                json!(5),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        assert_eq!(
            plc(
                "exempt",
                json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}})
            ),
            [
                json!("exempt"),
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("5m")
            ]
        );
    }

    #[test]
    fn resource_claims_show_their_state() {
        let claim = |meta: Value, status: Value| {
            let mut m = json!({"name": "gpu", "creationTimestamp": CREATED});
            m.as_object_mut()
                .unwrap()
                .extend(meta.as_object().unwrap().clone());
            cells_of(
                "resource.k8s.io",
                "ResourceClaim",
                json!({"metadata": m, "status": status}),
            )
        };
        let allocation = json!({"devices": {"results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "n1", "device": "gpu-0"}]}});
        let reserved = json!([{"resource": "pods", "name": "p", "uid": "u1"}]);
        let gone = json!({"deletionTimestamp": CREATED});
        assert_eq!(
            claim(json!({}), json!({})),
            [json!("gpu"), json!("pending"), json!("5m")]
        );
        assert_eq!(
            claim(json!({}), json!({"allocation": allocation}))[1],
            "allocated"
        );
        assert_eq!(
            claim(
                json!({}),
                json!({"allocation": allocation, "reservedFor": reserved})
            )[1],
            "allocated,reserved"
        );
        assert_eq!(
            claim(
                json!({}),
                json!({"allocation": allocation, "reservedFor": []})
            )[1],
            "allocated"
        );
        assert_eq!(claim(gone.clone(), json!({}))[1], "deleted");
        assert_eq!(
            claim(
                gone,
                json!({"allocation": allocation, "reservedFor": reserved})
            )[1],
            "deleted,allocated,reserved"
        );
        let slice = json!({"metadata": {"name": "n1-gpu.example.com-x7", "creationTimestamp": CREATED},
            "spec": {"driver": "gpu.example.com", "nodeName": "n1", "pool": {"name": "n1", "generation": 1, "resourceSliceCount": 1}}});
        assert_eq!(
            cells_of("resource.k8s.io", "ResourceSlice", slice),
            [
                json!("n1-gpu.example.com-x7"),
                json!("n1"),
                json!("gpu.example.com"),
                json!("n1"),
                json!("5m")
            ]
        );
        let shared = json!({"metadata": {"name": "s"}, "spec": {"driver": "d", "allNodes": true, "pool": {"name": "p"}}});
        assert_eq!(cells_of("resource.k8s.io", "ResourceSlice", shared)[1], "");
        assert_eq!(
            cells_of(
                "resource.k8s.io",
                "DeviceClass",
                json!({"metadata": {"name": "gpu.example.com", "creationTimestamp": CREATED}})
            ),
            [json!("gpu.example.com"), json!("5m")]
        );
    }

    #[test]
    fn service_cidrs_and_ip_addresses_show_ranges_and_parents() {
        let cidr = json!({"metadata": {"name": "kubernetes", "creationTimestamp": CREATED},
            "spec": {"cidrs": ["10.96.0.0/28", "fd00:10:96::/112"]}});
        assert_eq!(
            cells_of("networking.k8s.io", "ServiceCIDR", cidr),
            [
                json!("kubernetes"),
                json!("10.96.0.0/28,fd00:10:96::/112"),
                json!("5m")
            ]
        );
        assert_eq!(
            cells_of(
                "networking.k8s.io",
                "ServiceCIDR",
                json!({"metadata": {"name": "e"}, "spec": {}})
            )[1],
            ""
        );
        for (parent, want) in [
            (
                json!({"resource": "services", "namespace": "default", "name": "kubernetes"}),
                "services/default/kubernetes",
            ),
            (
                json!({"group": "gateway.networking.k8s.io", "resource": "Gateways", "namespace": "edge", "name": "public"}),
                "gateways.gateway.networking.k8s.io/edge/public",
            ),
            (
                json!({"resource": "nodes", "name": "worker"}),
                "nodes/worker",
            ),
            (Value::Null, "<none>"),
        ] {
            let ip = json!({"metadata": {"name": "10.96.0.1"}, "spec": {"parentRef": parent}});
            assert_eq!(
                cells_of("networking.k8s.io", "IPAddress", ip),
                [json!("10.96.0.1"), json!(want)]
            );
        }
    }

    #[test]
    fn admission_policies_bindings_and_the_rest() {
        let vap = json!({"metadata": {"name": "replicas", "creationTimestamp": CREATED},
            "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                     "validations": [{"expression": "object.spec.replicas <= 5"}, {"expression": "true"}]}});
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "ValidatingAdmissionPolicy",
                vap
            ),
            [
                json!("replicas"),
                json!(2),
                json!("v1/ConfigMap"),
                json!("5m")
            ]
        );
        let map = json!({"metadata": {"name": "m"}, "spec": {"mutations": [{"patchType": "ApplyConfiguration"}]}});
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "MutatingAdmissionPolicy",
                map
            )[1..3],
            [json!(1), json!("<unset>")]
        );
        let binding = |param_ref: Value| {
            cells_of(
                "admissionregistration.k8s.io",
                "ValidatingAdmissionPolicyBinding",
                json!({"metadata": {"name": "b"}, "spec": {"policyName": "replicas", "paramRef": param_ref}}),
            )[1..3]
                .to_vec()
        };
        assert_eq!(
            binding(json!({"name": "limits", "namespace": "team-a"})),
            [json!("replicas"), json!("team-a/limits")]
        );
        assert_eq!(binding(json!({"name": "limits"}))[1], "*/limits");
        assert_eq!(binding(Value::Null)[1], "<unset>");
        assert_eq!(
            binding(json!({"parameterNotFoundAction": "Deny"}))[1],
            "<unset>"
        );
        assert_eq!(
            binding(json!({"selector": {"matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}}))
                [1],
            "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:env,Operator:In,Values:[prod dev],},},}"
        );
        assert_eq!(
            binding(json!({"selector": {}}))[1],
            "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}"
        );
        let vac = json!({"metadata": {"name": "silver", "creationTimestamp": CREATED},
            "driverName": "pd.csi.storage.gke.io", "parameters": {"iops": "3000"}});
        assert_eq!(
            cells_of("storage.k8s.io", "VolumeAttributesClass", vac),
            [json!("silver"), json!("pd.csi.storage.gke.io"), json!("5m")]
        );
        let lc = json!({"metadata": {"name": "kube-controller-manager-n1", "creationTimestamp": CREATED},
            "spec": {"leaseName": "kube-controller-manager", "binaryVersion": "1.33.0", "emulationVersion": "1.32.0",
                     "strategy": "OldestEmulationVersion"}});
        assert_eq!(
            cells_of("coordination.k8s.io", "LeaseCandidate", lc),
            [
                json!("kube-controller-manager-n1"),
                json!("kube-controller-manager"),
                json!("1.33.0"),
                json!("1.32.0"),
                json!("5m")
            ]
        );
    }
}
