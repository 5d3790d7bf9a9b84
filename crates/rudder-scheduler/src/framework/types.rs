//! What the scheduler knows of a pod and of a node, computed once when the
//! object arrives so that the plugins, run for every pod against hundreds
//! of nodes, read plain fields.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodAffinityTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::labels::Selector;

/// CPU a container without a CPU request counts for when scoring (kube-scheduler's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts for when scoring
/// (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A pod's identity in the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Compute resources: what a pod requests, what a node has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// How many pods (a node's allocatable only).
    pub pods: i64,
    /// Extended resources (`example.com/gpu`) and hugepages, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// From a `ResourceList` (requests, limits, allocatable).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Self::default();
        for (name, q) in list.into_iter().flatten() {
            r.add_one(name, q);
        }
        r
    }

    fn add_one(&mut self, name: &str, q: &Quantity) {
        let milli = rudder_api::quantity::parse_milli(&q.0).unwrap_or(0);
        let value = clamp((milli + 999).div_euclid(1000));
        match name {
            "cpu" => self.milli_cpu += clamp(milli),
            "memory" => self.memory += value,
            "ephemeral-storage" => self.ephemeral_storage += value,
            "pods" => self.pods += value,
            n if is_scalar(n) => *self.scalar.entry(n.to_string()).or_default() += value,
            _ => {}
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Self) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each field the larger of the two.
    pub fn max_with(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Extended resources (a domain-prefixed name outside `kubernetes.io/`),
/// hugepages and attachable volumes count as scalar resources.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.starts_with("requests."))
}

/// A host port a pod uses: `0.0.0.0` stands for every address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two uses of a host port collide.
    pub fn conflicts(&self, other: &Self) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term, its selectors parsed.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: BTreeSet<String>,
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(pod_namespace: &str, term: &PodAffinityTerm) -> Self {
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(pod_namespace.to_string());
        }
        let selector = Selector::from_label_selector(term.label_selector.as_ref());
        Self {
            namespaces,
            namespace_selector: term
                .namespace_selector
                .as_ref()
                .map(|s| Selector::from_label_selector(Some(s))),
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` (in a namespace with `ns_labels`) is one this term selects.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        let in_namespace = self.namespaces.contains(&pod.key.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(ns_labels.unwrap_or(&BTreeMap::new())));
        in_namespace && self.selector.matches(&pod.labels)
    }
}

/// A preferred term and its weight.
#[derive(Debug, Clone)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

/// A pod as the scheduler sees it.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: PodKey,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// What it requests: containers, init containers and overhead.
    pub requests: Resource,
    /// Its CPU and memory requests with defaults for unset ones (scoring).
    pub non_zero: (i64, i64),
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = PodKey {
            namespace: namespace.clone(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        };
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let terms = |t: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            t.into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&namespace, t))
                .collect()
        };
        let weighted = |t: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            t.into_iter()
                .flatten()
                .map(|w| WeightedAffinityTerm {
                    term: AffinityTerm::new(&namespace, &w.pod_affinity_term),
                    weight: w.weight,
                })
                .collect::<Vec<_>>()
        };
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let (requests, non_zero) = spec.map(pod_requests).unwrap_or_default();
        let host_ports = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests,
            non_zero,
            host_ports,
            required_affinity: terms(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: terms(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: weighted(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: weighted(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            key,
            pod,
        }
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// `status.nominatedNodeName`: where preemption made room for it.
    pub fn nominated_node_name(&self) -> Option<&str> {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.spec()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// When the pod started (for preemption's tie-breaks), else created.
    pub fn start_time(&self) -> Option<&k8s_openapi::jiff::Timestamp> {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(self.pod.metadata.creation_timestamp.as_ref())
            .map(|t| &t.0)
    }
}

/// What a pod requests as kube-scheduler counts it: the sum of its
/// containers and sidecars, or the largest init container if bigger, plus
/// overhead; and the same with defaults for unset CPU and memory.
fn pod_requests(spec: &k8s_openapi::api::core::v1::PodSpec) -> (Resource, (i64, i64)) {
    let requests =
        |c: &Container| Resource::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let non_zero = |r: &Resource, c: &Container| {
        let set = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let has = |k: &str| set.is_some_and(|s| s.contains_key(k));
        (
            if has("cpu") {
                r.milli_cpu
            } else {
                DEFAULT_MILLI_CPU_REQUEST
            },
            if has("memory") {
                r.memory
            } else {
                DEFAULT_MEMORY_REQUEST
            },
        )
    };
    let mut sum = Resource::default();
    let mut nz = (0, 0);
    for c in &spec.containers {
        let r = requests(c);
        let n = non_zero(&r, c);
        nz = (nz.0 + n.0, nz.1 + n.1);
        sum.add(&r);
    }
    let mut sidecars = Resource::default();
    let mut sidecars_nz = (0, 0);
    let mut init_max = Resource::default();
    let mut init_nz = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        let r = requests(c);
        let n = non_zero(&r, c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sidecars_nz = (sidecars_nz.0 + n.0, sidecars_nz.1 + n.1);
            init_max.max_with(&sidecars);
            init_nz = (init_nz.0.max(sidecars_nz.0), init_nz.1.max(sidecars_nz.1));
        } else {
            let mut with = r.clone();
            with.add(&sidecars);
            init_max.max_with(&with);
            init_nz = (
                init_nz.0.max(n.0 + sidecars_nz.0),
                init_nz.1.max(n.1 + sidecars_nz.1),
            );
        }
    }
    sum.add(&sidecars);
    nz = (nz.0 + sidecars_nz.0, nz.1 + sidecars_nz.1);
    sum.max_with(&init_max);
    nz = (nz.0.max(init_nz.0), nz.1.max(init_nz.1));
    let overhead = Resource::from_list(spec.overhead.as_ref());
    sum.add(&overhead);
    nz = (nz.0 + overhead.milli_cpu, nz.1 + overhead.memory);
    (sum, nz)
}

/// A node and the pods on it, as the scheduler accounts for them.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `None` while pods name a node the scheduler has not seen yet.
    pub node: Option<Arc<Node>>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of `pods` have (anti-)affinity terms; how many required anti-affinity.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    pub requested: Resource,
    pub non_zero_requested: (i64, i64),
    pub used_ports: Vec<HostPort>,
    /// Image names (every tag and digest) and their sizes.
    pub images: BTreeMap<String, i64>,
}

impl NodeInfo {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let spec = node.spec.as_ref();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let status = node.status.as_ref();
        self.allocatable = Resource::from_list(status.and_then(|s| s.allocatable.as_ref()));
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = Some(node);
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}
