//! SchedulingGates: a pod with `spec.schedulingGates` waits outside the
//! active queue until every gate is removed.

use crate::framework::{ClusterEvent, Code, PodInfo, PreEnqueue, Status};

pub const NAME: &str = "SchedulingGates";

#[derive(Debug, Default)]
pub struct SchedulingGates;

impl crate::framework::Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_enqueue(&self) -> Option<&dyn PreEnqueue> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::UnscheduledPodUpdate]
    }
}

impl PreEnqueue for SchedulingGates {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        let gates: Vec<&str> = pod
            .spec()
            .and_then(|s| s.scheduling_gates.as_ref())
            .into_iter()
            .flatten()
            .map(|g| g.name.as_str())
            .collect();
        if gates.is_empty() {
            Status::success()
        } else {
            Status::new(
                Code::Pending,
                format!("waiting for scheduling gates: [{}]", gates.join(" ")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;

    #[test]
    fn gated_pods_wait() {
        let mut p = pod("p");
        assert!(SchedulingGates.pre_enqueue(&p.info()).is_success());
        p.spec_mut().scheduling_gates = Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
            name: "example.com/wait".into(),
        }]);
        let s = SchedulingGates.pre_enqueue(&p.info());
        assert_eq!(s.code, Code::Pending);
        assert_eq!(
            s.reasons,
            ["waiting for scheduling gates: [example.com/wait]"]
        );
    }
}
