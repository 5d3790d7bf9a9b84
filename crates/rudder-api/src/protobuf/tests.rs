use super::*;
use serde_json::json;

type W = Writer;

fn envelope(api_version: &str, kind: &str, raw: W) -> Vec<u8> {
    Writer::envelope(api_version, kind, raw)
}

fn entry(k: &str, v: W) -> W {
    W::default().str(1, k).msg(2, v)
}

#[test]
fn deployment_as_kubectl_create_sends_it() {
    let labels = W::default().str(1, "app").str(2, "web");
    let meta = W::default()
        .str(1, "web")
        .str(3, "")
        .msg(8, W::default())
        .msg(11, labels);
    let container = W::default()
        .str(1, "nginx")
        .str(2, "nginx:1.25")
        .msg(8, W::default())
        .str(14, "")
        .int(16, 0);
    let pod_spec = W::default().msg(2, container).int(11, 0).str(3, "");
    let template = W::default()
        .msg(
            1,
            W::default().msg(11, W::default().str(1, "app").str(2, "web")),
        )
        .msg(2, pod_spec);
    let selector = W::default().msg(1, W::default().str(1, "app").str(2, "web"));
    let strategy = W::default();
    let spec = W::default()
        .int(1, 0)
        .msg(2, selector)
        .msg(3, template)
        .msg(4, strategy)
        .int(5, 0)
        .int(7, 0);
    let raw = W::default().msg(1, meta).msg(2, spec).msg(3, W::default());
    let obj = decode(&envelope("apps/v1", "Deployment", raw)).unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn special_types_get_their_json_forms() {
    let quantity = |s: &str| W::default().str(1, s);
    let resources = W::default()
        .msg(1, entry("cpu", quantity("500m")))
        .msg(2, entry("memory", quantity("64Mi")));
    let port = W::default().int(1, 1).str(3, "http");
    let probe_port = W::default().int(1, 0).int(2, 8080);
    let probe = W::default().msg(1, W::default().msg(3, W::default().msg(1, probe_port)));
    let http_get = W::default().msg(2, port);
    let container = W::default()
        .str(1, "c")
        .msg(8, resources)
        .msg(10, probe)
        .msg(11, W::default().msg(1, W::default().msg(2, http_get)));
    let raw = W::default()
        .msg(
            1,
            W::default()
                .str(1, "p")
                .msg(8, W::default().int(1, 1_700_000_000)),
        )
        .msg(2, W::default().msg(2, container));
    let obj = decode(&envelope("v1", "Pod", raw)).unwrap();
    assert_eq!(obj["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    let c = &obj["spec"]["containers"][0];
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}})
    );
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], 8080);
    assert_eq!(c["readinessProbe"], json!({"httpGet": {"port": "http"}}));
}

#[test]
fn secret_bytes_become_base64_and_review_kinds_decode() {
    let raw = W::default()
        .msg(1, W::default().str(1, "s"))
        .msg(2, W::default().str(1, "k").bytes(2, b"\x00\xffhi"))
        .str(3, "Opaque");
    let obj = decode(&envelope("v1", "Secret", raw)).unwrap();
    assert_eq!(obj["data"]["k"], "AP9oaQ==");
    assert_eq!(obj["type"], "Opaque");

    let attrs = W::default().str(1, "default").str(2, "get").str(5, "pods");
    let raw = W::default()
        .msg(1, W::default())
        .msg(2, W::default().msg(1, attrs));
    let obj = decode(&envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        raw,
    ))
    .unwrap();
    assert_eq!(
        obj["spec"]["resourceAttributes"],
        json!({"namespace": "default", "verb": "get", "resource": "pods"})
    );

    let raw = W::default().msg(1, W::default().str(1, "r"));
    let obj = decode(&envelope("rbac.authorization.k8s.io/v1", "Role", raw)).unwrap();
    assert_eq!(obj["metadata"]["name"], "r");
}

#[test]
fn go_durations() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(90_500_000_000), "1m30.5s");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(300_000_000), "300ms");
    assert_eq!(go_duration(-2_000_000_000), "-2s");
}

