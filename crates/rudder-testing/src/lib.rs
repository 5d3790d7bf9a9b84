//! Fixtures for tests and benchmarks that need real peers.
//!
//! [`EtcdServer`] starts a real single-member etcd (Debian's `etcd-server`)
//! on free loopback ports in a temp dir and stops it on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A free TCP port on 127.0.0.1 (free when this returns; bind it soon).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds a program on PATH or in the sbin directories Debian uses.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A real etcd, for as long as this value lives.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it serves. Fails with what to install if
    /// there is no etcd binary.
    pub fn start() -> Result<Self> {
        let etcd = find_program("etcd").context(
            "etcd is not installed: run `apt-get install etcd-server` (the test command does this)",
        )?;
        let dir = tempfile::tempdir().context("creating a temp dir for etcd")?;
        // Two free ports, bound by etcd right away; retry on the rare race.
        let mut last_err = None;
        for _ in 0..3 {
            let (client, peer) = (free_port()?, free_port()?);
            match Self::spawn(&etcd, dir.path(), client, peer) {
                Ok(child) => {
                    let endpoint = format!("http://127.0.0.1:{client}");
                    let mut server = Self {
                        child,
                        endpoint,
                        _dir: dir,
                    };
                    server.wait_healthy(client, Duration::from_secs(30))?;
                    return Ok(server);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn spawn(etcd: &Path, dir: &Path, client: u16, peer: u16) -> Result<Child> {
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        Command::new(etcd)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            // Our client-side limit is 1.5 MiB of payload; leave etcd room
            // for the request's own framing on top of that.
            .arg("--max-request-bytes=2097152")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", etcd.display()))
    }

    fn wait_healthy(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self._dir.path().join("etcd.log")).unwrap_or_default();
                bail!("etcd exited with {status} before serving:\n{log}");
            }
            if health(port).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd on port {port} was not healthy after {timeout:?}");
            }
            // A test fixture polling a child process: no tokio runtime here.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn health(port: u16) -> Result<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body.contains("\"health\":\"true\""))
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
