//! The API server driven by the real kubectl, oldest (1.27) and newest
//! (1.33) supported, each with a fresh HOME.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Cluster;
use serde_json::Value;

const VERSIONS: [u32; 2] = [27, 33];

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels:
    app: web
data:
  greeting: hello
";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn kubectl_reports_the_server_version_and_the_system_namespaces() {
    let c = Cluster::start(&[]);
    for v in VERSIONS {
        let version = c.ok(v, &["version", "-o", "json"]);
        assert_eq!(json(&version)["serverVersion"]["minor"], "33");
        let names = c.ok(v, &["get", "namespaces", "-o", "name"]);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(names.contains(&format!("namespace/{ns}")), "1.{v}: {names}");
        }
        let resources = c.ok(v, &["api-resources"]);
        for line in [
            "deployments",
            "deploy",
            "apps/v1",
            "Deployment",
            "configmaps",
            "cm",
        ] {
            assert!(
                resources.contains(line),
                "1.{v} api-resources lacks {line}:\n{resources}"
            );
        }
    }
}

#[test]
fn apply_get_label_select_and_delete_a_configmap() {
    let c = Cluster::start(&[]);
    for v in VERSIONS {
        assert!(
            c.apply(v, CONFIGMAP)
                .contains("configmap/web-config created")
        );
        let obj = json(&c.ok(v, &["get", "configmap", "web-config", "-o", "json"]));
        assert_eq!(obj["data"]["greeting"], "hello");
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert!(
            obj["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36)
        );
        assert!(
            obj["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|rv| rv.parse::<u64>().is_ok())
        );
        assert!(
            obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .is_string(),
            "apply's annotation is kept"
        );
        // Applying the same file again changes nothing.
        assert!(c.apply(v, CONFIGMAP).contains("unchanged"));

        assert_eq!(
            c.ok(v, &["get", "cm", "-l", "app=web", "-o", "name"])
                .trim(),
            "configmap/web-config"
        );
        assert_eq!(
            common::without_root_ca(
                &c.ok(v, &["get", "cm", "-l", "app notin (web)", "-o", "name"])
            ),
            ""
        );
        assert!(c.ok(v, &["delete", "cm", "web-config"]).contains("deleted"));
        let err = c.fails(v, &["get", "cm", "web-config"]);
        assert!(err.contains("configmaps \"web-config\" not found"), "{err}");
    }
}

#[test]
fn bad_requests_get_kubernetes_errors() {
    let c = Cluster::start(&[]);
    let v = 27;
    c.ok(v, &["create", "configmap", "dup"]);
    let err = c.fails(v, &["create", "configmap", "dup"]);
    assert!(err.contains("configmaps \"dup\" already exists"), "{err}");

    let err = c.fails(v, &["create", "configmap", "Bad_Name"]);
    assert!(
        err.contains("is invalid") && err.contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );

    let err = c.fails(v, &["create", "configmap", "x", "-n", "missing"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");

    let err = c.fails(v, &["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );

    let err = c.fails(v, &["get", "--raw", "/apis/nope/v1"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // Wrong kind for the URL.
    let body = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
    let path = c.dir.path().join("wrong.json");
    std::fs::write(&path, body).unwrap();
    let err = c.fails_posting(v, "/api/v1/namespaces/default/configmaps", &path);
    assert!(err.contains("does not match the expected kind"), "{err}");

    // Malformed JSON.
    std::fs::write(&path, "{not json").unwrap();
    let err = c.fails_posting(v, "/api/v1/namespaces/default/configmaps", &path);
    assert!(
        err.contains("BadRequest") || err.contains("could not be decoded"),
        "{err}"
    );
}

#[test]
fn anonymous_requests_are_refused_and_tokens_work() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "s3cret,alice,1001,\"dev\"\n").unwrap();
    let c = Cluster::start(&["--token-auth-file", tokens.path().to_str().unwrap()]);
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let ca = admin
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .unwrap();
    let server = format!("https://127.0.0.1:{}", c.port);
    let base = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{ca}\n    server: {server}\n  name: c\n\
         contexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\n"
    );
    // Credentials the server does not know (a wrong token, basic auth) are
    // anonymous, and anonymous requests get 401.
    for user in ["token: wrong", "username: alice\n    password: pw"] {
        let anon = c.dir.path().join("anon.yaml");
        std::fs::write(
            &anon,
            format!("{base}users:\n- name: u\n  user:\n    {user}\n"),
        )
        .unwrap();
        let out = c.kubectl_with(27, &anon, &["get", "namespaces"], None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("You must be logged in to the server"), "{err}");
    }

    let with_token = c.dir.path().join("token.yaml");
    std::fs::write(
        &with_token,
        format!("{base}users:\n- name: u\n  user:\n    token: s3cret\n"),
    )
    .unwrap();
    let out = c.kubectl_with(33, &with_token, &["get", "namespaces", "-o", "name"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
}

#[test]
fn lists_paginate_with_continue_tokens() {
    let c = Cluster::start(&[]);
    for i in 0..7 {
        c.ok(27, &["create", "configmap", &format!("cm-{i}")]);
    }
    for v in VERSIONS {
        let names = c.ok(v, &["get", "configmaps", "--chunk-size=2", "-o", "name"]);
        let names = common::without_root_ca(&names);
        assert_eq!(names.lines().count(), 7, "1.{v}: {names}");
    }
    let page = json(&c.ok(
        27,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?limit=3",
        ],
    ));
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let rest = json(&c.ok(
        27,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
        ],
    ));
    // cm-3 to cm-6, then the root CA ConfigMap.
    assert_eq!(rest["items"].as_array().unwrap().len(), 5);
    assert!(rest["metadata"].get("continue").is_none());
    assert_eq!(rest["items"][0]["metadata"]["name"], "cm-3");
    let err = c.fails(
        27,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?continue=garbage",
        ],
    );
    assert!(err.contains("continue key is not valid"), "{err}");
}

#[test]
fn watches_replay_current_state_then_stream_changes() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "configmap", "first"]);
    let rv = json(&c.ok(27, &["get", "configmap", "first", "-o", "json"]))["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(27, &["create", "configmap", "second"]);
    c.ok(27, &["delete", "configmap", "first"]);

    // Without a resourceVersion: the current state as ADDED events.
    let out = c.ok(
        27,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
        ],
    );
    let events: Vec<Value> = out
        .lines()
        .map(json)
        .filter(|e| e["object"]["metadata"]["name"] != common::ROOT_CA)
        .collect();
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("second"))
    );

    // From a resourceVersion: every change after it, in order.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion={rv}"
    );
    let out = c.ok(33, &["get", "--raw", &path]);
    let events: Vec<(String, String)> = out
        .lines()
        .map(json)
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("ADDED".into(), "second".into()),
            ("DELETED".into(), "first".into())
        ]
    );

    // Selectors apply to watches too.
    let path = "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dnope";
    assert_eq!(c.ok(27, &["get", "--raw", path]).trim(), "");

    // An object that stops matching leaves as DELETED and comes back as
    // ADDED (replayed from the watch cache's history).
    let list = c.ok(
        27,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps"],
    );
    let rv = json(&list)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(27, &["create", "configmap", "third"]);
    for label in ["app=a", "app=b", "app=a"] {
        c.ok(27, &["label", "configmap", "third", label, "--overwrite"]);
    }
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&labelSelector=app%3Da&resourceVersion={rv}"
    );
    let out = c.ok(33, &["get", "--raw", &path]);
    let events: Vec<Value> = out
        .lines()
        .map(json)
        .filter(|e| e["object"]["metadata"]["name"] != common::ROOT_CA)
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "DELETED", "ADDED"], "{out}");
    // Whole objects; the one leaving shows itself as it was before the
    // change, at the change's resourceVersion (as kube-apiserver does).
    let rv_of = |e: &Value| {
        e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(
        events[0]["object"]["metadata"]["labels"]["app"], "a",
        "{out}"
    );
    assert_eq!(events[0]["object"]["kind"], "ConfigMap", "{out}");
    assert!(events[0]["object"]["metadata"]["uid"].is_string(), "{out}");
    assert_eq!(
        events[1]["object"]["metadata"]["labels"]["app"], "a",
        "{out}"
    );
    assert!(rv_of(&events[0]) < rv_of(&events[1]), "{out}");
    assert!(rv_of(&events[1]) < rv_of(&events[2]), "{out}");
    let now = json(&c.ok(27, &["get", "configmap", "third", "-o", "json"]));
    assert_eq!(
        events[2]["object"]["metadata"]["resourceVersion"], now["metadata"]["resourceVersion"],
        "{out}"
    );
}

