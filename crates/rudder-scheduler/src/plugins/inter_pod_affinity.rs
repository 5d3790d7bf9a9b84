//! InterPodAffinity: required pod affinity (a pod must share a topology
//! domain with pods its terms select), required anti-affinity (it must
//! not, and neither may pods whose own anti-affinity selects it), and the
//! preferred forms as scores.

use std::collections::HashMap;

use crate::framework::types::AffinityTerm;
use crate::framework::{
    ClusterEvent, Code, CycleState, Filter, MAX_NODE_SCORE, NodeInfo, PodInfo, PreFilter,
    PreFilterResult, PreScore, Score, Snapshot, Status,
};

pub const NAME: &str = "InterPodAffinity";
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// The weight of existing pods' required affinity when scoring
/// (`hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

#[derive(Debug, Default)]
pub struct InterPodAffinity;

impl crate::framework::Plugin for InterPodAffinity {
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
            ClusterEvent::NamespaceChange,
        ]
    }
}

/// Pods counted per topology domain (`(key, value)`).
/// Pods counted per topology key, then value.
type Counts = HashMap<String, HashMap<String, i64>>;

fn add(c: &mut Counts, (k, v): (&str, &str), delta: i64) {
    let values = match c.get_mut(k) {
        Some(values) => values,
        None => c.entry(k.to_string()).or_default(),
    };
    match values.get_mut(v) {
        Some(n) => *n += delta,
        None => {
            values.insert(v.to_string(), delta);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Domains where existing pods' anti-affinity selects the incoming pod.
    existing_anti: Counts,
    /// Domains with pods the incoming pod's affinity terms select (per term).
    affinity: Vec<Counts>,
    /// Domains with pods the incoming pod's anti-affinity terms select.
    anti: Counts,
    /// The labels of the namespaces involved (shared: preemption clones
    /// the state for every node it tries).
    namespace_labels: std::sync::Arc<HashMap<String, std::collections::BTreeMap<String, String>>>,
}

const STATE: &str = "InterPodAffinity/state";

fn domain<'a>(term: &'a AffinityTerm, node: &'a NodeInfo) -> Option<(&'a str, &'a str)> {
    node.labels
        .get(&term.topology_key)
        .map(|v| (term.topology_key.as_str(), v.as_str()))
}

impl State {
    fn ns(&self, namespace: &str) -> Option<&std::collections::BTreeMap<String, String>> {
        self.namespace_labels.get(namespace)
    }

    /// Counts `other` (on `node`) in, or out with `delta` −1.
    fn count(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if other.uid == pod.uid {
            return;
        }
        let State {
            existing_anti,
            affinity,
            anti,
            namespace_labels,
        } = self;
        let pod_ns = namespace_labels.get(&pod.key.namespace);
        for term in &other.required_anti_affinity {
            if term.matches(pod, pod_ns)
                && let Some(d) = domain(term, node)
            {
                add(existing_anti, d, delta);
            }
        }
        let other_ns = namespace_labels.get(&other.key.namespace);
        for (i, term) in pod.required_affinity.iter().enumerate() {
            if term.matches(other, other_ns)
                && let Some(d) = domain(term, node)
            {
                add(&mut affinity[i], d, delta);
            }
        }
        for term in &pod.required_anti_affinity {
            if term.matches(other, other_ns)
                && let Some(d) = domain(term, node)
            {
                add(anti, d, delta);
            }
        }
    }
}

impl PreFilter for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
    ) -> (Status, PreFilterResult) {
        let has_own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        let any_existing = snapshot
            .nodes()
            .iter()
            .any(|n| n.pods_with_required_anti_affinity > 0);
        if !has_own && !any_existing {
            return (Status::skip(), None);
        }
        let mut s = State {
            affinity: vec![Counts::new(); pod.required_affinity.len()],
            ..State::default()
        };
        let mut labels = HashMap::new();
        let mut remember = |ns: &str| {
            if !labels.contains_key(ns)
                && let Some(l) = snapshot.namespace_labels(ns)
            {
                labels.insert(ns.to_string(), l.clone());
            }
        };
        remember(&pod.key.namespace);
        for node in snapshot.nodes() {
            if has_own || node.pods_with_required_anti_affinity > 0 {
                for p in &node.pods {
                    remember(&p.key.namespace);
                }
            }
        }
        s.namespace_labels = std::sync::Arc::new(labels);
        for node in snapshot.nodes() {
            if !has_own && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for other in &node.pods {
                if has_own || !other.required_anti_affinity.is_empty() {
                    s.count(pod, other, node, 1);
                }
            }
        }
        state.write(STATE, s);
        (Status::success(), None)
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        state.update(STATE, |s: &mut State| s.count(pod, other, node, 1));
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        state.update(STATE, |s: &mut State| s.count(pod, other, node, -1));
    }
}

