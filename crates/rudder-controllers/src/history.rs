//! ControllerRevisions: the template history of DaemonSets and
//! StatefulSets (kube's `controller/history`), in the form `kubectl
//! rollout history/undo` reads: each revision's `data` is the strategic
//! merge patch `{"spec":{"template":{"$patch":"replace",…}}}` that brings
//! the owner back to it, labelled with the template's labels and owned by
//! its controller.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::Error;

/// Kubernetes' safe alphabet for generated names (no vowels, no
/// look-alikes): `rand.SafeEncodeString` of the number's decimal digits.
pub fn safe_encode(n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|d| char::from(ALPHABET[usize::from(d) % ALPHABET.len()]))
        .collect()
}

/// A revision's `data` for the owner's pod template (a JSON value; keys
/// sort as Go's map encoding does, and the template's metadata carries
/// Go's `"creationTimestamp":null`).
pub fn data(template: &Value) -> Value {
    let mut template = template.clone();
    if !template.is_object() {
        template = json!({});
    }
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if template["metadata"].get("creationTimestamp").is_none() {
        template["metadata"]["creationTimestamp"] = Value::Null;
    }
    template["$patch"] = "replace".into();
    json!({"spec": {"template": template}})
}

/// `data` as Go's `json.Marshal` writes it: compact, keys sorted, `<`,
/// `>` and `&` escaped.
pub fn bytes(data: &Value) -> String {
    data.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A revision's hash: FNV-1 (32 bits) of its data, then of the collision
/// count in decimal (kube's `HashControllerRevision`).
pub fn hash(data: &Value, collisions: i32) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes(data).bytes().chain(collisions.to_string().bytes()) {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(b);
    }
    safe_encode(h)
}

/// The revision number of a ControllerRevision.
fn number(r: &ControllerRevision) -> i64 {
    r.revision
}

/// What [`sync`] found or made: the revision of the owner's current
/// template, the owner's others (oldest first) and the collision count
/// it took to name the current one.
#[derive(Debug)]
pub struct History {
    pub current: ControllerRevision,
    pub others: Vec<ControllerRevision>,
    pub collisions: i32,
}

/// How an owner's revisions are labelled: DaemonSets' with
/// `controller-revision-hash`, StatefulSets' with
/// `controller.kubernetes.io/hash`.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub hash_label: &'a str,
    /// The owner's selector (a label selector string), to list by.
    pub selector: &'a str,
    pub template: &'a Value,
    pub collisions: i32,
    /// Revisions to keep besides the current one and those in use.
    pub history_limit: usize,
}

/// Finds or creates the revision of `owner`'s current template (taking
/// an older equal one as the newest again: a rollback), and deletes old
/// revisions past the history limit that no pod in `in_use` (revision
/// names or hashes) still runs.
pub async fn sync<K>(
    client: &kube::Client,
    object: &K,
    owner: Owner<'_>,
    in_use: &BTreeSet<String>,
) -> Result<History, Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = object.namespace().unwrap_or_default();
    let uid = object.meta().uid.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let listed = api
        .list(&ListParams::default().labels(owner.selector))
        .await?
        .items;
    let mut mine: Vec<ControllerRevision> = crate::controlled_by(&listed, &uid)
        .into_iter()
        .cloned()
        .collect();
    mine.sort_by_key(|r| (number(r), r.metadata.name.clone()));
    let data = data(owner.template);
    let newest = mine.last().map_or(0, number);
    let mut collisions = owner.collisions;
    let current = match mine
        .iter()
        .position(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        Some(i) if number(&mine[i]) == newest => mine.remove(i),
        Some(i) => {
            // An older template again: its revision becomes the newest.
            let old = mine.remove(i);
            let name = old.name_any();
            let patch = json!({"revision": newest + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?
        }
        None => loop {
            let hash = hash(&data, collisions);
            let revision = new_revision(object, &owner, &data, &hash, newest + 1);
            match api.create(&PostParams::default(), &revision).await {
                Ok(created) => break created,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let existing = api.get(&revision.name_any()).await?;
                    if existing.data.as_ref().map(|d| &d.0) == Some(&data) {
                        break existing;
                    }
                    collisions += 1;
                }
                Err(e) => return Err(e.into()),
            }
        },
    };
    let current_name = current.name_any();
    mine.retain(|r| r.name_any() != current_name);
    let unused: Vec<&ControllerRevision> = mine
        .iter()
        .filter(|r| {
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(owner.hash_label));
            !in_use.contains(&r.name_any()) && hash.is_none_or(|h| !in_use.contains(h))
        })
        .collect();
    let mut gone = BTreeSet::new();
    for r in unused
        .iter()
        .take(unused.len().saturating_sub(owner.history_limit))
    {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        gone.insert(r.name_any());
    }
    mine.retain(|r| !gone.contains(&r.name_any()));
    Ok(History {
        current,
        others: mine,
        collisions,
    })
}

fn new_revision<K: Resource<DynamicType = ()>>(
    object: &K,
    owner: &Owner<'_>,
    data: &Value,
    hash: &str,
    revision: i64,
) -> ControllerRevision {
    let meta = object.meta();
    let name = meta.name.clone().unwrap_or_default();
    let mut labels = owner.template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[owner.hash_label] = hash.into();
    let annotations = serde_json::to_value(&meta.annotations).unwrap_or(Value::Null);
    let made: Result<ControllerRevision, _> = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-{hash}"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": owner.api_version, "kind": owner.kind, "name": name,
                "uid": meta.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "data": data,
        "revision": revision,
    }));
    made.unwrap_or_else(|_| ControllerRevision {
        data: Some(RawExtension(data.clone())),
        revision,
        ..ControllerRevision::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_as_kubernetes_names_statefulset_revisions() {
        // The upstream 1.33 compatibility vector
        // (stateful_set_compatibility_test.go): its revision is c77f6d978.
        let raw = r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;
        let data: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(bytes(&data), raw, "Go's bytes: sorted keys, compact");
        assert_eq!(hash(&data, 0), "c77f6d978");
        assert_ne!(hash(&data, 1), "c77f6d978");
    }

    #[test]
    fn data_is_the_replacing_patch_of_the_template() {
        let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x<y"}]}});
        let d = data(&template);
        assert_eq!(d["spec"]["template"]["$patch"], "replace");
        assert!(d["spec"]["template"]["metadata"]["creationTimestamp"].is_null());
        assert!(bytes(&d).contains(r"x\u003cy"));
        assert_eq!(safe_encode(0), "4");
        assert_eq!(safe_encode(9876543210_u64 as u32), safe_encode(1286608618));
    }
}
