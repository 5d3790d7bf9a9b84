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
    terms: Vec<(&'static Field, bool, String)>,
}

/// `metadata.name` and `metadata.namespace`, which every kind's selectors
/// read (cluster-scoped kinds with a conversion of their own refuse the
/// namespace).
const NAME: Field = Field::new("metadata.name", &["metadata.name"], "");
const NAMESPACE: Field = Field::new("metadata.namespace", &["metadata.namespace"], "");

impl FieldSelector {
    /// Parses and checks every field against the ones the kind supports.
    pub fn parse(input: &str, fields: &'static Fields) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, equal, value) = if let Some((f, v)) = part.split_once("!=") {
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
            let label = label.trim();
            let field = match label {
                "metadata.name" => &NAME,
                "metadata.namespace" if fields.namespace => &NAMESPACE,
                _ => fields
                    .fields
                    .iter()
                    .find(|f| f.label == label)
                    .ok_or_else(|| fields.unsupported.error(label))?,
            };
            terms.push((field, equal, value.trim().to_string()));
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
            .find(|(f, eq, _)| f.label == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms
            .iter()
            .all(|(field, equal, want)| (field.value(object) == *want) == *equal)
    }
}

/// A field label a kind's selectors support, and how its value reads
/// (kube's `GetAttrs` / `ToSelectableFields`).
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    /// Where the value is: the first path with a non-empty value wins (an
    /// Event's `source` is its `source.component`, else its
    /// `reportingComponent`); none means the field is accepted but never
    /// set (a pod's `status.podIPs`).
    paths: &'static [&'static str],
    /// The value when no path has one: Go formats unset booleans and
    /// numbers as their zero (`spec.unschedulable` reads `false`).
    unset: &'static str,
}

impl Field {
    const fn new(label: &'static str, paths: &'static [&'static str], unset: &'static str) -> Self {
        Self {
            label,
            paths,
            unset,
        }
    }

    /// Strings as they are, booleans and numbers printed.
    fn value(&self, object: &Value) -> String {
        self.paths
            .iter()
            .find_map(|path| {
                let v = path.split('.').try_fold(object, |v, part| v.get(part))?;
                match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            })
            .unwrap_or_else(|| self.unset.to_string())
    }
}

/// The field selectors of a kind.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields {
    /// Whether `metadata.namespace` is accepted.
    namespace: bool,
    fields: &'static [Field],
    /// The JSON paths the fields read, gathered once (see [`Fields::pick`]).
    paths: std::sync::OnceLock<Vec<&'static str>>,
    unsupported: Unsupported,
}

impl Fields {
    const fn new(namespace: bool, fields: &'static [Field], unsupported: Unsupported) -> Self {
        Self {
            namespace,
            fields,
            paths: std::sync::OnceLock::new(),
            unsupported,
        }
    }

    /// The JSON paths the fields read, for [`selectable`].
    pub fn pick(&self) -> &[&'static str] {
        self.paths.get_or_init(|| {
            let mut paths: Vec<&'static str> = Vec::new();
            for path in self.fields.iter().flat_map(|f| f.paths) {
                if !paths.contains(path) {
                    paths.push(path);
                }
            }
            paths
        })
    }
}

/// How kube-apiserver words the refusal of an unsupported field label:
/// its kinds with a field label conversion of their own, those with the
/// default one (name and namespace only), and the Job's.
#[derive(Debug, PartialEq, Eq)]
enum Unsupported {
    Plain,
    MetaOnly,
    Job,
}

