//! NodeAffinity: `spec.nodeSelector` and required node affinity must match
//! the node's labels (and name, for `matchFields`); preferred terms add
//! their weight to the nodes they match.

use std::collections::HashSet;

use crate::framework::{
    ClusterEvent, CycleState, Filter, MAX_NODE_SCORE, NodeInfo, PodInfo, PreFilter,
    PreFilterResult, PreScore, Score, Snapshot, Status,
};
use rudder_runtime::selectors::{NodeSelectorTerms, RequiredNodeAffinity};

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

#[derive(Debug, Default)]
pub struct NodeAffinity;

impl crate::framework::Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn Score> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeLabelChange]
    }
}

/// The pod's node selector and required terms, parsed once per cycle.
#[derive(Debug)]
pub struct Required(RequiredNodeAffinity);

impl Required {
    pub fn of(pod: &PodInfo) -> Self {
        Self(RequiredNodeAffinity::of(pod.spec()))
    }

    pub fn matches(&self, node: &NodeInfo) -> bool {
        self.0.matches(&node.name, &node.labels)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const STATE: &str = "NodeAffinity/required";
const PREFERRED: &str = "NodeAffinity/preferred";

impl PreFilter for NodeAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &dyn Snapshot,
    ) -> (Status, PreFilterResult) {
        let required = Required::of(pod);
        if required.is_empty() {
            return (Status::skip(), None);
        }
        // Terms that all name nodes with `metadata.name In` narrow the
        // nodes to look at, as kube-scheduler's PreFilterResult does.
        let names: Option<HashSet<String>> = pod
            .spec()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .and_then(|sel| {
                let mut all = HashSet::new();
                for term in &sel.node_selector_terms {
                    let named: Vec<&String> = term
                        .match_fields
                        .iter()
                        .flatten()
                        .filter(|f| f.key == "metadata.name" && f.operator == "In")
                        .flat_map(|f| f.values.iter().flatten())
                        .collect();
                    if named.is_empty() {
                        return None;
                    }
                    all.extend(named.into_iter().cloned());
                }
                Some(all)
            });
        state.write(STATE, required);
        (Status::success(), names)
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let fits = match state.read::<Required>(STATE) {
            Some(r) => r.matches(node),
            None => Required::of(pod).matches(node),
        };
        if fits {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl PreScore for NodeAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &dyn Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let preferred: Vec<(NodeSelectorTerms, i64)> = pod
            .spec()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0)
            .map(|t| {
                (
                    NodeSelectorTerms::single(&t.preference),
                    i64::from(t.weight),
                )
            })
            .collect();
        if preferred.is_empty() {
            return Status::skip();
        }
        state.write(PREFERRED, preferred);
        Status::success()
    }
}

impl Score for NodeAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        state
            .read::<Vec<(NodeSelectorTerms, i64)>>(PREFERRED)
            .into_iter()
            .flatten()
            .filter(|(t, _)| t.matches(&node.name, &node.labels))
            .map(|(_, w)| w)
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

/// kube-scheduler's `DefaultNormalizeScore`: scales so the highest score
/// is MAX_NODE_SCORE; `reverse` makes the lowest the best.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{TestSnapshot, node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
    };

    fn term(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_fields: None,
        }
    }

    fn run(p: &PodInfo, n: &NodeInfo) -> Status {
        let mut state = CycleState::default();
        let snap = TestSnapshot::default();
        let (s, _) = NodeAffinity.pre_filter(&mut state, p, &snap);
        if s.code == crate::framework::Code::Skip {
            return Status::success();
        }
        NodeAffinity.filter(&state, p, n)
    }

    #[test]
    fn node_selector_and_required_terms_must_match() {
        let ssd = node("a").label("disk", "ssd").label("zone", "z1");
        let hdd = node("b").label("disk", "hdd").label("zone", "z2");
        let p = pod("p").node_selector("disk", "ssd");
        assert!(run(&p.info(), &ssd.info()).is_success());
        assert_eq!(run(&p.info(), &hdd.info()).reasons, [REASON]);
        let mut q = pod("q");
        q.spec_mut().affinity = Some(Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term("zone", "NotIn", &["z1"])],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(!run(&q.info(), &ssd.info()).is_success());
        assert!(run(&q.info(), &hdd.info()).is_success());
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let mut p = pod("p");
        p.spec_mut().affinity = Some(Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm {
                        weight: 10,
                        preference: term("zone", "In", &["z1"]),
                    },
                    PreferredSchedulingTerm {
                        weight: 30,
                        preference: term("disk", "Exists", &[]),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let a = node("a").label("zone", "z1").label("disk", "ssd").info();
        let b = node("b").label("disk", "hdd").info();
        let c = node("c").info();
        let info = p.info();
        let mut state = CycleState::default();
        let snap = TestSnapshot::default();
        assert!(
            NodeAffinity
                .pre_score(&mut state, &info, &snap, &[])
                .is_success()
        );
        let mut scores: Vec<i64> = [&a, &b, &c]
            .iter()
            .map(|n| NodeAffinity.score(&state, &info, n))
            .collect();
        assert_eq!(scores, [40, 30, 0]);
        NodeAffinity.normalize(&state, &info, &mut scores);
        assert_eq!(scores, [100, 75, 0]);
    }
}
