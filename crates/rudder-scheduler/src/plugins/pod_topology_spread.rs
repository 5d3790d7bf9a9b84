//! PodTopologySpread: `topologySpreadConstraints` keep the pods a selector
//! matches spread over topology domains. `DoNotSchedule` constraints
//! filter (the skew after placing the pod may not exceed `maxSkew`, with
//! `minDomains` counting missing domains as empty); `ScheduleAnyway`
//! constraints score (fewer matching pods in the domain, higher score).

use std::collections::BTreeMap;

use crate::framework::fxhash::FxHashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::node_affinity::Required;
use super::taint_toleration::tolerates;
use crate::framework::labels::Selector;
use crate::framework::{
    ClusterEvent, Code, CycleState, Filter, MAX_NODE_SCORE, NodeInfo, PodInfo, PreFilter,
    PreFilterResult, PreScore, Score, Snapshot, Status,
};

pub const NAME: &str = "PodTopologySpread";
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Debug, Default)]
pub struct PodTopologySpread;

impl crate::framework::Plugin for PodTopologySpread {
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
        &[
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeLabelChange,
            ClusterEvent::NodeTaintChange,
        ]
    }
}

/// One constraint, its selector parsed.
#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    min_domains: usize,
    selector: Selector,
    /// For the cluster's default constraints: pods of the same controller
    /// (ReplicaSet, StatefulSet, …) count, instead of a selector.
    owner: Option<String>,
    honor_affinity: bool,
    honor_taints: bool,
}

/// kube-scheduler's system default constraints, for pods without their
/// own that a controller owns: spread them over hosts (maxSkew 3) and
/// zones (maxSkew 5), as a preference.
fn default_constraints(pod: &PodInfo) -> Vec<Constraint> {
    let Some(owner) = controller_uid(pod) else {
        return Vec::new();
    };
    [
        ("kubernetes.io/hostname", 3),
        ("topology.kubernetes.io/zone", 5),
    ]
    .into_iter()
    .map(|(key, max_skew)| Constraint {
        max_skew,
        key: key.into(),
        min_domains: 1,
        selector: Selector::nothing(),
        owner: Some(owner.clone()),
        honor_affinity: true,
        honor_taints: false,
    })
    .collect()
}

fn controller_uid(pod: &PodInfo) -> Option<String> {
    pod.pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

fn constraints(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    pod.spec()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
            selector: selector(pod, c),
            owner: None,
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
        .collect()
}

/// The constraint's selector, with `matchLabelKeys` taken from the pod's
/// own labels.
fn selector(pod: &PodInfo, c: &TopologySpreadConstraint) -> Selector {
    let mut sel = c.label_selector.clone();
    if let Some(sel) = sel.as_mut() {
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels.get(key) {
                sel.match_labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.clone(), v.clone());
            }
        }
    }
    Selector::from_label_selector(sel.as_ref())
}

impl Constraint {
    /// Whether `other` counts for this constraint.
    fn counts(&self, pod: &PodInfo, other: &PodInfo) -> bool {
        other.key.namespace == pod.key.namespace
            && other.pod.metadata.deletion_timestamp.is_none()
            && match &self.owner {
                Some(owner) => controller_uid(other).as_ref() == Some(owner),
                None => self.selector.matches(&other.labels),
            }
    }
}

/// Whether a node takes part in the spread of `pod`'s constraints: it
/// matches the pod's node affinity (unless ignored) and has no taint the
/// pod does not tolerate (when honoured). That it has the constraints'
/// keys is checked by the caller, which looks them up once.
fn eligible(cs: &[Constraint], required: &Required, pod: &PodInfo, node: &NodeInfo) -> bool {
    if cs.iter().any(|c| c.honor_affinity) && !required.matches(node) {
        return false;
    }
    let untolerated = || {
        node.taints.iter().any(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
                && !pod.tolerations().iter().any(|tol| tolerates(tol, t))
        })
    };
    !(cs.iter().any(|c| c.honor_taints) && untolerated())
}

/// Matching pods per domain value, for one constraint.
type Counts = FxHashMap<String, i64>;

#[derive(Debug, Clone)]
struct State {
    constraints: Vec<Constraint>,
    /// Per constraint, matching pods per domain value.
    counts: Vec<Counts>,
    /// Per constraint, the global minimum (0 below `minDomains`), kept
    /// with the counts rather than found again for every node.
    mins: Vec<i64>,
}