impl Unsupported {
    fn error(&self, label: &str) -> SelectorError {
        SelectorError(match self {
            Self::Plain => format!("field label not supported: {label}"),
            Self::MetaOnly => format!(
                "{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ),
            Self::Job => format!("field label {label:?} not supported for batchv1.Job"),
        })
    }
}

static POD: Fields = Fields::new(
    true,
    &[
        Field::new("spec.nodeName", &["spec.nodeName"], ""),
        Field::new("spec.host", &["spec.nodeName"], ""),
        Field::new("spec.restartPolicy", &["spec.restartPolicy"], ""),
        Field::new("spec.schedulerName", &["spec.schedulerName"], ""),
        Field::new("spec.serviceAccountName", &["spec.serviceAccountName"], ""),
        Field::new("spec.hostNetwork", &["spec.hostNetwork"], "false"),
        Field::new("status.phase", &["status.phase"], ""),
        Field::new("status.podIP", &["status.podIP"], ""),
        Field::new("status.podIPs", &[], ""),
        Field::new(
            "status.nominatedNodeName",
            &["status.nominatedNodeName"],
            "",
        ),
    ],
    Unsupported::Plain,
);
static EVENT: Fields = Fields::new(
    true,
    &[
        Field::new("involvedObject.kind", &["involvedObject.kind"], ""),
        Field::new(
            "involvedObject.namespace",
            &["involvedObject.namespace"],
            "",
        ),
        Field::new("involvedObject.name", &["involvedObject.name"], ""),
        Field::new("involvedObject.uid", &["involvedObject.uid"], ""),
        Field::new(
            "involvedObject.apiVersion",
            &["involvedObject.apiVersion"],
            "",
        ),
        Field::new(
            "involvedObject.resourceVersion",
            &["involvedObject.resourceVersion"],
            "",
        ),
        Field::new(
            "involvedObject.fieldPath",
            &["involvedObject.fieldPath"],
            "",
        ),
        Field::new("reason", &["reason"], ""),
        Field::new("reportingComponent", &["reportingComponent"], ""),
        Field::new("source", &["source.component", "reportingComponent"], ""),
        Field::new("type", &["type"], ""),
    ],
    Unsupported::Plain,
);
/// events.k8s.io's names for a core Event's fields, read from the object
/// as that version shows it.
static EVENTS_V1: Fields = Fields::new(
    true,
    &[
        Field::new("regarding.kind", &["regarding.kind"], ""),
        Field::new("regarding.namespace", &["regarding.namespace"], ""),
        Field::new("regarding.name", &["regarding.name"], ""),
        Field::new("regarding.uid", &["regarding.uid"], ""),
        Field::new("regarding.apiVersion", &["regarding.apiVersion"], ""),
        Field::new(
            "regarding.resourceVersion",
            &["regarding.resourceVersion"],
            "",
        ),
        Field::new("regarding.fieldPath", &["regarding.fieldPath"], ""),
        Field::new("reason", &["reason"], ""),
        Field::new("reportingController", &["reportingController"], ""),
        Field::new(
            "source",
            &["deprecatedSource.component", "reportingController"],
            "",
        ),
        Field::new("type", &["type"], ""),
    ],
    Unsupported::Plain,
);
static RESOURCE_SLICE: Fields = Fields::new(
    false,
    &[
        Field::new("spec.nodeName", &["spec.nodeName"], ""),
        Field::new("spec.driver", &["spec.driver"], ""),
    ],
    Unsupported::Plain,
);
static SECRET: Fields = Fields::new(
    true,
    &[Field::new("type", &["type"], "")],
    Unsupported::Plain,
);
static SERVICE: Fields = Fields::new(
    true,
    &[
        Field::new("spec.clusterIP", &["spec.clusterIP"], ""),
        Field::new("spec.type", &["spec.type"], ""),
    ],
    Unsupported::Plain,
);
static REPLICATION_CONTROLLER: Fields = Fields::new(
    true,
    &[Field::new("status.replicas", &["status.replicas"], "0")],
    Unsupported::Plain,
);
static JOB: Fields = Fields::new(
    true,
    &[Field::new("status.successful", &["status.succeeded"], "0")],
    Unsupported::Job,
);
static NODE: Fields = Fields::new(
    false,
    &[Field::new(
        "spec.unschedulable",
        &["spec.unschedulable"],
        "false",
    )],
    Unsupported::Plain,
);
static NAMESPACE_KIND: Fields = Fields::new(
    false,
    &[Field::new("status.phase", &["status.phase"], "")],
    Unsupported::Plain,
);
static CSR: Fields = Fields::new(
    false,
    &[Field::new("spec.signerName", &["spec.signerName"], "")],
    Unsupported::Plain,
);
static CORE_DEFAULT: Fields = Fields::new(true, &[], Unsupported::MetaOnly);

/// The field selectors each kind supports beyond `metadata.name` and
/// `metadata.namespace` (kubernetes/kubernetes pkg/registry/*/strategy.go
/// and the field label conversions of pkg/apis/*/v1/conversion.go; kinds
/// without a conversion accept only the metadata fields, as apps/v1's
/// ReplicaSet does despite its strategy).
pub fn fields_of(group: &str, kind: &str) -> &'static Fields {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("", "Event") => &EVENT,
        ("", "Secret") => &SECRET,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE_KIND,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("batch", "Job") => &JOB,
        ("certificates.k8s.io", "CertificateSigningRequest") => &CSR,
        ("events.k8s.io", "Event") => &EVENTS_V1,
        ("resource.k8s.io", "ResourceSlice") => &RESOURCE_SLICE,
        _ => &CORE_DEFAULT,
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
        let fields = fields_of("", "Pod");
        let raw = serde_json::to_vec(&pod).unwrap();
        let picked = selectable(&raw, fields.pick()).unwrap();
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
            selectable(odd, fields.pick()).unwrap(),
            json!({"metadata": null, "spec": null, "status": {"phase": "Pending"}})
        );
        assert!(selectable(b"{\"metadata\":", fields.pick()).is_err());
        assert!(selectable(b"{} x", fields.pick()).is_err());
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
        let fields = fields_of("", "Pod");
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
            FieldSelector::parse("metadata.name=p", fields_of("", "ConfigMap"))
                .unwrap()
                .name(),
            Some("p")
        );
        let err = FieldSelector::parse("spec.bogus=1", fields).unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.bogus");
        assert!(FieldSelector::parse("nonsense", fields).is_err());

        // events.k8s.io names the fields its own way, core names are refused.
        let events = fields_of("events.k8s.io", "Event");
        let event = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "web"},
                           "reportingController": "kubelet", "type": "Normal"});
        let s = FieldSelector::parse("regarding.name=web,source=kubelet,regarding.uid=", events)
            .unwrap();
        assert!(s.matches(&event));
        let err = FieldSelector::parse("involvedObject.name=web", events).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field label not supported: involvedObject.name"
        );
    }

    /// kube's formatting of every field label, unset fields included, and
    /// its refusals, as `pkg/registry/*/*/strategy.go` and the field label
    /// conversions give them.
    #[test]
    fn field_labels_read_as_kubernetes_formats_them() {
        let cases: &[(&str, &str, Value, &str, bool)] = &[
            (
                "",
                "Node",
                json!({"spec": {}}),
                "spec.unschedulable=false",
                true,
            ),
            (
                "",
                "Node",
                json!({"spec": {}}),
                "spec.unschedulable!=true",
                true,
            ),
            (
                "",
                "Node",
                json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable=true",
                true,
            ),
            (
                "",
                "Pod",
                json!({"spec": {}}),
                "spec.hostNetwork=false",
                true,
            ),
            (
                "",
                "Pod",
                json!({"spec": {"nodeName": "n"}}),
                "spec.host=n",
                true,
            ),
            (
                "",
                "Pod",
                json!({"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}}),
                "status.podIPs=10.0.0.1",
                false,
            ),
            ("", "Pod", json!({"status": {}}), "status.podIPs!=x", true),
            (
                "",
                "Service",
                json!({"spec": {"clusterIP": "None", "type": "ClusterIP"}}),
                "spec.clusterIP=None,spec.type=ClusterIP",
                true,
            ),
            ("", "Service", json!({"spec": {}}), "spec.clusterIP=", true),
            (
                "",
                "ReplicationController",
                json!({"status": {}}),
                "status.replicas=0",
                true,
            ),
            (
                "batch",
                "Job",
                json!({"status": {}}),
                "status.successful=0",
                true,
            ),
            (
                "batch",
                "Job",
                json!({"status": {"succeeded": 2}}),
                "status.successful=2",
                true,
            ),
            (
                "",
                "Event",
                json!({"source": {"component": "kubelet"}}),
                "source=kubelet",
                true,
            ),
            (
                "",
                "Event",
                json!({"reportingComponent": "rudder-scheduler"}),
                "source=rudder-scheduler",
                true,
            ),
            (
                "",
                "Event",
                json!({"source": {}, "reportingComponent": "x"}),
                "reportingComponent=x",
                true,
            ),
            (
                "",
                "Namespace",
                json!({"status": {"phase": "Active"}}),
                "status.phase=Active",
                true,
            ),
            (
                "certificates.k8s.io",
                "CertificateSigningRequest",
                json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}}),
                "spec.signerName=kubernetes.io/kubelet-serving",
                true,
            ),
        ];
        for (group, kind, obj, selector, want) in cases {
            let fields = fields_of(group, kind);
            let s = FieldSelector::parse(selector, fields)
                .unwrap_or_else(|e| panic!("{kind} {selector}: {e}"));
            assert_eq!(s.matches(obj), *want, "{kind} {selector} on {obj}");
            // What a watch picks is enough to match as on the whole object.
            let picked = selectable(&serde_json::to_vec(obj).unwrap(), fields.pick()).unwrap();
            assert_eq!(
                s.matches(&picked),
                *want,
                "{kind} {selector} on picked {picked}"
            );
        }
        for (group, kind, selector, message) in [
            (
                "",
                "Node",
                "metadata.namespace=x",
                "field label not supported: metadata.namespace",
            ),
            (
                "",
                "Pod",
                "spec.bogus=1",
                "field label not supported: spec.bogus",
            ),
            (
                "apps",
                "ReplicaSet",
                "status.replicas=1",
                "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            (
                "batch",
                "Job",
                "status.failed=1",
                "field label \"status.failed\" not supported for batchv1.Job",
            ),
        ] {
            let err = FieldSelector::parse(selector, fields_of(group, kind)).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        assert!(FieldSelector::parse("metadata.namespace=x", fields_of("", "ConfigMap")).is_ok());
    }
}
