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