impl State {
    fn new(constraints: Vec<Constraint>, counts: Vec<Counts>) -> Self {
        let mut s = Self {
            mins: vec![0; constraints.len()],
            constraints,
            counts,
        };
        s.recount_mins();
        s
    }

    fn recount_mins(&mut self) {
        for (i, counts) in self.counts.iter().enumerate() {
            self.mins[i] = if counts.len() < self.constraints[i].min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
        }
    }

    fn min_match(&self, i: usize) -> i64 {
        self.mins[i]
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        for (i, c) in self.constraints.iter().enumerate() {
            if let Some(v) = node.labels.get(&c.key)
                && let Some(n) = self.counts[i].get_mut(v)
                && c.counts(pod, other)
            {
                *n += delta;
            }
        }
        self.recount_mins();
    }
}

const STATE: &str = "PodTopologySpread/filter";

/// Counts matching pods per domain over the eligible nodes.
/// Without `require_all` (the default constraints) a node counts for the
/// constraints whose key it has.
fn count(
    cs: &[Constraint],
    pod: &PodInfo,
    snapshot: &dyn Snapshot,
    require_all: bool,
) -> Vec<Counts> {
    let required = Required::of(pod);
    let mut counts = vec![Counts::default(); cs.len()];
    // Each constraint's domain on the node at hand, looked up once.
    let mut domains: Vec<Option<&String>> = Vec::with_capacity(cs.len());
    for node in snapshot.nodes() {
        domains.clear();
        domains.extend(cs.iter().map(|c| node.labels.get(&c.key)));
        if require_all && domains.iter().any(Option::is_none) {
            continue;
        }
        if !eligible(cs, &required, pod, node) {
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            let Some(v) = domains[i] else {
                continue;
            };
            let n = node.pods.iter().filter(|o| c.counts(pod, o)).count() as i64;
            match counts[i].get_mut(v) {
                Some(total) => *total += n,
                None => {
                    counts[i].insert(v.clone(), n);
                }
            }
        }
    }
    counts
}

impl PreFilter for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
    ) -> (Status, PreFilterResult) {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return (Status::skip(), None);
        }
        let counts = count(&cs, pod, snapshot, true);
        state.write(STATE, State::new(cs, counts));
        (Status::success(), None)
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        state.update(STATE, |s: &mut State| s.update(pod, other, node, 1));
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        state.update(STATE, |s: &mut State| s.update(pod, other, node, -1));
    }
}

impl Filter for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(STATE) else {
            return Status::success();
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels.get(&c.key) else {
                return Status {
                    code: Code::UnschedulableAndUnresolvable,
                    reasons: vec![MISSING_LABEL.into()],
                    plugin: NAME,
                };
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = s.counts[i].get(v).copied().unwrap_or(0);
            if matching + self_match - s.min_match(i) > c.max_skew {
                return Status::unschedulable(REASON);
            }
        }
        Status::success()
    }
}

#[derive(Debug)]
struct Soft {
    constraints: Vec<Constraint>,
    counts: Vec<Counts>,
    /// `log(domains + 2)`: spreading over more domains weighs more.
    weights: Vec<f64>,
    /// The pod's own constraints need every key on a node; the defaults
    /// use those a node has.
    require_all: bool,
}

const SOFT: &str = "PodTopologySpread/score";

impl PreScore for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let has_own = pod
            .spec()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let cs = if has_own {
            constraints(pod, "ScheduleAnyway")
        } else {
            default_constraints(pod)
        };
        if cs.is_empty() {
            return Status::skip();
        }
        let counts = count(&cs, pod, snapshot, has_own);
        let weights = counts.iter().map(|c| ((c.len() + 2) as f64).ln()).collect();
        state.write(
            SOFT,
            Soft {
                constraints: cs,
                counts,
                weights,
                require_all: has_own,
            },
        );
        Status::success()
    }
}

