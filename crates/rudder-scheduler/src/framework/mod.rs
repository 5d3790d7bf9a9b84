//! The scheduling framework, shaped as kube-scheduler's: a pod goes through
//! PreEnqueue (may it be scheduled at all), PreFilter (work out what the
//! filters need), Filter (node by node), PostFilter (when no node fits:
//! preemption), PreScore and Score (rank the nodes that fit). Plugins
//! implement the extension points they need; a profile names the plugins
//! at each point and their score weights.
//!
//! Everything here is synchronous and pure: the plugins read the
//! [`Snapshot`] and the pod, never the API.

pub mod fxhash;
pub use rudder_runtime::selectors as labels;
pub mod types;

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub use types::{NodeInfo, PodInfo, PodKey, Resource};

/// The highest score a Score plugin gives a node (after normalising).
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin says about a pod (and a node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Success,
    /// Does not fit now; preemption may help.
    Unschedulable,
    /// Does not fit, and preempting pods on the node would not change that.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore).
    Skip,
    /// Waits at PreEnqueue (scheduling gates).
    Pending,
    Error,
}

/// A plugin's verdict: a code, the reasons users read, and who said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Self {
        Self {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn skip() -> Self {
        Self {
            code: Code::Skip,
            ..Self::success()
        }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Self {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Self::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Unschedulable or UnschedulableAndUnresolvable.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }

    fn by(mut self, plugin: &'static str) -> Self {
        if self.plugin.is_empty() {
            self.plugin = plugin;
        }
        self
    }
}

/// Data plugins keep for one pod's scheduling cycle, written at PreFilter
/// and PreScore and read by Filter and Score. Cloning is cheap (shared
/// values); preemption clones it to try nodes without some of their pods.
/// A handful of keys, read for every node a filter looks at: a short list
/// searched in order beats hashing the key each time.
#[derive(Debug, Clone, Default)]
pub struct CycleState {
    data: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.data.push((key, value)),
        }
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// Changes a value in place (copying it first if a clone of this
    /// state shares it); nothing if it is absent.
    pub fn update<T: Any + Send + Sync + Clone>(
        &mut self,
        key: &'static str,
        f: impl FnOnce(&mut T),
    ) {
        if let Some(mut value) = self.read::<T>(key).cloned() {
            f(&mut value);
            self.write(key, value);
        }
    }
}

/// The cluster as one scheduling cycle sees it.
pub trait Snapshot {
    /// Every node the scheduler knows, in a stable order.
    fn nodes(&self) -> &[NodeInfo];
    fn node(&self, name: &str) -> Option<&NodeInfo>;
    /// A namespace's labels (namespace selectors in affinity terms).
    fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>>;
    /// On how many nodes an image is present (ImageLocality's spread).
    fn image_nodes(&self, image: &str) -> usize;
    /// Pods nominated to run on `node` (preemption made room for them),
    /// not yet bound.
    fn nominated(&self, _node: &str) -> &[Arc<PodInfo>] {
        &[]
    }
    /// The node a pod is nominated to.
    fn nomination(&self, _uid: &str) -> Option<&str> {
        None
    }
    /// The node `pod` is nominated to, as this scheduler nominated it or
    /// else as its status says.
    fn nominated_node(&self, pod: &PodInfo) -> Option<&NodeInfo> {
        self.nomination(&pod.uid)
            .or_else(|| pod.nominated_node_name())
            .and_then(|n| self.node(n))
    }
    /// The PodDisruptionBudgets preemption tries not to violate.
    fn disruption_budgets(&self) -> &[DisruptionBudget] {
        &[]
    }
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Debug, Clone)]
pub struct DisruptionBudget {
    pub namespace: String,
    pub selector: labels::Selector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
}

/// Kinds of changes in the cluster that may make an unschedulable pod
/// schedulable (kube-scheduler's ClusterEvent, by resource and action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    NodeAdd,
    NodeLabelChange,
    NodeTaintChange,
    NodeAllocatableChange,
    /// `spec.unschedulable` turned false.
    NodeSchedulable,
    NodeDelete,
    /// A pod was bound (or appeared bound) to a node.
    AssignedPodAdd,
    /// A bound pod's labels changed.
    AssignedPodUpdate,
    /// A bound pod went away (deleted, or finished).
    AssignedPodDelete,
    /// The unscheduled pod itself changed.
    UnscheduledPodUpdate,
    NamespaceChange,
    PodDisruptionBudgetChange,
}