#[test]
fn deleting_a_namespace_deletes_what_is_in_it() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "namespace", "team"]);
    c.ok(27, &["create", "configmap", "inside", "-n", "team"]);
    c.ok(27, &["create", "configmap", "outside"]);
    c.ok(33, &["delete", "namespace", "team"]);
    let err = c.fails(33, &["get", "namespace", "team"]);
    assert!(err.contains("not found"), "{err}");
    c.ok(27, &["create", "namespace", "team"]);
    assert_eq!(
        common::without_root_ca(&c.ok(27, &["get", "configmaps", "-n", "team", "-o", "name"])),
        "",
        "contents survived"
    );
    assert_eq!(
        c.ok(27, &["get", "configmap", "outside", "-o", "name"])
            .trim(),
        "configmap/outside"
    );
}

#[test]
fn replace_with_a_stale_resource_version_conflicts() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "configmap", "cfg", "--from-literal=a=1"]);
    let mut obj = json(&c.ok(27, &["get", "configmap", "cfg", "-o", "json"]));
    obj["data"]["a"] = "2".into();
    let path = c.dir.path().join("cfg.json");
    std::fs::write(&path, obj.to_string()).unwrap();
    c.ok(27, &["replace", "-f", path.to_str().unwrap()]);
    // The same (now stale) resourceVersion again.
    let err = c.fails(33, &["replace", "-f", path.to_str().unwrap()]);
    assert!(err.contains("the object has been modified"), "{err}");
    let now = json(&c.ok(33, &["get", "configmap", "cfg", "-o", "json"]));
    assert_eq!(now["data"]["a"], "2");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env: [{name: A, value: \"1\"}]
      - name: sidecar
        image: busybox:1
";

#[test]
fn apply_label_annotate_patch_and_set_image_modify_objects() {
    let c = Cluster::start(&[]);
    for v in VERSIONS {
        c.apply(v, DEPLOYMENT);
        let generation = |c: &Cluster| {
            json(&c.ok(v, &["get", "deploy", "web", "-o", "json"]))["metadata"]["generation"]
                .as_i64()
                .unwrap()
        };
        let g0 = generation(&c);
        // A changed manifest: client-side apply sends a strategic merge patch.
        let changed = DEPLOYMENT
            .replace("replicas: 1", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26");
        assert!(c.apply(v, &changed).contains("configured"));
        let d = json(&c.ok(v, &["get", "deploy", "web", "-o", "json"]));
        assert_eq!(d["spec"]["replicas"], 3);
        let containers = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(
            containers[0]["env"][0]["name"], "A",
            "merged by name, not replaced"
        );
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(generation(&c), g0 + 1, "a spec change bumps the generation");

        c.ok(v, &["label", "deploy", "web", "tier=fe", "--overwrite"]);
        c.ok(v, &["annotate", "deploy", "web", "note=hi", "--overwrite"]);
        c.ok(
            v,
            &[
                "patch",
                "deploy",
                "web",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
            ],
        );
        c.ok(
            v,
            &[
                "patch",
                "deploy",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"paused":true}}"#,
            ],
        );
        c.ok(v, &["set", "image", "deploy/web", "sidecar=busybox:2"]);
        let d = json(&c.ok(v, &["get", "deploy", "web", "-o", "json"]));
        assert_eq!(d["metadata"]["labels"]["tier"], "fe");
        assert_eq!(d["metadata"]["annotations"]["note"], "hi");
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["paused"], true);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["image"],
            "busybox:2"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );

        c.ok(v, &["label", "deploy", "web", "tier-"]);
        let d = json(&c.ok(v, &["get", "deploy", "web", "-o", "json"]));
        assert!(
            d["metadata"]["labels"].get("tier").is_none(),
            "a null in a merge patch deletes"
        );

        let err = c.fails(
            v,
            &[
                "patch",
                "deploy",
                "web",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/nope"}]"#,
            ],
        );
        assert!(err.contains("the patch could not be applied"), "{err}");
        c.ok(v, &["delete", "deploy", "web"]);
    }
}

