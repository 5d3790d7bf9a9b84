//! `rudder server` with its node agent: the node registers, gets a
//! podCIDR, heartbeats, and turns Ready once its containerd answers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Cluster;
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn the_server_runs_a_node_agent_that_registers_its_node() {
    let mut c = Cluster::start_with_agent(&["--node-name", "node-1", "--node-ip", "127.0.0.1"]);
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "node/node-1",
            "--timeout=60s",
        ],
    );
    for v in [27, 33] {
        let out = c.ok(v, &["get", "nodes"]);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            "{out}"
        );
        let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            (row[0], row[1], row[2], row[4]),
            ("node-1", "Ready", "control-plane", "v1.33.0+rudder"),
            "{out}"
        );
    }
    let node = json(&c.ok(27, &["get", "node", "node-1", "-o", "json"]));
    assert_eq!(node["spec"]["podCIDR"], common::POD_CIDR);
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "node-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(labels["kubernetes.io/arch"].is_string());
    let status = &node["status"];
    assert_eq!(status["capacity"]["pods"], "110");
    assert!(
        status["capacity"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );
    assert_eq!(
        status["addresses"][0],
        serde_json::json!({"type": "InternalIP", "address": "127.0.0.1"})
    );
    assert!(
        status["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{status}"
    );
    let kinds: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let lease = json(&c.ok(
        33,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "node-1",
            "-o",
            "json",
        ],
    ));
    assert_eq!(lease["spec"]["holderIdentity"], "node-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert!(lease["spec"]["renewTime"].is_string());

    // containerd dying turns the node NotReady until the agent has it
    // running again.
    let data = c.dir.path().join("data");
    let config = format!("{}/agent/containerd/etc/containerd.toml", data.display());
    let killed = std::process::Command::new("pkill")
        .args(["-9", "-f", &format!("containerd --config {config}")])
        .status()
        .unwrap();
    assert!(killed.success(), "containerd was not running");
    let mut events = String::new();
    for _ in 0..300 {
        events = c.ok(
            33,
            &["get", "events", "--field-selector=involvedObject.kind=Node"],
        );
        if events.contains("NodeNotReady") {
            break;
        }
        // Polling the cluster within a bound, not timing anything.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(events.contains("NodeNotReady"), "{events}");
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "node/node-1",
            "--timeout=60s",
        ],
    );
    let node = json(&c.ok(33, &["get", "node", "node-1", "-o", "json"]));
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "KubeletReady", "{ready}");
    assert!(
        c.server.log_text().contains("containerd is running again")
            || c.server.wait_for("containerd is running again"),
        "{}",
        c.server.log_text()
    );

    // Stopping the server stops the agent's containerd.
    assert!(c.server.terminate().success());
    let ps = common::processes_matching(&format!("{}/agent/containerd", data.display()));
    assert!(ps.is_empty(), "containerd still runs: {ps}");
}