#[test]
fn bad_bodies_are_errors() {
    assert!(decode(b"{}").is_err());
    assert!(decode(b"k8s\0").is_err(), "no kind");
    let raw = W::default().msg(1, W::default().str(1, "x"));
    assert!(decode(&envelope("example.com/v1", "Widget", raw)).is_err());
    let mut truncated = envelope(
        "v1",
        "ConfigMap",
        W::default().msg(1, W::default().str(1, "x")),
    );
    truncated.pop();
    assert!(decode(&truncated).is_err());
    // Deeply nested RawExtensions stop at the depth limit.
    let mut inner = envelope("v1", "ConfigMap", W::default());
    for _ in 0..200 {
        let rev = W::default()
            .msg(1, W::default().str(1, "r"))
            .msg(2, W::default().bytes(1, &inner));
        inner = envelope("apps/v1", "ControllerRevision", rev);
    }
    assert!(decode(&inner).is_err());
}

#[test]
fn meta_kinds_decode_in_every_group_version() {
    // client-go's delete: DeleteOptions under the resource's group version.
    let raw = W::default()
        .int(1, 0)
        .msg(2, W::default().str(1, "u-1"))
        .str(4, "Foreground");
    for api_version in ["v1", "apps/v1", "batch/v1"] {
        let obj = decode(&envelope(api_version, "DeleteOptions", raw.clone())).unwrap();
        assert_eq!(obj["kind"], "DeleteOptions");
        assert_eq!(obj["apiVersion"], api_version);
        assert_eq!(obj["gracePeriodSeconds"], 0, "{obj}");
        assert_eq!(obj["preconditions"], json!({"uid": "u-1"}));
        assert_eq!(obj["propagationPolicy"], "Foreground");
    }
    // An eviction carries its DeleteOptions inside.
    let raw = W::default()
        .msg(1, W::default().str(1, "web").str(3, "default"))
        .msg(2, W::default().int(1, 5));
    let obj = decode(&envelope("policy/v1", "Eviction", raw)).unwrap();
    assert_eq!(obj["metadata"]["name"], "web");
    assert_eq!(obj["deleteOptions"]["gracePeriodSeconds"], 5);
    // A Binding and a Scale decode as their own kinds.
    let raw = W::default()
        .msg(1, W::default().str(1, "web"))
        .msg(2, W::default().str(1, "Node").str(3, "node-1"));
    let obj = decode(&envelope("v1", "Binding", raw)).unwrap();
    assert_eq!(obj["target"], json!({"kind": "Node", "name": "node-1"}));
    let raw = W::default()
        .msg(1, W::default().str(1, "web"))
        .msg(2, W::default().int(1, 3));
    let obj = decode(&envelope("autoscaling/v1", "Scale", raw)).unwrap();
    assert_eq!(obj["spec"]["replicas"], 3);
}

/// What the encoder writes, the decoder reads back as the same JSON (for
/// objects without zero-valued non-pointer fields, which Go's JSON omits).
fn round_trip(obj: serde_json::Value) {
    let body = encode(&obj).unwrap_or_else(|e| panic!("{e}: {obj}"));
    assert!(body.starts_with(MAGIC));
    assert_eq!(decode(&body).unwrap(), obj);
}

