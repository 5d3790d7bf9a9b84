//! The three patch formats Kubernetes accepts: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch, with the merge keys of
//! the built-in types (apimachinery pkg/util/strategicpatch, and the
//! `patchStrategy`/`patchMergeKey` tags of k8s.io/api).
//!
//! Everything here is pure and returns an error message for bad patches;
//! nothing panics on any input.

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// RFC 6902: applies the operations in order, all or nothing.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op).map_err(|e| format!("operation {i}: {e}"))?;
    }
    Ok(doc)
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or("missing \"op\"")?;
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or("missing \"path\"")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| format!("{kind} needs a \"value\""))
    };
    let from = || {
        op.get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{kind} needs \"from\""))
    };
    match kind {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(drop),
        "replace" => {
            let slot = get_mut(doc, path)?;
            *slot = value()?;
            Ok(())
        }
        "move" => {
            let from = from()?;
            if path.starts_with(&format!("{from}/")) {
                return Err(format!("cannot move {from} into its own child {path}"));
            }
            let v = remove(doc, from)?;
            add(doc, path, v)
        }
        "copy" => {
            let v = get_mut(doc, from()?)?.clone();
            add(doc, path, v)
        }
        "test" => {
            let want = value()?;
            let got = get_mut(doc, path)?;
            if *got == want {
                Ok(())
            } else {
                Err(format!("test failed at {path}"))
            }
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

fn parse_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path {path:?} must start with '/'"))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(list: &[Value], token: &str, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(list.len());
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("{token:?} is not an array index"))?;
    let max = if allow_end {
        list.len()
    } else {
        list.len().saturating_sub(1)
    };
    if i > max || (!allow_end && list.is_empty()) {
        return Err(format!("index {i} is out of range"));
    }
    Ok(i)
}

fn get_mut<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for token in parse_pointer(path)? {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(&token)
                .ok_or_else(|| format!("{path}: no field {token:?}"))?,
            Value::Array(a) => {
                let i = index(a, &token, false)?;
                &mut a[i]
            }
            _ => return Err(format!("{path}: {token:?} is inside a scalar")),
        };
    }
    Ok(cur)
}

