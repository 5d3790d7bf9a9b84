//! Generic object storage and the CRUD verbs, for every kind in the
//! registry. Objects are stored as JSON without `resourceVersion`; reads
//! set it from the store's mod revision, as kube-apiserver does on etcd.

use std::sync::Arc;

use bytes::Bytes;
use rudder_api::patch::{json_patch, merge_patch, strategic_merge_patch};
use rudder_api::selector::{FieldSelector, LabelSelector, fields_of, selector_string};
use rudder_api::validation::{name_rule, validate_metadata};
use rudder_api::{Cause, Resource, StatusError, managed, registry};
use rudder_store::{
    Compare, Error as StoreError, KeyValue, Op, OpResult, RangeRequest, Revision, Store, Txn,
};
use serde_json::{Value, json};

use rudder_api::time::rfc3339_now;

use crate::http::Query;
use crate::services::ServiceRanges;
use crate::strategy;
use crate::watchcache::WatchCaches;

/// Where a request points: a resource, maybe in a namespace, maybe one object.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub(crate) fn key(r: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{}{ns}/{name}", r.storage_prefix()),
        _ => format!("{}{name}", r.storage_prefix()),
    }
}

/// The classes every cluster has (kube-apiserver creates them at start).
fn builtin_priority_class(name: &str) -> Option<Value> {
    let value = match name {
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return None,
    };
    Some(
        json!({"metadata": {"name": name}, "value": value, "preemptionPolicy": "PreemptLowerPriority"}),
    )
}

pub(crate) fn collection_prefix(r: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{}{ns}/", r.storage_prefix()),
        _ => r.storage_prefix(),
    }
}

pub(crate) fn store_error(e: StoreError) -> StatusError {
    match e {
        StoreError::Compacted {
            requested,
            compact_revision,
        } => StatusError::expired(format!(
            "too old resource version: {requested} ({compact_revision})"
        )),
        StoreError::ValueTooLarge { .. } => StatusError::too_large(rudder_store::MAX_REQUEST_BYTES),
        // Shutting down: clients retry elsewhere or later (as a 503 says).
        StoreError::Closed => StatusError::unavailable("the server is shutting down; try again"),
        other => StatusError::internal(other.to_string()),
    }
}

/// Decodes a stored object and sets its resourceVersion.
pub(crate) fn decode(kv: &KeyValue) -> Result<Value, StatusError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| StatusError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// `obj` as resource `r` shows it: converted from the version it was
/// stored in, for resources served in several versions.
pub(crate) fn view(r: &Resource, obj: &mut Value) {
    if r.converts() {
        rudder_api::conversion::convert(obj, &r.api_version());
    }
}

pub(crate) fn set_resource_version(obj: &mut Value, rev: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

fn encode(obj: &Value) -> Bytes {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
}

fn name_of(obj: &Value) -> Option<&str> {
    obj.get("metadata")?.get("name")?.as_str()
}

/// A YAML request body as JSON (`application/yaml`, and apply patches
/// that are YAML rather than JSON).
pub(crate) fn parse_yaml(body: &[u8]) -> Result<Value, StatusError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| StatusError::bad_request("the body of the request is not UTF-8"))?;
    serde_saphyr::from_str(text).map_err(|e| {
        StatusError::bad_request(format!(
            "the body of the request could not be decoded as YAML: {e}"
        ))
    })
}

/// Parses a JSON request body into an object.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, StatusError> {
    let obj: Value = serde_json::from_slice(body).map_err(|e| {
        StatusError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })?;
    if !obj.is_object() {
        return Err(StatusError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if !obj.get("metadata").is_none_or(Value::is_object) {
        return Err(StatusError::bad_request("metadata must be an object"));
    }
    Ok(obj)
}

/// Checks that the body's apiVersion/kind (if given) match the URL, and
/// fills them in when absent.
fn check_kind(r: &Resource, obj: &mut Value) -> Result<(), StatusError> {
    let want_av = r.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(av) if av != want_av => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != r.kind => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                r.kind
            )));
        }
        _ => {}
    }
    obj["apiVersion"] = Value::String(want_av);
    obj["kind"] = Value::String(r.kind.into());
    if obj.get("metadata").is_none_or(Value::is_null) {
        obj["metadata"] = json!({});
    }
    strategy::check_shape(r, obj)
}

fn check_namespace(t: &Target, obj: &mut Value) -> Result<(), StatusError> {
    if !t.resource.namespaced {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        return Ok(());
    }
    let ns = t.namespace.as_deref().unwrap_or_default();
    match obj["metadata"].get("namespace").and_then(Value::as_str) {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            obj["metadata"]["namespace"] = Value::String(ns.into());
            Ok(())
        }
    }
}

