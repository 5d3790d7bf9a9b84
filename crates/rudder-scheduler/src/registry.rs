//! Plugins by name: a registry of factories, as kube-scheduler's
//! `frameworkruntime.Registry`, and the default profile. Adding a plugin
//! is one file under `plugins/` and one line here.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::{Plugin, Profile};
use crate::plugins::*;

/// Makes a plugin.
pub type Factory = fn() -> Arc<dyn Plugin>;

/// Every plugin the scheduler can run, by name.
#[derive(Debug, Clone)]
pub struct Registry {
    factories: BTreeMap<&'static str, Factory>,
}

impl Default for Registry {
    /// The in-tree plugins.
    fn default() -> Self {
        let mut r = Self {
            factories: BTreeMap::new(),
        };
        r.register(scheduling_gates::NAME, || {
            Arc::new(scheduling_gates::SchedulingGates)
        });
        r.register(node_unschedulable::NAME, || {
            Arc::new(node_unschedulable::NodeUnschedulable)
        });
        r.register(node_name::NAME, || Arc::new(node_name::NodeName));
        r.register(node_ports::NAME, || Arc::new(node_ports::NodePorts));
        r.register(node_resources_fit::NAME, || {
            Arc::new(node_resources_fit::NodeResourcesFit)
        });
        r.register(balanced_allocation::NAME, || {
            Arc::new(balanced_allocation::BalancedAllocation)
        });
        r.register(node_affinity::NAME, || {
            Arc::new(node_affinity::NodeAffinity)
        });
        r.register(taint_toleration::NAME, || {
            Arc::new(taint_toleration::TaintToleration)
        });
        r.register(image_locality::NAME, || {
            Arc::new(image_locality::ImageLocality)
        });
        r.register(inter_pod_affinity::NAME, || {
            Arc::new(inter_pod_affinity::InterPodAffinity)
        });
        r.register(pod_topology_spread::NAME, || {
            Arc::new(pod_topology_spread::PodTopologySpread)
        });
        r.register(default_preemption::NAME, || {
            Arc::new(default_preemption::DefaultPreemption)
        });
        r
    }
}

impl Registry {
    /// Adds (or replaces) a plugin factory.
    pub fn register(&mut self, name: &'static str, factory: Factory) {
        self.factories.insert(name, factory);
    }

    pub fn make(&self, name: &str) -> Option<Arc<dyn Plugin>> {
        self.factories.get(name).map(|f| f())
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }
}

/// kube-scheduler's default profile (its `getDefaultPlugins`), with the
/// plugins Rudder has.
pub fn default_profile(scheduler_name: &str) -> Profile {
    Profile {
        scheduler_name: scheduler_name.to_string(),
        pre_enqueue: vec![scheduling_gates::NAME],
        pre_filter: vec![
            node_affinity::NAME,
            node_ports::NAME,
            pod_topology_spread::NAME,
            inter_pod_affinity::NAME,
        ],
        filter: vec![
            node_unschedulable::NAME,
            node_name::NAME,
            taint_toleration::NAME,
            node_affinity::NAME,
            node_ports::NAME,
            node_resources_fit::NAME,
            pod_topology_spread::NAME,
            inter_pod_affinity::NAME,
        ],
        post_filter: vec![default_preemption::NAME],
        pre_score: vec![
            node_affinity::NAME,
            pod_topology_spread::NAME,
            inter_pod_affinity::NAME,
            image_locality::NAME,
        ],
        score: vec![
            (taint_toleration::NAME, 3),
            (node_affinity::NAME, 2),
            (node_resources_fit::NAME, 1),
            (pod_topology_spread::NAME, 2),
            (inter_pod_affinity::NAME, 2),
            (balanced_allocation::NAME, 1),
            (image_locality::NAME, 1),
        ],
        percentage_of_nodes_to_score: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_builds_from_the_registry() {
        let fw = crate::framework::Framework::new(
            default_profile("default-scheduler"),
            &Registry::default(),
        )
        .expect("valid");
        assert!(fw.plugins().len() >= 8);
        let mut bad = default_profile("x");
        bad.filter.push("NoSuchPlugin");
        let e = crate::framework::Framework::new(bad, &Registry::default())
            .expect_err("unknown plugin");
        assert_eq!(
            e.to_string(),
            "no plugin named \"NoSuchPlugin\" is registered"
        );
        let mut wrong = default_profile("x");
        wrong.filter.push(image_locality::NAME);
        let e = crate::framework::Framework::new(wrong, &Registry::default())
            .expect_err("not a filter");
        assert_eq!(
            e.to_string(),
            "plugin \"ImageLocality\" does not extend Filter"
        );
    }
}