/// Pods bound to the node run in real containers (busybox made from
/// busybox-static, imported from the agent's images directory), report
/// their status, and leave nothing behind once deleted.
#[test]
fn pods_bound_to_the_node_run_and_report_their_status() {
    let dir = common::node_dir();
    let manifests = dir.path().join("data/agent/pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifest = manifests.join("static-web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: local/busybox:v1\n    command: [sleep, \"3600\"]\n",
    )
    .unwrap();
    let mut c =
        Cluster::start_with_agent_in(dir, &["--node-name", "node-1", "--node-ip", "127.0.0.1"]);

    // A static pod runs from its manifest; its mirror pod shows it, and
    // deleting the mirror does not stop it.
    let running = [
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        "pod/static-web-node-1",
        "--timeout=60s",
    ];
    c.ok(33, &running);
    let mirror = json(&c.ok(33, &["get", "pod", "static-web-node-1", "-o", "json"]));
    let hash = mirror["metadata"]["annotations"]["kubernetes.io/config.hash"].clone();
    assert_eq!(
        mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"],
        hash
    );
    assert_eq!(mirror["metadata"]["ownerReferences"][0]["kind"], "Node");
    let container = mirror["status"]["containerStatuses"][0]["containerID"].clone();
    c.ok(33, &["delete", "pod", "static-web-node-1", "--wait=false"]);
    let mut again = Value::Null;
    for _ in 0..300 {
        let out = c.kubectl(33, &["get", "pod", "static-web-node-1", "-o", "json"]);
        if out.status.success() {
            let pod = json(&String::from_utf8_lossy(&out.stdout));
            if pod["metadata"]["uid"] != mirror["metadata"]["uid"]
                && pod["status"]["containerStatuses"][0]["containerID"].is_string()
            {
                again = pod;
                break;
            }
        }
        // Polling the cluster within a bound, not timing anything.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        again["status"]["containerStatuses"][0]["containerID"], container,
        "the static pod kept running: {again}"
    );
    // Removing the manifest stops it.
    std::fs::remove_file(&manifest).unwrap();
    c.ok(
        33,
        &[
            "wait",
            "--for=delete",
            "pod/static-web-node-1",
            "--timeout=60s",
        ],
    );

    let on_node = r#"{"spec":{"nodeName":"node-1"}}"#;
    let run = |name: &str, script: &str| {
        let overrides = format!("--overrides={on_node}");
        c.ok(
            33,
            &[
                "run",
                name,
                "--image=local/busybox:v1",
                "--restart=Never",
                &overrides,
                "--command",
                "--",
                "sh",
                "-c",
                script,
            ],
        );
    };
    run("sleeper", "trap 'exit 0' TERM; sleep 3600 & wait");
    run("done", "echo done");
    run("fails", "exit 3");

    // `rudder image import` adds images to the running node.
    let other = c.dir.path().join("other.tar");
    std::fs::write(
        &other,
        rudder_cri::oci::busybox_image("docker.io/local/other:v2").unwrap(),
    )
    .unwrap();
    let data = c.dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["image", "import", "--data-dir"])
        .arg(&data)
        .arg(&other)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let never = r#"--overrides={"spec":{"nodeName":"node-1","containers":[{"name":"imported","image":"local/other:v2","imagePullPolicy":"Never","command":["true"]}]}}"#;
    c.ok(
        33,
        &[
            "run",
            "imported",
            "--image=local/other:v2",
            "--restart=Never",
            never,
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/imported",
            "--timeout=60s",
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Running",
            "pod/sleeper",
            "--timeout=60s",
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/done",
            "--timeout=60s",
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Failed",
            "pod/fails",
            "--timeout=60s",
        ],
    );

    // The agent's Summary API, through the API server's node proxy.
    let summary = json(&c.ok(
        33,
        &["get", "--raw", "/api/v1/nodes/node-1/proxy/stats/summary"],
    ));
    assert_eq!(summary["node"]["nodeName"], "node-1");
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let sleeper = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "sleeper")
        .unwrap_or_else(|| panic!("no sleeper in {summary}"));
    assert!(
        sleeper["containers"][0]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0,
        "{sleeper}"
    );

    let pod = json(&c.ok(27, &["get", "pod", "sleeper", "-o", "json"]));
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with("10.99.0."), "{ip}");
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert!(
        cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(cs["state"]["running"]["startedAt"].is_string());
    let failed = json(&c.ok(27, &["get", "pod", "fails", "-o", "json"]));
    let term = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(3), Some("Error"))
    );
    let table = c.ok(33, &["get", "pods", "-o", "wide"]);
    assert!(
        table.contains("Completed") && table.contains("Running") && table.contains(ip),
        "{table}"
    );

    // Deleting a running pod waits for the agent to stop it; finished pods
    // go at once (as in Kubernetes) and the agent removes their sandboxes
    // on its next pass: wait for that, within a bound.
    c.ok(
        33,
        &[
            "delete",
            "pod",
            "sleeper",
            "done",
            "fails",
            "imported",
            "--timeout=60s",
        ],
    );
    c.stop_and_check_node();
}