#[test]
fn server_side_apply_creates_then_updates() {
    let c = Cluster::start(&[]);
    for v in VERSIONS {
        let out = c.kubectl_with(
            v,
            &c.kubeconfig,
            &["apply", "--server-side", "-f", "-"],
            Some(CONFIGMAP),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let changed = CONFIGMAP.replace("hello", "bonjour");
        let out = c.kubectl_with(
            v,
            &c.kubeconfig,
            &["apply", "--server-side", "-f", "-"],
            Some(&changed),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cm = json(&c.ok(v, &["get", "cm", "web-config", "-o", "json"]));
        assert_eq!(cm["data"]["greeting"], "bonjour");
        c.ok(v, &["delete", "cm", "web-config"]);
    }
}

#[test]
fn kubectl_get_prints_the_kubernetes_columns() {
    let c = Cluster::start(&[]);
    c.ok(
        27,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1",
            "--replicas=2",
        ],
    );
    c.ok(
        27,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ],
    );
    for v in VERSIONS {
        let out = c.ok(v, &["get", "deployments"]);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "1.{v}:\n{out}"
        );
        assert!(out.lines().nth(1).unwrap().starts_with("web "), "{out}");
        assert!(out.contains("0/2"), "{out}");

        let wide = c.ok(v, &["get", "deployments", "-o", "wide"]);
        assert!(
            wide.contains("CONTAINERS") && wide.contains("nginx:1") && wide.contains("app=web"),
            "{wide}"
        );

        let cms = c.ok(v, &["get", "configmap", "settings"]);
        let row: Vec<&str> = cms.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(&row[..2], ["settings", "2"], "{cms}");

        let ns = c.ok(v, &["get", "namespaces", "--show-labels"]);
        assert!(ns.contains("STATUS") && ns.contains("Active"), "{ns}");
        assert!(
            ns.contains("kubernetes.io/metadata.name=default"),
            "labels come from the row metadata:\n{ns}"
        );

        let all = c.ok(v, &["get", "deployments", "-A"]);
        assert!(all.starts_with("NAMESPACE"), "{all}");
    }
}

#[test]
fn kubectl_scale_goes_through_the_scale_subresource() {
    let c = Cluster::start(&[]);
    c.ok(
        27,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1",
            "--replicas=2",
        ],
    );
    for (v, n) in [(27, "4"), (33, "7")] {
        c.ok(
            v,
            &["scale", "deployment", "web", &format!("--replicas={n}")],
        );
        let d = json(&c.ok(v, &["get", "deploy", "web", "-o", "json"]));
        assert_eq!(d["spec"]["replicas"].to_string(), n);
    }
    let scale = json(&c.ok(
        33,
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ],
    ));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 7);
    assert_eq!(scale["status"]["selector"], "app=web");
    let err = c.fails(
        27,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps/x/scale",
        ],
    );
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
fn services_get_cluster_ips_and_node_ports_once_and_free_them_on_delete() {
    let c = Cluster::start(&[]);
    let svc = |name: &str| json(&c.ok(33, &["get", "service", name, "-o", "json"]));
    let k = svc("kubernetes");
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);
    let ep = json(&c.ok(33, &["get", "endpoints", "kubernetes", "-o", "json"]));
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], c.port);

    c.ok(
        27,
        &["create", "service", "nodeport", "web", "--tcp=80:8080"],
    );
    let web = svc("web");
    let ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_eq!(web["spec"]["clusterIPs"], serde_json::json!([ip.clone()]));
    let node_port = web["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(web["spec"]["sessionAffinity"], "None");

    // A chosen IP is handed out once; deleting its Service frees it.
    c.ok(
        27,
        &[
            "create",
            "service",
            "clusterip",
            "fixed",
            "--tcp=80",
            "--clusterip=10.43.0.50",
        ],
    );
    let err = c.fails(
        27,
        &[
            "create",
            "service",
            "clusterip",
            "twin",
            "--tcp=80",
            "--clusterip=10.43.0.50",
        ],
    );
    assert!(err.contains("already allocated"), "{err}");
    let err = c.fails(
        27,
        &[
            "create",
            "service",
            "clusterip",
            "outside",
            "--tcp=80",
            "--clusterip=10.0.0.5",
        ],
    );
    assert!(err.contains("is not in the valid range"), "{err}");
    c.ok(27, &["delete", "service", "fixed"]);
    c.ok(
        27,
        &[
            "create",
            "service",
            "clusterip",
            "twin",
            "--tcp=80",
            "--clusterip=10.43.0.50",
        ],
    );

    // The cluster IP cannot change; other edits keep it.
    let err = c.fails(
        27,
        &[
            "patch",
            "service",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.43.0.77"}}"#,
        ],
    );
    assert!(err.contains("may not change once set"), "{err}");
    c.ok(27, &["label", "service", "web", "tier=fe"]);
    assert_eq!(svc("web")["spec"]["clusterIP"], ip.as_str());

    // Turning a NodePort into a ClusterIP frees the node port.
    c.ok(
        27,
        &[
            "patch",
            "service",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
    );
    assert!(svc("web")["spec"]["ports"][0].get("nodePort").is_none());
    let out = c.ok(33, &["get", "services"]);
    assert!(
        out.contains("CLUSTER-IP") && out.contains("10.43.0.1"),
        "{out}"
    );
}

const HELD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  namespace: team
  finalizers: [example.com/hold]
data: {a: \"1\"}
";

#[test]
fn finalizers_hold_deletion_until_removed_and_namespaces_wait_for_them() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "namespace", "team"]);
    c.apply(27, HELD);
    c.ok(27, &["create", "configmap", "plain", "-n", "team"]);

    c.ok(
        33,
        &["delete", "configmap", "held", "-n", "team", "--wait=false"],
    );
    let held = json(&c.ok(
        33,
        &["get", "configmap", "held", "-n", "team", "-o", "json"],
    ));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    let err = c.fails(
        27,
        &[
            "patch",
            "cm",
            "held",
            "-n",
            "team",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
        ],
    );
    assert!(err.contains("no new finalizers can be added"), "{err}");

    // Deleting the namespace deletes what it can and waits for the rest.
    c.ok(33, &["delete", "namespace", "team", "--wait=false"]);
    let ns = json(&c.ok(33, &["get", "namespace", "team", "-o", "json"]));
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(
        c.ok(33, &["get", "configmaps", "-n", "team", "-o", "name"])
            .trim()
            == "configmap/held"
    );
    let err = c.fails(27, &["create", "configmap", "late", "-n", "team"]);
    assert!(err.contains("because it is being terminated"), "{err}");

    // Removing the last finalizer completes both deletions.
    c.ok(
        27,
        &[
            "patch",
            "cm",
            "held",
            "-n",
            "team",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    assert!(
        c.fails(33, &["get", "configmap", "held", "-n", "team"])
            .contains("not found")
    );
    assert!(
        c.fails(33, &["get", "namespace", "team"])
            .contains("not found")
    );
}

#[test]
fn pods_on_a_node_are_deleted_gracefully_and_unscheduled_ones_at_once() {
    let c = Cluster::start(&[]);
    let pod = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  {node}terminationGracePeriodSeconds: 20\n  containers:\n  - name: c\n    image: busybox:1\n"
        )
    };
    c.apply(27, &pod("pending", ""));
    c.apply(27, &pod("bound", "nodeName: n1\n  "));
    c.ok(33, &["delete", "pod", "pending", "--wait=false"]);
    assert!(
        c.fails(33, &["get", "pod", "pending"])
            .contains("not found")
    );

    c.ok(33, &["delete", "pod", "bound", "--wait=false"]);
    let p = json(&c.ok(33, &["get", "pod", "bound", "-o", "json"]));
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 20);
    assert!(c.ok(33, &["get", "pods"]).contains("Terminating"));
    // What the node agent does once the containers are gone: force.
    c.ok(
        27,
        &["delete", "pod", "bound", "--grace-period=0", "--force"],
    );
    assert!(c.fails(33, &["get", "pod", "bound"]).contains("not found"));
}