/// The base of every plugin: a name and the extension points it implements.
pub trait Plugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn pre_enqueue(&self) -> Option<&dyn PreEnqueue> {
        None
    }
    fn pre_filter(&self) -> Option<&dyn PreFilter> {
        None
    }
    fn filter(&self) -> Option<&dyn Filter> {
        None
    }
    fn post_filter(&self) -> Option<&dyn PostFilter> {
        None
    }
    fn pre_score(&self) -> Option<&dyn PreScore> {
        None
    }
    fn score(&self) -> Option<&dyn Score> {
        None
    }
    /// The events after which a pod this plugin rejected is worth trying
    /// again (EnqueueExtensions).
    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }
}

/// Whether the pod may enter the active queue at all.
pub trait PreEnqueue {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
}

/// Result of PreFilter: the nodes that can possibly fit (`None`: all).
pub type PreFilterResult = Option<HashSet<String>>;

pub trait PreFilter {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
    ) -> (Status, PreFilterResult);

    /// Updates the state as if `other` were added to `node` (preemption
    /// adds victims back one by one).
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _other: &PodInfo, _node: &NodeInfo) {
    }

    /// Updates the state as if `other` were removed from `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _other: &PodInfo,
        _node: &NodeInfo,
    ) {
    }
}

pub trait Filter {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// What a PostFilter plugin found: a node to nominate, and its message.
#[derive(Debug, Clone, Default)]
pub struct PostFilterResult {
    pub nominated_node: Option<String>,
    /// Victims to evict (preemption), with the node.
    pub victims: Vec<Arc<PodInfo>>,
    /// Lower-priority pods nominated to the same node, whose nomination is
    /// cleared.
    pub nominations_to_clear: Vec<Arc<PodInfo>>,
    /// Appended to the FailedScheduling message.
    pub message: String,
}

pub trait PostFilter {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        statuses: &HashMap<String, Status>,
        framework: &Framework,
    ) -> PostFilterResult;
}

pub trait PreScore {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        nodes: &[&NodeInfo],
    ) -> Status;
}

pub trait Score {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Brings raw scores into 0..=MAX_NODE_SCORE (all nodes at once).
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Why a pod fits nowhere, as users read it.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub statuses: HashMap<String, Status>,
    pub unschedulable_plugins: HashSet<&'static str>,
    pub pre_filter_message: String,
    pub post_filter_message: String,
}

/// A pod that fits on no node.
#[derive(Debug, Clone, Default)]
pub struct FitError {
    pub num_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl std::fmt::Display for FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {a: b}, 2
    /// Insufficient cpu. preemption: …`, reasons counted and sorted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        let d = &self.diagnosis;
        if !d.pre_filter_message.is_empty() {
            write!(f, " {}.", d.pre_filter_message)?;
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for s in d.statuses.values() {
                for r in &s.reasons {
                    *counts.entry(r).or_default() += 1;
                }
            }
            let mut reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            reasons.sort();
            if !reasons.is_empty() {
                write!(f, " {}.", reasons.join(", "))?;
            }
        }
        if !d.post_filter_message.is_empty() {
            write!(f, " {}", d.post_filter_message)?;
        }
        Ok(())
    }
}

/// Where a pod goes.
#[derive(Debug, Clone)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated: usize,
    pub feasible: usize,
}

