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
        _ => {
            const C: &[Column] = &[col("Name"), col("Age")];
            C
        }
    }
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
                spec["suspend"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string()
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
        _ => vec![name, age(obj, now)],
    }
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
    let rows: Vec<Value> = objects
        .iter()
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
        assert_eq!(
            cells_of(
                "storage.k8s.io",
                "StorageClass",
                json!({"metadata": {"name": "sc"}})
            )
            .len(),
            2
        );
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
}
