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
    assert_eq!(node["spec"]["podCIDR"], "10.42.0.0/24");
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

    // Stopping the server stops the agent's containerd.
    let data = c.dir.path().join("data");
    assert!(c.server.terminate().success());
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("{}/agent/containerd", data.display())])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "containerd still runs: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
