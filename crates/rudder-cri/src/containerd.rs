//! The agent's own containerd: a generated config and CNI network under
//! the agent's directory, its own root, state, sockets and runtime state
//! roots (so it never meets a containerd the machine already runs), the
//! CRI plugin on, runc by default and crun as a second handler when
//! installed, cgroupfs. See `shared/notes/containerd-cri.md` §2 for why
//! each setting is what it is (`restrict_oom_score_adj`: there is no
//! CAP_SYS_RESOURCE here; stream port 0: no clash with another CRI).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{Cri, Error};

/// How long containerd may take to answer CRI calls after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the Debian packages put what containerd needs.
const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";
const CNI_BIN: &str = "/usr/lib/cni";
/// The CNI plugins the pod network runs: the conflist's chain, and the
/// loopback plugin containerd runs itself for every sandbox.
const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback"];

/// What the agent's containerd is set up with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Its directory: config, root, state, sockets, log.
    pub dir: PathBuf,
    /// The pods' subnet on this node (the node's podCIDR).
    pub pod_subnet: String,
    /// The sandbox (pause) image, imported by the agent.
    pub sandbox_image: String,
    /// The CNI bridge's name (at most 15 bytes).
    pub bridge: String,
}

/// A running containerd the agent started; stopped by [`Containerd::stop`]
/// (or killed when dropped).
#[derive(Debug)]
pub struct Containerd {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The full path of `program` on PATH.
fn find(program: &'static str, package: &'static str) -> Result<PathBuf, Error> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(Error::Missing { program, package })
}

impl Containerd {
    /// Writes the configuration, starts containerd and waits until it
    /// answers CRI calls.
    pub async fn start(opts: &Options) -> Result<Self, Error> {
        let binary = find("containerd", "containerd")?;
        if !Path::new(RUNC).is_file() {
            return Err(Error::Missing {
                program: "runc",
                package: "runc",
            });
        }
        if let Some(&plugin) = CNI_PLUGINS
            .iter()
            .find(|p| !Path::new(CNI_BIN).join(p).is_file())
        {
            return Err(Error::Missing {
                program: plugin,
                package: "containernetworking-plugins",
            });
        }
        let dir = &opts.dir;
        let etc = dir.join("etc");
        let net = etc.join("cni/net.d");
        std::fs::create_dir_all(&net).map_err(io("creating", &net))?;
        let config = etc.join("containerd.toml");
        std::fs::write(&config, config_toml(opts)).map_err(io("writing", &config))?;
        let conflist = net.join("10-podnet.conflist");
        std::fs::write(&conflist, cni_conflist(opts)).map_err(io("writing", &conflist))?;
        let socket = dir.join("containerd.sock");
        let log = dir.join("containerd.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io("opening", &log))?;
        let err_file = log_file.try_clone().map_err(io("opening", &log))?;
        tracing::info!(config = %config.display(), log = %log.display(), "starting containerd");
        // setpriv (util-linux) makes the kernel stop containerd if the
        // agent dies without stopping it; its containers' shims live on.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--"])
            .arg(&binary)
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(io("starting", &binary))?;
        let mut me = Self { child, socket, log };
        me.wait_ready().await?;
        Ok(me)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Exited {
                    status,
                    log: self.log.clone(),
                });
            }
            if self.socket.exists()
                && let Ok(mut cri) = Cri::connect(&self.socket).await
                && cri.version().await.is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    seconds: START_TIMEOUT.as_secs(),
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Imports an image archive (OCI layout or docker save) into the
    /// namespace CRI uses, with containerd's own `ctr`.
    pub async fn import(&self, archive: &Path) -> Result<(), Error> {
        import(&self.socket, archive).await
    }

    /// The CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How containerd exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// containerd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops containerd: SIGTERM, then SIGKILL if it has not exited in time.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // tokio offers only SIGKILL; `kill -TERM` asks politely first.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("containerd did not stop on SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// Imports an image archive (OCI layout or docker save) into the
/// containerd at `socket`, in the namespace CRI uses, with containerd's
/// own `ctr`.
pub async fn import(socket: &Path, archive: &Path) -> Result<(), Error> {
    let ctr = find("ctr", "containerd")?;
    let out = Command::new(&ctr)
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(archive)
        .output()
        .await
        .map_err(io("running", &ctr))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Import {
        archive: archive.to_path_buf(),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn config_toml(opts: &Options) -> String {
    let dir = opts.dir.display();
    let crun = if Path::new(CRUN).is_file() {
        format!(
            r#"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]
          BinaryName = "{CRUN}"
          Root = "{dir}/runtime-root/crun"
          SystemdCgroup = false"#
        )
    } else {
        String::new()
    };
    format!(
        r#"# Written by the rudder agent at each start.
version = 2
root = "{dir}/root"
state = "{dir}/state"
oom_score = 0

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[debug]
  address = "{dir}/containerd-debug.sock"
  level = "info"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{sandbox}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    disable_cgroup = false
    restrict_oom_score_adj = true
    max_container_log_line_size = 16384
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "{RUNC}"
          Root = "{dir}/runtime-root/runc"
          SystemdCgroup = false{crun}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN}"
      conf_dir = "{dir}/etc/cni/net.d"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "{dir}/certs.d"
"#,
        sandbox = opts.sandbox_image,
    )
}

/// The pod network, named after its bridge: CNI tags its nat rules and
/// result cache with the network's name, which so tells one node's pods
/// from another's on the same machine (`scripts/down` removes them by it).
fn cni_conflist(opts: &Options) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "{bridge}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}],
        "dataDir": "{dir}/cni-ipam"
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }} }}
  ]
}}
"#,
        subnet = opts.pod_subnet,
        dir = opts.dir.display(),
        bridge = opts.bridge,
    )
}
