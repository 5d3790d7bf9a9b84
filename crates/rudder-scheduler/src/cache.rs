//! The scheduler's cache: every node with the pods bound (or assumed
//! bound) to it, built from watches. It is also the snapshot a scheduling
//! cycle reads: cycles run one at a time on the scheduler's task, between
//! cache updates, so no copy is needed.
//!
//! # Guarantees
//! A pod the scheduler chose a node for is *assumed* there at once, before
//! its binding reaches the API, so the next cycle already counts it; the
//! watch confirming the binding replaces the assumed pod, and a failed
//! binding forgets it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::framework::{ClusterEvent, DisruptionBudget, NodeInfo, PodInfo, Snapshot};

#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods bound to nodes the cache has not seen (yet, or any more).
    ghosts: HashMap<String, NodeInfo>,
    /// Each pod's node, by uid.
    pod_node: HashMap<String, String>,
    assumed: HashSet<String>,
    image_nodes: HashMap<String, usize>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// PodDisruptionBudgets by namespace and name.
    budget_keys: Vec<(String, String)>,
    budgets: Vec<DisruptionBudget>,
    /// Pods nominated to nodes by preemption, by node; and each one's node.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: HashMap<String, String>,
}

impl Cache {
    /// Adds or updates a node; the changes that may let waiting pods fit.
    pub fn upsert_node(&mut self, node: Arc<Node>) -> Vec<ClusterEvent> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let i = match self.index.get(&name) {
            Some(&i) => i,
            None => {
                let info = self
                    .ghosts
                    .remove(&name)
                    .unwrap_or_else(|| NodeInfo::new(&name));
                self.nodes.push(info);
                self.index.insert(name.clone(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        let info = &mut self.nodes[i];
        let before = info.node.is_some().then(|| {
            (
                info.labels.clone(),
                info.taints.clone(),
                info.allocatable.clone(),
                info.unschedulable,
            )
        });
        for image in info.images.keys() {
            if let Some(n) = self.image_nodes.get_mut(image) {
                *n = n.saturating_sub(1);
            }
        }
        info.set_node(node);
        for image in info.images.keys() {
            *self.image_nodes.entry(image.clone()).or_default() += 1;
        }
        let Some((labels, taints, allocatable, unschedulable)) = before else {
            return vec![ClusterEvent::NodeAdd];
        };
        let mut events = Vec::new();
        if labels != info.labels {
            events.push(ClusterEvent::NodeLabelChange);
        }
        if taints != info.taints {
            events.push(ClusterEvent::NodeTaintChange);
        }
        if allocatable != info.allocatable {
            events.push(ClusterEvent::NodeAllocatableChange);
        }
        if unschedulable && !info.unschedulable {
            events.push(ClusterEvent::NodeSchedulable);
        }
        events
    }

    /// Removes a node; its pods wait as ghosts until they go too.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let mut info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        for image in info.images.keys() {
            if let Some(n) = self.image_nodes.get_mut(image) {
                *n = n.saturating_sub(1);
            }
        }
        if !info.pods.is_empty() {
            info.node = None;
            self.ghosts.insert(name.to_string(), info);
        }
    }

    /// The names of every node, to find those no longer listed.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        match self.index.get(name) {
            Some(&i) => &mut self.nodes[i],
            None => self
                .ghosts
                .entry(name.to_string())
                .or_insert_with(|| NodeInfo::new(name)),
        }
    }

    /// Adds or replaces a pod bound to `node` (confirming an assumed one).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        self.pod_node.insert(pod.uid.clone(), node.to_string());
        self.node_mut(node).add_pod(pod);
    }

    /// Removes a pod wherever it is; whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        self.assumed.remove(uid);
        let Some(node) = self.pod_node.remove(uid) else {
            return false;
        };
        let removed = self.node_mut(&node).remove_pod(uid);
        if let Some(g) = self.ghosts.get(&node)
            && g.pods.is_empty()
        {
            self.ghosts.remove(&node);
        }
        removed
    }

    /// Counts the pod on `node` before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        let uid = pod.uid.clone();
        self.add_pod(pod, node);
        self.assumed.insert(uid);
    }

    /// Undoes `assume` (the binding failed).
    pub fn forget(&mut self, uid: &str) {
        if self.assumed.contains(uid) {
            self.remove_pod(uid);
        }
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.assumed.contains(uid)
    }

    /// The node a pod is (assumed) bound to.
    pub fn node_of(&self, uid: &str) -> Option<&str> {
        self.pod_node.get(uid).map(String::as_str)
    }

    /// Every pod's uid (confirmed and assumed).
    pub fn pod_uids(&self) -> Vec<String> {
        self.pod_node.keys().cloned().collect()
    }

    /// How many pods the cache counts.
    pub fn pod_count(&self) -> usize {
        self.pod_node.len()
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) -> bool {
        self.namespaces.insert(name.to_string(), labels.clone()) != Some(labels)
    }

    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }

    pub fn budget_names(&self) -> Vec<(String, String)> {
        self.budget_keys.clone()
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Records that `pod` is to run on `node` once its victims are gone.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.clear_nomination(&pod.uid);
        self.nominated_node
            .insert(pod.uid.clone(), node.to_string());
        self.nominated
            .entry(node.to_string())
            .or_default()
            .push(pod);
    }

    pub fn clear_nomination(&mut self, uid: &str) {
        let Some(node) = self.nominated_node.remove(uid) else {
            return;
        };
        if let Some(pods) = self.nominated.get_mut(&node) {
            pods.retain(|p| p.uid != uid);
            if pods.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    pub fn set_budget(&mut self, name: &str, budget: DisruptionBudget) {
        let key = (budget.namespace.clone(), name.to_string());
        match self.budget_keys.iter().position(|k| *k == key) {
            Some(i) => self.budgets[i] = budget,
            None => {
                self.budget_keys.push(key);
                self.budgets.push(budget);
            }
        }
    }

    pub fn remove_budget(&mut self, namespace: &str, name: &str) {
        if let Some(i) = self
            .budget_keys
            .iter()
            .position(|(ns, n)| ns == namespace && n == name)
        {
            self.budget_keys.swap_remove(i);
            self.budgets.swap_remove(i);
        }
    }
}

impl Snapshot for Cache {
    fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(namespace)
    }

    fn image_nodes(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    fn disruption_budgets(&self) -> &[DisruptionBudget] {
        &self.budgets
    }

    fn nominated(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map_or(&[], Vec::as_slice)
    }

    fn nomination(&self, uid: &str) -> Option<&str> {
        self.nominated_node.get(uid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut cache = Cache::default();
        assert_eq!(
            cache.upsert_node(Arc::new(node("n1").node)),
            [ClusterEvent::NodeAdd]
        );
        let p = Arc::new(pod("p").requests("1", "1Gi").info());
        cache.assume(p.clone(), "n1");
        assert_eq!(cache.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
        cache.forget(&p.uid);
        assert_eq!(cache.node("n1").map(|n| n.requested.milli_cpu), Some(0));
        cache.assume(p.clone(), "n1");
        // The watch confirms: the pod stays, no longer assumed.
        cache.add_pod(p.clone(), "n1");
        assert!(!cache.is_assumed(&p.uid));
        cache.forget(&p.uid);
        assert_eq!(cache.node("n1").map(|n| n.pods.len()), Some(1));
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_them() {
        let mut cache = Cache::default();
        cache.add_pod(Arc::new(pod("p").requests("1", "1Gi").info()), "later");
        assert!(cache.node("later").is_none());
        cache.upsert_node(Arc::new(node("later").node));
        assert_eq!(cache.node("later").map(|n| n.pods.len()), Some(1));
        cache.remove_node("later");
        assert!(cache.nodes().is_empty());
        cache.upsert_node(Arc::new(node("later").node));
        assert_eq!(cache.node("later").map(|n| n.pods.len()), Some(1));
    }

    #[test]
    fn node_updates_report_what_changed() {
        let mut cache = Cache::default();
        cache.upsert_node(Arc::new(node("n").node));
        assert!(cache.upsert_node(Arc::new(node("n").node)).is_empty());
        assert_eq!(
            cache.upsert_node(Arc::new(node("n").label("zone", "a").node)),
            [ClusterEvent::NodeLabelChange]
        );
        let mut cordoned = node("n").label("zone", "a");
        cordoned.spec_mut().unschedulable = Some(true);
        assert!(cache.upsert_node(Arc::new(cordoned.node)).is_empty());
        assert_eq!(
            cache.upsert_node(Arc::new(node("n").label("zone", "a").node)),
            [ClusterEvent::NodeSchedulable]
        );
    }
}