/// `rudder agent --server URL --token T`: another node joins with the
/// server's token, runs pods, and serves their logs and exec through the
/// API server; a token for another cluster is refused.
#[test]
fn an_agent_joins_with_the_node_token() {
    let c = Cluster::start(&["--cluster-cidr", common::CLUSTER_CIDR]);
    let token_file = c.dir.path().join("data/server/node-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("K10"), "{token}");
    let server = format!("https://127.0.0.1:{}", c.port);
    let rudder = env!("CARGO_BIN_EXE_rudder");

    // A token whose CA hash is not this cluster's.
    let (_, secret) = token.split_once("::").unwrap();
    let wrong = format!("K10{}::{secret}", "0".repeat(64));
    let out = std::process::Command::new(rudder)
        .args(["agent", "--server", &server, "--token", &wrong])
        .arg("--data-dir")
        .arg(c.dir.path().join("wrong"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("does not match the token"),
        "{stderr}"
    );

    let node = common::node_dir();
    let data = node.path().join("data");
    let port = rudder_testing::free_port().unwrap().to_string();
    let log = std::fs::File::create(node.path().join("agent.log")).unwrap();
    // Dropped in reverse: a failed test kills the agent, then cleans up.
    let guard = common::NodeGuard::new(data.clone());
    let mut agent = Killed(
        std::process::Command::new(rudder)
            .args(["agent", "--server", &server, "--token", &token])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--node-name",
                "worker-1",
                "--node-ip",
                "127.0.0.1",
                "--kubelet-port",
                &port,
            ])
            .args(common::NODE_ARGS)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let ready = c.kubectl(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "node/worker-1",
            "--timeout=60s",
        ],
    );
    assert!(
        ready.status.success(),
        "{}",
        std::fs::read_to_string(node.path().join("agent.log")).unwrap()
    );
    let n = json(&c.ok(33, &["get", "node", "worker-1", "-o", "json"]));
    assert!(
        n["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_none()
    );
    assert_eq!(n["spec"]["podCIDR"], common::POD_CIDR);
    c.ok(
        33,
        &[
            "run",
            "joined",
            "--image=local/busybox:v1",
            r#"--overrides={"spec":{"nodeName":"worker-1","terminationGracePeriodSeconds":0}}"#,
            "--command",
            "--",
            "sh",
            "-c",
            "echo hello from worker-1; sleep 3600",
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/joined",
            "--timeout=60s",
        ],
    );
    let logs = c.ok(27, &["logs", "joined"]);
    assert_eq!(logs, "hello from worker-1\n");
    assert_eq!(
        c.ok(27, &["exec", "joined", "--", "echo", "exec"]),
        "exec\n"
    );

    c.ok(33, &["delete", "pod", "joined", "--timeout=60s"]);
    let left = common::pods_left(&common::agent_socket(&data));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status();
    assert!(agent.0.wait().unwrap().success());
    drop(guard);
    common::clean_node(&left, &data);
}

/// A process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--container-runtime-endpoint`: the agent uses a containerd it did not
/// start.
#[test]
fn the_agent_uses_an_existing_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime_dir = tempfile::tempdir().unwrap();
    let containerd = rt
        .block_on(rudder_cri::containerd::Containerd::start(
            &rudder_cri::containerd::Options {
                dir: runtime_dir.path().join("containerd"),
                pod_subnet: common::POD_CIDR.into(),
                sandbox_image: rudder_agent::PAUSE_IMAGE.into(),
                bridge: "rudder-ext".into(),
            },
        ))
        .unwrap();
    let socket = format!("unix://{}", containerd.socket().display());
    let dir = common::node_dir();
    let data = dir.path().join("data");
    let mut c = Cluster::start_with_agent_in(
        dir,
        &[
            "--node-name",
            "node-1",
            "--node-ip",
            "127.0.0.1",
            "--container-runtime-endpoint",
            &socket,
        ],
    );
    c.ok(
        33,
        &[
            "run",
            "outside",
            "--image=local/busybox:v1",
            r#"--overrides={"spec":{"nodeName":"node-1","terminationGracePeriodSeconds":0}}"#,
            "--command",
            "--",
            "sleep",
            "3600",
        ],
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/outside",
            "--timeout=60s",
        ],
    );
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("{}/agent/containerd", data.display())])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "the agent started its own containerd");
    c.ok(33, &["delete", "pod", "outside", "--timeout=60s"]);
    let left = common::pods_left(containerd.socket());
    assert!(c.server.terminate().success());
    rt.block_on(containerd.stop());
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "rudder-ext"])
        .status();
    common::clean_node(&left, &data);
}

