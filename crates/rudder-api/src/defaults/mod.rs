//! Kubernetes' defaulting for the built-in kinds (k8s.io/kubernetes
//! pkg/apis/*/v1/defaults.go), on JSON: what the API server fills in when
//! a client leaves a field out, so `kubectl get -o yaml` shows what it
//! shows on Kubernetes and controllers can rely on the fields.
//!
//! Only fields that are absent are set; a value the client gave is never
//! replaced. Objects of the wrong shape are left alone (validation reports
//! them).

use serde_json::{Map, Value, json};

mod control_plane;
mod kinds;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Metadata lists and maps left empty (the last finalizer or owner
/// reference removed by a patch) are dropped, as Go's `omitempty` does when
/// Kubernetes re-encodes the object.
fn omit_empty_metadata(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "labels",
            "annotations",
            "ownerReferences",
            "finalizers",
            "managedFields",
        ] {
            let empty = match meta.get(field) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// Applies the defaults of `kind` (in `group` and `version`) to `object`.
pub fn apply(group: &str, version: &str, kind: &str, object: &mut Value) {
    omit_empty_metadata(object);
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
                pod(spec);
            }
        }
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "replicas", 1.into());
            }
            template(object.get_mut("spec"));
            // An RC selects, and is labelled with, its template's labels
            // unless it says otherwise (apps/v1 ReplicaSets do not).
            let labels = object["spec"]["template"]["metadata"]["labels"].clone();
            if kind == "ReplicationController" && labels.as_object().is_some_and(|l| !l.is_empty())
            {
                let empty =
                    |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(Map::is_empty);
                if let Some(spec) = object.get_mut("spec").and_then(obj)
                    && empty(spec.get("selector"))
                {
                    spec.insert("selector".into(), labels.clone());
                }
                if let Some(meta) = object.get_mut("metadata").and_then(obj)
                    && empty(meta.get("labels"))
                {
                    meta.insert("labels".into(), labels);
                }
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "replicas", 1.into());
                set_default(spec, "revisionHistoryLimit", 10.into());
                set_default(spec, "progressDeadlineSeconds", 600.into());
                rolling_update(spec, "strategy", "25%".into(), "25%".into());
            }
            template(object.get_mut("spec"));
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "replicas", 1.into());
                set_default(spec, "revisionHistoryLimit", 10.into());
                set_default(spec, "podManagementPolicy", "OrderedReady".into());
                set_default(spec, "updateStrategy", json!({}));
                if let Some(us) = spec.get_mut("updateStrategy").and_then(obj) {
                    // A rollingUpdate is made only where no type was given.
                    if us.get("type").is_none_or(Value::is_null) {
                        us.insert("type".into(), "RollingUpdate".into());
                        set_default(us, "rollingUpdate", json!({}));
                    }
                    if us.get("type") == Some(&Value::from("RollingUpdate"))
                        && let Some(ru) = us.get_mut("rollingUpdate").and_then(obj)
                    {
                        set_default(ru, "partition", 0.into());
                    }
                }
                set_default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                // The claim templates are PersistentVolumeClaims, typed and
                // defaulted as such.
                for claim in each(spec.get_mut("volumeClaimTemplates")).filter_map(obj) {
                    set_default(claim, "apiVersion", "v1".into());
                    set_default(claim, "kind", "PersistentVolumeClaim".into());
                    if let Some(s) = claim.get_mut("spec").and_then(obj) {
                        set_default(s, "volumeMode", "Filesystem".into());
                    }
                    set_default(claim, "status", json!({"phase": "Pending"}));
                }
            }
            template(object.get_mut("spec"));
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "revisionHistoryLimit", 10.into());
                rolling_update(spec, "updateStrategy", 1.into(), 0.into());
            }
            template(object.get_mut("spec"));
        }
        ("batch", "Job") => {
            if let Some(spec) = object.get_mut("spec") {
                job_spec(spec);
            }
            // SetDefaults_Job: a Job without labels takes its template's.
            let template_labels = &object["spec"]["template"]["metadata"]["labels"];
            let no_labels = object["metadata"]["labels"]
                .as_object()
                .is_none_or(|l| l.is_empty());
            if no_labels
                && template_labels.as_object().is_some_and(|l| !l.is_empty())
                && object["metadata"].is_object()
            {
                object["metadata"]["labels"] = template_labels.clone();
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                set_default(spec, "concurrencyPolicy", "Allow".into());
                set_default(spec, "suspend", false.into());
                set_default(spec, "successfulJobsHistoryLimit", 3.into());
                set_default(spec, "failedJobsHistoryLimit", 1.into());
                // Only the pod template: the Jobs made from it get the
                // Job defaults when they are created.
                template(spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")));
            }
        }
        _ => {
            let _ = kinds::apply(group, kind, version, object)
                || control_plane::apply(group, kind, object);
        }
    }
}

