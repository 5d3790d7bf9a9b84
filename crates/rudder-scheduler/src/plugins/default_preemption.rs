//! DefaultPreemption (PostFilter): when a pod fits nowhere, find a node
//! where evicting lower-priority pods would make it fit, evicting as few
//! and as unimportant pods as possible and, where it can, none that a
//! PodDisruptionBudget protects. The pod is nominated to that node and the
//! victims are deleted gracefully; it is scheduled there once they go.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::{
    Code, CycleState, Framework, NodeInfo, PodInfo, PostFilter, PostFilterResult, Snapshot, Status,
};

pub const NAME: &str = "DefaultPreemption";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

#[derive(Debug, Default)]
pub struct DefaultPreemption;

impl crate::framework::Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn post_filter(&self) -> Option<&dyn PostFilter> {
        Some(self)
    }
}

/// A node where preemption would work, and at what cost.
#[derive(Debug)]
struct Candidate<'a> {
    node: &'a NodeInfo,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Higher priority first, then the one running longer.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.start_time().cmp(&b.start_time()))
}

impl DefaultPreemption {
    /// The fewest, least important pods to evict from `node` for `pod` to
    /// fit; `None` if evicting every lower-priority pod is not enough.
    fn select_victims<'a>(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        node: &'a NodeInfo,
        snapshot: &dyn Snapshot,
    ) -> Option<Candidate<'a>> {
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if potential.is_empty() {
            return None;
        }
        potential.sort_by(|a, b| more_important(a, b));
        let mut trial = node.clone();
        let mut state = state.clone();
        for v in &potential {
            trial.remove_pod(&v.uid);
            fw.remove_pod(&mut state, pod, v, &trial);
        }
        if !fw
            .run_filters_with_nominated(&state, pod, &trial, snapshot)
            .is_success()
        {
            return None;
        }
        let budgets = snapshot.disruption_budgets();
        let mut allowed: HashMap<usize, i32> = budgets
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.disruptions_allowed))
            .collect();
        // Pods whose eviction a budget does not allow are reprieved first.
        let (violating, plain): (Vec<_>, Vec<_>) = potential.into_iter().partition(|p| {
            let mut violates = false;
            for (i, b) in budgets.iter().enumerate() {
                if b.namespace == p.key.namespace && b.selector.matches(&p.labels) {
                    let left = allowed.entry(i).or_default();
                    *left -= 1;
                    if *left < 0 {
                        violates = true;
                    }
                }
            }
            violates
        });
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        for (group, is_violating) in [(violating, true), (plain, false)] {
            for p in group {
                trial.add_pod(p.clone());
                fw.add_pod(&mut state, pod, &p, &trial);
                if !fw
                    .run_filters_with_nominated(&state, pod, &trial, snapshot)
                    .is_success()
                {
                    trial.remove_pod(&p.uid);
                    fw.remove_pod(&mut state, pod, &p, &trial);
                    if is_violating {
                        pdb_violations += 1;
                    }
                    victims.push(p);
                }
            }
        }
        Some(Candidate {
            node,
            victims,
            pdb_violations,
        })
    }
}

/// kube-scheduler's `pickOneNodeForPreemption`: fewest budget violations,
/// then the lowest top victim priority, the lowest priority sum, the
/// fewest victims, the latest-started top victims.
fn pick<'a, 'b>(candidates: &'b [Candidate<'a>]) -> Option<&'b Candidate<'a>> {
    let top = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN)
    };
    let sum = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum::<i64>()
    };
    let latest = |c: &Candidate| {
        let t = top(c);
        c.victims
            .iter()
            .filter(|v| v.priority == t)
            .filter_map(|v| v.start_time().copied())
            .min()
    };
    candidates.iter().min_by(|a, b| {
        a.pdb_violations
            .cmp(&b.pdb_violations)
            .then_with(|| top(a).cmp(&top(b)))
            .then_with(|| sum(a).cmp(&sum(b)))
            .then_with(|| a.victims.len().cmp(&b.victims.len()))
            .then_with(|| latest(b).cmp(&latest(a)))
    })
}

