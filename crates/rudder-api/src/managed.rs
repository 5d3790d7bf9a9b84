//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records which manager set which fields: an apply owns
//! exactly the fields of its configuration; any other write owns the
//! fields it changed, taking them from whoever owned them before. An
//! apply that would change a field another manager owns is a conflict
//! (409) unless forced; a field a manager applied before and no longer
//! applies is removed, unless someone else owns it too.
//!
//! Field sets use Kubernetes' FieldsV1 encoding: `f:<field>` for object
//! fields and map entries, `k:{"name":"nginx"}` for items of lists merged
//! by key, `v:<value>` for items of sets of scalars, `.` for a list item
//! itself. Lists are keyed as their strategic merge patch merge key says
//! ([`crate::patch::list_strategy`]); other lists are atomic.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::{ListStrategy, list_strategy};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Elem {
    Field(String),
    /// A list item, by its key fields as compact JSON.
    Key(String),
    /// An item of a set of scalars, as JSON.
    Value(String),
    /// The list item the path leads to, itself.
    Itself,
}

type Path = Vec<Elem>;

/// The leaf paths a manager owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

/// Fields nobody owns: identity and bookkeeping the server sets.
const IGNORED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    /// The fields set in `obj` (an object of `kind`), without the ones the
    /// server owns, and without `status` when `status` is false.
    pub fn of(kind: &str, obj: &Value, status: bool) -> Self {
        // Everything in `obj` is new next to nothing.
        Self(Diff::of(kind, &Value::Null, obj, status).changed)
    }

    /// Parses a FieldsV1 tree.
    pub fn from_fields_v1(v: &Value) -> Self {
        fn go(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
            let Some(map) = v.as_object() else { return };
            if map.is_empty() && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, child) in map {
                let elem = if k == "." {
                    Elem::Itself
                } else if let Some(f) = k.strip_prefix("f:") {
                    Elem::Field(f.into())
                } else if let Some(key) = k.strip_prefix("k:") {
                    Elem::Key(key.into())
                } else if let Some(value) = k.strip_prefix("v:") {
                    Elem::Value(value.into())
                } else {
                    continue;
                };
                path.push(elem);
                go(child, path, out);
                path.pop();
            }
        }
        let mut out = BTreeSet::new();
        go(v, &mut Vec::new(), &mut out);
        Self(out)
    }

    /// The FieldsV1 tree.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        // Paths share their beginnings: a key is allocated only when new.
        let mut key = String::new();
        for path in &self.0 {
            let mut node = &mut root;
            for elem in path {
                key.clear();
                match elem {
                    Elem::Field(f) => key.extend(["f:", f]),
                    Elem::Key(k) => key.extend(["k:", k]),
                    Elem::Value(v) => key.extend(["v:", v]),
                    Elem::Itself => key.push('.'),
                }
                if !node.contains_key(&key) {
                    node.insert(key.clone(), json!({}));
                }
                let Some(Value::Object(next)) = node.get_mut(&key) else {
                    break;
                };
                node = next;
            }
        }
        Value::Object(root)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn remove_all(&mut self, other: &FieldSet) {
        self.0.retain(|p| !other.0.contains(p));
    }

    fn retain_in(&mut self, other: &FieldSet) {
        self.0.retain(|p| other.0.contains(p));
    }
}

fn walk(kind: &str, names: &[&str], v: &Value, mut path: Path, out: &mut BTreeSet<Path>) {
    let mut names = names.to_vec();
    walk_in(kind, &mut names, v, &mut path, out);
}

