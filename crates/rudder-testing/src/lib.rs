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
    tls: Option<EtcdTls>,
    _dir: tempfile::TempDir,
}

/// Files of an etcd that requires TLS with client certificates.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA that signed the server and client certificates.
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl EtcdServer {
    /// Starts etcd and waits until it serves. Fails with what to install if
    /// there is no etcd binary.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// Starts an etcd that serves HTTPS only and requires a client
    /// certificate signed by its CA (see [`EtcdServer::tls`]).
    pub fn start_tls() -> Result<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Self> {
        let etcd = find_program("etcd").context(
            "etcd is not installed: run `apt-get install etcd-server` (the test command does this)",
        )?;
        let dir = tempfile::tempdir().context("creating a temp dir for etcd")?;
        let tls = if tls {
            Some(make_certs(dir.path())?)
        } else {
            None
        };
        // Two free ports, bound by etcd right away; retry on the rare race
        // where another process took one in between.
        let mut last_err = None;
        for attempt in 0..3 {
            let (client, peer) = (free_port()?, free_port()?);
            let data = dir.path().join(format!("attempt-{attempt}"));
            let mut child = spawn(&etcd, dir.path(), &data, client, peer, tls.as_ref())?;
            match wait_healthy(&mut child, &data, client, tls.is_some()) {
                Ok(()) => {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    let endpoint = format!("{scheme}://127.0.0.1:{client}");
                    return Ok(Self {
                        child,
                        endpoint,
                        tls,
                        _dir: dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Certificate files, for a server started with [`EtcdServer::start_tls`].
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with the openssl command line (Debian `openssl`).
fn make_certs(dir: &Path) -> Result<EtcdTls> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl (install the Debian package openssl)")?;
        if !out.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=rudder-test-ca",
            ],
        ]
        .concat(),
    )?;
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext)?;
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}-key.pem"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ])?;
    }
    Ok(EtcdTls {
        ca_file: dir.join("ca.pem"),
        client_cert_file: dir.join("client.pem"),
        client_key_file: dir.join("client-key.pem"),
    })
}

fn spawn(
    etcd: &Path,
    certs: &Path,
    data: &Path,
    client: u16,
    peer: u16,
    tls: Option<&EtcdTls>,
) -> Result<Child> {
    std::fs::create_dir_all(data)?;
    let log = std::fs::File::create(data.join("etcd.log"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new(etcd);
    if let Some(tls) = tls {
        cmd.arg(format!(
            "--cert-file={}",
            certs.join("server.pem").display()
        ))
        .arg(format!(
            "--key-file={}",
            certs.join("server-key.pem").display()
        ))
        .arg(format!("--trusted-ca-file={}", tls.ca_file.display()))
        .arg("--client-cert-auth");
    }
    cmd.arg("--name=test")
        .arg(format!("--data-dir={}", data.join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=test={peer_url}"))
        // Our client-side limit is 1.5 MiB of payload; leave etcd room for
        // the request's own framing on top of that.
        .arg("--max-request-bytes=2097152")
        .arg("--logger=zap")
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", etcd.display()))
}

/// Waits until etcd serves (a hang guard of 30 s, not a timing check).
fn wait_healthy(child: &mut Child, data: &Path, port: u16, tls: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(data.join("etcd.log")).unwrap_or_default();
            bail!("etcd exited with {status} before serving:\n{log}");
        }
        let healthy = if tls {
            // Over TLS the port listening is enough; the caller's first
            // request waits for the leader.
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            health(port).unwrap_or(false)
        };
        if healthy {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("etcd on port {port} was not healthy after 30s");
        }
        // A fixture polling a child process: no tokio runtime here.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
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
