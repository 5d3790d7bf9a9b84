//! The server's controllers against a real `rudder server` with simulated
//! nodes (issue 14): each is driven by kube-runtime's controller runtime
//! and must hold up when many objects change at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Cluster, SimNodes, eventually};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// Nodes registering all at once each get a /24 of their own: the IPAM
/// controller's expectations keep a stale cache from handing one out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_registering_at_once_get_distinct_pod_cidrs() {
    let (_server, _nodes, client) = Cluster::start_with_sim_nodes(&["--nodes", "30"]).await;
    let nodes: Api<Node> = Api::all(client);
    let cidrs = || async {
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect::<Vec<String>>()
    };
    // The controller assigns as the nodes arrive.
    eventually(|| async { cidrs().await.len() == 30 }).await;
    let cidrs = cidrs().await;
    assert_eq!(cidrs.len(), 30, "{cidrs:?}");
    let distinct: std::collections::BTreeSet<&String> = cidrs.iter().collect();
    assert_eq!(
        distinct.len(),
        30,
        "a range was handed out twice: {cidrs:?}"
    );
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.42.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );
}

/// A ReplicaSet keeps its replicas: creates them, replaces a deleted pod,
/// scales down, adopts a matching orphan and lets go of a relabelled pod;
/// its status and events say so, as `kubectl get rs` and `describe` show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_keeps_its_replicas() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    let (c, _nodes, client) = Cluster::start_with_sim_nodes(&["--nodes", "3"]).await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let rs = sets.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let web = ListParams::default().labels("app=web");
    let ready = |n: i32| {
        let sets = sets.clone();
        async move {
            let s = sets.get("web").await.unwrap().status.unwrap_or_default();
            s.replicas == n && s.ready_replicas == Some(n) && s.available_replicas == Some(n)
        }
    };
    assert!(
        eventually(|| ready(3)).await,
        "{:?}",
        sets.get("web").await.unwrap().status
    );
    let listed = pods.list(&web).await.unwrap().items;
    assert_eq!(listed.len(), 3);
    for p in &listed {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true))
        );
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
    }

    // A deleted pod is replaced.
    let victim = listed[0].metadata.name.clone().unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    let replaced = || {
        let pods = pods.clone();
        let victim = victim.clone();
        let web = web.clone();
        async move {
            let items = pods.list(&web).await.unwrap().items;
            items.len() == 3
                && items
                    .iter()
                    .all(|p| p.metadata.name.as_ref() != Some(&victim))
        }
    };
    assert!(eventually(replaced).await);
    assert!(eventually(|| ready(3)).await);

    // Scaled down to one.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let count = |n: usize| {
        let pods = pods.clone();
        let web = web.clone();
        async move { pods.list(&web).await.unwrap().items.len() == n }
    };
    assert!(eventually(|| count(1)).await);
    assert!(eventually(|| ready(1)).await);

    // A matching orphan is adopted (and, one too many, one pod goes); a
    // relabelled pod is let go and replaced.
    let orphan: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let adopted_or_gone = || {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            match pods.get_opt("orphan").await.unwrap() {
                None => true,
                Some(p) => p
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.uid == uid && r.controller == Some(true)),
            }
        }
    };
    assert!(eventually(adopted_or_gone).await);
    assert!(eventually(|| count(1)).await);
    let kept = pods.list(&web).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.patch(
        &kept,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    let released = || {
        let pods = pods.clone();
        let kept = kept.clone();
        async move {
            let p = pods.get(&kept).await.unwrap();
            p.metadata
                .owner_references
                .unwrap_or_default()
                .iter()
                .all(|r| r.controller != Some(true))
        }
    };
    assert!(eventually(released).await);
    assert!(eventually(|| count(1)).await);
    assert!(eventually(|| ready(1)).await);

    // What kubectl shows.
    let shown = tokio::task::block_in_place(|| {
        (
            c.ok(33, &["get", "rs", "web", "--no-headers"]),
            c.ok(33, &["describe", "rs", "web"]),
        )
    });
    let columns: Vec<&str> = shown.0.split_whitespace().collect();
    assert_eq!(&columns[..4], ["web", "1", "1", "1"], "{}", shown.0);
    assert!(
        shown.1.contains("SuccessfulCreate") && shown.1.contains("Created pod: web-"),
        "{}",
        shown.1
    );
    assert!(shown.1.contains("SuccessfulDelete"), "{}", shown.1);
}