#[test]
fn auth_can_i_and_whoami_answer_for_the_caller() {
    let c = Cluster::start(&[]);
    // kubectl 1.32+ send these reviews as protobuf; 1.27 and 1.31 JSON.
    for v in [27, 31, 33] {
        assert_eq!(c.ok(v, &["auth", "can-i", "create", "pods"]).trim(), "yes");
        let who = c.ok(v, &["auth", "whoami", "-o", "json"]);
        let who = json(&who);
        assert_eq!(who["status"]["userInfo"]["username"], "admin");
        assert!(
            who["status"]["userInfo"]["groups"]
                .as_array()
                .unwrap()
                .contains(&"system:masters".into())
        );
    }
    for v in [27, 33] {
        assert!(c.ok(v, &["auth", "can-i", "--list"]).contains("*.*"));
    }
}

#[test]
fn malformed_shapes_and_oversized_bodies_are_refused_cleanly() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "configmap", "cfg"]);
    c.ok(27, &["create", "deployment", "web", "--image=nginx:1"]);
    for (target, patch) in [
        (["configmap", "cfg"], r#"{"metadata":5}"#),
        (["deployment", "web"], r#"{"spec":"five"}"#),
        (["deployment", "web"], r#"{"status":[1]}"#),
    ] {
        let err = c.fails(
            27,
            &["patch", target[0], target[1], "--type=merge", "-p", patch],
        );
        assert!(err.contains("must be an object"), "{patch}: {err}");
    }
    let bad_svc = c.dir.path().join("svc.json");
    std::fs::write(
        &bad_svc,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[5]}}"#,
    )
    .unwrap();
    let err = c.fails(
        27,
        &[
            "create",
            "-f",
            bad_svc.to_str().unwrap(),
            "--validate=false",
        ],
    );
    assert!(
        err.contains("spec.ports must be a list of objects"),
        "{err}"
    );

    // Over 3 MiB: 413, and the server is still there.
    let big = c.dir.path().join("big.json");
    let data = "x".repeat(3 * 1024 * 1024 + 10);
    std::fs::write(&big, format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{data}"}}}}"#)).unwrap();
    let err = c.fails_posting(27, "/api/v1/namespaces/default/configmaps", &big);
    assert!(
        err.contains("too large") || err.contains("RequestEntityTooLarge"),
        "{err}"
    );
    assert!(
        c.ok(33, &["get", "configmap", "cfg", "-o", "name"])
            .contains("cfg")
    );
    assert!(
        !c.server.log_text().contains("panicked"),
        "{}",
        c.server.log_text()
    );
}

#[test]
fn events_expire_after_the_event_ttl() {
    let c = Cluster::start(&["--event-ttl", "2s"]);
    let event = "apiVersion: v1
kind: Event
metadata:
  name: ev1
involvedObject: {kind: ConfigMap, name: keep, namespace: default}
reason: Testing
message: this event expires
type: Normal
";
    c.apply(27, event);
    c.ok(27, &["create", "configmap", "keep"]);
    assert!(c.ok(33, &["get", "events", "-o", "name"]).contains("ev1"));
    let table = c.ok(27, &["get", "events"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    assert!(
        table.contains("configmap/keep") && table.contains("this event expires"),
        "{table}"
    );
    // A hang guard, not a timing assertion: the sweeper runs every second.
    let mut gone = false;
    for _ in 0..600 {
        if c.ok(33, &["get", "events", "-o", "name"]).trim().is_empty() {
            gone = true;
            break;
        }
        #[allow(clippy::disallowed_methods)] // polling a child process from a test
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the event outlived its TTL");
    assert!(
        c.ok(33, &["get", "configmap", "keep", "-o", "name"])
            .contains("keep")
    );
}

#[test]
fn metrics_count_requests_and_open_watches() {
    let c = Cluster::start(&[]);
    // Secrets: the controllers write ConfigMaps of their own.
    c.ok(27, &["create", "secret", "generic", "m"]);
    c.ok(27, &["get", "secrets"]);
    let text = c.ok(33, &["get", "--raw", "/metrics"]);
    assert!(
        text.contains("# TYPE apiserver_request_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"apiserver_request_total{verb="POST",resource="secrets",code="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"apiserver_request_duration_seconds_count{verb="LIST",resource="secrets"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"rudder_store_request_duration_seconds_count{operation="txn"}"#),
        "{text}"
    );

    // Consistent lists come from the watch cache once it is current (the
    // embedded store's watch is ordered), not from the store.
    if c.etcd.is_none() {
        let ranges = || {
            let text = c.ok(33, &["get", "--raw", "/metrics"]);
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(
                        r#"rudder_store_request_duration_seconds_count{operation="range"} "#,
                    )
                })
                .unwrap_or("0")
                .to_string()
        };
        let before = ranges();
        for _ in 0..5 {
            c.ok(27, &["get", "secrets"]);
        }
        assert_eq!(ranges(), before, "lists went to the store");
    }
}

#[test]
fn the_official_python_client_works() {
    let python = std::env::var("RUDDER_TEST_PYTHON").expect(
        "RUDDER_TEST_PYTHON names a Python with the `kubernetes` package: run scripts/test, which installs it",
    );
    let c = Cluster::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("python client: ok"),
        "{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.server.log_text()
    );
}

#[test]
fn objects_get_kubernetes_defaults() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "deployment", "web", "--image=nginx:1.25"]);
    let d = json(&c.ok(33, &["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let pod_spec = &d["spec"]["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(pod_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(
        c.ok(27, &["describe", "deploy", "web"])
            .contains("RollingUpdate")
    );

    c.apply(27, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    let p = json(&c.ok(33, &["get", "pod", "p", "-o", "json"]));
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"], "Always",
        "an untagged image means latest"
    );
    let out = c.ok(33, &["get", "pods"]);
    assert!(out.contains("Pending") && out.contains("0/1"), "{out}");

    c.ok(
        27,
        &["create", "secret", "generic", "s", "--from-literal=a=b"],
    );
    assert_eq!(
        json(&c.ok(33, &["get", "secret", "s", "-o", "json"]))["type"],
        "Opaque"
    );
}

#[test]
fn deletecollection_expose_wait_and_get_watch_work() {
    let c = Cluster::start(&[]);
    for name in ["a", "b", "keep"] {
        c.ok(27, &["create", "configmap", name]);
    }
    c.ok(27, &["label", "configmap", "a", "b", "group=drop"]);
    let out = c.ok(
        33,
        &[
            "delete",
            "--raw",
            "/api/v1/namespaces/default/configmaps?labelSelector=group%3Ddrop",
        ],
    );
    assert_eq!(json(&out)["status"], "Success");
    let left = c.ok(33, &["get", "configmaps", "-o", "name"]);
    assert!(
        left.contains("configmap/keep") && !left.contains("configmap/a"),
        "{left}"
    );

    c.ok(27, &["create", "deployment", "web", "--image=nginx:1"]);
    c.ok(
        27,
        &[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ],
    );
    let svc = json(&c.ok(33, &["get", "service", "web", "-o", "json"]));
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);

    // kubectl wait sees a deletion through its watch.
    let waiter = std::process::Command::new(common::kubectl_binary(33))
        .args(["wait", "--for=delete", "configmap/keep", "--timeout=60s"])
        .env("HOME", c.dir.path().join("home-wait"))
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give the waiter its initial GET; a missed start still ends in a pass
    // (the object is gone when it looks), so this is no timing assertion.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.ok(27, &["delete", "configmap", "keep"]);
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // kubectl get -w prints the current rows, then each change: whether
    // "later" lands in its list or arrives as an event, it shows up.
    c.ok(27, &["create", "configmap", "early"]);
    let mut watcher = std::process::Command::new(common::kubectl_binary(27))
        .args(["get", "configmaps", "-w"])
        .env("HOME", c.dir.path().join("home-watch"))
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    c.ok(27, &["create", "configmap", "later"]);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        let done = line.starts_with("later ");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(
        seen.first().is_some_and(|l| l.starts_with("NAME")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.starts_with("early ")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("later ")), "{seen:?}");
}

#[test]
fn pods_bind_once_and_evictions_respect_disruption_budgets() {
    let c = Cluster::start(&[]);
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: db}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1\n"
        )
    };
    c.apply(27, &pod("p1"));
    let binding = c.dir.path().join("binding.json");
    std::fs::write(&binding, r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"kind":"Node","name":"n1"}}"#).unwrap();
    c.ok(
        27,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/p1/binding",
            "-f",
            binding.to_str().unwrap(),
        ],
    );
    assert_eq!(
        json(&c.ok(33, &["get", "pod", "p1", "-o", "json"]))["spec"]["nodeName"],
        "n1"
    );
    let err = c.fails_posting(27, "/api/v1/namespaces/default/pods/p1/binding", &binding);
    assert!(err.contains("already assigned to node"), "{err}");

    // A budget that allows no disruption blocks the eviction of a running
    // pod with 429 (a pending one needs no budget, as in kube).
    c.ok(
        33,
        &[
            "patch",
            "pod",
            "p1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running"}}"#,
        ],
    );
    c.apply(27, "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: db\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: db}\n");
    let eviction = c.dir.path().join("eviction.json");
    std::fs::write(&eviction, r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p1","namespace":"default"}}"#).unwrap();
    let err = c.fails_posting(27, "/api/v1/namespaces/default/pods/p1/eviction", &eviction);
    assert!(err.contains("disruption budget"), "{err}");
    c.ok(27, &["delete", "pdb", "db"]);
    c.ok(
        27,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/p1/eviction",
            "-f",
            eviction.to_str().unwrap(),
        ],
    );
    // Bound and with a zero grace period, the pod goes at once.
    assert!(c.fails(33, &["get", "pod", "p1"]).contains("not found"));
}

