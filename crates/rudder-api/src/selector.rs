//! Label and field selectors, with Kubernetes' syntax and semantics
//! (apimachinery pkg/labels and pkg/fields).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(input) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match (&r.op, value) {
                (Op::Exists, v) => v.is_some(),
                (Op::NotExists, v) => v.is_none(),
                (Op::Equals(want), v) => v == Some(want.as_str()),
                (Op::NotEquals(want), v) => v != Some(want.as_str()),
                (Op::In(set), v) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                (Op::NotIn(set), v) => v.is_none_or(|v| set.iter().all(|s| s != v)),
                (Op::Gt(n), v) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                (Op::Lt(n), v) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b`).
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_key(key)?;
        return Ok(Requirement {
            key: key.into(),
            op: Op::NotExists,
        });
    }
    for (token, make) in [
        ("!=", Op::NotEquals as fn(String) -> Op),
        ("==", Op::Equals as fn(String) -> Op),
        ("=", Op::Equals as fn(String) -> Op),
    ] {
        if let Some((key, value)) = part.split_once(token) {
            let (key, value) = (key.trim(), value.trim());
            validate_key(key)?;
            validate_value(value)?;
            return Ok(Requirement {
                key: key.into(),
                op: make(value.into()),
            });
        }
    }
    for (token, gt) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let key = key.trim();
            validate_key(key)?;
            let n: i64 = value.trim().parse().map_err(|_| {
                SelectorError(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer: {value}"
                ))
            })?;
            return Ok(Requirement {
                key: key.into(),
                op: if gt { Op::Gt(n) } else { Op::Lt(n) },
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim_start();
        let (notin, set) = if let Some(s) = rest.strip_prefix("notin") {
            (true, s)
        } else if let Some(s) = rest.strip_prefix("in") {
            (false, s)
        } else {
            return Err(SelectorError(format!(
                "unable to parse requirement: {part}"
            )));
        };
        validate_key(key)?;
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| {
                SelectorError(format!(
                    "unable to parse requirement: found '{set}', expected: '('"
                ))
            })?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        for v in &values {
            validate_value(v)?;
        }
        let op = if notin {
            Op::NotIn(values)
        } else {
            Op::In(values)
        };
        return Ok(Requirement {
            key: (*key).into(),
            op,
        });
    }
    validate_key(part)?;
    Ok(Requirement {
        key: part.into(),
        op: Op::Exists,
    })
}

/// A qualified name with an optional DNS-subdomain prefix, as label keys are.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(invalid_key(key));
            }
            name
        }
        None => key,
    };
    if crate::validation::is_qualified_name_part(name) {
        Ok(())
    } else {
        Err(invalid_key(key))
    }
}

fn invalid_key(key: &str) -> SelectorError {
    SelectorError(format!(
        "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', \
         and must start and end with an alphanumeric character"
    ))
}

fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || crate::validation::is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

/// A parsed field selector: `a=b`, `a==b`, `a!=b`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses and checks every field against the ones `supported` for the kind.
    pub fn parse(input: &str, supported: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !supported.contains(&field)
            {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), if any.
    pub fn name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, want)| {
            let got = field_value(object, field);
            (got == *want) == *equal
        })
    }
}

/// A field's value as a selector compares it: strings as they are, other
/// scalars printed, absent as "".
fn field_value(object: &Value, path: &str) -> String {
    let mut v = object;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A `LabelSelector` object (or a plain `map[string]string` selector, as
/// Services and ReplicationControllers have) in selector syntax.
pub fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        parts.extend(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))),
        );
    } else if let Some(labels) = sel
        .as_object()
        .filter(|m| !m.contains_key("matchExpressions"))
    {
        // A Service or ReplicationController selector is a plain map.
        parts.extend(
            labels
                .iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))),
        );
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        let (key, op) = (
            e["key"].as_str().unwrap_or(""),
            e["operator"].as_str().unwrap_or(""),
        );
        parts.push(match op {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => format!("{key} {op}"),
        });
    }
    parts.join(",")
}

/// The field selectors each kind supports beyond `metadata.name` and
/// `metadata.namespace` (kubernetes/kubernetes pkg/registry/*/strategy.go).
pub fn supported_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selectors_follow_kubernetes_semantics() {
        let l = labels(json!({"app": "web", "tier": "fe", "n": "5"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("missing in (db)", false),
            ("app=web,tier=fe", true),
            ("app=web,tier=be", false),
            ("n>4", true),
            ("n<4", false),
            ("app in (web,db),tier", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
        assert!(LabelSelector::parse("app!=x").unwrap().matches(None));
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for sel in [
            "app in web",
            "-bad=x",
            "app=bad value",
            "n>x",
            "a in (x",
            "app=x$",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel} parsed");
        }
    }

    #[test]
    fn field_selectors_check_support_and_match() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"},
                         "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running"}});
        let fields = supported_fields("", "Pod");
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", fields).unwrap();
        assert!(s.matches(&pod));
        assert!(
            FieldSelector::parse("spec.hostNetwork=true", fields)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("metadata.name=q", fields)
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=p", &[]).unwrap().name(),
            Some("p")
        );
        let err = FieldSelector::parse("spec.bogus=1", fields).unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.bogus");
        assert!(FieldSelector::parse("nonsense", fields).is_err());
    }
}