/// A profile: the plugins at each extension point, score weights, and how
/// many feasible nodes are enough.
#[derive(Debug, Clone)]
pub struct Profile {
    pub scheduler_name: String,
    pub pre_enqueue: Vec<&'static str>,
    pub pre_filter: Vec<&'static str>,
    pub filter: Vec<&'static str>,
    pub post_filter: Vec<&'static str>,
    pub pre_score: Vec<&'static str>,
    pub score: Vec<(&'static str, i64)>,
    /// 0 picks kube-scheduler's adaptive percentage.
    pub percentage_of_nodes_to_score: u32,
}

/// A plugin set built from a profile and a registry.
#[derive(Debug)]
pub struct Framework {
    pub profile: Profile,
    plugins: Vec<Arc<dyn Plugin>>,
    pre_enqueue: Vec<usize>,
    pre_filter: Vec<usize>,
    filter: Vec<usize>,
    post_filter: Vec<usize>,
    pre_score: Vec<usize>,
    score: Vec<(usize, i64)>,
}

/// A profile naming a plugin the registry lacks, or one without the
/// extension point it is listed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

impl Framework {
    pub fn new(
        profile: Profile,
        registry: &crate::registry::Registry,
    ) -> Result<Self, ProfileError> {
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        let mut index = |name: &str| -> Result<usize, ProfileError> {
            if let Some(i) = plugins.iter().position(|p| p.name() == name) {
                return Ok(i);
            }
            let plugin = registry
                .make(name)
                .ok_or_else(|| ProfileError(format!("no plugin named {name:?} is registered")))?;
            plugins.push(plugin);
            Ok(plugins.len() - 1)
        };
        let mut points = |names: &[&'static str]| -> Result<Vec<usize>, ProfileError> {
            names.iter().map(|n| index(n)).collect()
        };
        let pre_enqueue = points(&profile.pre_enqueue)?;
        let pre_filter = points(&profile.pre_filter)?;
        let filter = points(&profile.filter)?;
        let post_filter = points(&profile.post_filter)?;
        let pre_score = points(&profile.pre_score)?;
        let score_names: Vec<&'static str> = profile.score.iter().map(|(n, _)| *n).collect();
        let score_idx = points(&score_names)?;
        let score = score_idx
            .into_iter()
            .zip(profile.score.iter().map(|(_, w)| *w))
            .collect();
        let fw = Self {
            profile,
            plugins,
            pre_enqueue,
            pre_filter,
            filter,
            post_filter,
            pre_score,
            score,
        };
        let check = |idx: &[usize], point: &str, has: &dyn Fn(&dyn Plugin) -> bool| {
            for &i in idx {
                if !has(fw.plugins[i].as_ref()) {
                    return Err(ProfileError(format!(
                        "plugin {:?} does not extend {point}",
                        fw.plugins[i].name()
                    )));
                }
            }
            Ok(())
        };
        check(&fw.pre_enqueue, "PreEnqueue", &|p| {
            p.pre_enqueue().is_some()
        })?;
        check(&fw.pre_filter, "PreFilter", &|p| p.pre_filter().is_some())?;
        check(&fw.filter, "Filter", &|p| p.filter().is_some())?;
        check(&fw.post_filter, "PostFilter", &|p| {
            p.post_filter().is_some()
        })?;
        check(&fw.pre_score, "PreScore", &|p| p.pre_score().is_some())?;
        let score_idx: Vec<usize> = fw.score.iter().map(|(i, _)| *i).collect();
        check(&score_idx, "Score", &|p| p.score().is_some())?;
        Ok(fw)
    }

    /// Every plugin of the profile, once.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// The first PreEnqueue plugin that holds the pod back.
    pub fn run_pre_enqueue(&self, pod: &PodInfo) -> Status {
        for &i in &self.pre_enqueue {
            let p = &self.plugins[i];
            if let Some(x) = p.pre_enqueue() {
                let s = x.pre_enqueue(pod);
                if !s.is_success() {
                    return s.by(p.name());
                }
            }
        }
        Status::success()
    }