/// `kubectl create <kind>` for every kind kubectl can create: 1.27 sends
/// JSON, 1.33 protobuf; both must make the same object.
#[test]
fn kubectl_create_makes_every_kind_the_same_from_json_and_protobuf() {
    let c = Cluster::start(&[]);
    let cert = c.dir.path().join("tls.crt");
    let key = c.dir.path().join("tls.key");
    let pair = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "deployment",
            vec![
                "--image=nginx:1.25".into(),
                "--replicas=0".into(),
                "--port=80".into(),
            ],
        ),
        (
            "configmap",
            vec!["--from-literal=a=1".into(), "--from-literal=b=two".into()],
        ),
        (
            "job",
            vec![
                "--image=busybox:1".into(),
                "--".into(),
                "echo".into(),
                "hi".into(),
            ],
        ),
        (
            "cronjob",
            vec!["--image=busybox:1".into(), "--schedule=*/5 * * * *".into()],
        ),
        ("namespace", vec![]),
        ("serviceaccount", vec![]),
        (
            "priorityclass",
            vec!["--value=0".into(), "--description=zero".into()],
        ),
        ("quota", vec!["--hard=pods=10,requests.cpu=2".into()]),
        (
            "poddisruptionbudget",
            vec!["--selector=app=web".into(), "--min-available=50%".into()],
        ),
        (
            "role",
            vec![
                "--verb=get,list".into(),
                "--resource=pods,deployments.apps".into(),
            ],
        ),
        (
            "clusterrole",
            vec!["--verb=get".into(), "--non-resource-url=/logs/*".into()],
        ),
        (
            "rolebinding",
            vec![
                "--clusterrole=view".into(),
                "--user=alice".into(),
                "--serviceaccount=default:sa".into(),
            ],
        ),
        (
            "clusterrolebinding",
            vec!["--clusterrole=view".into(), "--group=devs".into()],
        ),
        (
            "ingress",
            vec![
                "--rule=example.com/api*=svc:8080,tls=cert".into(),
                "--class=nginx".into(),
            ],
        ),
    ];
    let mut commands: Vec<(String, Vec<String>)> = cases
        .into_iter()
        .map(|(kind, args)| (kind.to_string(), [vec![kind.to_string()], args].concat()))
        .collect();
    for (kind, args) in [
        (
            "secret",
            vec![
                "generic",
                "--from-literal=password=s3cr3t",
                "--type=example.com/x",
            ],
        ),
        ("secret", vec!["tls", "--cert", cert, "--key", key]),
        (
            "secret",
            vec![
                "docker-registry",
                "--docker-server=r.example",
                "--docker-username=u",
                "--docker-password=p",
            ],
        ),
        ("service", vec!["clusterip", "--tcp=80:8080"]),
        (
            "service",
            vec!["nodeport", "--tcp=443:8443", "--node-port=30443"],
        ),
        (
            "service",
            vec!["externalname", "--external-name=db.example.com"],
        ),
        ("service", vec!["loadbalancer", "--tcp=53:5353"]),
    ] {
        commands.push((
            kind.into(),
            [vec![kind], args]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
    }
    for (i, (kind, args)) in commands.iter().enumerate() {
        let mut objects = Vec::new();
        for v in VERSIONS {
            // Names differ per version (and node ports must not clash).
            let name = format!("x{i}-{v}");
            let mut args: Vec<String> = args.clone();
            let position = if kind == "secret" || kind == "service" {
                2
            } else {
                1
            };
            args.insert(position, name.clone());
            if v == 33 {
                for a in &mut args {
                    *a = a.replace("30443", "30444");
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            c.ok(v, &["create"].into_iter().chain(args).collect::<Vec<_>>());
            let mut obj = json(&c.ok(27, &["get", kind, &name, "-o", "json"]));
            // A Job's generated selector and labels name its uid.
            let uid = obj["metadata"]["uid"].as_str().unwrap().to_string();
            let meta = obj["metadata"].as_object_mut().unwrap();
            for volatile in [
                "name",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
            ] {
                meta.remove(volatile);
            }
            // What controllers write after the create (a Deployment's
            // status names its ReplicaSet) is not what create stored.
            obj.as_object_mut().unwrap().remove("status");
            let spec = obj.pointer_mut("/spec").and_then(Value::as_object_mut);
            if let Some(spec) = spec {
                for volatile in ["clusterIP", "clusterIPs", "ports"] {
                    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            p.as_object_mut().unwrap().remove("nodePort");
                        }
                    }
                    if volatile != "ports" {
                        spec.remove(volatile);
                    }
                }
            }
            let text = serde_json::to_string(&obj)
                .unwrap()
                .replace(&name, "NAME")
                .replace(&uid, "UID");
            objects.push(text);
        }
        assert_eq!(
            objects[0], objects[1],
            "kubectl create {args:?}: JSON vs protobuf"
        );
    }
}

#[test]
fn explain_shows_field_docs_from_openapi_v3() {
    let c = Cluster::start(&[]);
    for v in VERSIONS {
        let out = c.ok(v, &["explain", "deployment.spec.strategy"]);
        assert!(out.contains("DeploymentStrategy"), "{v}: {out}");
        assert!(out.contains("rollingUpdate"), "{v}: {out}");
        assert!(
            out.contains("Can be \"Recreate\" or \"RollingUpdate\""),
            "{v}: {out}"
        );
        let out = c.ok(v, &["explain", "pods.spec.containers.ports"]);
        assert!(
            out.contains("containerPort") && out.contains("-required-"),
            "{v}: {out}"
        );
        let out = c.ok(v, &["explain", "cronjobs", "--recursive"]);
        assert!(out.contains("successfulJobsHistoryLimit"), "{v}: {out}");
    }
    let err = c.fails(33, &["explain", "deployment.spec.nosuchfield"]);
    assert!(err.contains("nosuchfield"), "{err}");
}

#[test]
fn unknown_fields_are_refused_or_warned_as_field_validation_asks() {
    let c = Cluster::start(&[]);
    let yaml = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replica: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1
        imagePullPolcy: Always
";
    let file = c.dir.path().join("d.yaml");
    std::fs::write(&file, yaml).unwrap();
    let file = file.to_str().unwrap();
    for v in VERSIONS {
        let err = c.fails(v, &["apply", "-f", file]);
        assert!(
            err.contains("strict decoding error: unknown field \"spec.replica\"")
                && err
                    .contains("unknown field \"spec.template.spec.containers[0].imagePullPolcy\""),
            "{v}: {err}"
        );
        assert!(
            c.fails(v, &["get", "deployment", "web"])
                .contains("not found")
        );
    }
    let out = c.kubectl(33, &["apply", "-f", file, "--validate=warn"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: unknown field \"spec.replica\""),
        "{stderr}"
    );
    c.ok(27, &["delete", "deployment", "web"]);
    c.ok(27, &["apply", "-f", file, "--validate=false"]);
    // kubectl patch sends no fieldValidation: the server's default, Warn.
    // Directives such as $setElementOrder are not fields.
    let out = c.kubectl(
        33,
        &[
            "patch",
            "deployment",
            "web",
            "-p",
            r#"{"spec":{"paused":true,"pasued":true}}"#,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: unknown field \"spec.pasued\""),
        "{stderr}"
    );
    let out = c.kubectl(33, &["set", "image", "deployment/web", "web=nginx:2"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// Delete propagation (Background, Orphan, Foreground) and the garbage
/// collector, with ConfigMaps owning ConfigMaps.
#[test]
fn deletes_cascade_to_dependents_as_the_propagation_policy_says() {
    let c = Cluster::start(&[]);
    let owner = |name: &str| {
        c.ok(27, &["create", "configmap", name]);
        c.ok(
            27,
            &["get", "configmap", name, "-o", "jsonpath={.metadata.uid}"],
        )
    };
    let dependent = |name: &str, owners: &[(&str, &str, bool)]| {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(owner, uid, block)| {
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid, "blockOwnerDeletion": block})
            })
            .collect();
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": refs}});
        c.apply(33, &obj.to_string());
    };

    // Background (kubectl's default): the owner goes at once, the
    // dependents after it.
    let uid = owner("bg");
    dependent("bg-1", &[("bg", &uid, true)]);
    dependent("bg-2", &[("bg", &uid, false)]);
    let live = owner("live");
    dependent("shared", &[("bg", &uid, false), ("live", &live, false)]);
    c.ok(27, &["delete", "configmap", "bg"]);
    c.ok(
        33,
        &[
            "wait",
            "--for=delete",
            "configmap/bg-1",
            "configmap/bg-2",
            "--timeout=60s",
        ],
    );
    // A dependent with another owner alive only loses the dangling reference.
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.metadata.ownerReferences[*].name}=live",
            "configmap/shared",
            "--timeout=60s",
        ],
    );

    // Orphan: the dependents stay, without the reference.
    let uid = owner("or");
    dependent("or-1", &[("or", &uid, true)]);
    c.ok(33, &["delete", "configmap", "or", "--cascade=orphan"]);
    assert!(
        c.fails(27, &["get", "configmap", "or"])
            .contains("not found")
    );
    let refs = c.ok(
        27,
        &[
            "get",
            "configmap",
            "or-1",
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ],
    );
    assert_eq!(refs.trim(), "", "or-1 still refers to its owner: {refs}");

    // Foreground: the owner goes only after the dependents that block it;
    // a finalizer on fg-1 holds it (and so fg) until the test removes it.
    let uid = owner("fg");
    dependent("fg-1", &[("fg", &uid, true)]);
    c.ok(
        27,
        &[
            "patch",
            "configmap",
            "fg-1",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ],
    );
    dependent("fg-2", &[("fg", &uid, false)]);
    c.ok(
        27,
        &[
            "delete",
            "configmap",
            "fg",
            "--cascade=foreground",
            "--wait=false",
        ],
    );
    c.ok(
        33,
        &["wait", "--for=delete", "configmap/fg-2", "--timeout=60s"],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.metadata.deletionTimestamp}",
            "configmap/fg-1",
            "--timeout=60s",
        ],
    );
    let held = json(&c.ok(27, &["get", "configmap", "fg", "-o", "json"]));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(
        held["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    c.ok(
        27,
        &[
            "patch",
            "configmap",
            "fg-1",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=delete",
            "configmap/fg",
            "configmap/fg-1",
            "--timeout=60s",
        ],
    );
    assert!(
        c.ok(27, &["get", "configmap", "live", "-o", "name"])
            .contains("live")
    );
}