fn generate_suffix() -> String {
    // Kubernetes' alphabet for generated names: no vowels, no confusables.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Tries at drawing free service IPs and node ports before giving up.
const ALLOCATION_ATTEMPTS: usize = 8;
/// Tries at taking a disruption from a budget others write too.
const EVICTION_ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub(crate) struct Objects {
    store: Arc<dyn Store>,
    ranges: ServiceRanges,
    caches: WatchCaches,
}

impl Objects {
    pub(crate) fn new(store: Arc<dyn Store>, ranges: ServiceRanges) -> Self {
        let caches = WatchCaches::new(store.clone());
        Self {
            store,
            ranges,
            caches,
        }
    }

    pub(crate) fn caches(&self) -> &WatchCaches {
        &self.caches
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) async fn get(&self, t: &Target, name: &str) -> Result<Value, StatusError> {
        let kv = self
            .store
            .get(&key(t.resource, t.namespace.as_deref(), name))
            .await
            .map_err(store_error)?;
        match kv {
            Some(kv) => {
                let mut obj = decode(&kv)?;
                view(t.resource, &mut obj);
                Ok(obj)
            }
            None => Err(StatusError::not_found(t.resource, name)),
        }
    }

    /// Refuses writes into a namespace that is missing or being deleted.
    async fn check_namespace_open(&self, ns: &str) -> Result<(), StatusError> {
        let nsr = registry::lookup("", "v1", "namespaces").expect("namespaces are registered");
        let Some(kv) = self.get_current(nsr, &key(nsr, None, ns)).await? else {
            return Err(StatusError::not_found(nsr, ns));
        };
        let obj = decode(&kv)?;
        if obj["metadata"].get("deletionTimestamp").is_some()
            || obj["status"]["phase"] == "Terminating"
        {
            return Err(StatusError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    pub(crate) async fn create(
        &self,
        t: &Target,
        obj: Value,
        q: &Query,
    ) -> Result<Value, StatusError> {
        self.create_tracked(t, obj, q, Tracking::Update).await
    }

    async fn create_tracked(
        &self,
        t: &Target,
        mut obj: Value,
        q: &Query,
        tracking: Tracking,
    ) -> Result<Value, StatusError> {
        let r = t.resource;
        check_kind(r, &mut obj)?;
        check_namespace(t, &mut obj)?;
        let meta = &mut obj["metadata"];
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        if name_of_meta(meta).is_empty()
            && let Some(prefix) = prefix
        {
            meta["name"] = Value::String(format!("{prefix}{}", generate_suffix()));
        }
        let causes = validate_metadata(&obj, name_rule(r.group, r.kind));
        let name = name_of(&obj).unwrap_or_default().to_string();
        if !causes.is_empty() {
            return Err(StatusError::invalid(r, &name, causes));
        }
        if let Some(ns) = t.namespace.as_deref().filter(|_| r.namespaced) {
            self.check_namespace_open(ns).await?;
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("checked to be an object");
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(rfc3339_now()));
        strategy::prepare_for_create(r, &mut obj);
        if (r.group, r.kind) == ("", "Pod") {
            self.admit_priority(&name, &mut obj).await?;
        }
        let causes = rudder_api::validation::validate_spec(r.group, r.kind, &obj);
        if !causes.is_empty() {
            return Err(StatusError::invalid(r, &name, causes));
        }
        if strategy::has_generation(r) {
            obj["metadata"]["generation"] = json!(1);
        }
        if tracking == Tracking::Update {
            if let Some(meta) = obj["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            let manager = q.field_manager();
            managed::record_update(r.kind, None, &mut obj, &writer(t, &manager));
        }
        let k = key(r, t.namespace.as_deref(), &name);
        // Allocations (service IPs, node ports) are drawn again on a
        // collision; values the client chose collide every time.
        for _ in 0..ALLOCATION_ATTEMPTS {
            let mut candidate = obj.clone();
            strategy::allocate(r, &self.ranges, &mut candidate)?;
            if q.dry_run() {
                return Ok(candidate);
            }
            let reserved = strategy::reservations(r, &candidate);
            let mut compare = vec![Compare::absent(&k)];
            compare.extend(reserved.iter().map(Compare::absent));
            let mut success = vec![Op::Put {
                key: k.clone(),
                value: encode(&candidate),
            }];
            success.extend(reserved.iter().map(|rk| Op::put(rk.clone(), k.clone())));
            let txn = Txn {
                compare,
                success,
                failure: vec![Op::Get(k.clone())],
            };
            let resp = self.store.txn(txn).await.map_err(store_error)?;
            if resp.succeeded {
                set_resource_version(&mut candidate, resp.revision);
                return Ok(candidate);
            }
            if matches!(resp.results.first(), Some(OpResult::Get(Some(_)))) {
                return Err(StatusError::already_exists(r, &name));
            }
        }
        Err(StatusError::invalid(
            r,
            &name,
            vec![Cause::invalid(
                "spec",
                "\"\"",
                "failed to allocate: the requested or drawn cluster IP or node port is already allocated",
            )],
        ))
    }

    /// The watch cache of `r` once it holds every write acknowledged so
    /// far (admission reads it as kube-apiserver's plugins read their
    /// informers, without their lag); `None` when the store cannot say.
    async fn current_cache(
        &self,
        r: &'static Resource,
    ) -> Result<Option<Arc<crate::watchcache::Cache>>, StatusError> {
        let cache = self.caches.get(r).await?;
        Ok(cache.sync_with(self.store.as_ref()).await.map(|_| cache))
    }

    /// One object with every acknowledged write in it: from the current
    /// watch cache (whose miss is as good as the store's), else the store.
    async fn get_current(
        &self,
        r: &'static Resource,
        k: &str,
    ) -> Result<Option<KeyValue>, StatusError> {
        match self.current_cache(r).await? {
            Some(cache) => Ok(cache.get(k)),
            None => self.store.get(k).await.map_err(store_error),
        }
    }

    /// The Priority admission plugin: a pod's `priorityClassName` (or the
    /// global default class) gives its `priority` and `preemptionPolicy`;
    /// an unknown class is refused (403).
    async fn admit_priority(&self, name: &str, pod: &mut Value) -> Result<(), StatusError> {
        let classes = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("PriorityClasses are registered");
        let wanted = pod["spec"]["priorityClassName"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(String::from);
        let class = match &wanted {
            Some(c) => match builtin_priority_class(c) {
                Some(builtin) => Some(builtin),
                None => match self.get_current(classes, &key(classes, None, c)).await? {
                    Some(kv) => Some(decode(&kv)?),
                    None => {
                        return Err(StatusError::forbidden(format!(
                            "pods \"{name}\" is forbidden: no PriorityClass with name {c} was found"
                        )));
                    }
                },
            },
            None => {
                let prefix = collection_prefix(classes, None);
                let kvs = match self.current_cache(classes).await? {
                    Some(cache) => cache.snapshot(&prefix).1,
                    None => {
                        self.store
                            .range(RangeRequest::prefix(prefix))
                            .await
                            .map_err(store_error)?
                            .kvs
                    }
                };
                let mut default = None;
                for kv in &kvs {
                    let pc = decode(kv)?;
                    if pc["globalDefault"] == true {
                        default = Some(pc);
                        break;
                    }
                }
                default
            }
        };
        // Without a class a pod has priority 0; what the class says is
        // what the pod gets, and a pod that says otherwise is refused.
        let priority = class.as_ref().map_or(json!(0), |c| c["value"].clone());
        let policy = class
            .as_ref()
            .and_then(|c| c["preemptionPolicy"].as_str())
            .unwrap_or("PreemptLowerPriority")
            .to_string();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        if let Some(given) = spec.get("priority").filter(|p| !p.is_null())
            && *given != priority
        {
            return Err(StatusError::forbidden(format!(
                "pods \"{name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(StatusError::forbidden(format!(
                "pods \"{name}\" is forbidden: the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
        spec.insert("priority".into(), priority);
        spec.insert("preemptionPolicy".into(), policy.into());
        if let Some(class) = class {
            spec.insert(
                "priorityClassName".into(),
                class["metadata"]["name"].clone(),
            );
        }
        Ok(())
    }

    /// PUT: replaces the object (or, for `/status`, only its status).
    pub(crate) async fn update(
        &self,
        t: &Target,
        name: &str,
        obj: Value,
        q: &Query,
    ) -> Result<Value, StatusError> {
        // A resourceVersion in the body is the client's precondition;
        // without one the update is unconditional (Kubernetes'
        // AllowUnconditionalUpdate, true for the built-in kinds).
        let strict = obj["metadata"]
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let mut body = obj;
        if !strict && let Some(meta) = body["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        self.modify(t, name, q, strict, Tracking::Update, |_| Ok(body.clone()))
            .await
    }

    /// PATCH in one of the formats Kubernetes accepts, by content type.
    /// An apply patch on a missing object creates it; returns whether it did.
    pub(crate) async fn patch(
        &self,
        t: &Target,
        name: &str,
        patch: &Patch,
        q: &Query,
    ) -> Result<(Value, bool), StatusError> {
        let kind = t.resource.kind;
        if patch.kind != PatchKind::Apply {
            let changed = self
                .modify(t, name, q, patch.strict(), Tracking::Update, |old| {
                    patch.apply(kind, old)
                })
                .await?;
            return Ok((changed, false));
        }
        // Server-side apply: field ownership decides what changes.
        let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => {
                return Err(StatusError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
        };
        let m = writer(t, &manager);
        let force = q.flag("force");
        let merge = |live: &Value, config: &Value| strategic_merge_patch(kind, live, config);
        let applied = self
            .modify(t, name, q, patch.strict(), Tracking::Applied, |old| {
                managed::apply(kind, Some(old), &patch.body, &m, force, merge).map_err(apply_error)
            })
            .await;
        match applied {
            Err(e) if e.code == 404 && t.subresource.is_none() => {
                let mut config = patch.body.clone();
                config["metadata"]["name"] = Value::String(name.into());
                let obj =
                    managed::apply(kind, None, &config, &m, force, merge).map_err(apply_error)?;
                Ok((
                    self.create_tracked(t, obj, q, Tracking::Applied).await?,
                    true,
                ))
            }
            other => Ok((other?, false)),
        }
    }

    /// `pods/binding`: assigns an unscheduled pod to a node (what the
    /// scheduler does); a pod already bound is a conflict.
    pub(crate) async fn bind(
        &self,
        t: &Target,
        name: &str,
        binding: &Value,
        q: &Query,
    ) -> Result<Value, StatusError> {
        let r = t.resource;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                StatusError::invalid(
                    r,
                    name,
                    vec![Cause::required(
                        "target.name",
                        "the node to bind to is required",
                    )],
                )
            })?;
        self.modify(t, name, q, false, Tracking::Update, |old| {
            if let Some(bound) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(StatusError::conflict_with(
                    r,
                    name,
                    &format!("pod {name} is already assigned to node \"{bound}\""),
                ));
            }
            if old["metadata"].get("deletionTimestamp").is_some() {
                return Err(StatusError::conflict_with(
                    r,
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            if let Some(uid) = binding["metadata"]["uid"]
                .as_str()
                .filter(|u| !u.is_empty())
                && old["metadata"]["uid"].as_str() != Some(uid)
            {
                return Err(StatusError::conflict_with(
                    r,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old["metadata"]["uid"].as_str().unwrap_or_default()
                    ),
                ));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = node.into();
            // The binding's annotations are copied to the pod, and the pod
            // is marked scheduled (the binding storage's assignPod).
            if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
                for (k, v) in annotations {
                    new["metadata"]["annotations"][k] = v.clone();
                }
            }
            let mut conditions: Vec<Value> = new["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(json!({
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": null,
                "lastTransitionTime": rfc3339_now(),
            }));
            new["status"]["conditions"] = Value::Array(conditions);
            Ok(new)
        })
        .await?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    /// `pods/eviction`: deletes the pod unless a PodDisruptionBudget that
    /// selects it allows no disruption now (429, as Kubernetes answers).
    pub(crate) async fn evict(
        &self,
        t: &Target,
        name: &str,
        eviction: &Value,
        q: &Query,
    ) -> Result<Value, StatusError> {
        let pod = self.get(t, name).await?;
        let ns = t.namespace.as_deref().unwrap_or_default();
        // Pods that are not running, or already going, need no budget
        // (kube's canIgnorePDB).
        let phase = pod["status"]["phase"].as_str();
        let ignore_budgets = matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
            || pod["metadata"].get("deletionTimestamp").is_some();
        if !ignore_budgets {
            self.take_disruption(ns, name, &pod).await?;
        }
        let options = eviction
            .get("deleteOptions")
            .cloned()
            .unwrap_or(Value::Null);
        self.delete(t, name, &options, q).await?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    /// Takes one disruption from the budget that covers `pod`, if any, in
    /// the same decision that allows the eviction (kube's
    /// `checkAndDecrement`): the budget's `disruptionsAllowed` goes down and
    /// the pod is listed in its `disruptedPods`, written only if the budget
    /// is unchanged, so two concurrent evictions cannot both pass one
    /// budget. 429 when none is left.
    async fn take_disruption(&self, ns: &str, name: &str, pod: &Value) -> Result<(), StatusError> {
        let pdbs =
            registry::lookup("policy", "v1", "poddisruptionbudgets").expect("PDBs are registered");
        for _ in 0..EVICTION_ATTEMPTS {
            let list = self
                .store
                .range(RangeRequest::prefix(collection_prefix(pdbs, Some(ns))))
                .await
                .map_err(store_error)?;
            let mut covering = Vec::new();
            for kv in &list.kvs {
                let pdb = decode(kv)?;
                let selector = LabelSelector::parse(&selector_string(&pdb["spec"]["selector"]))
                    .map_err(|e| {
                        StatusError::internal(format!("PodDisruptionBudget selector: {e}"))
                    })?;
                // An empty selector selects nothing in policy/v1.
                let selects = pdb["spec"]["selector"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty())
                    && selector.matches(pod["metadata"]["labels"].as_object());
                if selects {
                    covering.push((kv, pdb));
                }
            }
            let (kv, mut pdb) = match covering.len() {
                0 => return Ok(()),
                1 => covering.remove(0),
                _ => {
                    return Err(StatusError::internal(
                        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    ));
                }
            };
            let pdb_name = pdb["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let allowed = pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
            if allowed <= 0 {
                return Err(StatusError::too_many_requests(format!(
                    "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb_name} needs more healthy pods to allow a disruption."
                )));
            }
            if !pdb["status"].is_object() {
                pdb["status"] = json!({});
            }
            pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if !pdb["status"]["disruptedPods"].is_object() {
                pdb["status"]["disruptedPods"] = json!({});
            }
            pdb["status"]["disruptedPods"][name] = rfc3339_now().into();
            if let Some(meta) = pdb["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            match self.replace_stored(pdbs, &pdb_name, kv, pdb).await {
                Ok(_) => return Ok(()),
                // Another eviction (or the disruption controller) wrote it
                // meanwhile: decide again on what is there now.
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Err(StatusError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget: it changes too often; try again",
        ))
    }

    /// GET of the `/scale` subresource.
    pub(crate) async fn get_scale(&self, t: &Target, name: &str) -> Result<Value, StatusError> {
        Ok(to_scale(&self.get(t, name).await?))
    }

    /// PUT or PATCH of `/scale`: `change` maps the current Scale to the
    /// requested one; only `spec.replicas` is taken from it.
    pub(crate) async fn update_scale(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        strict: bool,
        change: impl Fn(&Value) -> Result<Value, StatusError>,
    ) -> Result<Value, StatusError> {
        let main = Target {
            subresource: None,
            ..t.clone()
        };
        let obj = self
            .modify(&main, name, q, strict, Tracking::Update, |old| {
                let scale = change(&to_scale(old))?;
                let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
                if replicas < 0 {
                    return Err(StatusError::invalid(
                        t.resource,
                        name,
                        vec![Cause::invalid(
                            "spec.replicas",
                            &replicas.to_string(),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut new = old.clone();
                new["spec"]["replicas"] = json!(replicas);
                if let Some(rv) = scale["metadata"].get("resourceVersion") {
                    new["metadata"]["resourceVersion"] = rv.clone();
                }
                Ok(new)
            })
            .await?;
        Ok(to_scale(&obj))
    }

    /// Read-modify-write with compare-and-swap: `change` maps the current
    /// object to the requested one, which is checked and stored. With
    /// `strict`, a resourceVersion in the requested object must match.
    async fn modify(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        strict: bool,
        tracking: Tracking,
        change: impl Fn(&Value) -> Result<Value, StatusError>,
    ) -> Result<Value, StatusError> {
        let r = t.resource;
        let part = strategy::Part::of(t.subresource.as_deref());
        let k = key(r, t.namespace.as_deref(), name);
        loop {
            let current = self.store.get(&k).await.map_err(store_error)?;
            let Some(current) = current else {
                return Err(StatusError::not_found(r, name));
            };
            let mut old = decode(&current)?;
            view(r, &mut old);
            let mut obj = change(&old)?;
            if !obj.is_object() {
                return Err(StatusError::bad_request("the result must be a JSON object"));
            }
            check_kind(r, &mut obj)?;
            check_namespace(t, &mut obj)?;
            match name_of(&obj) {
                Some(n) if n != name => {
                    return Err(StatusError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                _ => obj["metadata"]["name"] = Value::String(name.into()),
            }
            let causes = validate_metadata(&obj, name_rule(r.group, r.kind));
            if !causes.is_empty() {
                return Err(StatusError::invalid(r, name, causes));
            }
            if let Some(rv) = obj["metadata"]
                .get("resourceVersion")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                && rv != current.mod_revision.to_string()
            {
                return Err(StatusError::conflict(r, name));
            }
            let mut new = merge_update(r, &old, &obj, part);
            rudder_api::defaults::apply(r.group, r.version, r.kind, &mut new);
            let mut causes = rudder_api::validation::validate_spec(r.group, r.kind, &new);
            causes.extend(rudder_api::validation::validate_update(
                r.group, r.kind, &old, &new,
            ));
            if !causes.is_empty() {
                return Err(StatusError::invalid(r, name, causes));
            }
            if tracking == Tracking::Update {
                // Ownership starts from the stored object's, unless the
                // client changed managedFields itself (as kubectl does to
                // hand client-side-apply fields over to server-side apply).
                let sent = obj["metadata"].get("managedFields");
                let stored = old["metadata"].get("managedFields");
                let base = match sent {
                    Some(Value::Array(list)) if sent != stored && valid_managed_fields(list) => {
                        sent
                    }
                    _ => stored,
                };
                match base.cloned() {
                    Some(fields) => new["metadata"]["managedFields"] = fields,
                    None => {
                        if let Some(meta) = new["metadata"].as_object_mut() {
                            meta.remove("managedFields");
                        }
                    }
                }
                let manager = q.field_manager();
                managed::record_update(r.kind, Some(&old), &mut new, &writer(t, &manager));
            }
            strategy::reallocate(r, &self.ranges, &old, &mut new)?;
            if old["metadata"].get("deletionTimestamp").is_some() {
                let before = finalizers(&old);
                let added: Vec<&str> = finalizers(&new)
                    .into_iter()
                    .filter(|f| !before.contains(f))
                    .collect();
                if !added.is_empty() {
                    let why = format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    );
                    return Err(StatusError::invalid(
                        r,
                        name,
                        vec![Cause::forbidden("metadata.finalizers", &why)],
                    ));
                }
                // The last finalizer removed from an object being deleted
                // (without a pending grace period): it goes now. A
                // namespace waits for its own finalizers too (kube's
                // ShouldDeleteNamespaceDuringUpdate).
                let namespace_finalizers = strategy::is_namespace(r)
                    && new["spec"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty());
                if !has_finalizers(&new)
                    && !namespace_finalizers
                    && new["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(0)
                        == 0
                    && !q.dry_run()
                {
                    if !self.delete_with_reservations(r, &current, &old).await? {
                        continue;
                    }
                    if let Some(ns) = t.namespace.as_deref().filter(|_| r.namespaced) {
                        self.finish_namespace_if_terminating(ns).await?;
                    }
                    set_resource_version(&mut new, current.mod_revision);
                    return Ok(new);
                }
            }
            // An update that changes nothing is not written: the object
            // keeps its resourceVersion, so repeating it never conflicts
            // (kube's GuaranteedUpdate compares the encoded bytes; only
            // the updating manager's managedFields time differs here).
            if q.dry_run() || unchanged(&old, &new) {
                if !q.dry_run() {
                    new = old;
                }
                set_resource_version(&mut new, current.mod_revision);
                return Ok(new);
            }
            let (before, after) = (
                strategy::reservations(r, &old),
                strategy::reservations(r, &new),
            );
            let added: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
            let mut compare = vec![Compare::mod_revision(&k, current.mod_revision)];
            compare.extend(added.iter().map(|rk| Compare::absent(rk.as_str())));
            let mut success = vec![Op::Put {
                key: k.clone(),
                value: encode(&new),
            }];
            success.extend(added.iter().map(|rk| Op::put(rk.as_str(), k.clone())));
            success.extend(
                before
                    .iter()
                    .filter(|rk| !after.contains(rk))
                    .map(|rk| Op::Delete(rk.clone())),
            );
            let txn = Txn {
                compare,
                success,
                failure: vec![Op::Get(k.clone())],
            };
            let resp = self.store.txn(txn).await.map_err(store_error)?;
            if resp.succeeded {
                set_resource_version(&mut new, resp.revision);
                return Ok(new);
            }
            let moved = match resp.results.first() {
                Some(OpResult::Get(Some(now))) => now.mod_revision != current.mod_revision,
                _ => true,
            };
            match (moved, strict) {
                // Someone wrote in between: with a precondition the client
                // must re-read; without one, apply the change again.
                (true, false) => continue,
                (true, true) => return Err(StatusError::conflict(r, name)),
                (false, _) => {
                    return Err(StatusError::invalid(
                        r,
                        name,
                        vec![Cause::invalid(
                            "spec",
                            "\"\"",
                            "provided node port is already allocated",
                        )],
                    ));
                }
            }
        }
    }

    pub(crate) async fn delete(
        &self,
        t: &Target,
        name: &str,
        options: &Value,
        q: &Query,
    ) -> Result<Value, StatusError> {
        let r = t.resource;
        let k = key(r, t.namespace.as_deref(), name);
        let current = self.store.get(&k).await.map_err(store_error)?;
        let Some(current) = current else {
            return Err(StatusError::not_found(r, name));
        };
        let mut obj = decode(&current)?;
        view(r, &mut obj);
        let pre = &options["preconditions"];
        if let Some(uid) = pre.get("uid").and_then(Value::as_str)
            && obj["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(StatusError::conflict(r, name));
        }
        if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
            && rv != current.mod_revision.to_string()
        {
            return Err(StatusError::conflict(r, name));
        }
        if q.dry_run() {
            return Ok(obj);
        }
        if strategy::is_namespace(r) {
            return self.delete_namespace(t, name, current, obj).await;
        }
        let grace = strategy::grace_period(r, &obj, options);
        // Orphan and Foreground leave the object in place, marked, with a
        // finalizer the garbage collector removes once it has orphaned or
        // deleted the dependents.
        if let Some(finalizer) = propagation_finalizer(options, q)? {
            let deleting = obj["metadata"].get("deletionTimestamp").is_some();
            if deleting && finalizers(&obj).contains(&finalizer) {
                return Ok(obj);
            }
            let mut obj = obj;
            let list = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("finalizers").or_insert_with(|| json!([])));
            if let Some(Value::Array(list)) = list {
                list.push(finalizer.into());
            }
            if !deleting {
                return self.mark_deleted(r, name, &current, obj, grace).await;
            }
            return self.replace_stored(r, name, &current, obj).await;
        }
        if !has_finalizers(&obj) && grace == 0 {
            if !self.delete_with_reservations(r, &current, &obj).await? {
                return Err(StatusError::conflict(r, name));
            }
            if let Some(ns) = t.namespace.as_deref().filter(|_| r.namespaced) {
                self.finish_namespace_if_terminating(ns).await?;
            }
            return Ok(obj);
        }
        if obj["metadata"].get("deletionTimestamp").is_some() {
            return Ok(obj);
        }
        // Graceful deletion or finalizers: mark the object; whoever owns
        // the finalizers (or the node agent, for a pod) completes it.
        self.mark_deleted(r, name, &current, obj, grace).await
    }

    /// Sets deletionTimestamp (and the grace period) on a stored object.
    async fn mark_deleted(
        &self,
        r: &Resource,
        name: &str,
        current: &KeyValue,
        mut obj: Value,
        grace: i64,
    ) -> Result<Value, StatusError> {
        obj["metadata"]["deletionTimestamp"] =
            rudder_api::time::rfc3339(rudder_api::time::now() + grace).into();
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        self.replace_stored(r, name, current, obj).await
    }

    /// Writes `obj` over `current` if that is still what is stored (409
    /// otherwise).
    async fn replace_stored(
        &self,
        r: &Resource,
        name: &str,
        current: &KeyValue,
        mut obj: Value,
    ) -> Result<Value, StatusError> {
        match self
            .store
            .update(&current.key, encode(&obj), current.mod_revision)
            .await
        {
            Ok(rev) => {
                set_resource_version(&mut obj, rev);
                Ok(obj)
            }
            Err(StoreError::Conflict { .. }) => Err(StatusError::conflict(r, name)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Namespace deletion: the namespace turns Terminating, what is in it is
    /// deleted (objects with finalizers or pods on nodes are marked and go
    /// later), and the namespace goes once it is empty.
    async fn delete_namespace(
        &self,
        t: &Target,
        name: &str,
        current: KeyValue,
        obj: Value,
    ) -> Result<Value, StatusError> {
        let mut obj = obj;
        if obj["metadata"].get("deletionTimestamp").is_none() {
            obj["status"]["phase"] = "Terminating".into();
            obj = self
                .mark_deleted(t.resource, name, &current, obj, 0)
                .await?;
        }
        // Deletes what is in it, then the namespace if that left it empty.
        if self.finish_namespace_if_terminating(name).await? {
            obj["status"]["phase"] = "Terminating".into();
        }
        Ok(obj)
    }

    /// Deletes a terminating namespace that has become empty; returns
    /// whether it still exists.
    async fn finish_namespace_if_terminating(&self, ns: &str) -> Result<bool, StatusError> {
        let nsr = registry::lookup("", "v1", "namespaces").expect("namespaces are registered");
        let Some(kv) = self
            .store
            .get(&key(nsr, None, ns))
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        let obj = decode(&kv)?;
        if obj["metadata"].get("deletionTimestamp").is_none() {
            return Ok(true);
        }
        // What waited for the pods to go may go now; the namespace goes
        // once nothing is left (nothing new arrives in a terminating one).
        if self.delete_namespace_contents(ns).await? > 0 {
            return Ok(true);
        }
        match self.store.delete(&kv.key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(false),
            // Changed meanwhile: the next deletion in it tries again.
            Err(StoreError::Conflict { .. }) => Ok(true),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Deletes a stored object and what it reserved, if it is unchanged.
    async fn delete_with_reservations(
        &self,
        r: &Resource,
        current: &KeyValue,
        obj: &Value,
    ) -> Result<bool, StatusError> {
        let mut success = vec![Op::Delete(current.key.clone())];
        success.extend(strategy::reservations(r, obj).into_iter().map(Op::Delete));
        let txn = Txn {
            compare: vec![Compare::mod_revision(&current.key, current.mod_revision)],
            success,
            failure: vec![],
        };
        Ok(self.store.txn(txn).await.map_err(store_error)?.succeeded)
    }

    /// Deletes every namespaced object in `ns` (the namespace controller's
    /// job, done in line until graceful deletion and finalizers exist), in
    /// Kubernetes 1.33's order (OrderedNamespaceDeletion): pods first, and
    /// the rest only once no pod is left, so that nothing a running pod
    /// uses (its Secrets, ConfigMaps, ServiceAccount, PVCs) goes first.
    /// Returns how many objects are left in it.
    async fn delete_namespace_contents(&self, ns: &str) -> Result<usize, StatusError> {
        let (pods, rest): (Vec<&Resource>, Vec<&Resource>) = registry::RESOURCES
            .iter()
            .filter(|r| r.namespaced)
            .partition(|r| strategy::is_pod(r));
        let mut left = 0;
        for r in pods {
            left += self.delete_all_in(r, ns).await?;
        }
        if left > 0 {
            return Ok(left);
        }
        for r in rest {
            left += self.delete_all_in(r, ns).await?;
        }
        Ok(left)
    }

    /// Deletes every object of `r` in `ns`: at once where nothing holds it,
    /// else marked (finalizers, a pod's grace period); returns how many
    /// are left.
    async fn delete_all_in(&self, r: &Resource, ns: &str) -> Result<usize, StatusError> {
        let prefix = collection_prefix(r, Some(ns));
        let list = self
            .store
            .range(RangeRequest::prefix(prefix))
            .await
            .map_err(store_error)?;
        let mut left = 0;
        for kv in list.kvs {
            // A concurrent change loses nothing here: an object that
            // changed meanwhile is picked up by the next deletion.
            let obj = decode(&kv)?;
            let grace = strategy::grace_period(r, &obj, &Value::Null);
            if !has_finalizers(&obj) && grace == 0 {
                if !self.delete_with_reservations(r, &kv, &obj).await? {
                    left += 1;
                }
                continue;
            }
            left += 1;
            if obj["metadata"].get("deletionTimestamp").is_none() {
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match self.mark_deleted(r, &name, &kv, obj, grace).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(left)
    }

    pub(crate) async fn list(&self, t: &Target, q: &Query) -> Result<List, StatusError> {
        let r = t.resource;
        let filter = Filter::parse(r, q)?;
        let limit: usize = match q.get("limit") {
            Some(l) if !l.is_empty() => l
                .parse()
                .map_err(|_| StatusError::bad_request(format!("invalid limit {l:?}")))?,
            _ => 0,
        };
        let prefix = collection_prefix(r, t.namespace.as_deref());
        let first_page = q.get("continue").is_none_or(str::is_empty);
        if first_page
            && q.get("resourceVersionMatch") != Some("Exact")
            && let Some(list) = self.list_from_cache(t, q, &filter, limit).await?
        {
            return Ok(list);
        }
        let (mut revision, mut start_after) = (0, None);
        if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
            let (rev, start) = decode_continue(token)?;
            revision = rev;
            start_after = Some(start);
        } else if q.get("resourceVersionMatch") == Some("Exact") {
            revision = parse_rv(q.get("resourceVersion"))?;
        }
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        loop {
            let mut req = RangeRequest::prefix(prefix.clone()).at_revision(revision);
            if let Some(after) = &start_after {
                req = req.start_after(after.clone());
            }
            if limit > 0 {
                req = req.limit(limit.saturating_sub(items.len()).max(1));
                // Kubernetes counts what is left only for lists without
                // selectors (with them, a page's rest is not known).
                if filter.is_empty() {
                    req = req.with_count();
                }
            }
            let page = self.store.range(req).await.map_err(|e| match e {
                StoreError::Compacted { .. } if start_after.is_some() => StatusError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ),
                e => store_error(e),
            })?;
            if revision == 0 {
                revision = page.revision;
            }
            let last_key = page.kvs.last().map(|kv| kv.key.clone());
            for kv in &page.kvs {
                // Without selectors nothing needs parsing: the stored JSON
                // goes out as it is, with its resourceVersion spliced in.
                if filter.is_empty() || filter.matches(&viewed(r, kv)?) {
                    items.push(item_json(r, kv)?);
                }
            }
            if !page.more {
                break;
            }
            start_after = last_key;
            if limit > 0 && items.len() >= limit {
                continue_token = start_after.as_ref().map(|k| encode_continue(revision, k));
                remaining = page.remaining;
                break;
            }
        }
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(token) = continue_token {
            metadata["continue"] = Value::String(token);
            if let Some(n) = remaining {
                metadata["remainingItemCount"] = json!(n);
            }
        }
        Ok(List {
            resource: r,
            metadata,
            items,
        })
    }
}

impl Objects {
    /// A first page from the watch cache, when the cache can answer as the
    /// store would: `resourceVersion=0` (any version will do), or a version
    /// the cache has reached, or the latest once the cache has caught up
    /// with the store. `None`: ask the store.
    async fn list_from_cache(
        &self,
        t: &Target,
        q: &Query,
        filter: &Filter,
        limit: usize,
    ) -> Result<Option<List>, StatusError> {
        let r = t.resource;
        let cache = self.caches.get(r).await?;
        let current = match q.get("resourceVersion").unwrap_or("") {
            "0" => true,
            "" => cache.sync_with(self.store.as_ref()).await.is_some(),
            rv => {
                let rv = parse_rv(Some(rv))?;
                cache.revision() >= rv
                    || (cache.sync_with(self.store.as_ref()).await.is_some()
                        && cache.revision() >= rv)
            }
        };
        if !current {
            return Ok(None);
        }
        let (revision, kvs) = cache.snapshot(&collection_prefix(r, t.namespace.as_deref()));
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = 0;
        for (i, kv) in kvs.iter().enumerate() {
            if filter.is_empty() || filter.matches(&viewed(r, kv)?) {
                items.push(item_json(r, kv)?);
            }
            if limit > 0 && items.len() >= limit && i + 1 < kvs.len() {
                continue_token = Some(encode_continue(revision, &kv.key));
                remaining = kvs.len() - (i + 1);
                break;
            }
        }
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(token) = continue_token {
            metadata["continue"] = Value::String(token);
            // As from the store: counted only without selectors.
            if filter.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(Some(List {
            resource: r,
            metadata,
            items,
        }))
    }
}

/// A list result: the items as JSON documents, ready to send.
#[derive(Debug)]
pub(crate) struct List {
    resource: &'static Resource,
    pub(crate) metadata: Value,
    items: Vec<Bytes>,
}

impl List {
    /// The `<Kind>List` response body, assembled without re-encoding items.
    pub(crate) fn to_json(&self) -> Bytes {
        let r = self.resource;
        let head = json!({"apiVersion": r.api_version(), "kind": format!("{}List", r.kind), "metadata": self.metadata});
        let head = serde_json::to_vec(&head).unwrap_or_default();
        let size: usize = self.items.iter().map(|i| i.len() + 1).sum();
        let mut out = Vec::with_capacity(head.len() + size + 16);
        // `{"apiVersion":…,"metadata":{…}` then `,"items":[…]}`.
        out.extend_from_slice(&head[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"]}");
        Bytes::from(out)
    }

    /// The items as JSON values (for Tables).
    pub(crate) fn values(&self) -> Result<Vec<Value>, StatusError> {
        self.items
            .iter()
            .map(|raw| {
                serde_json::from_slice(raw)
                    .map_err(|e| StatusError::internal(format!("re-reading a list item: {e}")))
            })
            .collect()
    }
}

/// A stored object as JSON with its resourceVersion, without parsing it:
/// stored objects are serde_json output, whose first `"metadata":{` is the
/// top-level one (only `apiVersion` and `kind`, plain strings, sort before it).
/// Whether a write records its changed fields for its manager (`Update`)
/// or server-side apply has already set them (`Applied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracking {
    Update,
    Applied,
}

/// Whether managedFields a client sent have the shape the server keeps:
/// objects naming a manager and an operation.
fn valid_managed_fields(list: &[Value]) -> bool {
    list.iter().all(|e| {
        e["manager"].is_string()
            && matches!(e["operation"].as_str(), Some("Apply" | "Update"))
            && e["fieldsV1"].is_object()
    })
}

/// The manager of a write to `t`, for managedFields.
fn writer<'a>(t: &'a Target, manager: &'a str) -> managed::Manager<'a> {
    managed::Manager {
        name: manager,
        api_version: t.resource.api_version(),
        subresource: t.subresource.as_deref(),
        time: rfc3339_now(),
    }
}

fn apply_error(e: managed::ApplyError) -> StatusError {
    match e {
        managed::ApplyError::Conflicts(conflicts) => {
            let causes = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict",
                    field: c.field.clone(),
                    message: format!("conflict with {:?} using {}", c.manager, c.api_version),
                })
                .collect();
            StatusError::apply_conflict(managed::conflict_message(&conflicts), causes)
        }
        managed::ApplyError::Merge(e) => {
            StatusError::unprocessable(format!("the apply patch could not be applied: {e}"))
        }
    }
}

/// A stored object decoded, as resource `r` shows it.
fn viewed(r: &Resource, kv: &KeyValue) -> Result<Value, StatusError> {
    let mut obj = decode(kv)?;
    view(r, &mut obj);
    Ok(obj)
}

/// A list item as JSON: the stored bytes with the resourceVersion spliced
/// in, or re-encoded where the resource converts between versions.
fn item_json(r: &Resource, kv: &KeyValue) -> Result<Bytes, StatusError> {
    if !r.converts() {
        return with_resource_version(kv);
    }
    Ok(Bytes::from(
        serde_json::to_vec(&viewed(r, kv)?).unwrap_or_default(),
    ))
}

pub(crate) fn with_resource_version(kv: &KeyValue) -> Result<Bytes, StatusError> {
    const META: &[u8] = b"\"metadata\":{";
    let raw = &kv.value;
    match raw.windows(META.len()).position(|w| w == META) {
        Some(at) => Ok(resource_version_at(raw, at + META.len(), kv.mod_revision)),
        None => Ok(Bytes::from(
            serde_json::to_vec(&decode(kv)?).unwrap_or_default(),
        )),
    }
}

/// Stored JSON with `"resourceVersion":"<rev>"` put in as the first member
/// of the metadata object that opens just before `after`.
pub(crate) fn resource_version_at(raw: &[u8], after: usize, rev: Revision) -> Bytes {
    let insert = format!("\"resourceVersion\":\"{rev}\"");
    let empty = raw.get(after) == Some(&b'}');
    let mut out = Vec::with_capacity(raw.len() + insert.len() + 1);
    out.extend_from_slice(&raw[..after]);
    out.extend_from_slice(insert.as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&raw[after..]);
    Bytes::from(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// A PATCH body in one of the formats Kubernetes accepts (by content type).
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    kind: PatchKind,
    body: Value,
}

impl Patch {
    pub(crate) fn parse(content_type: &str, raw: &[u8]) -> Result<Self, StatusError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let kind = match media {
            "application/json-patch+json" => PatchKind::Json,
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" => PatchKind::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
            _ => {
                return Err(StatusError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                     application/strategic-merge-patch+json (got {media:?})"
                )));
            }
        };
        let body: Value = match serde_json::from_slice(raw) {
            Ok(body) => body,
            // An apply patch is YAML (kubectl sends the JSON subset).
            Err(_) if kind == PatchKind::Apply => parse_yaml(raw)?,
            Err(e) => {
                return Err(StatusError::bad_request(format!(
                    "the body of the request could not be decoded as JSON: {e}"
                )));
            }
        };
        if kind != PatchKind::Json && !body.is_object() {
            return Err(StatusError::bad_request(
                "a merge or apply patch must be a JSON object",
            ));
        }
        Ok(Self { kind, body })
    }

    /// The partial object a merge, strategic or apply patch is (a JSON
    /// patch is a list of operations instead).
    pub(crate) fn object(&self) -> Option<&Value> {
        (self.kind != PatchKind::Json).then_some(&self.body)
    }

    /// A resourceVersion in the patch is a precondition.
    pub(crate) fn strict(&self) -> bool {
        self.body["metadata"]
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    }

    /// The object after the patch (`kind` picks the strategic merge keys).
    pub(crate) fn apply(&self, kind: &str, old: &Value) -> Result<Value, StatusError> {
        let out = match self.kind {
            PatchKind::Json => json_patch(old, &self.body),
            PatchKind::Merge => Ok(merge_patch(old, &self.body)),
            PatchKind::Strategic => strategic_merge_patch(kind, old, &self.body),
            // Server-side apply, first cut: the applied fields are merged in;
            // field ownership (managedFields) is not tracked yet.
            PatchKind::Apply => Ok(merge_patch(old, &self.body)),
        };
        out.map_err(|e| StatusError::unprocessable(format!("the patch could not be applied: {e}")))
    }
}

/// The label and field selectors of a list or watch.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub(crate) fn parse(r: &Resource, q: &Query) -> Result<Self, StatusError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| StatusError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            q.get("fieldSelector").unwrap_or(""),
            fields_of(r.group, r.kind),
        )
        .map_err(|e| StatusError::bad_request(e.to_string()))?;
        Ok(Self { labels, fields })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj["metadata"]["labels"].as_object()) && self.fields.matches(obj)
    }
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The finalizer a delete's propagation policy puts on the object:
/// `orphan` (Orphan, or the deprecated `orphanDependents: true`),
/// `foregroundDeletion` (Foreground), none for Background (the default).
fn propagation_finalizer(options: &Value, q: &Query) -> Result<Option<&'static str>, StatusError> {
    let policy = options["propagationPolicy"]
        .as_str()
        .or_else(|| q.get("propagationPolicy"));
    let orphan = options["orphanDependents"]
        .as_bool()
        .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
    match (policy, orphan) {
        (Some(_), Some(_)) => Err(StatusError::unprocessable(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \
             orphanDependents and deletionPropagation cannot be both set",
        )),
        (Some("Orphan"), _) | (None, Some(true)) => Ok(Some("orphan")),
        (Some("Foreground"), _) => Ok(Some("foregroundDeletion")),
        (Some("Background"), _) | (None, _) => Ok(None),
        (Some(other), _) => Err(StatusError::unprocessable(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \
             {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

fn has_finalizers(obj: &Value) -> bool {
    !finalizers(obj).is_empty()
}

/// The autoscaling/v1 Scale view of a scalable object.
fn to_scale(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut scale_meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            scale_meta[field] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&obj["spec"]["selector"]),
        },
    })
}

fn name_of_meta(meta: &Value) -> &str {
    meta.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// The stored object after a PUT of `body` onto `old`: server-owned
/// metadata kept, and of the rest what the endpoint writes (`part`).
fn merge_update(r: &Resource, old: &Value, body: &Value, part: strategy::Part) -> Value {
    let mut new = strategy::prepare_for_update(r, old, body, part);
    strategy::keep_metadata(
        old,
        &mut new,
        &[
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ],
    );
    if part == strategy::Part::Main
        && strategy::has_generation(r)
        && old.get("spec") != new.get("spec")
    {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    if let Some(meta) = new["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    new
}

/// Whether `new` stores the same object as `old`: equal but for
/// `metadata.resourceVersion` and the times of `managedFields` entries.
fn unchanged(old: &Value, new: &Value) -> bool {
    fn same_map(
        a: &serde_json::Map<String, Value>,
        b: &serde_json::Map<String, Value>,
        ignore: &[&str],
        mut field: impl FnMut(&str, &Value, &Value) -> bool,
    ) -> bool {
        let keys = |m: &serde_json::Map<String, Value>| {
            m.keys().filter(|k| !ignore.contains(&k.as_str())).count()
        };
        keys(a) == keys(b)
            && a.iter()
                .filter(|(k, _)| !ignore.contains(&k.as_str()))
                .all(|(k, v)| b.get(k).is_some_and(|w| field(k, v, w)))
    }
    fn same_entries(a: &Value, b: &Value) -> bool {
        match (a.as_array(), b.as_array()) {
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| match (x.as_object(), y.as_object()) {
                            (Some(x), Some(y)) => same_map(x, y, &["time"], |_, v, w| v == w),
                            _ => x == y,
                        })
            }
            _ => a == b,
        }
    }
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    same_map(old, new, &[], |k, v, w| {
        match (k, v.as_object(), w.as_object()) {
            ("metadata", Some(a), Some(b)) => same_map(a, b, &["resourceVersion"], |k, v, w| {
                if k == "managedFields" {
                    same_entries(v, w)
                } else {
                    v == w
                }
            }),
            _ => v == w,
        }
    })
}

fn parse_rv(rv: Option<&str>) -> Result<Revision, StatusError> {
    match rv {
        None | Some("") | Some("0") => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| StatusError::bad_request(format!("invalid resourceVersion {s:?}"))),
    }
}

pub(crate) fn parse_watch_rv(rv: Option<&str>) -> Result<Option<Revision>, StatusError> {
    Ok(match parse_rv(rv)? {
        0 => None,
        n => Some(n),
    })
}

fn encode_continue(rev: Revision, start: &str) -> String {
    use base64::Engine;
    let token = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), StatusError> {
    use base64::Engine;
    let bad = || {
        StatusError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v["rv"].as_i64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rev, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_are_spliced_into_stored_json() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"metadata": "{"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        ] {
            let kv = KeyValue {
                key: "/k".into(),
                value: encode(&obj),
                create_revision: 3,
                mod_revision: 7,
                version: 1,
            };
            let spliced: Value =
                serde_json::from_slice(&with_resource_version(&kv).unwrap()).unwrap();
            let mut want = obj.clone();
            want["metadata"]["resourceVersion"] = "7".into();
            assert_eq!(spliced, want);
        }
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/core/pods/default/web");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/registry/core/pods/default/web".into())
        );
        assert!(decode_continue("not base64!").is_err());
        assert!(decode_continue("e30").is_err());
    }

    #[test]
    fn update_keeps_server_owned_fields_and_bumps_generation_on_spec_change() {
        let r = registry::by_kind("apps", "v1", "Deployment").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u1", "creationTimestamp": "t", "generation": 3},
                         "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let body = json!({"metadata": {"name": "d", "uid": "forged", "resourceVersion": "9"},
                          "spec": {"replicas": 2}, "status": {"replicas": 99}});
        let new = merge_update(r, &old, &body, strategy::Part::Main);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(
            new["status"]["replicas"], 1,
            "status is kept by the main resource"
        );
        assert!(new["metadata"].get("resourceVersion").is_none());
        let same = merge_update(
            r,
            &old,
            &json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}}),
            strategy::Part::Main,
        );
        assert_eq!(same["metadata"]["generation"], 3);
        let status = merge_update(r, &old, &body, strategy::Part::Status);
        assert_eq!(
            (
                status["spec"]["replicas"].clone(),
                status["status"]["replicas"].clone()
            ),
            (json!(1), json!(99))
        );
        assert_eq!(status["metadata"]["uid"], "u1");
        assert_eq!(status["metadata"]["generation"], 3);
    }

    /// kube's status strategies: the request's annotations (and, but for
    /// a Deployment, labels) are stored; a Pod keeps its owner references.
    #[test]
    fn status_updates_store_metadata_as_each_kind_strategy_says() {
        let old = json!({"metadata": {"name": "x", "uid": "u1", "labels": {"a": "1"},
                                      "ownerReferences": [{"name": "o"}]},
                         "spec": {"replicas": 1}, "status": {}});
        let body = json!({"metadata": {"name": "x", "labels": {"a": "2"},
                                       "annotations": {"deployment.kubernetes.io/revision": "1"},
                                       "ownerReferences": []},
                          "spec": {"replicas": 5}, "status": {"replicas": 1}});
        for (group, kind, labels, owners) in [
            ("apps", "Deployment", json!({"a": "1"}), json!([])),
            ("apps", "ReplicaSet", json!({"a": "2"}), json!([])),
            ("", "Pod", json!({"a": "2"}), json!([{"name": "o"}])),
        ] {
            let r = registry::by_kind(group, "v1", kind).unwrap();
            let new = merge_update(r, &old, &body, strategy::Part::Status);
            assert_eq!(
                new["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1",
                "{kind}"
            );
            assert_eq!(new["metadata"]["labels"], labels, "{kind}");
            assert_eq!(new["metadata"]["ownerReferences"], owners, "{kind}");
            assert_eq!(new["spec"]["replicas"], 1, "{kind}: spec is kept");
            assert_eq!(new["status"]["replicas"], 1, "{kind}");
        }
    }

    #[test]
    fn an_update_that_changes_only_resource_version_or_managed_times_is_no_change() {
        let old = json!({"metadata": {"name": "x", "resourceVersion": "5",
            "managedFields": [{"manager": "m", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {}}}]},
            "data": {"k": "v"}});
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("9");
        new["metadata"]["managedFields"][0]["time"] = json!("2026-12-03T00:00:00Z");
        assert!(unchanged(&old, &new));
        let mut other = new.clone();
        other["data"]["k"] = json!("w");
        assert!(!unchanged(&old, &other));
        let mut manager = new.clone();
        manager["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!unchanged(&old, &manager));
        let mut label = new.clone();
        label["metadata"]["labels"] = json!({"a": "b"});
        assert!(!unchanged(&old, &label));
        let mut extra = new;
        extra["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "o"}));
        assert!(!unchanged(&old, &extra));
    }
}