    /// Runs PreFilter; the nodes to consider (`None`: all), or the status
    /// that rules the pod out everywhere.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
    ) -> Result<PreFilterResult, Status> {
        let mut result: PreFilterResult = None;
        let mut skipped = SkippedFilters::default();
        for &i in &self.pre_filter {
            let p = &self.plugins[i];
            let Some(x) = p.pre_filter() else { continue };
            let (s, r) = x.pre_filter(state, pod, snapshot);
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    skipped.insert(i);
                    continue;
                }
                _ => return Err(s.by(p.name())),
            }
            if let Some(r) = r {
                result = Some(match result {
                    None => r,
                    Some(prev) => prev.intersection(&r).cloned().collect(),
                });
                if result.as_ref().is_some_and(HashSet::is_empty) {
                    return Err(Status::unresolvable(format!(
                        "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                        p.name()
                    ))
                    .by(p.name()));
                }
            }
        }
        state.write(SKIPPED_FILTERS, skipped);
        Ok(result)
    }

    /// Runs every Filter plugin on one node, stopping at the first that
    /// rejects it.
    pub fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let skipped = state.read::<SkippedFilters>(SKIPPED_FILTERS);
        for &i in &self.filter {
            let p = &self.plugins[i];
            if skipped.is_some_and(|s| s.contains(i)) {
                continue;
            }
            let Some(x) = p.filter() else { continue };
            let s = x.filter(state, pod, node);
            if !s.is_success() {
                return s.by(p.name());
            }
        }
        Status::success()
    }

    /// Runs the filters as if the pods nominated to the node with at least
    /// this pod's priority were already there, so that room preemption
    /// made for them is not taken (kube-scheduler's
    /// `RunFilterPluginsWithNominatedPods`).
    pub fn run_filters_with_nominated(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &dyn Snapshot,
    ) -> Status {
        let mut nominated = snapshot
            .nominated(&node.name)
            .iter()
            .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
            .peekable();
        if nominated.peek().is_none() {
            return self.run_filters(state, pod, node);
        }
        let mut with = node.clone();
        let mut state = state.clone();
        for p in nominated {
            with.add_pod(p.clone());
            self.add_pod(&mut state, pod, p, &with);
        }
        self.run_filters(&state, pod, &with)
    }

    /// Tells the PreFilter plugins that `other` leaves `node` (preemption).
    pub fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
    ) {
        for &i in &self.pre_filter {
            if let Some(x) = self.plugins[i].pre_filter() {
                x.remove_pod(state, pod, other, node);
            }
        }
    }

    /// Tells the PreFilter plugins that `other` joins `node` (preemption).
    pub fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        for &i in &self.pre_filter {
            if let Some(x) = self.plugins[i].pre_filter() {
                x.add_pod(state, pod, other, node);
            }
        }
    }

    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        statuses: &HashMap<String, Status>,
    ) -> PostFilterResult {
        let mut last = PostFilterResult::default();
        for &i in &self.post_filter {
            if let Some(x) = self.plugins[i].post_filter() {
                let r = x.post_filter(state, pod, snapshot, statuses, self);
                if r.nominated_node.is_some() {
                    return r;
                }
                last = r;
            }
        }
        last
    }

    /// Finds the node for `pod`: filters nodes from `start` (round robin)
    /// until enough fit, then scores those. Returns the next start.
    pub fn schedule(
        &self,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        start: usize,
    ) -> (Result<ScheduleResult, FitError>, CycleState, usize) {
        let mut state = CycleState::default();
        let all = snapshot.nodes();
        let num_nodes = all.len();
        let mut diagnosis = Diagnosis::default();
        if num_nodes == 0 {
            return (
                Err(FitError {
                    num_nodes,
                    diagnosis: Diagnosis {
                        pre_filter_message: "no nodes available to schedule pods".into(),
                        ..diagnosis
                    },
                }),
                state,
                start,
            );
        }
        let allowed = match self.run_pre_filter(&mut state, pod, snapshot) {
            Ok(r) => r,
            Err(s) => {
                diagnosis.unschedulable_plugins.insert(s.plugin);
                diagnosis.pre_filter_message = s.reasons.join(", ");
                for n in all {
                    diagnosis.statuses.insert(n.name.clone(), s.clone());
                }
                return (
                    Err(FitError {
                        num_nodes,
                        diagnosis,
                    }),
                    state,
                    start,
                );
            }
        };
        // A nominated node (preemption made room there) is tried first.
        if let Some(node) = snapshot.nominated_node(pod)
            && allowed.as_ref().is_none_or(|a| a.contains(&node.name))
            && self
                .run_filters_with_nominated(&state, pod, node, snapshot)
                .is_success()
        {
            let result = ScheduleResult {
                node: node.name.clone(),
                evaluated: 1,
                feasible: 1,
            };
            return (Ok(result), state, start);
        }
        let want = self.num_feasible_nodes_to_find(num_nodes);
        let mut feasible: Vec<&NodeInfo> = Vec::new();
        let mut evaluated = 0;
        let mut next = start;
        for k in 0..num_nodes {
            let node = &all[(start + k) % num_nodes];
            next = (start + k + 1) % num_nodes;
            if let Some(a) = &allowed
                && !a.contains(&node.name)
            {
                // Nodes PreFilter ruled out count as rejected by it.
                diagnosis.statuses.insert(
                    node.name.clone(),
                    Status::unresolvable("node is filtered out by the prefilter result")
                        .by("PreFilter"),
                );
                continue;
            }
            evaluated += 1;
            let s = self.run_filters_with_nominated(&state, pod, node, snapshot);
            if s.is_success() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                diagnosis.unschedulable_plugins.insert(s.plugin);
                diagnosis.statuses.insert(node.name.clone(), s);
            }
        }
        if feasible.is_empty() {
            return (
                Err(FitError {
                    num_nodes,
                    diagnosis,
                }),
                state,
                next,
            );
        }
        let node = if feasible.len() == 1 {
            feasible[0].name.clone()
        } else {
            self.select_host(&mut state, pod, snapshot, &feasible)
        };
        let result = ScheduleResult {
            node,
            evaluated,
            feasible: feasible.len(),
        };
        (Ok(result), state, next)
    }

    /// Scores the feasible nodes and picks the best (ties at random).
    fn select_host(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        nodes: &[&NodeInfo],
    ) -> String {
        let mut skipped = HashSet::new();
        for &i in &self.pre_score {
            let p = &self.plugins[i];
            if let Some(x) = p.pre_score()
                && x.pre_score(state, pod, snapshot, nodes).code == Code::Skip
            {
                skipped.insert(p.name());
            }
        }
        let mut totals = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for &(i, weight) in &self.score {
            let p = &self.plugins[i];
            if skipped.contains(p.name()) {
                continue;
            }
            let Some(x) = p.score() else { continue };
            for (s, n) in scores.iter_mut().zip(nodes) {
                *s = x.score(state, pod, n);
            }
            x.normalize(state, pod, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        let mut best = 0;
        let mut ties = 1;
        for i in 1..nodes.len() {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if fastrand::usize(..ties) == 0 {
                    best = i;
                }
            }
        }
        nodes[best].name.clone()
    }

    /// kube-scheduler's `numFeasibleNodesToFind`: every node up to 100,
    /// else a percentage (adaptive: 50% less 1% per 125 nodes, at least
    /// 5%), never fewer than 100.
    pub fn num_feasible_nodes_to_find(&self, num_nodes: usize) -> usize {
        const MIN_FEASIBLE: usize = 100;
        if num_nodes < MIN_FEASIBLE {
            return num_nodes;
        }
        let mut pct = self.profile.percentage_of_nodes_to_score as usize;
        if pct == 0 {
            pct = 50usize.saturating_sub(num_nodes / 125).max(5);
        }
        if pct >= 100 {
            return num_nodes;
        }
        (num_nodes * pct / 100).max(MIN_FEASIBLE)
    }
}