/// Resources served in two versions (or groups) share their objects:
/// autoscaling/v1 and v2 HorizontalPodAutoscalers, core and events.k8s.io
/// Events.
#[test]
fn objects_are_served_in_every_version_of_their_resource() {
    let c = Cluster::start(&[]);
    c.ok(27, &["create", "deployment", "web", "--image=nginx:1"]);
    // kubectl 1.27 autoscale writes autoscaling/v1, 1.33 autoscaling/v2.
    c.ok(
        27,
        &[
            "autoscale",
            "deployment",
            "web",
            "--min=1",
            "--max=3",
            "--cpu-percent=50",
            "--name=h27",
        ],
    );
    c.ok(
        33,
        &[
            "autoscale",
            "deployment",
            "web",
            "--max=4",
            "--cpu-percent=70",
            "--name=h33",
        ],
    );
    let v2 = json(&c.ok(33, &["get", "hpa.v2.autoscaling", "h27", "-o", "json"]));
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    let v1 = json(&c.ok(27, &["get", "hpa.v1.autoscaling", "h33", "-o", "json"]));
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    let table = c.ok(33, &["get", "hpa"]);
    let header = table.lines().next().unwrap();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert!(
        table.contains("Deployment/web") && table.contains("cpu: <unknown>/70%"),
        "{table}"
    );
    // A patch through v1 keeps what v2 readers see consistent.
    c.ok(
        27,
        &[
            "patch",
            "hpa.v1.autoscaling",
            "h33",
            "--type=merge",
            "-p",
            r#"{"spec":{"targetCPUUtilizationPercentage":60}}"#,
        ],
    );
    let v2 = json(&c.ok(33, &["get", "hpa", "h33", "-o", "json"]));
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );

    let event = r#"apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: web.1
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/ctl
reportingInstance: ctl-1
action: Scale
reason: Scaled
regarding:
  kind: Deployment
  name: web
  namespace: default
