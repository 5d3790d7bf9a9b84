//! Service cluster IPs and node ports: defaults, validation and allocation.
//!
//! Every allocated IP and node port has a reservation key in the store,
//! written in the same transaction as the Service (and deleted with it), so
//! an address is never handed out twice, even by several API servers on
//! one etcd, and is freed when its Service goes.

use std::net::Ipv4Addr;

use rudder_api::{Cause, Resource, StatusError};
use serde_json::{Value, json};

const IP_KEYS: &str = "/registry/ranges/serviceips/";
const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";

/// Where Service addresses come from (`--service-cidr`, node port range).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceRanges {
    base: u32,
    size: u32,
    pub node_ports: (u16, u16),
}

impl ServiceRanges {
    /// Parses `10.43.0.0/16`.
    pub(crate) fn parse(cidr: &str) -> Result<Self, String> {
        let (base, bits) = rudder_api::net::parse_ipv4_cidr(cidr, 8..=30)?;
        let size = 1u32 << (32 - u32::from(bits));
        Ok(Self {
            base,
            size,
            node_ports: (30000, 32767),
        })
    }

    pub(crate) fn cidr(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(self.base),
            32 - self.size.trailing_zeros()
        )
    }

    /// The first usable address: the `kubernetes` Service's.
    pub(crate) fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip < self.base + self.size - 1
    }

    /// A random address from the upper part of the range: the lower part
    /// is kept for addresses users pick (Kubernetes' static subrange).
    fn random_ip(&self) -> Ipv4Addr {
        let reserved = (self.size / 16).clamp(16, 256);
        let span = self.size - reserved - 1;
        Ipv4Addr::from(self.base + reserved + random_u32() % span)
    }

    fn random_port(&self) -> u16 {
        let (lo, hi) = self.node_ports;
        lo + (random_u32() % u32::from(hi - lo + 1)) as u16
    }
}

fn random_u32() -> u32 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    )
}

/// Fills Kubernetes' Service defaults.
fn default_spec(svc: &mut Value) {
    let spec = &mut svc["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec["type"].is_null() {
        spec["type"] = "ClusterIP".into();
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = "None".into();
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = "TCP".into();
            }
            if p["targetPort"].is_null() || p["targetPort"] == 0 || p["targetPort"] == "" {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    // Client affinity lasts three hours unless told otherwise; without
    // affinity there is nothing to configure.
    if spec["sessionAffinity"] == "ClientIP" {
        if let Some(client) = object_at(&mut spec["sessionAffinityConfig"])
            .map(|c| c.entry("clientIP").or_insert(Value::Null))
            .and_then(object_at)
        {
            let timeout = client.entry("timeoutSeconds").or_insert(Value::Null);
            if timeout.is_null() {
                *timeout = 10800.into();
            }
        }
    } else if let Some(map) = spec.as_object_mut() {
        map.remove("sessionAffinityConfig");
    }
    if spec["type"] == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].is_null() {
        spec["allocateLoadBalancerNodePorts"] = true.into();
    }
    if spec["type"] != "ExternalName" {
        if spec["ipFamilies"].is_null() {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        // A headless Service without a selector may point anywhere: it
        // asks for both families (and gets the one the cluster has).
        let headless = spec["clusterIP"] == "None";
        let selector = spec["selector"].as_object().is_some_and(|s| !s.is_empty());
        if spec["ipFamilyPolicy"].is_null() && headless && !selector {
            spec["ipFamilyPolicy"] = "RequireDualStack".into();
        }
        if spec["ipFamilyPolicy"].is_null() {
            spec["ipFamilyPolicy"] = "SingleStack".into();
        }
        if spec["internalTrafficPolicy"].is_null() {
            spec["internalTrafficPolicy"] = "Cluster".into();
        }
    }
    if needs_node_ports(svc) && svc["spec"]["externalTrafficPolicy"].is_null() {
        svc["spec"]["externalTrafficPolicy"] = "Cluster".into();
    }
}

/// `v` as an object, made one where it is null; `None` for other shapes.
fn object_at(v: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
}

fn invalid(r: &Resource, svc: &Value, field: &str, value: &str, why: &str) -> StatusError {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    StatusError::invalid(r, name, vec![Cause::invalid(field, value, why)])
}

/// Defaults and allocates a new Service's cluster IP and node ports.
/// Values the client gave are checked, not replaced.
pub(crate) fn prepare_create(
    r: &Resource,
    ranges: &ServiceRanges,
    svc: &mut Value,
) -> Result<(), StatusError> {
    default_spec(svc);
    if svc["spec"]["type"] == "ExternalName" {
        return Ok(());
    }
    let given = svc["spec"]["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from);
    let ip = match given.as_deref() {
        Some("None") => "None".to_string(),
        Some(ip) => {
            let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(
                    r,
                    svc,
                    "spec.clusterIPs[0]",
                    &format!("\"{ip}\""),
                    "must be a valid IP address",
                )
            })?;
            if !ranges.contains(parsed) {
                let why = format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    ranges.cidr()
                );
                return Err(invalid(
                    r,
                    svc,
                    "spec.clusterIPs",
                    &format!("[]string{{\"{ip}\"}}"),
                    &why,
                ));
            }
            ip.to_string()
        }
        None => ranges.random_ip().to_string(),
    };
    svc["spec"]["clusterIP"] = ip.clone().into();
    svc["spec"]["clusterIPs"] = json!([ip]);
    allocate_node_ports(r, ranges, svc)
}