/// What a user does with a Deployment, with the real kubectl: create,
/// wait for the rollout, scale, change the image, read the history, undo,
/// restart; each rollout finishes with every pod on the template.
#[test]
fn deployments_roll_out_scale_and_undo_with_kubectl() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "3"]);
    let images = |c: &Cluster| -> Vec<String> {
        let out = c.ok(
            33,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
            ],
        );
        out.lines().map(String::from).collect()
    };
    let rolled = |c: &Cluster, v: u32| {
        let out = c.ok(v, &["rollout", "status", "deployment/web", "--timeout=60s"]);
        assert!(out.contains("successfully rolled out"), "{out}");
    };
    c.ok(
        33,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox:1",
            "--replicas=3",
        ],
    );
    rolled(&c, 33);
    let shown = c.ok(33, &["get", "deployment", "web", "--no-headers"]);
    let columns: Vec<&str> = shown.split_whitespace().collect();
    assert_eq!(&columns[..4], ["web", "3/3", "3", "3"], "{shown}");

    c.ok(33, &["scale", "deployment", "web", "--replicas=5"]);
    rolled(&c, 27);
    assert_eq!(images(&c).len(), 5);

    c.ok(33, &["set", "image", "deployment/web", "busybox=busybox:2"]);
    rolled(&c, 33);
    let now = images(&c);
    assert!(
        now.len() == 5 && now.iter().all(|i| i == "busybox:2"),
        "{now:?}"
    );
    let history = c.ok(33, &["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    c.ok(33, &["rollout", "undo", "deployment/web"]);
    rolled(&c, 33);
    let now = images(&c);
    assert!(
        now.len() == 5 && now.iter().all(|i| i == "busybox:1"),
        "{now:?}"
    );
    let revision = c.ok(
        33,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    );
    assert_eq!(revision, "3");

    c.ok(33, &["rollout", "restart", "deployment/web"]);
    rolled(&c, 33);
    let sets = c.ok(33, &["get", "rs", "-l", "app=web", "--no-headers"]);
    assert_eq!(sets.lines().count(), 3, "one set per template: {sets}");
    let described = c.ok(33, &["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
}

/// Every namespace gets a `default` ServiceAccount and the cluster's CA
/// in `kube-root-ca.crt`, made again when deleted.
#[test]
fn namespaces_get_their_default_service_account_and_root_ca() {
    let c = Cluster::start(&[]);
    c.ok(33, &["create", "namespace", "team"]);
    for _ in 0..2 {
        c.ok(
            33,
            &[
                "wait",
                "--for=create",
                "serviceaccount/default",
                "-n",
                "team",
                "--timeout=60s",
            ],
        );
        c.ok(
            33,
            &[
                "wait",
                "--for=create",
                "configmap/kube-root-ca.crt",
                "-n",
                "team",
                "--timeout=60s",
            ],
        );
        let ca = c.ok(
            33,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                "team",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
        );
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        // Deleted, both come back.
        c.ok(33, &["delete", "serviceaccount", "default", "-n", "team"]);
        c.ok(
            33,
            &["delete", "configmap", "kube-root-ca.crt", "-n", "team"],
        );
    }
    for ns in ["default", "kube-system"] {
        c.ok(
            33,
            &[
                "wait",
                "--for=create",
                "serviceaccount/default",
                "-n",
                ns,
                "--timeout=60s",
            ],
        );
    }
}

/// The workloads' validation, as kube-apiserver's: a selector that does
/// not match the template, an immutable selector, a Job that would
/// restart its pods forever.
#[test]
fn workload_specs_are_validated_as_kubernetes_does() {
    let c = Cluster::start(&[]);
    let file = c.dir.path().join("bad.yaml");
    let refused = |yaml: &str| {
        std::fs::write(&file, yaml).unwrap();
        c.fails(33, &["apply", "-f", file.to_str().unwrap()])
    };
    let err = refused(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    let err = refused(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: forever}\nspec:\n  template:\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    assert!(
        err.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""),
        "{err}"
    );
    c.ok(33, &["create", "deployment", "web", "--image=busybox"]);
    let err = c.fails(
        33,
        &["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#],
    );
    assert!(
        err.contains("spec.selector: Invalid value") && err.contains("field is immutable"),
        "{err}"
    );
}

/// Two evictions at once against a budget that allows one disruption:
/// exactly one passes, and the budget says so (kube's checkAndDecrement,
/// the budget written in the same decision as the eviction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_evictions_cannot_both_pass_one_budget() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::{EvictParams, Patch, PatchParams, PostParams};
    let c = tokio::task::spawn_blocking(|| Cluster::start(&[]))
        .await
        .unwrap();
    // A 429 is the answer under test: the client must not retry it.
    let kubeconfig = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b"] {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let running = serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(running))
            .await
            .unwrap();
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    budgets.create(&PostParams::default(), &pdb).await.unwrap();
    // The disruption controller counts two healthy pods, one to spare.
    let counted = eventually(|| async {
        let s = budgets.get("db").await.unwrap().status.unwrap_or_default();
        s.current_healthy == 2 && s.disruptions_allowed == 1 && s.observed_generation == Some(1)
    })
    .await;
    assert!(counted, "{:?}", budgets.get("db").await.unwrap().status);

    let params = EvictParams::default();
    let (a, b) = tokio::join!(pods.evict("a", &params), pods.evict("b", &params));
    let refused: Vec<u16> = [&a, &b]
        .iter()
        .filter_map(|r| match r {
            Err(kube::Error::Api(e)) => Some(e.code),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [429], "one passes, one is refused: {a:?} {b:?}");
    let status = budgets.get("db").await.unwrap().status.unwrap();
    assert_eq!(status.disruptions_allowed, 0);
    // The eviction recorded its pod; the disruption controller drops the
    // record once the pod shows as deleting (as kube's does).
    let disrupted = status.disrupted_pods.unwrap_or_default();
    assert!(disrupted.len() <= 1, "{disrupted:?}");
}

/// Jobs run to completion on simulated nodes (whose pods exit as their
/// `sim.rudder.dev/exit-after` annotation says), with kubectl: a parallel
/// Job, an Indexed one, one failing past its backoffLimit and one failed
/// by its pod failure policy.
#[test]
fn jobs_complete_or_fail_as_kubernetes_jobs_do() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "2"]);
    let job = |name: &str, spec: &str, exit_code: u32| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{spec}  template:\n    metadata:\n      annotations: {{sim.rudder.dev/exit-after: 300ms, sim.rudder.dev/exit-code: \"{exit_code}\"}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: busybox}}]\n"
        )
    };
    c.apply(33, &job("pi", "  completions: 4\n  parallelism: 2\n", 0));
    c.apply(
        33,
        &job(
            "shards",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
            0,
        ),
    );
    c.apply(33, &job("broken", "  backoffLimit: 0\n", 1));
    c.apply(
        33,
        &job(
            "policy",
            "  backoffLimit: 5\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {operator: In, values: [42]}\n",
            42,
        ),
    );
    let wait = |condition: &str, job: &str| {
        c.ok(
            33,
            &[
                "wait",
                &format!("--for=condition={condition}"),
                &format!("job/{job}"),
                "--timeout=60s",
            ],
        )
    };
    wait("complete", "pi");
    wait("complete", "shards");
    wait("failed", "broken");
    wait("failed", "policy");

    let get =
        |job: &str, path: &str| c.ok(33, &["get", "job", job, "-o", &format!("jsonpath={path}")]);
    assert_eq!(get("pi", "{.status.succeeded} {.status.failed}"), "4 ");
    let table = c.ok(33, &["get", "job", "pi"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["pi", "Complete", "4/4"], "{table}");
    assert_eq!(get("shards", "{.status.completedIndexes}"), "0-2");
    assert_eq!(
        get(
            "broken",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        get(
            "policy",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "PodFailurePolicy"
    );
    assert!(
        get(
            "policy",
            "{.status.conditions[?(@.type==\"Failed\")].message}"
        )
        .contains("failed with exit code 42 matching FailJob rule at index 0")
    );

    // Every pod was counted and let go of its tracking finalizer; an
    // Indexed Job's pods carry their index, hostname and environment.
    let finalizers = c.ok(
        33,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.finalizers}{end}",
        ],
    );
    assert_eq!(finalizers, "", "pods still tracked");
    let shards = c.ok(
        33,
        &[
            "get", "pods", "-l", "job-name=shards", "-o",
            "jsonpath={range .items[*]}{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {.spec.hostname} {.spec.containers[0].env[0].name}{\"\\n\"}{end}",
        ],
    );
    let mut shards: Vec<&str> = shards.lines().collect();
    shards.sort();
    assert_eq!(
        shards,
        [
            "0 shards-0 JOB_COMPLETION_INDEX",
            "1 shards-1 JOB_COMPLETION_INDEX",
            "2 shards-2 JOB_COMPLETION_INDEX"
        ]
    );
    let events = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=pi",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Completed"),
        "{events}"
    );
}

