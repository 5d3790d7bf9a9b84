//! TaintToleration: a node's NoSchedule and NoExecute taints keep off pods
//! that do not tolerate them; PreferNoSchedule taints a pod does not
//! tolerate lower the node's score.

use k8s_openapi::api::core::v1::Toleration;

use crate::framework::{ClusterEvent, CycleState, Filter, NodeInfo, PodInfo, Score, Status};

pub const NAME: &str = "TaintToleration";

#[derive(Debug, Default)]
pub struct TaintToleration;

impl crate::framework::Plugin for TaintToleration {
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
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeTaintChange]
    }
}

pub use rudder_runtime::selectors::tolerates;

impl Filter for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let untolerated = node.taints.iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !pod.tolerations().iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )),
        }
    }
}

impl Score for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let prefer: Vec<&Toleration> = pod
            .tolerations()
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        node.taints
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !prefer.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        super::node_affinity::default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::Taint;

    fn toleration(
        key: Option<&str>,
        op: &str,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("x".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        assert!(tolerates(
            &toleration(Some("dedicated"), "Equal", Some("x"), Some("NoSchedule")),
            &taint
        ));
        assert!(tolerates(
            &toleration(Some("dedicated"), "Exists", None, None),
            &taint
        ));
        assert!(tolerates(&toleration(None, "Exists", None, None), &taint));
        assert!(!tolerates(
            &toleration(Some("dedicated"), "Equal", Some("y"), None),
            &taint
        ));
        assert!(!tolerates(
            &toleration(Some("dedicated"), "Exists", None, Some("NoExecute")),
            &taint
        ));
        assert!(!tolerates(
            &toleration(Some("other"), "Exists", None, None),
            &taint
        ));
    }

    #[test]
    fn untolerated_taints_keep_pods_off_and_name_the_taint() {
        let state = CycleState::default();
        let n = node("n").taint("dedicated", "x", "NoSchedule");
        let s = TaintToleration.filter(&state, &pod("p").info(), &n.info());
        assert_eq!(s.reasons, ["node(s) had untolerated taint {dedicated: x}"]);
        let mut p = pod("t");
        p.spec_mut().tolerations = Some(vec![toleration(
            Some("dedicated"),
            "Equal",
            Some("x"),
            Some("NoSchedule"),
        )]);
        assert!(
            TaintToleration
                .filter(&state, &p.info(), &n.info())
                .is_success()
        );
        let soft = node("s").taint("k", "v", "PreferNoSchedule");
        assert!(
            TaintToleration
                .filter(&state, &pod("p").info(), &soft.info())
                .is_success()
        );
        let mut scores = vec![
            TaintToleration.score(&state, &pod("p").info(), &soft.info()),
            TaintToleration.score(&state, &pod("p").info(), &node("clean").info()),
        ];
        TaintToleration.normalize(&state, &pod("p").info(), &mut scores);
        assert_eq!(scores, [0, 100]);
    }
}
