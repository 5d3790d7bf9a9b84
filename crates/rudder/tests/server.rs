//! `rudder server` as a process: it starts, keeps its state in the data
//! dir, refuses a second server on the same dir and stops cleanly on
//! SIGTERM; with `--datastore-endpoint` it uses a real etcd instead.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::{Cluster, READY, Server, db_file};

#[test]
fn server_keeps_its_store_in_the_data_dir_and_stops_cleanly_on_sigterm() {
    let mut cluster = Cluster::start(&[]);
    let data_dir = cluster.dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    assert!(
        db_file(&data_dir).is_file(),
        "no store under {data}/server/db"
    );
    assert!(cluster.kubeconfig.is_file(), "no kubeconfig once serving");
    assert!(data_dir.join("admin.kubeconfig").is_file());

    // A second server on the same data dir is refused with a clear error.
    let port = rudder_testing::free_port().unwrap().to_string();
    let kc = cluster.dir.path().join("second.yaml");
    let second = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args([
            "server",
            "--data-dir",
            data,
            "--disable-agent",
            "--https-listen-port",
            &port,
        ])
        .args(["--write-kubeconfig", kc.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already open"), "{err}");
    assert!(
        err.contains(&db_file(&data_dir).display().to_string()),
        "{err}"
    );
    assert!(!kc.exists(), "the refused server wrote a kubeconfig");

    let status = cluster.server.terminate();
    assert!(
        status.success(),
        "exit {status}:\n{}",
        cluster.server.log_text()
    );
    assert!(
        cluster.server.log_text().contains("stopped cleanly"),
        "{}",
        cluster.server.log_text()
    );
}

#[test]
fn a_restart_keeps_the_data_and_the_cluster_ca() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let mut first = Cluster::start_in(dir, &[]);
    first.ok(27, &["create", "namespace", "kept"]);
    let old_kubeconfig = std::fs::read_to_string(&first.kubeconfig).unwrap();
    assert!(first.server.terminate().success());

    // Same data dir, new port: the first kubeconfig's CA still verifies.
    let second = Cluster::start_in(first.dir, &[]);
    assert_eq!(second.dir.path(), keep);
    let new_kubeconfig = std::fs::read_to_string(&second.kubeconfig).unwrap();
    let ca = |k: &str| {
        k.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        ca(&old_kubeconfig),
        ca(&new_kubeconfig),
        "the CA was regenerated"
    );
    assert!(
        second
            .ok(27, &["get", "namespace", "kept", "-o", "name"])
            .contains("namespace/kept")
    );
}

#[test]
fn server_with_datastore_endpoint_uses_etcd_and_no_local_store() {
    let etcd = rudder_testing::EtcdServer::start().unwrap();
    let cluster = Cluster::start(&["--datastore-endpoint", etcd.endpoint()]);
    assert!(
        cluster.server.log_text().contains("connected to etcd"),
        "{}",
        cluster.server.log_text()
    );
    assert!(
        !db_file(&cluster.dir.path().join("data")).exists(),
        "an embedded store was created next to etcd"
    );
    cluster.ok(27, &["create", "namespace", "in-etcd"]);
    assert!(
        cluster
            .ok(27, &["get", "namespaces", "-o", "name"])
            .contains("namespace/in-etcd")
    );
}

#[test]
fn unreachable_etcd_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = rudder_testing::free_port().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--datastore-endpoint", &format!("http://127.0.0.1:{port}")])
        .args([
            "--write-kubeconfig",
            dir.path().join("k.yaml").to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the error names the endpoint: {err}"
    );
}

#[test]
fn server_refuses_a_busy_port_clearly() {
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&[
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--https-listen-port",
        &port,
        "--write-kubeconfig",
        dir.path().join("k.yaml").to_str().unwrap(),
    ]);
    assert!(!server.wait_for(READY));
    assert!(
        server
            .log_text()
            .contains(&format!("binding 0.0.0.0:{port}")),
        "{}",
        server.log_text()
    );
}
