//! NodePorts: a pod's host ports must be free on the node (`0.0.0.0`
//! collides with every address).

use crate::framework::{
    ClusterEvent, CycleState, Filter, NodeInfo, PodInfo, PreFilter, PreFilterResult, Snapshot,
    Status,
};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

#[derive(Debug, Default)]
pub struct NodePorts;

impl crate::framework::Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete]
    }
}

impl PreFilter for NodePorts {
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &dyn Snapshot,
    ) -> (Status, PreFilterResult) {
        if pod.host_ports.is_empty() {
            (Status::skip(), None)
        } else {
            (Status::success(), None)
        }
    }
}

impl Filter for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taken = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if taken {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn host_ports_collide_by_port_protocol_and_address() {
        let n = node("n1").with_pod(pod("a").host_port("10.0.0.1", "TCP", 80));
        let state = CycleState::default();
        let check = |ip: &str, proto: &str, port| {
            NodePorts
                .filter(
                    &state,
                    &pod("p").host_port(ip, proto, port).info(),
                    &n.info(),
                )
                .is_success()
        };
        assert!(!check("", "TCP", 80), "0.0.0.0 takes every address");
        assert!(!check("10.0.0.1", "TCP", 80));
        assert!(check("10.0.0.2", "TCP", 80));
        assert!(check("10.0.0.1", "UDP", 80));
        assert!(check("10.0.0.1", "TCP", 81));
        let s = NodePorts.filter(&state, &pod("p").host_port("", "TCP", 80).info(), &n.info());
        assert_eq!(s.reasons, [REASON]);
    }
}