impl PostFilter for DefaultPreemption {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        statuses: &HashMap<String, Status>,
        fw: &Framework,
    ) -> PostFilterResult {
        let spec = pod.spec();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return PostFilterResult {
                message: "preemption: not eligible due to preemptionPolicy=Never.".into(),
                ..Default::default()
            };
        }
        // Already nominated, and lower-priority pods there are still
        // terminating: wait for them rather than preempt again.
        if let Some(node) = snapshot.nominated_node(pod)
            && node
                .pods
                .iter()
                .any(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_some())
        {
            return PostFilterResult {
                message: "preemption: not eligible due to a terminating pod on the nominated node."
                    .into(),
                ..Default::default()
            };
        }
        let mut candidates = Vec::new();
        let mut reasons: HashMap<&str, usize> = HashMap::new();
        for node in snapshot.nodes() {
            let unresolvable = statuses
                .get(&node.name)
                .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable);
            if unresolvable {
                *reasons.entry(NOT_HELPFUL).or_default() += 1;
                continue;
            }
            match self.select_victims(fw, state, pod, node, snapshot) {
                Some(c) => candidates.push(c),
                None => *reasons.entry(NO_VICTIMS).or_default() += 1,
            }
        }
        match pick(&candidates) {
            Some(c) => PostFilterResult {
                nominated_node: Some(c.node.name.clone()),
                victims: c.victims.clone(),
                // Lower-priority pods nominated there lose their place.
                nominations_to_clear: snapshot
                    .nominated(&c.node.name)
                    .iter()
                    .filter(|p| p.priority < pod.priority)
                    .cloned()
                    .collect(),
                message: String::new(),
            },
            None => {
                let mut parts: Vec<String> =
                    reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                parts.sort();
                PostFilterResult {
                    message: format!(
                        "preemption: 0/{} nodes are available: {}.",
                        snapshot.nodes().len(),
                        parts.join(", ")
                    ),
                    ..Default::default()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::DisruptionBudget;
    use crate::framework::labels::Selector;
    use crate::plugins::testing::{TestSnapshot, node, pod};
    use crate::registry::{Registry, default_profile};

    fn run(
        snap: &TestSnapshot,
        p: &PodInfo,
    ) -> (Result<String, crate::framework::FitError>, PostFilterResult) {
        let fw = Framework::new(default_profile("default-scheduler"), &Registry::default())
            .expect("valid");
        let (r, state, _) = fw.schedule(p, snap, 0);
        match r {
            Ok(r) => (Ok(r.node), PostFilterResult::default()),
            Err(mut e) => {
                let post = fw.run_post_filter(&state, p, snap, &e.diagnosis.statuses);
                e.diagnosis.post_filter_message = post.message.clone();
                (Err(e), post)
            }
        }
    }

    fn victims(post: &PostFilterResult) -> Vec<String> {
        let mut v: Vec<String> = post.victims.iter().map(|p| p.key.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let snap = TestSnapshot::of(&[
            node("a")
                .allocatable("4", "8Gi", 110)
                .with_pod(pod("a-low").priority(1).requests("2", "1Gi"))
                .with_pod(pod("a-mid").priority(5).requests("2", "1Gi")),
            node("b")
                .allocatable("4", "8Gi", 110)
                .with_pod(pod("b-low1").priority(1).requests("1", "1Gi"))
                .with_pod(pod("b-low2").priority(1).requests("1", "1Gi"))
                .with_pod(pod("b-high").priority(100).requests("2", "1Gi")),
        ]);
        let p = pod("urgent").priority(10).requests("2", "1Gi").info();
        let (r, post) = run(&snap, &p);
        assert!(r.is_err());
        // a: one victim of priority 1; b: two of priority 1 (b-high stays).
        assert_eq!(post.nominated_node.as_deref(), Some("a"));
        assert_eq!(victims(&post), ["a-low"]);
    }

    #[test]
    fn room_made_for_a_nominated_pod_is_kept_for_it() {
        let mut snap = TestSnapshot::of(&[node("a")
            .allocatable("2", "8Gi", 110)
            .with_pod(pod("running").priority(1).requests("1", "1Gi"))]);
        let other = pod("other").priority(0).requests("1", "1Gi").info();
        assert_eq!(run(&snap, &other).0.ok().as_deref(), Some("a"));
        // Preemption made room on the node for a pod of priority 10.
        snap.nominated.insert(
            "a".into(),
            vec![Arc::new(
                pod("first").priority(10).requests("1", "1Gi").info(),
            )],
        );
        let (r, _) = run(&snap, &other);
        assert_eq!(
            r.expect_err("the room is taken").to_string(),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod."
        );
        // A pod of the same priority must preempt for room of its own.
        let (_, post) = run(
            &snap,
            &pod("second").priority(10).requests("1", "1Gi").info(),
        );
        assert_eq!(victims(&post), ["running"]);
    }

    #[test]
    fn budgets_are_respected_where_possible() {
        let mut snap = TestSnapshot::of(&[
            node("a").allocatable("2", "8Gi", 110).with_pod(
                pod("guarded")
                    .priority(1)
                    .label("app", "db")
                    .requests("2", "1Gi"),
            ),
            node("b")
                .allocatable("2", "8Gi", 110)
                .with_pod(pod("free").priority(1).requests("2", "1Gi")),
        ]);
        snap.budgets.push(DisruptionBudget {
            namespace: "default".into(),
            selector: Selector::from_map(&[("app".to_string(), "db".to_string())].into()),
            disruptions_allowed: 0,
        });
        let p = pod("urgent").priority(10).requests("2", "1Gi").info();
        let (_, post) = run(&snap, &p);
        assert_eq!(post.nominated_node.as_deref(), Some("b"));
        assert_eq!(victims(&post), ["free"]);
    }

    #[test]
    fn says_why_when_preemption_cannot_help() {
        let snap = TestSnapshot::of(&[
            node("a")
                .allocatable("2", "8Gi", 110)
                .with_pod(pod("peer").priority(10).requests("2", "1Gi")),
            node("b")
                .allocatable("2", "8Gi", 110)
                .taint("dedicated", "x", "NoSchedule"),
        ]);
        let p = pod("urgent").priority(10).requests("2", "1Gi").info();
        let (r, post) = run(&snap, &p);
        assert!(post.nominated_node.is_none());
        assert_eq!(
            r.expect_err("fits nowhere").to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: x}. \
             preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
             1 Preemption is not helpful for scheduling."
        );
        let mut never = pod("never").priority(1000).requests("2", "1Gi");
        never.spec_mut().preemption_policy = Some("Never".into());
        let (r, _) = run(&snap, &never.info());
        assert!(
            r.expect_err("fits nowhere")
                .to_string()
                .ends_with("preemption: not eligible due to preemptionPolicy=Never.")
        );
    }
}