/// [`walk`] on one path buffer: only the paths it records are copied.
fn walk_in<'a>(
    kind: &str,
    names: &mut Vec<&'a str>,
    v: &'a Value,
    path: &mut Path,
    out: &mut BTreeSet<Path>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(Elem::Field(k.clone()));
                names.push(k);
                walk_in(kind, names, child, path, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_strategy(kind, names) {
            ListStrategy::MergeKey(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    path.push(Elem::Key(json!({ key: item[key] }).to_string()));
                    path.push(Elem::Itself);
                    out.insert(path.clone());
                    path.pop();
                    walk_in(kind, names, item, path, out);
                    path.pop();
                }
            }
            ListStrategy::MergePrimitives => {
                for item in items {
                    path.push(Elem::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The fields a write changed or added (`changed`) and the ones it
/// removed (`removed`), from one walk over the old and new objects.
#[derive(Debug, Default)]
struct Diff {
    changed: BTreeSet<Path>,
    removed: BTreeSet<Path>,
}

impl Diff {
    fn of(kind: &str, old: &Value, new: &Value, status: bool) -> Self {
        let mut d = Self::default();
        let empty = Map::new();
        let (o, n) = (
            old.as_object().unwrap_or(&empty),
            new.as_object().unwrap_or(&empty),
        );
        let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
        for k in keys {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "status" if !status => {}
                "metadata" => {
                    let (om, nm) = (
                        old[k].as_object().unwrap_or(&empty),
                        new[k].as_object().unwrap_or(&empty),
                    );
                    let mkeys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
                    for mk in mkeys
                        .into_iter()
                        .filter(|mk| !IGNORED_METADATA.contains(&mk.as_str()))
                    {
                        let path = vec![Elem::Field(k.clone()), Elem::Field(mk.clone())];
                        d.walk(kind, &["metadata", mk], om.get(mk), nm.get(mk), path);
                    }
                }
                _ => d.walk(kind, &[k], o.get(k), n.get(k), vec![Elem::Field(k.clone())]),
            }
        }
        d
    }

    fn walk(
        &mut self,
        kind: &str,
        names: &[&str],
        old: Option<&Value>,
        new: Option<&Value>,
        path: Path,
    ) {
        let (old, new) = match (old, new) {
            (None, None) => return,
            (Some(old), None) => return walk(kind, names, old, path, &mut self.removed),
            (None, Some(new)) => return walk(kind, names, new, path, &mut self.changed),
            (Some(old), Some(new)) if old == new => return,
            (Some(old), Some(new)) => (old, new),
        };
        match (old, new) {
            (Value::Object(o), Value::Object(n)) if !o.is_empty() && !n.is_empty() => {
                let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
                for k in keys {
                    let mut p = path.clone();
                    p.push(Elem::Field(k.clone()));
                    let mut names = names.to_vec();
                    names.push(k);
                    self.walk(kind, &names, o.get(k), n.get(k), p);
                }
            }
            (Value::Array(o), Value::Array(n)) => match list_strategy(kind, names) {
                ListStrategy::MergeKey(key) if o.iter().chain(n).all(|i| i.get(key).is_some()) => {
                    let item_path = |item: &Value| {
                        let mut p = path.clone();
                        p.push(Elem::Key(json!({ key: item[key] }).to_string()));
                        p
                    };
                    for item in n {
                        let before = o.iter().find(|i| i[key] == item[key]);
                        let p = item_path(item);
                        if before.is_none() {
                            let mut itself = p.clone();
                            itself.push(Elem::Itself);
                            self.changed.insert(itself);
                        }
                        self.walk(kind, names, before, Some(item), p);
                    }
                    for item in o.iter().filter(|i| !n.iter().any(|x| x[key] == i[key])) {
                        let p = item_path(item);
                        let mut itself = p.clone();
                        itself.push(Elem::Itself);
                        self.removed.insert(itself);
                        walk(kind, names, item, p, &mut self.removed);
                    }
                }
                ListStrategy::MergePrimitives => {
                    for item in n.iter().filter(|i| !o.contains(i)) {
                        let mut p = path.clone();
                        p.push(Elem::Value(item.to_string()));
                        self.changed.insert(p);
                    }
                    for item in o.iter().filter(|i| !n.contains(i)) {
                        let mut p = path.clone();
                        p.push(Elem::Value(item.to_string()));
                        self.removed.insert(p);
                    }
                }
                _ => {
                    self.changed.insert(path);
                }
            },
            _ => {
                // A leaf that changed, or a change of shape: what was there
                // is gone, what is there now is new.
                walk(kind, names, old, path.clone(), &mut self.removed);
                walk(kind, names, new, path, &mut self.changed);
                let changed = &self.changed;
                self.removed.retain(|p| !changed.contains(p));
            }
        }
    }
}

/// The value at `path` in `obj`.
fn value_at<'a>(obj: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        cur = match elem {
            Elem::Field(f) => cur.get(f)?,
            Elem::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?
                    .iter()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
            }
            Elem::Value(v) => {
                let want: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|item| **item == want)?
            }
            Elem::Itself => cur,
        };
    }
    Some(cur)
}