/// `spec[key]`, a Deployment's or DaemonSet's update strategy: a rolling
/// update unless told otherwise, with these bounds where none are given.
fn rolling_update(
    spec: &mut Map<String, Value>,
    key: &str,
    max_unavailable: Value,
    max_surge: Value,
) {
    set_default(spec, key, json!({}));
    let Some(strategy) = spec.get_mut(key).and_then(obj) else {
        return;
    };
    set_default(strategy, "type", "RollingUpdate".into());
    if strategy.get("type") == Some(&Value::from("RollingUpdate")) {
        set_default(strategy, "rollingUpdate", json!({}));
        if let Some(ru) = strategy.get_mut("rollingUpdate").and_then(obj) {
            set_default(ru, "maxUnavailable", max_unavailable);
            set_default(ru, "maxSurge", max_surge);
        }
    }
}

fn job_spec(spec: &mut Value) {
    if let Some(s) = obj(spec) {
        let (completions, parallelism) =
            (s.get("completions").cloned(), s.get("parallelism").cloned());
        if completions.as_ref().is_none_or(Value::is_null)
            && parallelism.as_ref().is_none_or(Value::is_null)
        {
            s.insert("completions".into(), 1.into());
        }
        set_default(s, "parallelism", 1.into());
        // A limit per index leaves the global one unbounded.
        let per_index = s.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
        set_default(
            s,
            "backoffLimit",
            if per_index { i32::MAX } else { 6 }.into(),
        );
        set_default(s, "completionMode", "NonIndexed".into());
        set_default(s, "suspend", false.into());
        // With a pod failure policy, a pod is replaced once it has failed.
        let failure_policy = s.get("podFailurePolicy").is_some_and(|v| !v.is_null());
        set_default(
            s,
            "podReplacementPolicy",
            if failure_policy {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }
            .into(),
        );
        set_default(s, "manualSelector", false.into());
        for rule in each(
            s.get_mut("podFailurePolicy")
                .and_then(|p| p.get_mut("rules")),
        ) {
            for c in each(rule.get_mut("onPodConditions")).filter_map(obj) {
                set_default(c, "status", "True".into());
            }
        }
    }
    template(Some(spec));
}

/// `spec.template.spec` of a workload.
fn template(spec: Option<&mut Value>) {
    if let Some(pod) = spec
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
    {
        pod_spec(pod);
    }
}

/// SetDefaults_PodSpec and what it holds (containers, probes, volumes):
/// a pod's spec and every pod template's.
pub fn pod_spec(spec: &mut Value) {
    let Some(s) = obj(spec) else { return };
    set_default(s, "dnsPolicy", "ClusterFirst".into());
    set_default(s, "restartPolicy", "Always".into());
    set_default(s, "terminationGracePeriodSeconds", 30.into());
    set_default(s, "securityContext", json!({}));
    set_default(s, "schedulerName", "default-scheduler".into());
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each(s.get_mut(list)) {
            container(c);
        }
    }
    for v in each(s.get_mut("volumes")) {
        volume(v);
    }
}

/// SetDefaults_Pod: what only a pod gets, not a template.
fn pod(spec: &mut Value) {
    let Some(s) = obj(spec) else { return };
    set_default(s, "enableServiceLinks", true.into());
    let host_network = s.get("hostNetwork") == Some(&Value::Bool(true));
    for list in ["initContainers", "containers"] {
        for c in each(s.get_mut(list)).filter_map(obj) {
            // Requests default to the limits.
            if let Some(Value::Object(limits)) = c.get("resources").and_then(|r| r.get("limits")) {
                let limits = limits.clone();
                if let Some(resources) = c.get_mut("resources").and_then(obj) {
                    set_default(resources, "requests", json!({}));
                    if let Some(requests) = resources.get_mut("requests").and_then(obj) {
                        for (k, v) in limits {
                            requests.entry(k).or_insert(v);
                        }
                    }
                }
            }
            if host_network {
                for p in each(c.get_mut("ports")).filter_map(obj) {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        set_default(p, "hostPort", cp);
                    }
                }
            }
        }
    }
}

/// The items of a list field (none when absent or not a list).
fn each(v: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    v.and_then(Value::as_array_mut).into_iter().flatten()
}