impl Score for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<Soft>(SOFT) else {
            return 0;
        };
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels.get(&c.key) else {
                if !s.require_all {
                    continue;
                }
                // Nodes without the key score worst (normalised below).
                return -1;
            };
            let n = s.counts[i].get(v).copied().unwrap_or(0) as f64;
            score += n * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    /// Fewer matching pods score higher; nodes without a key score 0.
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{NodeBuilder, PodBuilder, TestSnapshot, node, pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn spread(
        p: PodBuilder,
        key: &str,
        max_skew: i32,
        min_domains: Option<i32>,
        when: &str,
    ) -> PodBuilder {
        let mut p = p.label("app", "web");
        p.spec_mut()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(TopologySpreadConstraint {
                max_skew,
                topology_key: key.into(),
                when_unsatisfiable: when.into(),
                min_domains,
                label_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        p
    }

    fn filter(p: &PodBuilder, nodes: &[NodeBuilder]) -> Vec<String> {
        let snap = TestSnapshot::of(nodes);
        let info = p.info();
        let mut state = CycleState::default();
        PodTopologySpread.pre_filter(&mut state, &info, &snap);
        snap.nodes
            .iter()
            .map(|n| {
                let s = PodTopologySpread.filter(&state, &info, n);
                if s.is_success() {
                    "ok".to_string()
                } else {
                    s.reasons.join(",")
                }
            })
            .collect()
    }

    fn web(name: &str) -> PodBuilder {
        pod(name).label("app", "web")
    }

    #[test]
    fn skew_over_zones_may_not_exceed_max_skew() {
        let nodes = [
            node("a")
                .label("zone", "z1")
                .with_pod(web("w1"))
                .with_pod(web("w2")),
            node("b").label("zone", "z2").with_pod(web("w3")),
            node("c").label("zone", "z3").with_pod(web("w4")),
            node("d"),
        ];
        let p = spread(pod("new"), "zone", 1, None, "DoNotSchedule");
        assert_eq!(filter(&p, &nodes), [REASON, "ok", "ok", MISSING_LABEL]);
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let nodes = [
            node("a").label("zone", "z1").with_pod(web("w1")),
            node("b").label("zone", "z2").with_pod(web("w2")),
        ];
        // Two domains exist, three are wanted: the global minimum is 0, so
        // a second pod in any zone makes a skew of 2.
        let p = spread(pod("new"), "zone", 1, Some(3), "DoNotSchedule");
        assert_eq!(filter(&p, &nodes), [REASON, REASON]);
        let p = spread(pod("new"), "zone", 1, None, "DoNotSchedule");
        assert_eq!(filter(&p, &nodes), ["ok", "ok"]);
    }

    #[test]
    fn pods_of_one_controller_spread_over_hosts_by_default() {
        let owned = |name: &str| {
            let mut p = pod(name);
            p.0.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "web".into(),
                    uid: "rs-1".into(),
                    controller: Some(true),
                    ..Default::default()
                },
            ]);
            p
        };
        let nodes = [
            node("a")
                .label("kubernetes.io/hostname", "a")
                .with_pod(owned("r1"))
                .with_pod(owned("r2")),
            node("b")
                .label("kubernetes.io/hostname", "b")
                .with_pod(pod("unrelated")),
        ];
        let snap = TestSnapshot::of(&nodes);
        let p = owned("r3").info();
        let scores = soft_scores(&snap, &p);
        assert!(scores[1] > scores[0], "{scores:?}");
        // Without a controller there is nothing to spread.
        assert_eq!(
            PodTopologySpread
                .pre_score(&mut CycleState::default(), &pod("x").info(), &snap, &[])
                .code,
            Code::Skip
        );
    }

    /// PreScore, then each node's normalized score.
    fn soft_scores(snap: &TestSnapshot, p: &PodInfo) -> Vec<i64> {
        let mut state = CycleState::default();
        assert!(
            PodTopologySpread
                .pre_score(&mut state, p, snap, &[])
                .is_success()
        );
        let mut scores: Vec<i64> = snap
            .nodes
            .iter()
            .map(|n| PodTopologySpread.score(&state, p, n))
            .collect();
        PodTopologySpread.normalize(&state, p, &mut scores);
        scores
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let nodes = [
            node("a")
                .label("zone", "z1")
                .with_pod(web("w1"))
                .with_pod(web("w2")),
            node("b").label("zone", "z2"),
            node("c"),
        ];
        let snap = TestSnapshot::of(&nodes);
        let p = spread(pod("new"), "zone", 1, None, "ScheduleAnyway").info();
        let scores = soft_scores(&snap, &p);
        assert!(scores[1] > scores[0], "{scores:?}");
        assert_eq!(scores[2], 0);
    }
}
