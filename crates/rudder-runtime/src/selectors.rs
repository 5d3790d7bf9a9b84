//! Label selectors, node selector terms and tolerations on typed objects,
//! with apimachinery's semantics (`labels.Selector`,
//! `NodeSelectorRequirement`, `Toleration.ToleratesTaint`): what the
//! scheduler and the DaemonSet controller both decide pods' places by.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
            (Op::In(_), None) => false,
            (Op::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }
}

/// A parsed label selector. An invalid one selects nothing, as
/// `LabelSelectorAsSelector` failing does for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// A `metav1.LabelSelector`; `None` selects nothing (a nil selector),
    /// an empty one everything.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Self {
        let Some(sel) = sel else {
            return Self::nothing();
        };
        let mut requirements: Vec<Requirement> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Op::In(vec![v.clone()]),
            })
            .collect();
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" if !values.is_empty() => Op::In(values),
                "NotIn" if !values.is_empty() => Op::NotIn(values),
                "Exists" if values.is_empty() => Op::Exists,
                "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
                _ => return Self::nothing(),
            };
            requirements.push(Requirement {
                key: e.key.clone(),
                op,
            });
        }
        Self {
            requirements,
            nothing: false,
        }
    }

    /// A `map[string]string` selector (nodeSelector, Service selector).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        Self {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: Op::In(vec![v.clone()]),
                })
                .collect(),
            nothing: false,
        }
    }

    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
    }

    /// Whether the selector selects everything (empty, not nil).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// `requiredDuringSchedulingIgnoredDuringExecution` node affinity: any
/// term matches (its expressions on labels and its fields on the name all
/// hold); a term with neither matches nothing.
#[derive(Debug, Clone, Default)]
pub struct NodeSelectorTerms {
    terms: Vec<(Vec<Requirement>, Vec<Requirement>)>,
}

fn node_requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let values = r.values.clone().unwrap_or_default();
    let single = || values.first().and_then(|v| v.parse::<i64>().ok());
    let op = match r.operator.as_str() {
        "In" if !values.is_empty() => Op::In(values.clone()),
        "NotIn" if !values.is_empty() => Op::NotIn(values.clone()),
        "Exists" if values.is_empty() => Op::Exists,
        "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
        "Gt" if values.len() == 1 => Op::Gt(single()?),
        "Lt" if values.len() == 1 => Op::Lt(single()?),
        _ => return None,
    };
    Some(Requirement {
        key: r.key.clone(),
        op,
    })
}

impl NodeSelectorTerms {
    pub fn new(sel: &NodeSelector) -> Self {
        Self {
            terms: sel
                .node_selector_terms
                .iter()
                .filter_map(Self::term)
                .collect(),
        }
    }

    /// A single term (a preferred scheduling term's preference); `None` if
    /// it is invalid.
    pub fn single(term: &NodeSelectorTerm) -> Self {
        Self {
            terms: Self::term(term).into_iter().collect(),
        }
    }

    fn term(t: &NodeSelectorTerm) -> Option<(Vec<Requirement>, Vec<Requirement>)> {
        let exprs: Option<Vec<_>> = t
            .match_expressions
            .iter()
            .flatten()
            .map(node_requirement)
            .collect();
        let fields: Option<Vec<_>> = t
            .match_fields
            .iter()
            .flatten()
            .filter(|f| f.key == "metadata.name")
            .map(node_requirement)
            .collect();
        let (exprs, fields) = (exprs?, fields?);
        (!exprs.is_empty() || !fields.is_empty()).then_some((exprs, fields))
    }

    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().any(|(exprs, fields)| {
            exprs
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
                && fields.iter().all(|r| r.matches(Some(name)))
        })
    }
}

/// A pod's `spec.nodeSelector` and required node affinity together
/// (kube's `GetRequiredNodeAffinity`): a node must match both.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    selector: Option<Selector>,
    terms: Option<NodeSelectorTerms>,
}

impl RequiredNodeAffinity {
    pub fn of(spec: Option<&PodSpec>) -> Self {
        Self {
            selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .filter(|m| !m.is_empty())
                .map(Selector::from_map),
            terms: spec
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(NodeSelectorTerms::new),
        }
    }

    /// Whether the node named `name` with `labels` matches.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
            && self.terms.as_ref().is_none_or(|t| t.matches(name, labels))
    }

    pub fn is_empty(&self) -> bool {
        self.selector.is_none() && self.terms.is_none()
    }
}

/// Whether a toleration tolerates a taint (`Toleration.ToleratesTaint`):
/// same effect (or any), same key (or any, with Exists), and for Equal the
/// same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The first of `taints` with one of `effects` that no toleration
/// tolerates (kube's `FindMatchingUntoleratedTaint`).
pub fn untolerated<'t>(
    taints: &'t [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'t Taint> {
    taints.iter().find(|taint| {
        effects.contains(&taint.effect.as_str()) && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_apimachinery() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let s = Selector::from_label_selector(Some(&sel));
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
        assert!(!Selector::from_label_selector(None).matches(&labels(&[])));
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default())).matches(&labels(&[]))
        );
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(!Selector::from_label_selector(Some(&bad)).matches(&labels(&[("x", "")])));
    }

    #[test]
    fn node_selector_terms_or_terms_and_expressions() {
        let req = |k: &str, op: &str, v: &[&str]| NodeSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect()),
        };
        let sel = NodeSelector {
            node_selector_terms: vec![
                NodeSelectorTerm {
                    match_expressions: Some(vec![
                        req("zone", "In", &["a", "b"]),
                        req("cores", "Gt", &["4"]),
                    ]),
                    match_fields: None,
                },
                NodeSelectorTerm {
                    match_expressions: None,
                    match_fields: Some(vec![req("metadata.name", "In", &["n9"])]),
                },
                NodeSelectorTerm::default(),
            ],
        };
        let t = NodeSelectorTerms::new(&sel);
        assert!(t.matches("n1", &labels(&[("zone", "a"), ("cores", "8")])));
        assert!(!t.matches("n1", &labels(&[("zone", "a"), ("cores", "2")])));
        assert!(!t.matches("n1", &labels(&[("zone", "c"), ("cores", "8")])));
        assert!(t.matches("n9", &labels(&[])));
        assert!(!NodeSelectorTerms::new(&NodeSelector::default()).matches("n1", &labels(&[])));
    }
}
