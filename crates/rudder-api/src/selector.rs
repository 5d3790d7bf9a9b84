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

/// What selectors read of a stored object, as kube's GetAttrs gives it:
/// `metadata.name`, `metadata.namespace`, `metadata.labels` and the given
/// field paths, picked from the JSON without building the rest (a pod's
/// containers and managedFields are skipped, not allocated).
pub fn selectable(json: &[u8], fields: &[&str]) -> serde_json::Result<Value> {
    let mut paths = vec!["metadata.name", "metadata.namespace", "metadata.labels"];
    paths.extend_from_slice(fields);
    pick(json, &paths)
}

/// The members of a JSON object that dotted `paths` lead to (whole where a
/// path ends; absent ones left out), read without building the rest.
fn pick(json: &[u8], paths: &[&str]) -> serde_json::Result<Value> {
    let paths: Vec<Vec<&str>> = paths.iter().map(|f| f.split('.').collect()).collect();
    let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    let mut de = serde_json::Deserializer::from_slice(json);
    let picked = serde::de::DeserializeSeed::deserialize(Pick(&paths), &mut de)?;
    de.end()?;
    Ok(picked)
}

/// Keeps the members the paths lead to (whole where a path ends).
struct Pick<'p, 'a>(&'p [&'a [&'a str]]);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let key: &str = &key;
            let sub: Vec<&[&str]> = self
                .0
                .iter()
                .filter(|p| p.first() == Some(&key))
                .map(|p| &p[1..])
                .collect();
            if sub.is_empty() {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if sub.iter().any(|p| p.is_empty()) {
                out.insert(key.to_string(), map.next_value()?);
            } else {
                out.insert(key.to_string(), map.next_value_seed(Pick(&sub))?);
            }
        }
        Ok(Value::Object(out))
    }

    // Where an object was wanted, anything else reads as absent.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A member name, borrowed from the input unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn selectable_keeps_what_selectors_read_and_matches_as_the_whole() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "labels": {"app": "web", "tier": "front"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1", "hostNetwork": true, "schedulerName": "default-scheduler",
                "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready"}]}
        });
        let fields = supported_fields("", "Pod");
        let raw = serde_json::to_vec(&pod).unwrap();
        let picked = selectable(&raw, fields).unwrap();
        assert_eq!(
            picked,
            json!({
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "tier": "front"}},
                "spec": {"nodeName": "n1", "hostNetwork": true, "schedulerName": "default-scheduler"},
                "status": {"phase": "Running"}
            })
        );
        for (labels, fields_sel) in [
            ("app=web", "spec.nodeName=n1"),
            (
                "app in (web,db),tier",
                "status.phase!=Succeeded,status.phase!=Failed",
            ),
            ("app!=web", ""),
            ("", "spec.nodeName="),
            ("", "spec.hostNetwork=true,metadata.namespace=ns"),
            ("", "spec.nodeName!=,metadata.name=q"),
        ] {
            let l = LabelSelector::parse(labels).unwrap();
            let f = FieldSelector::parse(fields_sel, fields).unwrap();
            let on = |v: &Value| l.matches(v["metadata"]["labels"].as_object()) && f.matches(v);
            assert_eq!(on(&picked), on(&pod), "{labels} / {fields_sel}");
        }
        // Not an object where one was wanted, escaped names, bad JSON.
        let odd = br#"{"metadata":[1,2],"spec":"x","status":{"phase":"Pending"}}"#;
        assert_eq!(
            selectable(odd, fields).unwrap(),
            json!({"metadata": null, "spec": null, "status": {"phase": "Pending"}})
        );
        assert!(selectable(b"{\"metadata\":", fields).is_err());
        assert!(selectable(b"{} x", fields).is_err());
    }

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