note: scaled up
type: Normal
"#;
    c.apply(33, event);
    let core = json(&c.ok(27, &["get", "events.v1.", "web.1", "-o", "json"]));
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], "scaled up");
    let listed = json(&c.ok(
        33,
        &[
            "get",
            "--raw",
            "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=metadata.name%3Dweb.1",
        ],
    ));
    assert_eq!(listed["items"][0]["note"], "scaled up");
    let shown = c.ok(33, &["get", "events"]);
    assert!(
        shown.contains("Scaled") && shown.contains("deployment/web"),
        "{shown}"
    );
}

#[test]
fn kubectl_get_prints_kubernetes_columns_for_every_kind() {
    let c = Cluster::start(&[]);
    c.ok(
        27,
        &["create", "role", "r", "--verb=get", "--resource=pods"],
    );
    c.ok(
        27,
        &[
            "create",
            "rolebinding",
            "rb",
            "--role=r",
            "--user=alice",
            "--serviceaccount=default:sa",
        ],
    );
    c.ok(
        27,
        &[
            "create",
            "pdb",
            "p",
            "--selector=app=web",
            "--min-available=1",
        ],
    );
    c.ok(27, &["create", "quota", "q", "--hard=pods=10"]);
    c.apply(27, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: rudder.io/local\n");
    for (what, header) in [
        ("roles", "NAME CREATED AT"),
        ("rolebindings", "NAME ROLE AGE"),
        (
            "pdb",
            "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE",
        ),
        ("quota", "NAME AGE REQUEST LIMIT"),
        (
            "storageclass",
            "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE",
        ),
    ] {
        let out = c.ok(33, &["get", what]);
        let first = out
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(first, header, "{what}: {out}");
    }
    let wide = c.ok(33, &["get", "rolebinding", "rb", "-o", "wide"]);
    assert!(
        wide.contains("Role/r") && wide.contains("alice") && wide.contains("default/sa"),
        "{wide}"
    );
    assert!(c.ok(33, &["get", "pdb"]).contains("N/A"));
    assert!(c.ok(33, &["get", "quota"]).contains("pods: 0/10"));
    assert!(
        c.ok(33, &["get", "storageclass"])
            .contains("local (default)")
    );
}

/// Server-side apply tracks field owners: applying a field someone else
/// changed is a conflict until forced; a field no longer applied goes.
#[test]
fn server_side_apply_tracks_owners_and_reports_conflicts() {
    let c = Cluster::start(&[]);
    let deployment = |replicas: u32, label: bool| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n{}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1\n",
            if label {
                "  labels:\n    team: a\n"
            } else {
                ""
            }
        )
    };
    let file = c.dir.path().join("web.yaml");
    std::fs::write(&file, deployment(2, true)).unwrap();
    let file = file.to_str().unwrap();
    c.ok(33, &["apply", "--server-side", "-f", file]);
    let obj = json(&c.ok(
        27,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ));
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(
        entry["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{entry}"
    );

    // Someone else changes replicas: the next apply of 2 conflicts.
    c.ok(
        27,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ],
    );
    for v in VERSIONS {
        let err = c.fails(v, &["apply", "--server-side", "-f", file]);
        assert!(
            err.contains(r#"conflict with "kubectl-patch""#) && err.contains(".spec.replicas"),
            "{v}: {err}"
        );
    }
    c.ok(
        33,
        &["apply", "--server-side", "--force-conflicts", "-f", file],
    );
    let obj = json(&c.ok(
        27,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ));
    assert_eq!(obj["spec"]["replicas"], 2);
    // The Deployment controller owns what it writes (the revision, the
    // status) as kube-controller-manager, as on Kubernetes.
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .filter(|m| *m != "kube-controller-manager")
        .collect();
    assert_eq!(
        managers,
        ["kubectl"],
        "the patcher lost replicas, its only field"
    );

    // A field left out of the configuration goes.
    std::fs::write(file, deployment(2, false)).unwrap();
    c.ok(33, &["apply", "--server-side", "-f", file]);
    let labels = c.ok(
        27,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"],
    );
    assert!(!labels.contains("team"), "{labels}");
    // managedFields are hidden unless asked for, as in Kubernetes.
    assert!(
        !c.ok(33, &["get", "deploy", "web", "-o", "yaml"])
            .contains("managedFields")
    );
}