/// Removes the field at `path` from `obj`.
fn remove_at(obj: &mut Value, path: &[Elem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    // Removing an item itself removes it from its list.
    let (last, parent_path) = match last {
        Elem::Itself => match parent_path.split_last() {
            Some((item, rest)) => (item, rest),
            None => return,
        },
        _ => (last, parent_path),
    };
    let mut cur = obj;
    for elem in parent_path {
        let next = match elem {
            Elem::Field(f) => cur.get_mut(f),
            Elem::Key(_) | Elem::Value(_) => {
                let Some(found) = value_at(cur, std::slice::from_ref(elem)).cloned() else {
                    return;
                };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|i| **i == found))
            }
            Elem::Itself => Some(cur),
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match last {
        Elem::Field(f) => {
            if let Some(map) = cur.as_object_mut() {
                map.remove(f);
            }
        }
        Elem::Key(_) | Elem::Value(_) => {
            if let Some(found) = value_at(cur, std::slice::from_ref(last)).cloned()
                && let Some(items) = cur.as_array_mut()
            {
                items.retain(|i| *i != found);
            }
        }
        Elem::Itself => {}
    }
}

/// Drops the objects along `path` that removing its field left empty (as
/// Go's `omitempty` drops an emptied map), innermost first; list items and
/// their parents are left alone.
fn prune_empty_parents(obj: &mut Value, path: &[Elem]) {
    for depth in (1..path.len()).rev() {
        let parent = &path[..depth];
        if !parent.iter().all(|e| matches!(e, Elem::Field(_))) {
            return;
        }
        match value_at(obj, parent) {
            Some(Value::Object(m)) if m.is_empty() => remove_at(obj, parent),
            _ => return,
        }
    }
}

/// `.spec.containers[name="nginx"].image`, as Kubernetes prints paths.
fn path_string(path: &[Elem]) -> String {
    let mut out = String::new();
    for elem in path {
        match elem {
            Elem::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Elem::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Elem::Value(v) => out.push_str(&format!("[={v}]")),
            Elem::Itself => {}
        }
    }
    out
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";

/// Who writes, how.
#[derive(Debug, Clone)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub api_version: String,
    /// `status` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    pub time: String,
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Value,
    subresource: Option<String>,
    fields: FieldSet,
    /// Where it sits in the managedFields it was read from, while it is
    /// unchanged (its JSON can be kept rather than rendered again).
    from: Option<usize>,
}

impl Entry {
    fn parse(v: &Value) -> Option<Self> {
        Some(Self {
            manager: v["manager"].as_str()?.to_string(),
            operation: v["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: v["apiVersion"].as_str().unwrap_or("").to_string(),
            time: v["time"].clone(),
            subresource: v["subresource"].as_str().map(String::from),
            fields: FieldSet::from_fields_v1(&v["fieldsV1"]),
            from: None,
        })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = Value::String(s.clone());
        }
        v
    }

    fn is(&self, m: &Manager<'_>, operation: &str) -> bool {
        self.manager == m.name
            && self.operation == operation
            && self.subresource.as_deref() == m.subresource
    }
}

/// The entry of `m` for `operation`, stamped with this write's time and
/// version (added, empty, if `m` had none).
fn entry_of<'l>(list: &'l mut Vec<Entry>, m: &Manager<'_>, operation: &str) -> &'l mut Entry {
    let at = match list.iter().position(|e| e.is(m, operation)) {
        Some(at) => at,
        None => {
            list.push(Entry {
                manager: m.name.into(),
                operation: operation.into(),
                api_version: String::new(),
                time: Value::Null,
                subresource: m.subresource.map(String::from),
                fields: FieldSet::default(),
                from: None,
            });
            list.len() - 1
        }
    };
    let entry = &mut list[at];
    entry.from = None;
    entry.time = Value::String(m.time.clone());
    entry.api_version = m.api_version.clone();
    entry
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| Entry::parse(v).map(|e| Entry { from: Some(i), ..e }))
        .collect()
}

fn store_entries(obj: &mut Value, mut list: Vec<Entry>, live: &FieldSet) {
    for e in &mut list {
        e.fields.retain_in(live);
    }
    list.retain(|e| !e.fields.is_empty());
    set_entries(obj, &list);
}

/// Records a write that is not an apply: `manager` owns what it changed
/// from `old` (everything, for a create), and nobody else does. `new`'s
/// managedFields start from `old`'s.
pub fn record_update(kind: &str, old: Option<&Value>, new: &mut Value, m: &Manager<'_>) {
    let status = m.subresource == Some("status");
    // The list `new` carries (the caller's starting point), else `old`'s.
    let mut list = if new["metadata"]["managedFields"].is_array() {
        entries(new)
    } else {
        old.map(entries).unwrap_or_default()
    };
    let diff = match old {
        None => Diff {
            changed: FieldSet::of(kind, new, status).0,
            removed: BTreeSet::new(),
        },
        Some(old) => {
            let mut diff = Diff::of(kind, old, new, true);
            if !status {
                // Status changes on the main resource are the server's.
                diff.changed
                    .retain(|p| p.first() != Some(&Elem::Field("status".into())));
            }
            diff
        }
    };
    if diff.changed.is_empty() && diff.removed.is_empty() {
        return;
    }
    for e in &mut list {
        let before = e.fields.0.len();
        e.fields
            .0
            .retain(|p| !diff.changed.contains(p) && !diff.removed.contains(p));
        if e.fields.0.len() != before {
            e.from = None;
        }
    }
    if !diff.changed.is_empty() {
        entry_of(&mut list, m, "Update")
            .fields
            .0
            .extend(diff.changed);
    }
    list.retain(|e| !e.fields.is_empty());
    set_entries_reusing(new, &list);
}