fn allocate_node_ports(
    r: &Resource,
    ranges: &ServiceRanges,
    svc: &mut Value,
) -> Result<(), StatusError> {
    let needs = needs_node_ports(svc);
    let (lo, hi) = ranges.node_ports;
    let mut bad = None;
    if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
        for (i, p) in ports.iter_mut().enumerate() {
            match (needs, p["nodePort"].as_i64()) {
                (false, _) => {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
                (true, Some(n)) if n < i64::from(lo) || n > i64::from(hi) => {
                    bad = Some((i, n));
                }
                (true, Some(_)) => {}
                (true, None) => p["nodePort"] = ranges.random_port().into(),
            }
        }
    }
    if let Some((i, n)) = bad {
        let why = format!(
            "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
        );
        return Err(invalid(
            r,
            svc,
            &format!("spec.ports[{i}].nodePort"),
            &n.to_string(),
            &why,
        ));
    }
    Ok(())
}

/// On update: keeps what was allocated when the new object leaves it out
/// (Kubernetes' patchAllocatedValues), refuses a changed cluster IP, and
/// allocates node ports a type change needs.
pub(crate) fn prepare_update(
    r: &Resource,
    ranges: &ServiceRanges,
    old: &Value,
    new: &mut Value,
) -> Result<(), StatusError> {
    default_spec(new);
    let old_ip = old["spec"]["clusterIP"].as_str().unwrap_or_default();
    match new["spec"]["clusterIP"].as_str().unwrap_or_default() {
        "" if new["spec"]["type"] != "ExternalName" => {
            new["spec"]["clusterIP"] = old_ip.into();
            new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
        ip if !old_ip.is_empty() && ip != old_ip && new["spec"]["type"] != "ExternalName" => {
            return Err(invalid(
                r,
                new,
                "spec.clusterIPs[0]",
                &format!("[]string{{\"{ip}\"}}"),
                "may not change once set",
            ));
        }
        _ => {}
    }
    // Node ports the new spec leaves out keep their old values, by port.
    let old_ports: Vec<(Value, Value)> = old["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["port"].clone(), p["nodePort"].clone()))
        .collect();
    if needs_node_ports(new)
        && let Some(ports) = new["spec"]["ports"].as_array_mut()
    {
        for p in ports {
            if p["nodePort"].is_null()
                && let Some((_, np)) = old_ports
                    .iter()
                    .find(|(port, np)| *port == p["port"] && !np.is_null())
            {
                p["nodePort"] = np.clone();
            }
        }
    }
    allocate_node_ports(r, ranges, new)
}

/// The reservation keys a Service holds.
pub(crate) fn reservations(svc: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(ip) = svc["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
    {
        keys.push(format!("{IP_KEYS}{ip}"));
    }
    for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(n) = p["nodePort"].as_i64() {
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_lowercase();
            keys.push(format!("{PORT_KEYS}{proto}/{n}"));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use rudder_api::registry;

    use super::*;

    fn svc_resource() -> &'static Resource {
        registry::by_kind("", "v1", "Service").unwrap()
    }

    #[test]
    fn ranges_parse_and_allocate_inside_the_dynamic_part() {
        let r = ServiceRanges::parse("10.43.0.0/16").unwrap();
        assert_eq!(r.cidr(), "10.43.0.0/16");
        assert_eq!(r.first(), Ipv4Addr::new(10, 43, 0, 1));
        for _ in 0..1000 {
            let ip = u32::from(r.random_ip());
            assert!(
                ip >= u32::from(Ipv4Addr::new(10, 43, 1, 0))
                    && ip < u32::from(Ipv4Addr::new(10, 43, 255, 255))
            );
            let p = r.random_port();
            assert!((30000..=32767).contains(&p));
        }
        for bad in ["10.43.0.0", "10.43.0.0/33", "x/16", "10.43.0.0/4"] {
            assert!(ServiceRanges::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_defaults_allocates_and_checks_given_values() {
        let ranges = ServiceRanges::parse("10.43.0.0/16").unwrap();
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_create(svc_resource(), &ranges, &mut svc).unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(ranges.contains(ip));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert!(svc["spec"]["ports"][0]["nodePort"].as_i64().is_some());
        assert_eq!(reservations(&svc).len(), 2);

        let mut outside = json!({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 1}]}});
        let err = prepare_create(svc_resource(), &ranges, &mut outside).unwrap_err();
        assert!(
            err.message.contains("is not in the valid range"),
            "{}",
            err.message
        );
        let mut headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        prepare_create(svc_resource(), &ranges, &mut headless).unwrap();
        assert!(reservations(&headless).is_empty());
        let mut bad_port = json!({"metadata": {"name": "p"}, "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 80}]}});
        assert!(prepare_create(svc_resource(), &ranges, &mut bad_port).is_err());
    }

    #[test]
    fn updates_keep_allocations_and_refuse_a_new_cluster_ip() {
        let ranges = ServiceRanges::parse("10.43.0.0/16").unwrap();
        let mut old = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_create(svc_resource(), &ranges, &mut old).unwrap();
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_update(svc_resource(), &ranges, &old, &mut new).unwrap();
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );
        let mut moved = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.43.9.9", "ports": [{"port": 80}]}});
        let err = prepare_update(svc_resource(), &ranges, &old, &mut moved).unwrap_err();
        assert!(
            err.message.contains("may not change once set"),
            "{}",
            err.message
        );
        let mut to_cluster_ip = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 31000}]}});
        prepare_update(svc_resource(), &ranges, &old, &mut to_cluster_ip).unwrap();
        assert!(
            to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none(),
            "node ports go with the type"
        );
    }
}
