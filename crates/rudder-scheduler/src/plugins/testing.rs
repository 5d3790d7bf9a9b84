//! Builders for plugin table tests: pods and nodes in a few words.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::framework::{NodeInfo, PodInfo, Snapshot};

#[derive(Debug, Clone)]
pub(crate) struct PodBuilder(pub Pod);

pub(crate) fn pod(name: &str) -> PodBuilder {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    PodBuilder(p)
}

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

impl PodBuilder {
    pub(crate) fn spec_mut(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    pub(crate) fn info(&self) -> PodInfo {
        PodInfo::new(Arc::new(self.0.clone()))
    }

    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    pub(crate) fn priority(mut self, p: i32) -> Self {
        self.spec_mut().priority = Some(p);
        self
    }

    pub(crate) fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec_mut()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    pub(crate) fn requests(mut self, cpu: &str, memory: &str) -> Self {
        let r = self.spec_mut().containers[0]
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new);
        r.insert("cpu".into(), q(cpu));
        r.insert("memory".into(), q(memory));
        self
    }

    pub(crate) fn extended(mut self, name: &str, n: &str) -> Self {
        self.spec_mut().containers[0]
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), q(n));
        self
    }

    pub(crate) fn init_requests(mut self, cpu: &str) -> Self {
        let mut c = Container {
            name: "init".into(),
            ..Default::default()
        };
        c.resources = Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), q(cpu))].into()),
            ..Default::default()
        });
        self.spec_mut()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    pub(crate) fn overhead(mut self, cpu: &str) -> Self {
        self.spec_mut().overhead = Some([("cpu".to_string(), q(cpu))].into());
        self
    }

    pub(crate) fn host_port(mut self, ip: &str, protocol: &str, port: i32) -> Self {
        self.spec_mut().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                host_ip: (!ip.is_empty()).then(|| ip.into()),
                protocol: Some(protocol.into()),
                ..Default::default()
            });
        self
    }

    pub(crate) fn on(mut self, node: &str) -> Self {
        self.spec_mut().node_name = Some(node.into());
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NodeBuilder {
    pub(crate) node: Node,
    pub(crate) pods: Vec<PodBuilder>,
}

pub(crate) fn node(name: &str) -> NodeBuilder {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.spec = Some(NodeSpec::default());
    n.status = Some(NodeStatus {
        allocatable: Some(
            [
                ("cpu".to_string(), q("4")),
                ("memory".to_string(), q("8Gi")),
                ("pods".to_string(), q("110")),
            ]
            .into(),
        ),
        ..Default::default()
    });
    NodeBuilder {
        node: n,
        pods: Vec::new(),
    }
}

impl NodeBuilder {
    pub(crate) fn spec_mut(&mut self) -> &mut NodeSpec {
        self.node.spec.get_or_insert_with(Default::default)
    }

    pub(crate) fn info(&self) -> NodeInfo {
        let name = self.node.metadata.name.clone().unwrap_or_default();
        let mut info = NodeInfo::new(&name);
        info.set_node(Arc::new(self.node.clone()));
        for p in &self.pods {
            info.add_pod(Arc::new(p.clone().on(&name).info()));
        }
        info
    }

    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.node
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    pub(crate) fn allocatable(mut self, cpu: &str, memory: &str, pods: i32) -> Self {
        let a = self
            .node
            .status
            .get_or_insert_with(Default::default)
            .allocatable
            .get_or_insert_with(BTreeMap::new);
        a.insert("cpu".into(), q(cpu));
        a.insert("memory".into(), q(memory));
        a.insert("pods".into(), q(&pods.to_string()));
        self
    }

    pub(crate) fn extended(mut self, name: &str, n: &str) -> Self {
        self.node
            .status
            .get_or_insert_with(Default::default)
            .allocatable
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), q(n));
        self
    }

    pub(crate) fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.spec_mut()
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.into()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }

    pub(crate) fn with_pod(mut self, p: PodBuilder) -> Self {
        self.pods.push(p);
        self
    }
}

/// A snapshot of a few nodes, for plugins that look at the whole cluster.
#[derive(Debug, Default)]
pub(crate) struct TestSnapshot {
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) budgets: Vec<crate::framework::DisruptionBudget>,
    pub(crate) nominated: BTreeMap<String, Vec<Arc<PodInfo>>>,
}

impl TestSnapshot {
    pub(crate) fn of(nodes: &[NodeBuilder]) -> Self {
        Self {
            nodes: nodes.iter().map(NodeBuilder::info).collect(),
            namespaces: BTreeMap::new(),
            budgets: Vec::new(),
            nominated: BTreeMap::new(),
        }
    }
}

impl Snapshot for TestSnapshot {
    fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }
    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }
    fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(namespace)
    }
    fn image_nodes(&self, image: &str) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.images.contains_key(image))
            .count()
    }
    fn disruption_budgets(&self) -> &[crate::framework::DisruptionBudget] {
        &self.budgets
    }
    fn nominated(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map_or(&[], Vec::as_slice)
    }
}