/// `scripts/down --purge` after a node ran pods (one with a host port and
/// a memory-backed emptyDir): the server stops, and nothing of the node is
/// left: no process, network namespace, bridge, nat rule, mount or cgroup,
/// no data dir, kubeconfig or binary. A second run finds nothing to do.
#[test]
fn scripts_down_stops_the_node_and_leaves_nothing_behind() {
    use std::process::Command;
    let cni_results = || -> Vec<String> {
        std::fs::read_dir("/var/lib/cni/results")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let results_before = cni_results();
    let dir = common::node_dir();
    let mut c =
        Cluster::start_with_agent_in(dir, &["--node-name", "node-1", "--node-ip", "127.0.0.1"]);
    let host_port = rudder_testing::free_port().unwrap();
    c.apply(
        33,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: web
    image: local/busybox:v1
    command: [sh, -c, "httpd -f -p 8080 -h /www"]
    ports: [{{containerPort: 8080, hostPort: {host_port}}}]
    volumeMounts: [{{name: mem, mountPath: /mem}}]
  volumes:
  - {{name: mem, emptyDir: {{medium: Memory}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sleeper}}
spec:
  containers:
  - {{name: sleep, image: local/busybox:v1, command: [sleep, "3600"]}}
"#
        ),
    );
    for pod in ["pod/web", "pod/sleeper"] {
        c.ok(33, &["wait", "--for=condition=Ready", pod, "--timeout=90s"]);
    }
    let data = c.dir.path().join("data");
    let nat_rules = || {
        let out = Command::new("iptables")
            .args(["-w", "-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("name: \\\"{}\\\"", common::BRIDGE)))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(!common::new_pod_netns().is_empty());
    assert!(!nat_rules().is_empty(), "the pods have masquerading rules");

    // Where scripts/up would have put the cluster: the test's own places.
    let run = c.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("server.pid"), c.server.pid().to_string()).unwrap();
    let bin = c.dir.path().join("bin/rudder");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_rudder"), &bin).unwrap();
    let down = || {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/down"))
            .arg("--purge")
            .env("RUDDER_DATA_DIR", &data)
            .env("RUDDER_RUN_DIR", &run)
            .env("RUDDER_LOG_DIR", c.dir.path().join("log"))
            .env("RUDDER_KUBECONFIG", &c.kubeconfig)
            .env("RUDDER_BIN", &bin)
            .env("RUDDER_DEBUG_FILE", c.dir.path().join("rudder.debug"))
            .env("RUDDER_POD_BRIDGE", common::BRIDGE)
            .env("RUDDER_CGROUP_ROOT", common::CGROUP_ROOT)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "scripts/down failed:\n{text}");
        text
    };
    let said = down();
    assert!(c.server.has_exited(), "the server still runs:\n{said}");
    assert!(said.contains("removing the bridge"), "{said}");

    assert_eq!(common::new_pod_netns(), Vec::<String>::new(), "{said}");
    assert!(
        !Command::new("ip")
            .args(["link", "show", common::BRIDGE])
            .output()
            .unwrap()
            .status
            .success(),
        "the bridge is still there"
    );
    assert_eq!(nat_rules(), Vec::<String>::new(), "{said}");
    let left = common::mounts_under(&data);
    assert!(left.is_empty(), "mounts left: {left:#?}");
    let processes = common::processes_matching(&data.to_string_lossy());
    assert!(processes.is_empty(), "processes left: {processes}");
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(common::CGROUP_ROOT.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let results: Vec<String> = cni_results()
        .into_iter()
        .filter(|r| !results_before.contains(r))
        .collect();
    assert_eq!(
        results,
        Vec::<String>::new(),
        "CNI's result cache keeps entries"
    );
    for gone in [&data, &c.kubeconfig, &bin, &run] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }

    let again = down();
    assert!(
        !again.contains("removing"),
        "a second run removed more:\n{again}"
    );
}
