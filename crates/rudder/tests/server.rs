//! `rudder server` as a process: it starts, keeps its state in the data
//! dir, refuses a second server on the same dir and stops cleanly on
//! SIGTERM; with `--datastore-endpoint` it uses a real etcd instead.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const READY: &str = "rudder server running";

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .arg("server")
            .args(args)
            .env("RUDDER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = forward_lines(child.stderr.take().unwrap());
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads the log until a line contains `needle` or the process exits.
    fn wait_for(&mut self, needle: &str) -> bool {
        // A hang guard, not a timing assertion.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(60)) {
            let found = line.contains(needle);
            self.log.push(line);
            if found {
                return true;
            }
        }
        false
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        self.log.extend(self.lines.iter());
        status
    }

    fn log_text(&self) -> String {
        self.log.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn db_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("server").join("db").join("state.redb")
}

#[test]
fn server_keeps_its_store_in_the_data_dir_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();

    let mut server = Server::start(&["--data-dir", data, "--disable-agent"]);
    assert!(
        server.wait_for(READY),
        "server did not start:\n{}",
        server.log_text()
    );
    assert!(
        db_file(&data_dir).is_file(),
        "no store under {data}/server/db"
    );

    // A second server on the same data dir is refused with a clear error.
    let second = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--data-dir", data, "--disable-agent"])
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

    let status = server.terminate();
    assert!(status.success(), "exit {status}:\n{}", server.log_text());
    assert!(
        server.log_text().contains("stopped cleanly"),
        "{}",
        server.log_text()
    );

    // The store reopens after the clean stop.
    let mut again = Server::start(&["--data-dir", data, "--disable-agent"]);
    assert!(
        again.wait_for(READY),
        "restart failed:\n{}",
        again.log_text()
    );
    assert!(again.terminate().success());
}

#[test]
fn server_with_datastore_endpoint_uses_etcd_and_no_local_store() {
    let etcd = rudder_testing::EtcdServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = Server::start(&["--data-dir", data, "--datastore-endpoint", etcd.endpoint()]);
    assert!(
        server.wait_for(READY),
        "server did not start:\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("connected to etcd"),
        "{}",
        server.log_text()
    );
    assert!(
        !db_file(dir.path()).exists(),
        "an embedded store was created next to etcd"
    );
    assert!(server.terminate().success(), "{}", server.log_text());
}

#[test]
fn unreachable_etcd_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = rudder_testing::free_port().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--datastore-endpoint", &format!("http://127.0.0.1:{port}")])
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