/// A DaemonSet runs one pod on every simulated node and rolls a new
/// image out node by node, with kubectl's rollout status, history and
/// undo.
#[test]
fn daemon_sets_cover_every_node_and_roll_out_with_kubectl() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "3"]);
    c.apply(
        33,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: 'agent:1'}]}\n",
    );
    let status = c.rollout_status(33, "ds/agent");
    assert!(
        status.contains("daemon set \"agent\" successfully rolled out"),
        "{status}"
    );
    let placed = || {
        let out = c.ok(
            33,
            &["get", "pods", "-l", "app=agent", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image}{\"\\n\"}{end}"],
        );
        let mut lines: Vec<String> = out.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        placed(),
        ["sim-0 agent:1", "sim-1 agent:1", "sim-2 agent:1"]
    );
    let table = c.ok(33, &["get", "ds", "agent"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..6], ["agent", "3", "3", "3", "3", "3"], "{table}");

    c.ok(33, &["set", "image", "ds/agent", "c=agent:2"]);
    c.rollout_status(33, "ds/agent");
    assert_eq!(
        placed(),
        ["sim-0 agent:2", "sim-1 agent:2", "sim-2 agent:2"]
    );
    let history = c.ok(33, &["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    c.ok(33, &["rollout", "undo", "ds/agent"]);
    c.rollout_status(33, "ds/agent");
    assert_eq!(
        placed(),
        ["sim-0 agent:1", "sim-1 agent:1", "sim-2 agent:1"]
    );
    let history = c.ok(33, &["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 ") && !history.contains("\n1 "),
        "the undone revision is the newest: {history}"
    );

    // Every pod tolerates what daemon pods tolerate and is pinned to its node.
    let pinned = c.ok(
        33,
        &["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[0].spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key} {.items[0].spec.tolerations[*].key}"],
    );
    assert!(
        pinned.starts_with("metadata.name ") && pinned.contains("node.kubernetes.io/unschedulable"),
        "{pinned}"
    );
}

/// A StatefulSet's pods come in order with stable names, hostnames and
/// claims; a deleted pod comes back under its name; scaling down removes
/// the highest ordinal and keeps its claim; a new image rolls out from
/// the highest ordinal down.
#[test]
fn stateful_sets_keep_names_order_and_claims() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "2"]);
    c.apply(
        33,
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  replicas: 3\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: c, image: 'db:1', volumeMounts: [{name: data, mountPath: /data}]}]}\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    );
    let status = c.rollout_status(33, "sts/db");
    assert!(
        status.contains("3 new pods have been updated") || status.contains("roll out complete"),
        "{status}"
    );
    let pods = || {
        c.ok(
            33,
            &["get", "pods", "-l", "app=db", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.hostname}.{.spec.subdomain} {.spec.volumes[0].persistentVolumeClaim.claimName} {.spec.containers[0].image}{\"\\n\"}{end}"],
        )
    };
    assert_eq!(
        pods(),
        "db-0 db-0.db data-db-0 db:1\ndb-1 db-1.db data-db-1 db:1\ndb-2 db-2.db data-db-2 db:1\n"
    );
    let created = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=db,reason=SuccessfulCreate",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
    );
    let order: Vec<&str> = created
        .lines()
        .filter(|l| l.starts_with("create Pod"))
        .collect();
    assert_eq!(
        order,
        [
            "create Pod db-0 in StatefulSet db successful",
            "create Pod db-1 in StatefulSet db successful",
            "create Pod db-2 in StatefulSet db successful"
        ],
        "{created}"
    );
    assert!(
        created.contains("create Claim data-db-0 Pod db-0 in StatefulSet db success"),
        "{created}"
    );
    let claims = c.ok(
        33,
        &["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");

    // A deleted pod comes back under its name.
    let uid = |c: &Cluster| {
        c.ok(
            33,
            &["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"],
        )
    };
    let before = uid(&c);
    // Not `kubectl delete`'s wait: on simulated nodes the new db-1 can
    // exist before kubectl looks, and kubectl then waits for it to go.
    c.ok(33, &["delete", "pod", "db-1", "--wait=false"]);
    let remade = common::eventually_blocking(|| {
        let now = c.kubectl(
            33,
            &["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"],
        );
        let now = String::from_utf8_lossy(&now.stdout).to_string();
        !now.is_empty() && now != before
    });
    assert!(remade, "db-1 was not made again");
    c.ok(
        33,
        &["wait", "--for=condition=Ready", "pod/db-1", "--timeout=60s"],
    );
    let after = uid(&c);
    assert_ne!(after, before, "db-1 was not made again");

    // A new image, from the highest ordinal down.
    c.ok(33, &["set", "image", "sts/db", "c=db:2"]);
    c.rollout_status(33, "sts/db");
    assert!(pods().lines().all(|l| l.ends_with("db:2")), "{}", pods());
    let deleted = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=db,reason=SuccessfulDelete",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
    );
    let order: Vec<&str> = deleted.lines().collect();
    assert_eq!(
        order,
        [
            "delete Pod db-2 in StatefulSet db successful",
            "delete Pod db-1 in StatefulSet db successful",
            "delete Pod db-0 in StatefulSet db successful"
        ]
    );
    let history = c.ok(33, &["rollout", "history", "sts/db"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );

    // Scaled down: the highest ordinal goes, its claim stays (Retain).
    c.ok(33, &["scale", "sts/db", "--replicas=1"]);
    c.ok(
        33,
        &[
            "wait",
            "--for=delete",
            "pod/db-1",
            "pod/db-2",
            "--timeout=60s",
        ],
    );
    assert_eq!(pods(), "db-0 db-0.db data-db-0 db:2\n");
    let claims = c.ok(
        33,
        &["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");
    let table = c.ok(33, &["get", "sts", "db"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["db", "1/1"], "{table}");
}

/// A CronJob starts its Jobs on schedule and keeps its history limits; a
/// Job made from it by hand runs apart from them; a finished Job with a
/// TTL goes away; bad schedules and time zones are refused as
/// kube-apiserver refuses them.
#[test]
fn cron_jobs_run_on_schedule_and_keep_their_history() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "1"]);
    let cron = |name: &str, schedule: &str, extra: &str| {
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: {name}}}\nspec:\n  schedule: '{schedule}'\n{extra}  jobTemplate:\n    spec:\n      template:\n        metadata: {{annotations: {{sim.rudder.dev/exit-after: 100ms}}}}\n        spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}\n"
        )
    };
    let file = c.dir.path().join("bad.yaml");
    let refused = |yaml: &str| {
        std::fs::write(&file, yaml).unwrap();
        c.fails(33, &["apply", "-f", file.to_str().unwrap()])
    };
    let err = refused(&cron("bad", "61 * * * *", ""));
    assert!(
        err.contains(
            "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
        ),
        "{err}"
    );
    let err = refused(&cron("bad", "TZ=UTC 0 * * * *", ""));
    assert!(
        err.contains("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        "{err}"
    );
    let err = refused(&cron("bad", "0 * * * *", "  timeZone: Europe/Pariss\n"));
    assert!(
        err.contains(
            "spec.timeZone: Invalid value: \"Europe/Pariss\": unknown time zone Europe/Pariss"
        ),
        "{err}"
    );

    // A Job's name is its scheduled minute, so one is due at most each
    // minute: a last schedule ten minutes ago makes this minute's due now.
    c.apply(
        33,
        &cron(
            "tick",
            "* * * * *",
            "  successfulJobsHistoryLimit: 1\n  timeZone: Europe/Berlin\n",
        ),
    );
    let get = |path: &str| {
        c.ok(
            33,
            &["get", "cronjob", "tick", "-o", &format!("jsonpath={path}")],
        )
    };
    let past = rudder_api::time::rfc3339(rudder_api::time::now() - 600);
    c.ok(
        33,
        &[
            "patch",
            "cronjob",
            "tick",
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!("{{\"status\":{{\"lastScheduleTime\":\"{past}\"}}}}"),
        ],
    );
    // Waits until a Job of it has completed.
    c.ok(
        33,
        &[
            "wait",
            "cronjob/tick",
            "--for=jsonpath={.status.lastSuccessfulTime}",
            "--timeout=60s",
        ],
    );
    let job = c.ok(
        33,
        &["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert!(job.starts_with("tick-"), "no Job started: {job:?}");
    // Suspended, it starts no more (its history is still kept).
    c.ok(
        33,
        &[
            "patch",
            "cronjob",
            "tick",
            "--type=merge",
            "-p",
            "{\"spec\":{\"suspend\":true}}",
        ],
    );
    let job = job.split_whitespace().next().unwrap().to_string();
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=complete",
            &format!("job/{job}"),
            "--timeout=60s",
        ],
    );
    let at = c.ok(
        33,
        &[
            "get",
            "job",
            &job,
            "-o",
            "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
        ],
    );
    assert!(
        at.ends_with(":00+01:00") || at.ends_with(":00+02:00"),
        "Berlin's clock: {at}"
    );
    // Two more of its Jobs, done: the history keeps the one that started
    // last.
    let uid = get("{.metadata.uid}");
    for name in ["tick-a", "tick-b"] {
        c.apply(
            33,
            &format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  ownerReferences: [{{apiVersion: batch/v1, kind: CronJob, name: tick, uid: {uid}, controller: true}}]\nspec:\n  template:\n    metadata: {{annotations: {{sim.rudder.dev/exit-after: 100ms}}}}\n    spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}\n"),
        );
    }
    c.ok(
        33,
        &[
            "wait",
            "--for=delete",
            "job/tick-a",
            &format!("job/{job}"),
            "--timeout=60s",
        ],
    );
    let left = c.ok(
        33,
        &["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(left, "tick-b", "the Complete Job that started last stays");
    let deleted = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=tick,reason=SuccessfulDelete",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(deleted.contains("Deleted job tick-a"), "{deleted}");
    let saw = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=tick,reason=SawCompletedJob",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(
        saw.contains(&format!("Saw completed job: {job}, status: Complete")),
        "{saw}"
    );
    assert!(!get("{.status.lastSuccessfulTime}").is_empty());
    let table = c.ok(33, &["get", "cronjob", "tick"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..8],
        ["tick", "*", "*", "*", "*", "*", "Europe/Berlin", "True"],
        "{table}"
    );

    // By hand: kubectl's Job runs, outside the CronJob's active list
    // (kubectl makes the CronJob its controller, so the history limit
    // counts it: raised, not to race it).
    c.ok(
        33,
        &[
            "patch",
            "cronjob",
            "tick",
            "--type=merge",
            "-p",
            "{\"spec\":{\"successfulJobsHistoryLimit\":5}}",
        ],
    );
    c.ok(33, &["create", "job", "manual", "--from=cronjob/tick"]);
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=complete",
            "job/manual",
            "--timeout=60s",
        ],
    );
    assert!(!get("{.status.active[*].name}").contains("manual"));

    // A finished Job with ttlSecondsAfterFinished: 0 is deleted.
    c.apply(
        33,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: brief}\nspec:\n  ttlSecondsAfterFinished: 0\n  template:\n    metadata: {annotations: {sim.rudder.dev/exit-after: 100ms}}\n    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}\n",
    );
    c.ok(33, &["wait", "--for=delete", "job/brief", "--timeout=60s"]);
}

