//! NodeName: a pod naming a node in `spec.nodeName` fits only there.

use crate::framework::{ClusterEvent, CycleState, Filter, NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

#[derive(Debug, Default)]
pub struct NodeName;

impl crate::framework::Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd]
    }
}

impl Filter for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.node_name() {
            Some(name) if name != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn only_the_named_node_fits() {
        let mut p = pod("p");
        let state = CycleState::default();
        assert!(
            NodeName
                .filter(&state, &p.info(), &node("a").info())
                .is_success()
        );
        p.spec_mut().node_name = Some("b".into());
        assert_eq!(
            NodeName
                .filter(&state, &p.info(), &node("a").info())
                .reasons,
            [REASON]
        );
        assert!(
            NodeName
                .filter(&state, &p.info(), &node("b").info())
                .is_success()
        );
    }
}
