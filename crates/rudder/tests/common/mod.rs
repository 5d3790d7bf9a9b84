//! Helpers shared by the `rudder` process tests: a server process with its
//! log, and the real kubectl.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const READY: &str = "rudder server running";

/// Node tests keep clear of a Rudder cluster that may run on this machine
/// (`scripts/up`): their pods get a bridge, a cgroup root and a pod range
/// of their own.
pub const NODE_ARGS: [&str; 4] = ["--cgroup-root", CGROUP_ROOT, "--pod-bridge", BRIDGE];
pub const CLUSTER_CIDR: &str = "10.99.0.0/16";
/// The first node's podCIDR in [`CLUSTER_CIDR`].
pub const POD_CIDR: &str = "10.99.0.0/24";
pub const CGROUP_ROOT: &str = "/rudder-test";
pub const BRIDGE: &str = "rudder-test0";

/// The pod network namespaces this machine had before the test's node
/// started (a cluster of the machine's own may have some): only the
/// others count as left behind.
fn netns_before() -> &'static Vec<String> {
    static BEFORE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    BEFORE.get_or_init(pod_netns)
}

/// The pod network namespaces that appeared since the first node of this
/// test binary started.
pub fn new_pod_netns() -> Vec<String> {
    let before = netns_before();
    pod_netns()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect()
}

fn pod_netns() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cni-"))
        .collect()
}

pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
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
    pub fn wait_for(&mut self, needle: &str) -> bool {
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

    pub fn terminate(&mut self) -> ExitStatus {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (without waiting for it).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.extend(self.lines.try_iter());
    }

    pub fn log_text(&self) -> String {
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

/// A `rudder server --disable-agent` on a free port, with its kubeconfig,
/// its data in a temp dir, and a fresh HOME for kubectl.
pub struct Cluster {
    pub server: Server,
    /// For a server with a node agent: cleans the node up after a failed
    /// test (dropped after the server, before its directory).
    pub node: Option<NodeGuard>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub port: u16,
    /// With `RUDDER_TEST_DATASTORE=etcd`, the etcd the server stores in
    /// (dropped after the server: fields drop in order).
    pub etcd: Option<rudder_testing::EtcdServer>,
}

pub struct NodeGuard(PathBuf);

impl NodeGuard {
    /// Cleans up after a failed test what the agent with data dir
    /// `data` ran.
    pub fn new(data: PathBuf) -> Self {
        Self(data)
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            force_clean_node(&self.0);
        }
    }
}

impl Cluster {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_full(dir, extra, false)
    }

    /// A server with its node agent (real containerd): one node.
    pub fn start_with_agent(extra: &[&str]) -> Self {
        Self::start_with_agent_in(tempfile::tempdir().unwrap(), extra)
    }

    /// The same in `dir`, which may hold `data/agent/images/*.tar` to import.
    pub fn start_with_agent_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_full(dir, extra, true)
    }

    fn start_full(dir: tempfile::TempDir, extra: &[&str], agent: bool) -> Self {
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let data = dir.path().join("data");
        // The API suite runs a second time against a real etcd.
        let etcd = (std::env::var("RUDDER_TEST_DATASTORE").as_deref() == Ok("etcd")
            && !extra.contains(&"--datastore-endpoint"))
        .then(|| rudder_testing::EtcdServer::start().unwrap());
        // A free port can be taken by another process before the server
        // binds it (tests run in parallel): then start again on another.
        for attempt in 1.. {
            let port = rudder_testing::free_port().unwrap();
            let port_s = port.to_string();
            let mut args = vec![
                "--data-dir",
                data.to_str().unwrap(),
                "--https-listen-port",
                &port_s,
                "--write-kubeconfig",
                kubeconfig.to_str().unwrap(),
            ];
            let kubelet_port = rudder_testing::free_port().unwrap().to_string();
            if agent {
                netns_before();
                args.extend_from_slice(&["--kubelet-port", &kubelet_port]);
                args.extend_from_slice(&NODE_ARGS);
                if !extra.contains(&"--cluster-cidr") {
                    args.extend_from_slice(&["--cluster-cidr", CLUSTER_CIDR]);
                }
            } else {
                args.push("--disable-agent");
            }
            args.extend_from_slice(extra);
            if let Some(etcd) = &etcd {
                args.extend_from_slice(&["--datastore-endpoint", etcd.endpoint()]);
            }
            let mut server = Server::start(&args);
            if !server.wait_for(READY) {
                let log = server.log_text();
                if attempt < 5 && log.contains("Address already in use") {
                    continue;
                }
                panic!("server did not start:\n{log}");
            }
            if etcd.is_some() {
                assert!(
                    server.log_text().contains("connected to etcd"),
                    "{}",
                    server.log_text()
                );
            }
            let cluster = Self {
                server,
                dir,
                kubeconfig,
                port,
                etcd,
                node: agent.then(|| NodeGuard(data.clone())),
            };
            cluster.await_namespace_defaults();
            return cluster;
        }
        unreachable!("the loop returns or panics")
    }

    /// Waits until the controllers have given `default` what every
    /// namespace holds (its ServiceAccount and the `kube-root-ca.crt`
    /// ConfigMap), so that tests start from a settled namespace. A hang
    /// guard, not a timing assertion.
    fn await_namespace_defaults(&self) {
        for _ in 0..600 {
            let out = self.kubectl(
                33,
                &[
                    "get",
                    "configmap/kube-root-ca.crt",
                    "serviceaccount/default",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if text.contains("configmap/kube-root-ca.crt")
                && text.contains("serviceaccount/default")
            {
                return;
            }
            #[allow(clippy::disallowed_methods)] // polling a child process from a test
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the default namespace never got its ServiceAccount and root CA");
    }

    /// Waits until the agent has removed every pod, stops the server and
    /// checks the node is left clean (see [`clean_node`]).
    pub fn stop_and_check_node(&mut self) {
        let data = self.dir.path().join("data");
        let left = pods_left(&agent_socket(&data));
        assert!(self.server.terminate().success());
        clean_node(&left, &data);
    }

    /// From an async test: a server (as [`Cluster::start`]) with simulated
    /// nodes joined (`args` as for [`SimNodes::join`]), and a kube-rs
    /// client for it.
    pub async fn start_with_sim_nodes(
        args: &'static [&'static str],
    ) -> (Self, SimNodes, kube::Client) {
        let (c, nodes) = tokio::task::spawn_blocking(move || {
            let c = Self::start(&[]);
            let nodes = SimNodes::join(&c, args);
            (c, nodes)
        })
        .await
        .unwrap();
        let client = c.kube_client().await;
        (c, nodes, client)
    }

    /// From an async test: a server (as [`Cluster::start`]) and a kube-rs
    /// client for it.
    pub async fn start_with_kube_client() -> (Self, kube::Client) {
        let c = tokio::task::spawn_blocking(|| Self::start(&[]))
            .await
            .unwrap();
        let client = c.kube_client().await;
        (c, client)
    }

    /// A kube-rs client with the cluster's admin kubeconfig.
    pub async fn kube_client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Runs the kubectl of this minor version (27…33) against the cluster.
    pub fn kubectl(&self, minor: u32, args: &[&str]) -> Output {
        self.kubectl_with(minor, &self.kubeconfig, args, None)
    }

    pub fn kubectl_with(
        &self,
        minor: u32,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        self.kubectl_env(minor, kubeconfig, args, stdin, &[])
    }

    /// kubectl with extra environment variables (such as KUBE_EDITOR).
    pub fn kubectl_env(
        &self,
        minor: u32,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        if args.first() == Some(&"wait") {
            self.await_objects(minor, kubeconfig, &args[1..]);
        }
        let home = self.dir.path().join(format!("home-{minor}"));
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(kubectl_binary(minor));
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .env("HOME", &home)
            .env("KUBECONFIG", kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Before a `kubectl wait`: waits (within its `--timeout`) until the
    /// objects it names exist. kubectl waits on a condition of an object
    /// that exists, and fails at once on one that does not exist yet
    /// (a Node its agent has not registered, a pod a controller has not
    /// created): a test must not race its cluster. `--for=delete` and
    /// selector waits are left as they are.
    fn await_objects(&self, minor: u32, kubeconfig: &Path, wait_args: &[&str]) {
        let mut objects = Vec::new();
        let mut namespace = Vec::new();
        let mut timeout = 30;
        let mut args = wait_args.iter();
        while let Some(&a) = args.next() {
            match a {
                "-n" | "--namespace" => namespace = vec!["-n", args.next().copied().unwrap()],
                "-o" | "--output" | "--for" | "--timeout" => {
                    args.next();
                }
                "-l" | "--selector" | "--all" | "-A" | "--all-namespaces" => return,
                _ if a.starts_with("--for=delete") => return,
                _ if a.starts_with("--timeout=") => {
                    timeout = a["--timeout=".len()..]
                        .trim_end_matches('s')
                        .parse()
                        .unwrap_or(timeout);
                }
                _ if a.starts_with('-') => {}
                _ => objects.push(a),
            }
        }
        for object in objects {
            let mut get = vec!["get", object, "-o", "name"];
            get.extend_from_slice(&namespace);
            for _ in 0..timeout * 10 {
                if self
                    .kubectl_env(minor, kubeconfig, &get, None, &[])
                    .status
                    .success()
                {
                    break;
                }
                // Polling the cluster for an object to appear, within the
                // wait's own bound; nothing is timed.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn ok(&self, minor: u32, args: &[&str]) -> String {
        let out = self.kubectl(minor, args);
        assert!(
            out.status.success(),
            "kubectl 1.{minor} {args:?} failed:\n{}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log_text()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl rollout status` that must finish; on failure the panic
    /// shows the workload's objects and events, to tell why.
    #[allow(dead_code)] // not every test binary rolls workloads out
    pub fn rollout_status(&self, minor: u32, what: &str) -> String {
        let out = self.kubectl(minor, &["rollout", "status", what, "--timeout=60s"]);
        if !out.status.success() {
            let state = self.kubectl(
                minor,
                &["get", "all,controllerrevisions,events", "-o", "wide"],
            );
            let yaml = self.kubectl(minor, &["get", what, "pods", "-o", "yaml"]);
            panic!(
                "kubectl rollout status {what} failed:\n{}\n{}\n{}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&state.stdout),
                String::from_utf8_lossy(&yaml.stdout),
                self.server.log_text()
            );
        }
        String::from_utf8(out.stdout).unwrap()
    }

    /// kubectl that must fail; returns its stderr.
    pub fn fails(&self, minor: u32, args: &[&str]) -> String {
        let out = self.kubectl(minor, args);
        assert!(
            !out.status.success(),
            "kubectl 1.{minor} {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `kubectl create --raw URL -f FILE` that must fail; returns stderr.
    pub fn fails_posting(&self, minor: u32, url: &str, file: &Path) -> String {
        self.fails(
            minor,
            &["create", "--raw", url, "-f", file.to_str().unwrap()],
        )
    }

    pub fn apply(&self, minor: u32, yaml: &str) -> String {
        let out = self.kubectl_with(minor, &self.kubeconfig, &["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// `rudder agent --simulated`: simulated nodes joined to a cluster, killed
/// when dropped.
pub struct SimNodes {
    child: Child,
    pub log: PathBuf,
}

impl SimNodes {
    /// Joins simulated nodes (`args`: `--nodes 3 --sim-cpu 2 …`) to `c`
    /// and waits until they are registered.
    pub fn join(c: &Cluster, args: &[&str]) -> Self {
        let token = std::fs::read_to_string(c.dir.path().join("data/server/node-token")).unwrap();
        let log = c
            .dir
            .path()
            .join(format!("sim-{}.log", args.join("_").replace('/', "_")));
        let mut child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--simulated", "--server"])
            .arg(format!("https://127.0.0.1:{}", c.port))
            .args(["--token", token.trim()])
            .args(args)
            .env("RUDDER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = forward_lines(child.stderr.take().unwrap());
        let mut seen = Vec::new();
        // A hang guard, not a timing assertion.
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) {
            let done = line.contains("simulated nodes registered");
            seen.push(line);
            if done {
                // Keep draining so the agent never blocks on its stderr.
                let path = log.clone();
                std::thread::spawn(move || {
                    let mut out = std::fs::File::create(path).unwrap();
                    use std::io::Write;
                    for l in seen
                        .iter()
                        .map(String::as_str)
                        .map(String::from)
                        .chain(lines.iter())
                    {
                        let _ = writeln!(out, "{l}");
                    }
                });
                return Self { child, log };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("simulated nodes did not register:\n{}", seen.join("\n"));
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl.1.<minor>` beside the file the `kubectl` on PATH resolves to.
pub fn kubectl_binary(minor: u32) -> PathBuf {
    let on_path = rudder_testing::find_program("kubectl").expect("kubectl is installed");
    let real = std::fs::canonicalize(on_path).unwrap();
    let candidate = real.with_file_name(format!("kubectl.1.{minor}"));
    assert!(candidate.is_file(), "{} is missing", candidate.display());
    candidate
}

pub fn db_file(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("db").join("state.redb")
}

/// The CRI socket of the agent whose data dir is `data`.
pub fn agent_socket(data: &Path) -> PathBuf {
    data.join("agent/containerd/containerd.sock")
}

/// The sandboxes the runtime at `socket` has: (pod uid, ready).
pub fn sandboxes(socket: &Path) -> Vec<(String, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(mut cri) = rudder_cri::Cri::connect(socket).await else {
            return Vec::new();
        };
        let Ok(list) = cri
            .runtime
            .list_pod_sandbox(rudder_cri::api::ListPodSandboxRequest { filter: None })
            .await
        else {
            return Vec::new();
        };
        list.into_inner()
            .items
            .into_iter()
            .map(|s| {
                (
                    s.labels
                        .get("io.kubernetes.pod.uid")
                        .cloned()
                        .unwrap_or_default(),
                    s.state == rudder_cri::api::PodSandboxState::SandboxReady as i32,
                )
            })
            .collect()
    })
}

/// Waits (within a bound) until the runtime at `socket` has no sandbox
/// and the node no pod network namespace (finished pods leave the API
/// before the agent removes them); returns what is left, if anything.
pub fn pods_left(socket: &Path) -> String {
    let mut left = String::new();
    for _ in 0..300 {
        let netns = new_pod_netns();
        let sandboxes = sandboxes(socket);
        left = String::new();
        if !netns.is_empty() {
            left.push_str(&format!("network namespaces: {netns:?}"));
        }
        if !sandboxes.is_empty() {
            left.push_str(&format!("sandboxes: {sandboxes:?}"));
        }
        if left.is_empty() {
            break;
        }
        // Polling another system's state (the runtime, the host's
        // namespaces) within a bound, not timing anything.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(100));
    }
    left
}

/// After the server stopped: removes what the runtime leaves by design
/// (the bridge, the cgroup parents) and checks nothing else is left.
pub fn clean_node(netns_left: &str, data: &Path) {
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
    remove_kubepods_cgroups();
    assert!(netns_left.is_empty(), "left behind: {netns_left}");
    // Shims end once containerd deleted their tasks.
    let pattern = format!("containerd-shim.*{}", data.display());
    let mut shims = String::new();
    for _ in 0..100 {
        let out = Command::new("pgrep")
            .args(["-af", &pattern])
            .output()
            .unwrap();
        shims = String::from_utf8_lossy(&out.stdout).to_string();
        if shims.is_empty() {
            break;
        }
        // Waiting for other processes to exit, within a bound.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shims.is_empty(), "shims left: {shims}");
    let left = mounts_under(data);
    assert!(left.is_empty(), "mounts left: {left:#?}");
}

/// The mounts (lines of mountinfo) that name `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir.as_ref()))
        .map(str::to_string)
        .collect()
}

/// The processes whose command line matches `pattern` (pgrep -af).
pub fn processes_matching(pattern: &str) -> String {
    let out = Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// After a failed test: kills what its pods run (everything under the
/// `kubepods` cgroups: node tests run one at a time) and the shims of its
/// containerd, and removes their network namespaces and mounts.
pub fn force_clean_node(data: &Path) {
    use std::os::unix::fs::MetadataExt;
    let pids: Vec<String> = std::fs::read_dir(format!("/sys/fs/cgroup/pids{CGROUP_ROOT}/kubepods"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("cgroup.procs")).ok())
        .flat_map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let inodes: Vec<u64> = pids
        .iter()
        .filter_map(|p| std::fs::metadata(format!("/proc/{p}/ns/net")).ok())
        .map(|m| m.ino())
        .collect();
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        if std::fs::metadata(entry.path()).is_ok_and(|m| inodes.contains(&m.ino())) {
            let _ = Command::new("ip")
                .args(["netns", "del"])
                .arg(entry.file_name())
                .status();
        }
    }
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("containerd-shim.*{}", data.display())])
        .status();
    for p in &pids {
        let _ = Command::new("kill").args(["-9", p]).status();
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = data.to_string_lossy();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(prefix.as_ref()))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg(p).status();
    }
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
    remove_kubepods_cgroups();
}

/// A directory for a server with a node agent, holding the busybox test
/// image (`docker.io/local/busybox:v1`, from Debian's busybox-static) in
/// `data/agent/images/`, which the agent imports at start.
pub fn node_dir() -> tempfile::TempDir {
    netns_before();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("data/agent/images");
    std::fs::create_dir_all(&images).unwrap();
    let busybox = rudder_cri::oci::busybox_image("docker.io/local/busybox:v1")
        .expect("/bin/busybox: install the Debian package busybox-static");
    std::fs::write(images.join("busybox.tar"), busybox).unwrap();
    dir
}

/// Removes the empty cgroups runc left under the test's `kubepods` (cpuset
/// keeps a container's at times), then the parents.
fn remove_kubepods_cgroups() {
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let root = hierarchy.path().join(CGROUP_ROOT.trim_start_matches('/'));
        let parent = root.join("kubepods");
        for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if child.path().is_dir() {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        let _ = std::fs::remove_dir(parent);
        let _ = std::fs::remove_dir(root);
    }
}

/// What every namespace holds besides a test's own objects (kube's root
/// CA publisher writes it), left out of listings a test compares.
pub const ROOT_CA: &str = "kube-root-ca.crt";

/// `kubectl get … -o name` output without the namespace's root CA
/// ConfigMap.
pub fn without_root_ca(names: &str) -> String {
    names
        .lines()
        .filter(|l| *l != format!("configmap/{ROOT_CA}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `check` until it holds (a hang guard of a minute, not a timing
/// assertion); returns whether it did.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// [`eventually`] for tests that are not async.
#[allow(dead_code)] // not every test binary polls without async
pub fn eventually_blocking(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if check() {
            return true;
        }
        // A hang guard, not a timing assertion.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