/// The PreFilter plugins that returned Skip: their filters do not run.
const SKIPPED_FILTERS: &str = "framework/skipped-filters";

/// The plugins (by index in the profile) whose PreFilter said Skip: their
/// Filter is not run this cycle.
#[derive(Debug, Default, Clone)]
struct SkippedFilters(Vec<bool>);

impl SkippedFilters {
    fn insert(&mut self, plugin: usize) {
        if self.0.len() <= plugin {
            self.0.resize(plugin + 1, false);
        }
        self.0[plugin] = true;
    }

    fn contains(&self, plugin: usize) -> bool {
        self.0.get(plugin).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_counts_and_sorts_reasons() {
        let mut d = Diagnosis::default();
        d.statuses.insert(
            "a".into(),
            Status::unschedulable("node(s) had untolerated taint {dedicated: x}"),
        );
        d.statuses
            .insert("b".into(), Status::unschedulable("Insufficient cpu"));
        d.statuses
            .insert("c".into(), Status::unschedulable("Insufficient cpu"));
        let e = FitError {
            num_nodes: 3,
            diagnosis: d,
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, 2 Insufficient cpu."
        );
    }

    #[test]
    fn adaptive_percentage_of_nodes_to_score() {
        let fw = Framework::new(
            crate::registry::default_profile("default-scheduler"),
            &crate::registry::Registry::default(),
        )
        .expect("the default profile is valid");
        assert_eq!(fw.num_feasible_nodes_to_find(50), 50);
        assert_eq!(fw.num_feasible_nodes_to_find(1000), 420);
        assert_eq!(fw.num_feasible_nodes_to_find(5000), 500);
        assert_eq!(fw.num_feasible_nodes_to_find(200), 100);
    }
}