impl Filter for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(STATE) else {
            return Status::success();
        };
        // kube-scheduler's order: the pod's affinity, its anti-affinity,
        // then existing pods' anti-affinity.
        if !pod.required_affinity.is_empty() && !satisfies_affinity(s, pod, node) {
            return Status {
                code: Code::UnschedulableAndUnresolvable,
                reasons: vec![AFFINITY.into()],
                plugin: NAME,
            };
        }
        for term in &pod.required_anti_affinity {
            if let Some((k, v)) = domain(term, node)
                && positive(&s.anti, k, v)
            {
                return Status::unschedulable(ANTI_AFFINITY);
            }
        }
        if s.existing_anti.iter().any(|(k, values)| {
            node.labels
                .get(k)
                .and_then(|v| values.get(v))
                .is_some_and(|n| *n > 0)
        }) {
            return Status::unschedulable(EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

fn positive(c: &Counts, k: &str, v: &str) -> bool {
    c.get(k).and_then(|m| m.get(v)).is_some_and(|n| *n > 0)
}

/// Every required affinity term has a matching pod in the node's domain;
/// or no pod matches any term yet and the pod matches its own terms (the
/// first of a group), and the node has every topology key.
fn satisfies_affinity(s: &State, pod: &PodInfo, node: &NodeInfo) -> bool {
    let all_match = pod
        .required_affinity
        .iter()
        .zip(&s.affinity)
        .all(|(term, counts)| domain(term, node).is_some_and(|(k, v)| positive(counts, k, v)));
    if all_match {
        return true;
    }
    let none_anywhere = s
        .affinity
        .iter()
        .all(|c| c.values().flat_map(|m| m.values()).all(|n| *n <= 0));
    let self_match = pod
        .required_affinity
        .iter()
        .all(|t| t.matches(pod, s.ns(&pod.key.namespace)));
    let has_keys = pod
        .required_affinity
        .iter()
        .all(|t| node.labels.contains_key(&t.topology_key));
    none_anywhere && self_match && has_keys
}

/// Per topology key and value, the sum of preferred weights.
#[derive(Debug, Default)]
struct Scores(HashMap<String, HashMap<String, i64>>);

const SCORES: &str = "InterPodAffinity/scores";

impl PreScore for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let has_preferred =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let any_existing = snapshot.nodes().iter().any(|n| n.pods_with_affinity > 0);
        if !has_preferred && !any_existing {
            return Status::skip();
        }
        let mut scores: HashMap<String, HashMap<String, i64>> = HashMap::new();
        let pod_ns = snapshot.namespace_labels(&pod.key.namespace);
        for node in snapshot.nodes() {
            if !has_preferred && node.pods_with_affinity == 0 {
                continue;
            }
            let mut add = |term: &AffinityTerm, weight: i64| {
                if let Some(v) = node.labels.get(&term.topology_key) {
                    *scores
                        .entry(term.topology_key.clone())
                        .or_default()
                        .entry(v.clone())
                        .or_default() += weight;
                }
            };
            for other in &node.pods {
                let other_ns = snapshot.namespace_labels(&other.key.namespace);
                for w in &pod.preferred_affinity {
                    if w.term.matches(other, other_ns) {
                        add(&w.term, i64::from(w.weight));
                    }
                }
                for w in &pod.preferred_anti_affinity {
                    if w.term.matches(other, other_ns) {
                        add(&w.term, -i64::from(w.weight));
                    }
                }
                for t in &other.required_affinity {
                    if t.matches(pod, pod_ns) {
                        add(t, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                for w in &other.preferred_affinity {
                    if w.term.matches(pod, pod_ns) {
                        add(&w.term, i64::from(w.weight));
                    }
                }
                for w in &other.preferred_anti_affinity {
                    if w.term.matches(pod, pod_ns) {
                        add(&w.term, -i64::from(w.weight));
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(SCORES, Scores(scores));
        Status::success()
    }
}

impl Score for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(Scores(s)) = state.read::<Scores>(SCORES) else {
            return 0;
        };
        node.labels
            .iter()
            .filter_map(|(k, v)| s.get(k).and_then(|m| m.get(v)))
            .sum()
    }

    /// Min-max scaling: the lowest sum scores 0, the highest 100.
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for s in scores.iter_mut() {
            *s = if max == min {
                0
            } else {
                MAX_NODE_SCORE * (*s - min) / (max - min)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{NodeBuilder, PodBuilder, TestSnapshot, node, pod};
    use k8s_openapi::api::core::v1::{Affinity, PodAffinity, PodAffinityTerm, PodAntiAffinity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn with_affinity(
        p: PodBuilder,
        affinity: Option<PodAffinityTerm>,
        anti: Option<PodAffinityTerm>,
    ) -> PodBuilder {
        let mut p = p;
        p.spec_mut().affinity = Some(Affinity {
            pod_affinity: affinity.map(|t| PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![t]),
                ..Default::default()
            }),
            pod_anti_affinity: anti.map(|t| PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![t]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn feasible(p: &PodBuilder, nodes: &[NodeBuilder]) -> Vec<Result<String, String>> {
        let snap = TestSnapshot::of(nodes);
        let info = p.info();
        let mut state = CycleState::default();
        let (s, _) = InterPodAffinity.pre_filter(&mut state, &info, &snap);
        snap.nodes
            .iter()
            .map(|n| {
                if s.code == Code::Skip {
                    return Ok(n.name.clone());
                }
                let f = InterPodAffinity.filter(&state, &info, n);
                if f.is_success() {
                    Ok(n.name.clone())
                } else {
                    Err(f.reasons.join(","))
                }
            })
            .collect()
    }

    #[test]
    fn anti_affinity_spreads_replicas_over_hosts() {
        let web = |name: &str| {
            with_affinity(
                pod(name).label("app", "web"),
                None,
                Some(term("web", "kubernetes.io/hostname")),
            )
        };
        let nodes = [
            node("a")
                .label("kubernetes.io/hostname", "a")
                .with_pod(web("w1")),
            node("b").label("kubernetes.io/hostname", "b"),
        ];
        assert_eq!(
            feasible(&web("w2"), &nodes),
            [Err(ANTI_AFFINITY.to_string()), Ok("b".to_string())]
        );
        // A plain pod with the label is kept off by the existing pod's rule.
        assert_eq!(
            feasible(&pod("x").label("app", "web"), &nodes),
            [Err(EXISTING_ANTI_AFFINITY.to_string()), Ok("b".to_string())]
        );
        assert_eq!(
            feasible(&pod("y").label("app", "db"), &nodes),
            [Ok("a".into()), Ok("b".into())]
        );
    }

    #[test]
    fn affinity_follows_the_selected_pods_domain() {
        let nodes = [
            node("a")
                .label("zone", "z1")
                .with_pod(pod("db").label("app", "db")),
            node("b").label("zone", "z1"),
            node("c").label("zone", "z2"),
            node("d"),
        ];
        let p = with_affinity(pod("web"), Some(term("db", "zone")), None);
        assert_eq!(
            feasible(&p, &nodes),
            [
                Ok("a".into()),
                Ok("b".into()),
                Err(AFFINITY.into()),
                Err(AFFINITY.into())
            ]
        );
        // The first pod of a self-selecting group goes wherever the key is.
        let first = with_affinity(
            pod("c1").label("app", "cache"),
            Some(term("cache", "zone")),
            None,
        );
        assert_eq!(
            feasible(&first, &nodes),
            [
                Ok("a".into()),
                Ok("b".into()),
                Ok("c".into()),
                Err(AFFINITY.into())
            ]
        );
    }
}