/// A simulated node that stops renewing its Lease goes Unknown and gets
/// the unreachable taints; its pods are evicted once their toleration
/// (2 s here) runs out, and their Deployment makes them again on nodes
/// that are alive.
#[test]
fn a_silent_node_goes_unknown_and_its_pods_move() {
    let c = Cluster::start(&["--node-monitor-grace-period", "3s"]);
    let _live = SimNodes::join(
        &c,
        &[
            "--nodes",
            "2",
            "--node-prefix",
            "live",
            "--sim-lease-seconds",
            "1",
        ],
    );
    let doomed = SimNodes::join(
        &c,
        &[
            "--nodes",
            "1",
            "--node-prefix",
            "doomed",
            "--sim-lease-seconds",
            "1",
        ],
    );
    // Only the doomed node takes the pods at first.
    c.ok(33, &["cordon", "live-0", "live-1"]);
    c.apply(
        33,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]\n      containers: [{name: c, image: busybox}]\n",
    );
    c.rollout_status(33, "deployment/web");
    let placed = |c: &Cluster| {
        let out = c.ok(
            33,
            &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}"],
        );
        let mut live: Vec<String> = out
            .lines()
            .filter(|l| l.ends_with(' '))
            .map(|l| l.trim().to_string())
            .collect();
        live.sort();
        live
    };
    assert_eq!(placed(&c), ["doomed-0", "doomed-0"]);
    c.ok(33, &["uncordon", "live-0", "live-1"]);

    drop(doomed);
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready=Unknown",
            "node/doomed-0",
            "--timeout=60s",
        ],
    );
    let reason = c.ok(
        33,
        &[
            "get",
            "node",
            "doomed-0",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
        ],
    );
    assert_eq!(reason, "NodeStatusUnknown");
    // Evicted after 2 s, made again on the live nodes.
    let moved = common::eventually_blocking(|| {
        placed(&c).iter().all(|n| n.starts_with("live-")) && placed(&c).len() == 2
    });
    assert!(moved, "{:?}", placed(&c));
    let taints = c.ok(
        33,
        &[
            "get",
            "node",
            "doomed-0",
            "-o",
            "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}",
        ],
    );
    assert!(
        taints.contains("node.kubernetes.io/unreachable:NoExecute")
            && taints.contains("node.kubernetes.io/unreachable:NoSchedule"),
        "{taints}"
    );
    let evicted = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=TaintManagerEviction",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(
        evicted.contains("Marking for deletion Pod default/web-"),
        "{evicted}"
    );
    let target = c.ok(
        33,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
        ],
    );
    assert!(target.contains("DeletionByTaintManager"), "{target}");
}