/// SetDefaults_Container, its probes, handlers and environment.
fn container(c: &mut Value) {
    let Some(c) = obj(c) else { return };
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // `:latest` or no tag (and no digest) means Always.
    let last = image.rsplit('/').next().unwrap_or(image);
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    set_default(
        c,
        "imagePullPolicy",
        if latest { "Always" } else { "IfNotPresent" }.into(),
    );
    set_default(c, "terminationMessagePath", "/dev/termination-log".into());
    set_default(c, "terminationMessagePolicy", "File".into());
    set_default(c, "resources", json!({}));
    for p in each(c.get_mut("ports")).filter_map(obj) {
        set_default(p, "protocol", "TCP".into());
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(obj) {
            set_default(p, "timeoutSeconds", 1.into());
            set_default(p, "periodSeconds", 10.into());
            set_default(p, "successThreshold", 1.into());
            set_default(p, "failureThreshold", 3.into());
            handler(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(obj) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(obj) {
                handler(h);
            }
        }
    }
    for env in each(c.get_mut("env")) {
        if let Some(f) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(obj)
        {
            set_default(f, "apiVersion", "v1".into());
        }
    }
}

/// SetDefaults_HTTPGetAction (probes and lifecycle hooks).
fn handler(h: &mut Map<String, Value>) {
    if let Some(get) = h.get_mut("httpGet").and_then(obj) {
        set_default(get, "path", "/".into());
        set_default(get, "scheme", "HTTP".into());
    }
}

/// SetDefaults_Volume and the volume sources' defaults.
fn volume(v: &mut Value) {
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    let Some(v) = obj(v) else { return };
    if !SOURCES
        .iter()
        .any(|k| v.get(*k).is_some_and(|s| !s.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(obj) {
            set_default(s, "defaultMode", 420.into());
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(obj) {
        set_default(h, "type", "".into());
    }
    for item in each(v.get_mut("downwardAPI").and_then(|d| d.get_mut("items"))) {
        if let Some(f) = item.get_mut("fieldRef").and_then(obj) {
            set_default(f, "apiVersion", "v1".into());
        }
    }
    for source in each(v.get_mut("projected").and_then(|p| p.get_mut("sources"))) {
        if let Some(t) = source.get_mut("serviceAccountToken").and_then(obj) {
            set_default(t, "expirationSeconds", 3600.into());
        }
        for item in each(
            source
                .get_mut("downwardAPI")
                .and_then(|d| d.get_mut("items")),
        ) {
            if let Some(f) = item.get_mut("fieldRef").and_then(obj) {
                set_default(f, "apiVersion", "v1".into());
            }
        }
    }
    if let Some(spec) = v
        .get_mut("ephemeral")
        .and_then(|e| e.get_mut("volumeClaimTemplate"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(obj)
    {
        set_default(spec, "volumeMode", "Filesystem".into());
    }
}

/// What admission adds to a new pod: its service account (its priority
/// comes from the API server, which reads the PriorityClasses),
/// default tolerations, and the initial status.
pub fn pod_admission(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec").and_then(obj) {
        set_default(spec, "serviceAccountName", "default".into());
        let sa = spec
            .get("serviceAccountName")
            .cloned()
            .unwrap_or(Value::Null);
        set_default(spec, "serviceAccount", sa);
        set_default(spec, "tolerations", json!([]));
        if let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                let covered = tolerations.iter().any(|t| {
                    t["key"] == key
                        || (t["operator"] == "Exists" && t.get("key").is_none_or(Value::is_null))
                });
                if !covered {
                    tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
    }
    let qos = qos_class(&pod["spec"]);
    if let Some(p) = obj(pod) {
        p.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

/// BestEffort, Burstable or Guaranteed, from the containers' resources.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let (req, lim) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        if req.as_object().is_some_and(|m| !m.is_empty())
            || lim.as_object().is_some_and(|m| !m.is_empty())
        {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = &lim[r];
            let request = if req[r].is_null() { limit } else { &req[r] };
            if limit.is_null() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_get_kubernetes_defaults() {
        let mut d = json!({"spec": {"selector": {}, "template": {"spec": {"containers": [
            {"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "busybox"}
        ]}}}});
        apply("apps", "v1", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            pod["containers"][1]["imagePullPolicy"], "Always",
            "no tag means latest"
        );
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
    }

    #[test]
    fn given_values_are_kept() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}});
        apply("apps", "v1", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut job =
            json!({"spec": {"parallelism": 3, "template": {"spec": {"restartPolicy": "Never"}}}});
        apply("batch", "v1", "Job", &mut job);
        assert!(
            job["spec"].get("completions").is_none(),
            "completions stays unset when parallelism is given"
        );
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let mut odd = json!({"spec": "not an object"});
        apply("apps", "v1", "Deployment", &mut odd);
        assert_eq!(odd["spec"], "not an object");
    }

    #[test]
    fn pods_get_admission_defaults_and_a_qos_class() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "x:1",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        pod_admission(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }
}