#[test]
fn diff_and_edit_work_as_with_kubernetes() {
    let c = Cluster::start(&[]);
    c.apply(27, CONFIGMAP);
    let file = c.dir.path().join("cm.yaml");
    std::fs::write(&file, CONFIGMAP.replace("greeting: hello", "greeting: hi")).unwrap();
    let file = file.to_str().unwrap();
    for v in VERSIONS {
        // Server-side, the client-side apply owns greeting: as with
        // Kubernetes, taking it needs --force-conflicts.
        for mode in [&[][..], &["--server-side", "--force-conflicts"][..]] {
            let args: Vec<&str> = ["diff", "-f", file].iter().chain(mode).copied().collect();
            let out = c.kubectl(v, &args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{v} {mode:?}: {out:?}");
            assert!(
                stdout.contains("-  greeting: hello") && stdout.contains("+  greeting: hi"),
                "{v} {mode:?}: {stdout}"
            );
        }
    }
    // diff is a dry run: nothing changed; and no difference exits 0.
    let data = c.ok(
        27,
        &["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"],
    );
    assert_eq!(data, "hello");
    let same = c.dir.path().join("same.yaml");
    std::fs::write(&same, CONFIGMAP).unwrap();
    let out = c.kubectl(33, &["diff", "-f", same.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // kubectl apply --server-side over a client-side apply hands the
    // fields over (kubectl rewrites managedFields): no conflict.
    c.ok(33, &["apply", "--server-side", "-f", file]);
    let obj = json(&c.ok(
        27,
        &[
            "get",
            "cm",
            "web-config",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ));
    assert_eq!(obj["data"]["greeting"], "hi");
    assert!(
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["manager"] == "kubectl" && e["operation"] == "Apply"),
        "{obj}"
    );

    // kubectl edit: the editor's change is sent back.
    let editor = c.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/greeting: hello/greeting: bonjour/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for v in VERSIONS {
        c.ok(
            27,
            &[
                "patch",
                "cm",
                "web-config",
                "--type=merge",
                "-p",
                r#"{"data":{"greeting":"hello"}}"#,
            ],
        );
        let out = c.kubectl_env(
            v,
            &c.kubeconfig,
            &["edit", "cm", "web-config"],
            None,
            &[("KUBE_EDITOR", editor.to_str().unwrap())],
        );
        assert!(out.status.success(), "{v}: {out:?}");
        let data = c.ok(
            27,
            &["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"],
        );
        assert_eq!(data, "bonjour", "{v}");
    }
}