/// `kubectl drain` evicts a node's pods through the eviction API, one at
/// a time as the PodDisruptionBudget (kept by the disruption controller)
/// allows, and leaves DaemonSet pods with `--ignore-daemonsets`.
#[test]
fn drain_evicts_within_the_disruption_budget() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "3"]);
    c.ok(33, &["cordon", "sim-1", "sim-2"]);
    c.apply(
        33,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    c.rollout_status(33, "deployment/web");
    c.ok(33, &["uncordon", "sim-1", "sim-2"]);
    c.rollout_status(33, "ds/agent");
    c.ok(
        33,
        &[
            "wait",
            "pdb/web",
            "--for=jsonpath={.status.currentHealthy}=3",
            "--timeout=60s",
        ],
    );
    let pdb = c.ok(33, &["get", "pdb", "web"]);
    let row: Vec<&str> = pdb.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "1"], "{pdb}");

    let out = c.ok(
        33,
        &["drain", "sim-0", "--ignore-daemonsets", "--timeout=120s"],
    );
    assert!(out.contains("evicting pod default/web-"), "{out}");
    assert!(out.contains("node/sim-0 drained"), "{out}");
    let placed = c.ok(
        33,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.labels.app}@{.spec.nodeName} {end}",
        ],
    );
    assert!(!placed.contains("web@sim-0"), "{placed}");
    assert_eq!(placed.matches("web@").count(), 3, "{placed}");
    assert!(
        placed.contains("agent@sim-0"),
        "DaemonSet pods stay: {placed}"
    );
    let unschedulable = c.ok(
        33,
        &[
            "get",
            "node",
            "sim-0",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ],
    );
    assert_eq!(unschedulable, "true");
}