fn split_last(path: &str) -> Result<(String, String), String> {
    let mut tokens = parse_pointer(path)?;
    let last = tokens
        .pop()
        .ok_or("the whole document cannot be the target")?;
    let parent = tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    Ok((parent, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_last(path)?;
    match get_mut(doc, &parent)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(a, &last, true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("{path}: parent is not an object or array")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_last(path)?;
    match get_mut(doc, &parent)? {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("{path}: nothing to remove")),
        Value::Array(a) => {
            let i = index(a, &last, false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("{path}: parent is not an object or array")),
    }
}

/// How a list field merges in a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced whole (the default for lists without a patch strategy).
    Atomic,
    /// A set of scalars: the patch's items are added.
    MergePrimitives,
    /// Items are objects matched by this key.
    MergeKey(&'static str),
}

/// The strategy of the list at `path` (field names from the object root,
/// list items not counted) in an object of `kind`.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    match path {
        ["metadata", "ownerReferences"] => return MergeKey("uid"),
        ["metadata", "finalizers"] => return MergePrimitives,
        ["status", "conditions"] => return MergeKey("type"),
        _ => {}
    }
    let pod_spec: &[&str] = match kind {
        "Pod" => &["spec"],
        "PodTemplate" => &["template", "spec"],
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &[],
    };
    if !pod_spec.is_empty()
        && let Some(rest) = path.strip_prefix(pod_spec)
    {
        return match rest {
            ["containers" | "initContainers" | "ephemeralContainers"] => MergeKey("name"),
            [
                "containers" | "initContainers" | "ephemeralContainers",
                "ports",
            ] => MergeKey("containerPort"),
            [
                "containers" | "initContainers" | "ephemeralContainers",
                "env",
            ] => MergeKey("name"),
            [
                "containers" | "initContainers" | "ephemeralContainers",
                "volumeMounts",
            ] => MergeKey("mountPath"),
            [
                "containers" | "initContainers" | "ephemeralContainers",
                "volumeDevices",
            ] => MergeKey("devicePath"),
            [
                "containers" | "initContainers" | "ephemeralContainers",
                "resizePolicy",
            ] => MergeKey("resourceName"),
            ["volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => {
                MergeKey("name")
            }
            ["hostAliases"] => MergeKey("ip"),
            ["topologySpreadConstraints"] => MergeKey("topologyKey"),
            _ => Atomic,
        };
    }
    match (kind, path) {
        ("Pod", ["status", "podIPs" | "hostIPs"]) => MergeKey("ip"),
        ("Service", ["spec", "ports"]) => MergeKey("port"),
        ("Node", ["status", "addresses"]) => MergeKey("type"),
        ("Node", ["spec", "podCIDRs"]) => MergePrimitives,
        ("ServiceAccount", ["secrets"]) => MergeKey("name"),
        _ => Atomic,
    }
}

/// Applies a strategic merge patch to an object of `kind`.
pub fn strategic_merge_patch(kind: &str, original: &Value, patch: &Value) -> Result<Value, String> {
    let mut path = Vec::new();
    let merged = smp_object(kind, original, patch, &mut path)?;
    Ok(merged.unwrap_or(Value::Object(Map::new())))
}

/// Merges `patch` into `original` at `path`; `None` means "delete this".
fn smp_object(
    kind: &str,
    original: &Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Option<Value>, String> {
    let Value::Object(p) = patch else {
        return Ok(Some(patch.clone()));
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(Some(Value::Object(strip_directives(p)))),
        Some("delete") => return Ok(None),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch directive $patch: {other}")),
    }
    let mut out = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), v));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            deletions.push((field.to_string(), v));
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        path.push(k.clone());
        let current = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match v {
            Value::Null => None,
            Value::Object(_) => smp_object(kind, &current, v, path)?,
            Value::Array(items) => Some(smp_list(kind, &current, items, path)?),
            scalar => Some(scalar.clone()),
        };
        path.pop();
        match merged {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                out.remove(k);
            }
        }
    }
    for (field, values) in deletions {
        let values = values
            .as_array()
            .ok_or("$deleteFromPrimitiveList needs a list")?;
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            list.retain(|item| !values.contains(item));
        }
    }
    for (field, order) in orders {
        let order = order.as_array().ok_or("$setElementOrder needs a list")?;
        path.push(field.clone());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let strategy = list_strategy(kind, &refs);
        path.pop();
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            reorder(list, order, strategy);
        }
    }
    if let Some(retain) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or("$retainKeys needs a list")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(Value::Object(out)))
}

fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn smp_list(
    kind: &str,
    original: &Value,
    patch: &[Value],
    path: &mut Vec<String>,
) -> Result<Value, String> {
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    let strategy = list_strategy(kind, &refs);
    let replace_all = patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let current: Vec<Value> = original.as_array().cloned().unwrap_or_default();
    match strategy {
        _ if replace_all => Ok(Value::Array(
            patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        )),
        ListStrategy::Atomic => Ok(Value::Array(patch.to_vec())),
        ListStrategy::MergePrimitives => {
            let mut out = current;
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::MergeKey(key) => {
            let mut out = current;
            for item in patch {
                let id = item.get(key).ok_or_else(|| {
                    format!("{}: an item has no merge key {key:?}", path.join("."))
                })?;
                let pos = out.iter().position(|o| o.get(key) == Some(id));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => match smp_object(kind, &out[i], item, path)? {
                        Some(v) => out[i] = v,
                        None => {
                            out.remove(i);
                        }
                    },
                    (None, false) => {
                        if let Some(v) = smp_object(kind, &Value::Null, item, path)? {
                            out.push(v);
                        }
                    }
                }
            }
            Ok(Value::Array(out))
        }
    }
}

