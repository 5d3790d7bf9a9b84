//! NodeResourcesBalancedAllocation: prefers nodes whose CPU and memory
//! would be used in equal shares after placing the pod (1 − standard
//! deviation of the shares).

use crate::framework::{ClusterEvent, CycleState, MAX_NODE_SCORE, NodeInfo, PodInfo, Score};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

#[derive(Debug, Default)]
pub struct BalancedAllocation;

impl crate::framework::Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn score(&self) -> Option<&dyn Score> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeAllocatableChange,
            ClusterEvent::AssignedPodDelete,
        ]
    }
}

impl Score for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let share = |requested: i64, capacity: i64| {
            if capacity <= 0 {
                0.0
            } else {
                (requested as f64 / capacity as f64).min(1.0)
            }
        };
        let cpu = share(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        );
        let memory = share(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        // The standard deviation of two values is half their distance.
        let std = (cpu - memory).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn equal_shares_score_highest() {
        let state = CycleState::default();
        let n = node("n").allocatable("4", "8Gi", 110);
        assert_eq!(
            BalancedAllocation.score(&state, &pod("p").requests("2", "4Gi").info(), &n.info()),
            100
        );
        assert_eq!(
            BalancedAllocation.score(&state, &pod("p").requests("4", "0").info(), &n.info()),
            50
        );
    }
}