#[test]
fn objects_round_trip_through_protobuf() {
    round_trip(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                     "creationTimestamp": "2024-01-02T03:04:05Z",
                     "labels": {"app": "web"}, "annotations": {"a": ""},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                          "uid": "u-2", "controller": true}],
                     "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                        "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]},
        "spec": {
            "containers": [{
                "name": "c", "image": "busybox", "command": ["sleep", "3600"],
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3},
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                "env": [{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "securityContext": {"runAsUser": 0, "privileged": false}
            }],
            "volumes": [{"name": "v", "emptyDir": {}},
                        {"name": "cm", "configMap": {"name": "cfg", "defaultMode": 420}}],
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                             "tolerationSeconds": 300}],
            "priority": 0
        },
        "status": {"phase": "Running", "podIP": "10.0.0.5",
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastTransitionTime": "2024-01-02T03:04:06Z"}]}
    }));
    round_trip(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "creationTimestamp": null},
        "data": {"k": "AP9oaQ=="}, "type": "Opaque"
    }));
    round_trip(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "creationTimestamp": null},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                 "renewTime": "2024-01-02T03:04:05.123456Z"}
    }));
    round_trip(json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Failure", "message": "pods \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "kind": "pods"}, "code": 404
    }));
    round_trip(json!({
        "apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 3},
        "items": [{"metadata": {"name": "a", "creationTimestamp": null}, "data": {"x": "y"}},
                  {"metadata": {"name": "b", "creationTimestamp": null}}]
    }));
    round_trip(json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "r", "creationTimestamp": null},
        "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 2
    }));
    round_trip(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "w", "creationTimestamp": null},
        "webhooks": [{"name": "w.example.com", "sideEffects": "None",
                      "admissionReviewVersions": ["v1"],
                      "clientConfig": {"url": "https://x", "caBundle": "AAE="},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""],
                                 "apiVersions": ["v1"], "resources": ["pods"]}]}]
    }));
    round_trip(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "creationTimestamp": null},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    }));
    // The kinds served for Kubernetes 1.36's clients.
    round_trip(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "m", "creationTimestamp": null},
        "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "Never",
                 "mutations": [{"patchType": "ApplyConfiguration",
                                "applyConfiguration": {"expression": "Object{}"}}]}
    }));
    round_trip(json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": "exempt", "creationTimestamp": null},
        "spec": {"matchingPrecedence": 1, "priorityLevelConfiguration": {"name": "exempt"},
                 "rules": [{"subjects": [{"kind": "Group", "group": {"name": "system:masters"}}],
                            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"],
                                               "resources": ["*"], "clusterScope": true,
                                               "namespaces": ["*"]}]}]}
    }));
    round_trip(json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": "gpu", "namespace": "default", "creationTimestamp": null},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": "gpu.example.com", "allocationMode": "ExactCount", "count": 1}}]}}
    }));
    round_trip(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "c", "creationTimestamp": null},
        "spec": {"request": "AAE=", "signerName": "kubernetes.io/kube-apiserver-client",
                 "usages": ["client auth"], "expirationSeconds": 3600}
    }));
}

#[test]
fn encoded_fields_carry_generated_proto_numbers() {
    // meta.v1.Status: status=2, message=3, code=6.
    let body = encode(&json!({"apiVersion": "v1", "kind": "Status",
                              "status": "Failure", "message": "m", "code": 404}))
    .unwrap();
    let raw = W::default().str(2, "Failure").str(3, "m").int(6, 404);
    assert_eq!(body, envelope("v1", "Status", raw));
    // A Pod's metadata (1) name (1) and a container port's intOrString
    // target in a Service (spec=2, ports=1, targetPort=4 {type=1 intVal=2}).
    let body = encode(&json!({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": "s"},
                              "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
    .unwrap();
    let port = W::default()
        .int(3, 80)
        .msg(4, W::default().int(1, 0).int(2, 8080));
    let raw = W::default()
        .msg(1, W::default().str(1, "s"))
        .msg(2, W::default().msg(1, port));
    assert_eq!(body, envelope("v1", "Service", raw));
}

#[test]
fn watch_frames_are_length_prefixed_events_around_whole_bodies() {
    let event = json!({"type": "ADDED", "object": {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "5", "creationTimestamp": null}}});
    let frame = watch_frame(&event).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    assert_eq!(decode_watch_event(&frame[4..]).unwrap(), event);
}

#[test]
fn values_of_the_wrong_type_are_refused() {
    for bad in [
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "c"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": "high"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}),
        json!({"apiVersion": "example.com/v1", "kind": "Widget"}),
        json!({"kind": "Pod"}),
    ] {
        assert!(encode(&bad).is_err(), "{bad}");
    }
}

#[test]
fn go_durations_parse() {
    for (s, nanos) in [
        ("0", 0),
        ("0s", 0),
        ("1h0m0s", 3_600_000_000_000),
        ("1m30.5s", 90_500_000_000),
        ("300ms", 300_000_000),
        ("-2s", -2_000_000_000),
        ("1.5µs", 1_500),
    ] {
        assert_eq!(encode::parse_go_duration(s), Some(nanos), "{s}");
        assert_eq!(encode::parse_go_duration(&go_duration(nanos)), Some(nanos));
    }
    assert_eq!(encode::parse_go_duration("5 apples"), None);
    assert_eq!(encode::parse_go_duration(""), None);
}