/// Orders `list` as `order` says; items it does not name keep their
/// relative order after the named ones.
fn reorder(list: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let id = |v: &Value| -> Value {
        match strategy {
            ListStrategy::MergeKey(key) => v.get(key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let rank = |v: &Value| {
        order
            .iter()
            .position(|o| id(o) == id(v))
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| rank(v));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let patch = json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}});
        assert_eq!(
            merge_patch(&target, &patch),
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
        assert_eq!(merge_patch(&target, &json!(null)), json!(null));
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2, 3], "a/b": 0});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/list/0", "value": 9},
            {"op": "remove", "path": "/list/1"},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "copy", "from": "/list/0", "path": "/copied"},
            {"op": "move", "from": "/a~1b", "path": "/moved"},
            {"op": "test", "path": "/copied", "value": 9},
        ]);
        let out = json_patch(&doc, &ops).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [9, 3, 4], "copied": 9, "moved": 0})
        );
        for bad in [
            json!({"op": "add"}),
            json!([{"op": "remove", "path": "/nope"}]),
            json!([{"op": "test", "path": "/list", "value": []}]),
            json!([{"op": "replace", "path": "/list/7", "value": 1}]),
            json!([{"op": "frobnicate", "path": "/list"}]),
            json!([{"op": "add", "path": "no-slash", "value": 1}]),
            json!([{"op": "move", "from": "/metadata", "path": "/metadata/x"}]),
        ] {
            assert!(json_patch(&doc, &bad).is_err(), "{bad} applied");
        }
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let deploy = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}], "args": ["x"]},
            {"name": "side", "image": "busybox"}
        ]}}}});
        // What `kubectl apply` / `kubectl set image` send.
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}], "args": ["y"]}]
        }}}});
        let out = strategic_merge_patch("Deployment", &deploy, &patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(containers[0]["name"], "side", "$setElementOrder reorders");
        assert_eq!(containers[1]["image"], "nginx:2");
        assert_eq!(
            containers[1]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(
            containers[1]["args"],
            json!(["y"]),
            "lists without a strategy are replaced"
        );
    }

    #[test]
    fn strategic_patch_directives() {
        let pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
                         "spec": {"containers": [{"name": "a"}, {"name": "b"}], "tolerations": [{"key": "k"}]}});
        let patch = json!({
            "metadata": {"labels": {"a": null}, "finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"containers": [{"name": "b", "$patch": "delete"}]}
        });
        let out = strategic_merge_patch("Pod", &pod, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k"}]));

        let replace = json!({"spec": {"$patch": "replace", "containers": [{"name": "z"}]}});
        let out = strategic_merge_patch("Pod", &pod, &replace).unwrap();
        assert_eq!(out["spec"], json!({"containers": [{"name": "z"}]}));

        let retain = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = strategic_merge_patch("Deployment", &d, &retain).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

        let bad = json!({"spec": {"containers": [{"image": "no-name"}]}});
        assert!(strategic_merge_patch("Pod", &pod, &bad).is_err());
        assert!(strategic_merge_patch("Pod", &pod, &json!({"$patch": "explode"})).is_err());
    }

    #[test]
    fn merge_keys_cover_the_built_in_types() {
        assert_eq!(
            list_strategy(
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                    "ports"
                ]
            ),
            ListStrategy::MergeKey("containerPort")
        );
        assert_eq!(
            list_strategy("Service", &["spec", "ports"]),
            ListStrategy::MergeKey("port")
        );
        assert_eq!(
            list_strategy("Deployment", &["status", "conditions"]),
            ListStrategy::MergeKey("type")
        );
        assert_eq!(
            list_strategy("Node", &["spec", "taints"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "tolerations"]),
            ListStrategy::Atomic
        );
    }
}
