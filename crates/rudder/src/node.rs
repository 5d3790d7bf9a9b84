//! What `rudder server` and `rudder agent` share: the node agent's flags
//! and the agent configuration made from them.

use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// This node's address (default: the host's first non-loopback IPv4).
    #[arg(long)]
    node_ip: Option<String>,
    /// Port of the node agent's HTTPS server (logs, exec, attach, port-forward), as the kubelet's --port.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Use this existing CRI socket (unix:///path or /path) instead of starting containerd.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// Container logs are rotated when they grow beyond this size (the kubelet's containerLogMaxSize).
    #[arg(long, default_value = "10Mi", value_parser = parse_size)]
    container_log_max_size: u64,
    /// How many files of each container's log are kept, the current one included (containerLogMaxFiles).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..))]
    container_log_max_files: u64,
    /// Pods' cgroups go under ROOT/kubepods, as with the kubelet's --cgroup-root.
    #[arg(long, default_value = "/", value_parser = parse_cgroup_root)]
    cgroup_root: String,
    /// The Linux bridge pods are attached to (at most 15 characters).
    #[arg(long, default_value = "rudder0", value_parser = parse_bridge)]
    pod_bridge: String,
}

impl NodeArgs {
    /// The node's name: `--node-name`, else the host name.
    pub(crate) fn name(&self) -> String {
        self.node_name.clone().unwrap_or_else(default_node_name)
    }

    /// The node's address: `--node-ip`, else the first non-loopback IPv4.
    pub(crate) fn ip(&self) -> String {
        self.node_ip.clone().unwrap_or_else(default_node_ip)
    }

    /// The names the agent's serving certificate carries.
    pub(crate) fn serving_names(&self) -> [String; 4] {
        [
            self.ip(),
            self.name(),
            "127.0.0.1".into(),
            "localhost".into(),
        ]
    }

    /// The agent's configuration.
    pub(crate) fn config(
        &self,
        data_dir: &Path,
        control_plane: bool,
        tls: rudder_agent::Tls,
    ) -> rudder_agent::Config {
        rudder_agent::Config {
            data_dir: data_dir.to_path_buf(),
            node_name: self.name(),
            node_ip: self.ip(),
            control_plane,
            port: self.kubelet_port,
            tls,
            container_log_max_bytes: self.container_log_max_size,
            container_log_max_files: self.container_log_max_files as usize,
            runtime_endpoint: self
                .container_runtime_endpoint
                .as_deref()
                .map(|e| PathBuf::from(e.trim_start_matches("unix://"))),
            cgroup_root: self.cgroup_root.clone(),
            pod_bridge: self.pod_bridge.clone(),
        }
    }
}

/// The node's name when none is given: the host name.
pub(crate) fn default_node_name() -> String {
    crate::server::host_names()
        .first()
        .cloned()
        .unwrap_or_else(|| "rudder".into())
}

/// The node's address when none is given: the first non-loopback IPv4.
pub(crate) fn default_node_ip() -> String {
    crate::server::host_names()
        .iter()
        .find(|n| {
            n.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// An absolute cgroup path without `..` (the kubelet's --cgroup-root).
fn parse_cgroup_root(s: &str) -> Result<String, String> {
    let path = Path::new(s);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!(
            "{s:?} is not an absolute cgroup path such as / or /rudder"
        ));
    }
    Ok(s.to_string())
}

/// A network interface name the kernel takes: 1 to 15 bytes, no `/`,
/// whitespace or `:`.
fn parse_bridge(s: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok && s != "." && s != ".." {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ))
    }
}

/// A size such as `10Mi`, `512Ki` or `1000000`.
fn parse_size(s: &str) -> Result<u64, String> {
    rudder_api::quantity::parse_value(s)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is not a size such as 10Mi or 512Ki"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_and_cgroup_roots_are_checked() {
        assert_eq!(parse_bridge("rudder0").unwrap(), "rudder0");
        assert!(parse_bridge("fifteen-chars-x").is_ok());
        for bad in ["", "sixteen-chars-xx", "a/b", "a:b", "a b", ".."] {
            let err = parse_bridge(bad).unwrap_err();
            assert!(err.contains("not an interface name"), "{bad}: {err}");
        }
        assert_eq!(parse_cgroup_root("/").unwrap(), "/");
        assert_eq!(parse_cgroup_root("/rudder").unwrap(), "/rudder");
        for bad in ["rudder", "/a/../b", ""] {
            assert!(parse_cgroup_root(bad).is_err(), "{bad}");
        }
    }
}
