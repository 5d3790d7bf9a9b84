//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::framework::{ClusterEvent, CycleState, Filter, NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";

#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl crate::framework::Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeSchedulable,
            ClusterEvent::NodeTaintChange,
        ]
    }
}

impl Filter for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod
            .tolerations()
            .iter()
            .any(|t| super::taint_toleration::tolerates(t, &taint))
        {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::Toleration;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let mut n = node("n1");
        let p = pod("p");
        assert!(
            NodeUnschedulable
                .filter(&CycleState::default(), &p.info(), &n.info())
                .is_success()
        );
        n.spec_mut().unschedulable = Some(true);
        let s = NodeUnschedulable.filter(&CycleState::default(), &p.info(), &n.info());
        assert_eq!(s.reasons, [REASON]);
        let mut tolerant = pod("t");
        tolerant.spec_mut().tolerations = Some(vec![Toleration {
            key: Some("node.kubernetes.io/unschedulable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert!(
            NodeUnschedulable
                .filter(&CycleState::default(), &tolerant.info(), &n.info())
                .is_success()
        );
    }
}
