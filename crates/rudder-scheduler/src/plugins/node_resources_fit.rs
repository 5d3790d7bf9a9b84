//! NodeResourcesFit: the pod's requests (containers, init containers,
//! overhead; CPU, memory, ephemeral storage, extended resources) must fit
//! in what the node has allocatable less what its pods request, and the
//! node must have room for one more pod. Scores with LeastAllocated: the
//! emptier the node (CPU and memory, unset requests counted at their
//! defaults), the higher.

use crate::framework::{
    ClusterEvent, CycleState, Filter, MAX_NODE_SCORE, NodeInfo, PodInfo, Score, Status,
};

pub const NAME: &str = "NodeResourcesFit";

#[derive(Debug, Default)]
pub struct NodeResourcesFit;

impl crate::framework::Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter(&self) -> Option<&dyn Filter> {
        Some(self)
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

/// The reasons a pod does not fit a node's resources, in kube-scheduler's
/// words (`Too many pods`, `Insufficient cpu`, …).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        reasons.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    let (have, used) = (&node.allocatable, &node.requested);
    if want.milli_cpu > 0 && have.milli_cpu < used.milli_cpu + want.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if want.memory > 0 && have.memory < used.memory + want.memory {
        reasons.push("Insufficient memory".into());
    }
    if want.ephemeral_storage > 0
        && have.ephemeral_storage < used.ephemeral_storage + want.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, &n) in &want.scalar {
        if n > 0 {
            let have = have.scalar.get(name).copied().unwrap_or(0);
            let used = used.scalar.get(name).copied().unwrap_or(0);
            if have < used + n {
                reasons.push(format!("Insufficient {name}"));
            }
        }
    }
    reasons
}

impl Filter for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
                plugin: NAME,
            }
        }
    }
}

/// The share of `capacity` left free after `requested`, 0..=100.
fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl Score for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = least_allocated(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        );
        let memory = least_allocated(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        (cpu + memory) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn requests_must_fit_what_is_left() {
        let n = node("n1")
            .allocatable("2", "4Gi", 3)
            .with_pod(pod("a").requests("1500m", "1Gi"));
        let state = CycleState::default();
        let fits = |p: crate::plugins::testing::PodBuilder| {
            NodeResourcesFit.filter(&state, &p.info(), &n.info())
        };
        assert!(fits(pod("p").requests("500m", "3Gi")).is_success());
        assert_eq!(
            fits(pod("p").requests("600m", "1Gi")).reasons,
            ["Insufficient cpu"]
        );
        assert_eq!(
            fits(pod("p").requests("1", "4Gi")).reasons,
            ["Insufficient cpu", "Insufficient memory"]
        );
        assert_eq!(
            fits(pod("p").extended("example.com/gpu", "1")).reasons,
            ["Insufficient example.com/gpu"]
        );
        let gpu = node("g")
            .allocatable("2", "4Gi", 110)
            .extended("example.com/gpu", "2");
        assert!(
            NodeResourcesFit
                .filter(
                    &state,
                    &pod("p").extended("example.com/gpu", "2").info(),
                    &gpu.info()
                )
                .is_success()
        );
        let full = node("f").allocatable("2", "4Gi", 1).with_pod(pod("a"));
        assert_eq!(
            NodeResourcesFit
                .filter(&state, &pod("p").info(), &full.info())
                .reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn init_containers_and_overhead_count() {
        let n = node("n1").allocatable("1", "4Gi", 110);
        let state = CycleState::default();
        let p = pod("p")
            .requests("200m", "0")
            .init_requests("900m")
            .overhead("150m");
        // max(200m, 900m) + 150m = 1050m > 1.
        assert_eq!(
            NodeResourcesFit
                .filter(&state, &p.info(), &n.info())
                .reasons,
            ["Insufficient cpu"]
        );
        let q = pod("q")
            .requests("200m", "0")
            .init_requests("700m")
            .overhead("150m");
        assert!(
            NodeResourcesFit
                .filter(&state, &q.info(), &n.info())
                .is_success()
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let state = CycleState::default();
        let empty = node("a").allocatable("4", "8Gi", 110);
        let busy = node("b")
            .allocatable("4", "8Gi", 110)
            .with_pod(pod("x").requests("3", "6Gi"));
        let p = pod("p").requests("1", "2Gi");
        let s_empty = NodeResourcesFit.score(&state, &p.info(), &empty.info());
        let s_busy = NodeResourcesFit.score(&state, &p.info(), &busy.info());
        assert_eq!(s_empty, 75);
        assert_eq!(s_busy, 0);
    }
}