/// The server killed in the middle of a rolling update: started again, it
/// finishes the rollout with the replicas asked for and no pod more.
#[test]
fn a_rolling_update_survives_a_server_restart() {
    let first = Cluster::start(&[]);
    let nodes = SimNodes::join(&first, &["--nodes", "3"]);
    first.apply(
        33,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 6\n  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: 'web:1'}]}\n",
    );
    first.rollout_status(33, "deployment/web");
    first.ok(33, &["set", "image", "deployment/web", "c=web:2"]);
    let mut first = first;
    first.server.kill();
    drop(nodes);

    let c = Cluster::start_in(first.dir, &[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "3"]);
    c.rollout_status(33, "deployment/web");
    let pods = c.ok(
        33,
        &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}"],
    );
    let live: Vec<&str> = pods.lines().filter(|l| l.ends_with(' ')).collect();
    assert_eq!(live, ["web:2 "; 6], "{pods}");
    let sets = c.ok(
        33,
        &["get", "rs", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas} {end}"],
    );
    let mut sets: Vec<&str> = sets.split_whitespace().collect();
    sets.sort();
    assert_eq!(sets, ["web:1=0", "web:2=6"]);
}

/// A ReplicationController keeps its replicas, as a ReplicaSet does, and
/// scales with kubectl.
#[test]
fn replication_controllers_keep_their_replicas() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "2"]);
    c.apply(
        33,
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: old}\nspec:\n  replicas: 2\n  selector: {app: old}\n  template:\n    metadata: {labels: {app: old}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    c.ok(33, &["scale", "rc", "old", "--replicas=3"]);
    c.ok(
        33,
        &[
            "wait",
            "rc/old",
            "--for=jsonpath={.status.readyReplicas}=3",
            "--timeout=60s",
        ],
    );
    let owners = c.ok(
        33,
        &["get", "pods", "-l", "app=old", "-o", "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}"],
    );
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        ["ReplicationController/old"; 3]
    );
    let table = c.ok(33, &["get", "rc", "old"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["old", "3", "3", "3"], "{table}");
    // The controllers' reconciles show on the server's /metrics.
    let metrics = c.ok(33, &["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("controller_runtime_reconcile_total{controller=\"replicationcontroller\",result=\"success\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "controller_runtime_reconcile_time_seconds_count{controller=\"replicationcontroller\"}"
    ));
}