/// Like [`set_entries`], reusing the JSON of entries that did not change
/// (`Entry::from`, positions in `obj`'s own managedFields; entries read
/// from another object find nothing there and are rendered).
fn set_entries_reusing(obj: &mut Value, list: &[Entry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let mut previous = match meta.remove("managedFields") {
        Some(Value::Array(previous)) => previous,
        _ => Vec::new(),
    };
    if list.is_empty() {
        return;
    }
    let rendered = list
        .iter()
        .map(|e| {
            e.from
                .and_then(|i| previous.get_mut(i))
                .map(Value::take)
                .unwrap_or_else(|| e.to_json())
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(rendered));
}

fn set_entries(obj: &mut Value, list: &[Entry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(list.iter().map(Entry::to_json).collect()),
        );
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    /// `.spec.replicas`
    pub field: String,
}

/// Server-side apply of `config` by `m` to `live` (`None`: the object does
/// not exist yet). `merge` combines the live object with the configuration
/// (a strategic merge). Returns the new object with its managedFields.
pub fn apply(
    kind: &str,
    live: Option<&Value>,
    config: &Value,
    m: &Manager<'_>,
    force: bool,
    merge: impl Fn(&Value, &Value) -> Result<Value, String>,
) -> Result<Value, ApplyError> {
    let status = m.subresource == Some("status");
    let applied = FieldSet::of(kind, config, status);
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    let mut list = entries(live_obj);
    let mut conflicts = Vec::new();
    // Every other entry counts, the same manager's updates included (a
    // manager is its name and operation).
    for e in list.iter().filter(|e| !e.is(m, "Apply")) {
        for p in applied.0.intersection(&e.fields.0) {
            if value_at(config, p) != value_at(live_obj, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    // Moving from client-side to server-side apply: fields kubectl's
    // client-side apply set (its last-applied-configuration) pass over
    // to the applier without a conflict (kube-apiserver's
    // lastAppliedManager).
    let last_applied = live_obj["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .map(|v| FieldSet::of(kind, &v, status))
        .unwrap_or_default();
    let blocking = conflicts
        .iter()
        .filter(|(manager, _, p)| manager != CLIENT_SIDE_APPLY || !last_applied.0.contains(p));
    if !force && blocking.clone().next().is_some() {
        return Err(ApplyError::Conflicts(
            blocking
                .map(|(manager, api_version, p)| Conflict {
                    manager: manager.clone(),
                    api_version: api_version.clone(),
                    field: path_string(p),
                })
                .collect(),
        ));
    }
    let taken = FieldSet(conflicts.into_iter().map(|(_, _, p)| p).collect());
    let mut new = match live {
        Some(live) => merge(live, config).map_err(ApplyError::Merge)?,
        None => config.clone(),
    };
    // What this manager applied before and applies no more goes, unless
    // another manager owns it too.
    let before = list
        .iter()
        .find(|e| e.is(m, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut dropped: Vec<&Path> = before
        .0
        .iter()
        .filter(|p| !applied.0.contains(*p))
        .filter(|p| {
            !list
                .iter()
                .any(|e| !e.is(m, "Apply") && e.fields.0.contains(*p))
        })
        .collect();
    // Whole list items first (their fields go with them), deepest first;
    // then the remaining fields, deepest first.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let items: Vec<&[Elem]> = dropped
        .iter()
        .filter(|p| p.last() == Some(&Elem::Itself))
        .map(|p| &p[..p.len() - 1])
        .collect();
    for item in &items {
        remove_at(&mut new, item);
    }
    for p in dropped.iter().filter(|p| p.last() != Some(&Elem::Itself)) {
        if !items.iter().any(|item| p.starts_with(item)) {
            remove_at(&mut new, p);
            prune_empty_parents(&mut new, p);
        }
    }
    for e in &mut list {
        e.fields.remove_all(&taken);
    }
    entry_of(&mut list, m, "Apply").fields = applied;
    let after = FieldSet::of(kind, &new, true);
    store_entries(&mut new, list, &after);
    Ok(new)
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    Conflicts(Vec<Conflict>),
    Merge(String),
}

/// Kubernetes' message for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {:?} using {}: {}",
            c.manager, c.api_version, c.field
        );
    }
    let mut out = format!("Apply failed with {} conflicts:", conflicts.len());
    let mut managers: Vec<(&str, &str)> = conflicts
        .iter()
        .map(|c| (c.manager.as_str(), c.api_version.as_str()))
        .collect();
    managers.dedup();
    for (manager, api_version) in managers {
        out.push_str(&format!(" conflicts with {manager:?} using {api_version}:"));
        for c in conflicts.iter().filter(|c| c.manager == manager) {
            out.push_str(&format!("\n- {}", c.field));
        }
    }
    out
}

#[cfg(test)]
mod tests;
