//! OpenAPI v3 for the served kinds, generated from `k8s-openapi`'s types
//! (schemars), and the unknown-field check behind `fieldValidation`.
//!
//! `/openapi/v3` lists one document per group-version; each document has
//! the kinds' schemas (with `x-kubernetes-group-version-kind`, which is how
//! `kubectl explain` finds them) and, per kind, a GET and a PATCH operation.
//! The PATCH operation lists the `fieldValidation` parameter: that is what
//! tells kubectl 1.29+ to leave validation to the server (cli-runtime
//! `query_param_verifier_v3.go`). It offers no strategic-merge-patch body,
//! because these schemas carry no patch merge keys: kubectl then computes
//! strategic merge patches from its compiled-in types, which do.
//!
//! Everything is built on first use, once.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use rudder_api::registry::Resource;
use serde_json::{Map, Value, json};

const REF_PREFIX: &str = "#/components/schemas/";

/// Generates every served kind's schema into `generator`; returns, per
/// kind, (group, version, kind, definition name).
macro_rules! kinds {
    ($($group:literal $version:literal $kind:literal => $ty:ty;)*) => {
        fn generate(generator: &mut SchemaGenerator) -> Vec<(&'static str, &'static str, &'static str, String)> {
            vec![$({
                generator.subschema_for::<$ty>();
                ($group, $version, $kind, <$ty as JsonSchema>::schema_name().into_owned())
            }),*]
        }
    };
}

kinds! {
    "" "v1" "Pod" => k8s_openapi::api::core::v1::Pod;
    "" "v1" "Service" => k8s_openapi::api::core::v1::Service;
    "" "v1" "Endpoints" => k8s_openapi::api::core::v1::Endpoints;
    "" "v1" "ConfigMap" => k8s_openapi::api::core::v1::ConfigMap;
    "" "v1" "Secret" => k8s_openapi::api::core::v1::Secret;
    "" "v1" "Namespace" => k8s_openapi::api::core::v1::Namespace;
    "" "v1" "Node" => k8s_openapi::api::core::v1::Node;
    "" "v1" "ServiceAccount" => k8s_openapi::api::core::v1::ServiceAccount;
    "" "v1" "Event" => k8s_openapi::api::core::v1::Event;
    "" "v1" "PersistentVolume" => k8s_openapi::api::core::v1::PersistentVolume;
    "" "v1" "PersistentVolumeClaim" => k8s_openapi::api::core::v1::PersistentVolumeClaim;
    "" "v1" "ReplicationController" => k8s_openapi::api::core::v1::ReplicationController;
    "" "v1" "ResourceQuota" => k8s_openapi::api::core::v1::ResourceQuota;
    "" "v1" "LimitRange" => k8s_openapi::api::core::v1::LimitRange;
    "" "v1" "PodTemplate" => k8s_openapi::api::core::v1::PodTemplate;
    "apps" "v1" "Deployment" => k8s_openapi::api::apps::v1::Deployment;
    "apps" "v1" "ReplicaSet" => k8s_openapi::api::apps::v1::ReplicaSet;
    "apps" "v1" "StatefulSet" => k8s_openapi::api::apps::v1::StatefulSet;
    "apps" "v1" "DaemonSet" => k8s_openapi::api::apps::v1::DaemonSet;
    "apps" "v1" "ControllerRevision" => k8s_openapi::api::apps::v1::ControllerRevision;
    "batch" "v1" "Job" => k8s_openapi::api::batch::v1::Job;
    "batch" "v1" "CronJob" => k8s_openapi::api::batch::v1::CronJob;
    "autoscaling" "v1" "HorizontalPodAutoscaler" => k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
    "autoscaling" "v2" "HorizontalPodAutoscaler" => k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    "networking.k8s.io" "v1" "Ingress" => k8s_openapi::api::networking::v1::Ingress;
    "networking.k8s.io" "v1" "IngressClass" => k8s_openapi::api::networking::v1::IngressClass;
    "networking.k8s.io" "v1" "NetworkPolicy" => k8s_openapi::api::networking::v1::NetworkPolicy;
    "policy" "v1" "PodDisruptionBudget" => k8s_openapi::api::policy::v1::PodDisruptionBudget;
    "rbac.authorization.k8s.io" "v1" "Role" => k8s_openapi::api::rbac::v1::Role;
    "rbac.authorization.k8s.io" "v1" "RoleBinding" => k8s_openapi::api::rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io" "v1" "ClusterRole" => k8s_openapi::api::rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    "storage.k8s.io" "v1" "StorageClass" => k8s_openapi::api::storage::v1::StorageClass;
    "storage.k8s.io" "v1" "CSIDriver" => k8s_openapi::api::storage::v1::CSIDriver;
    "storage.k8s.io" "v1" "CSINode" => k8s_openapi::api::storage::v1::CSINode;
    "storage.k8s.io" "v1" "VolumeAttachment" => k8s_openapi::api::storage::v1::VolumeAttachment;
    "storage.k8s.io" "v1" "CSIStorageCapacity" => k8s_openapi::api::storage::v1::CSIStorageCapacity;
    "coordination.k8s.io" "v1" "Lease" => k8s_openapi::api::coordination::v1::Lease;
    "discovery.k8s.io" "v1" "EndpointSlice" => k8s_openapi::api::discovery::v1::EndpointSlice;
    "events.k8s.io" "v1" "Event" => k8s_openapi::api::events::v1::Event;
    "scheduling.k8s.io" "v1" "PriorityClass" => k8s_openapi::api::scheduling::v1::PriorityClass;
    "node.k8s.io" "v1" "RuntimeClass" => k8s_openapi::api::node::v1::RuntimeClass;
    "certificates.k8s.io" "v1" "CertificateSigningRequest" => k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    "networking.k8s.io" "v1" "IPAddress" => k8s_openapi::api::networking::v1::IPAddress;
    "networking.k8s.io" "v1" "ServiceCIDR" => k8s_openapi::api::networking::v1::ServiceCIDR;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicy" => k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicyBinding" => k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
    "flowcontrol.apiserver.k8s.io" "v1" "FlowSchema" => k8s_openapi::api::flowcontrol::v1::FlowSchema;
    "flowcontrol.apiserver.k8s.io" "v1" "PriorityLevelConfiguration" => k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration;
    "coordination.k8s.io" "v1beta1" "LeaseCandidate" => k8s_openapi::api::coordination::v1beta1::LeaseCandidate;
    // Kinds that reached v1 after 1.33 (k8s-openapi's v1_33 feature): the
    // version they were promoted from has the same shape.
    "storage.k8s.io" "v1" "VolumeAttributesClass" => k8s_openapi::api::storage::v1beta1::VolumeAttributesClass;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicy" => k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicy;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicyBinding" => k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding;
    "resource.k8s.io" "v1" "DeviceClass" => k8s_openapi::api::resource::v1beta2::DeviceClass;
    "resource.k8s.io" "v1" "ResourceClaim" => k8s_openapi::api::resource::v1beta2::ResourceClaim;
    "resource.k8s.io" "v1" "ResourceClaimTemplate" => k8s_openapi::api::resource::v1beta2::ResourceClaimTemplate;
    "resource.k8s.io" "v1" "ResourceSlice" => k8s_openapi::api::resource::v1beta2::ResourceSlice;
}

/// The generated documents and the field shapes validation walks.
#[derive(Debug)]
pub(crate) struct OpenApi {
    /// `/openapi/v3`'s body.
    index: bytes::Bytes,
    /// "api/v1", "apis/apps/v1" → (hash, document).
    docs: HashMap<String, (String, bytes::Bytes)>,
    shapes: Shapes,
    /// (group, version, kind) → definition name.
    kinds: HashMap<(&'static str, &'static str, &'static str), String>,
}

/// The OpenAPI documents, built on first use.
pub(crate) fn openapi() -> &'static OpenApi {
    static OPENAPI: OnceLock<OpenApi> = OnceLock::new();
    OPENAPI.get_or_init(OpenApi::build)
}

impl OpenApi {
    fn build() -> Self {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let kinds = generate(&mut generator);
        let mut defs = generator.take_definitions(true);
        for (group, version, kind, name) in &kinds {
            let gvk = json!({"group": group, "version": version, "kind": kind});
            if let Some(Value::Object(def)) = defs.get_mut(name) {
                let list = def
                    .entry("x-kubernetes-group-version-kind")
                    .or_insert_with(|| json!([]));
                if let Value::Array(list) = list {
                    list.push(gvk);
                }
            }
        }
        let served: Vec<&(&str, &str, &str, String)> = kinds
            .iter()
            .filter(|(g, v, k, _)| rudder_api::registry::by_kind(g, v, k).is_some())
            .collect();
        let mut docs = HashMap::new();
        let mut paths = BTreeMap::new();
        for (group, version) in rudder_api::registry::group_versions() {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let in_gv: Vec<_> = served
                .iter()
                .filter(|(g, v, _, _)| *g == group && *v == version)
                .collect();
            let mut schemas = Map::new();
            let mut ops = Map::new();
            for (g, v, k, name) in in_gv {
                collect(&defs, name, &mut schemas);
                if let Some(r) = rudder_api::registry::by_kind(g, v, k) {
                    ops.insert(item_path(r), operations(r, name));
                }
            }
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": format!("v{}.{}.0+rudder", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
                "paths": ops,
                "components": {"schemas": schemas},
            });
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut hasher);
            let hash = format!("{:016X}", hasher.finish());
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
            docs.insert(key, (hash, bytes::Bytes::from(body)));
        }
        let index = serde_json::to_vec(&json!({ "paths": paths })).unwrap_or_default();
        let shapes = Shapes::build(&defs);
        let kinds = kinds
            .into_iter()
            .map(|(g, v, k, name)| ((g, v, k), name))
            .collect();
        Self {
            index: index.into(),
            docs,
            shapes,
            kinds,
        }
    }

    pub(crate) fn index(&self) -> bytes::Bytes {
        self.index.clone()
    }

    /// The document of `api/v1` or `apis/GROUP/VERSION`.
    pub(crate) fn document(&self, key: &str) -> Option<bytes::Bytes> {
        self.docs.get(key).map(|(_, body)| body.clone())
    }

    /// Paths of fields in `obj` that its kind does not have, in Kubernetes'
    /// notation (`spec.template.spec.containers[0].imagePullPolcy`).
    pub(crate) fn unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        obj: &Value,
    ) -> Vec<String> {
        let Some(root) = self
            .kinds
            .get(&(group, version, kind))
            .and_then(|n| self.shapes.index.get(n))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.shapes.walk(*root, obj, &mut String::new(), &mut out);
        out
    }
}

fn item_path(r: &Resource) -> String {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{prefix}/{}/{{name}}", r.plural)
    }
}

fn operations(r: &Resource, def: &str) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let object = json!({"$ref": format!("{REF_PREFIX}{def}")});
    let query = |name: &str, description: &str| json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}});
    let reply =
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": object}}}});
    let patch_body = |media: &str| (media.to_string(), json!({"schema": {"type": "object"}}));
    json!({
        "get": {
            "operationId": format!("read{}", r.kind),
            "responses": reply,
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
        },
        "patch": {
            "operationId": format!("patch{}", r.kind),
            "parameters": [
                query("dryRun", "When present, indicates that modifications should not be persisted."),
                query("fieldManager", "The name of the actor or entity that is making these changes."),
                query("fieldValidation", "How the server treats unknown fields: Ignore, Warn (the default) or Strict."),
                query("force", "Force apply requests: re-acquire conflicting fields owned by other managers."),
            ],
            "requestBody": {"content": Map::from_iter([
                patch_body("application/apply-patch+yaml"),
                patch_body("application/json-patch+json"),
                patch_body("application/merge-patch+json"),
            ])},
            "responses": reply,
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        },
    })
}

/// Copies `name` and every definition it references into `out`.
fn collect(defs: &Map<String, Value>, name: &str, out: &mut Map<String, Value>) {
    if out.contains_key(name) {
        return;
    }
    let Some(def) = defs.get(name) else { return };
    out.insert(name.to_string(), def.clone());
    let mut refs = Vec::new();
    refs_in(def, &mut refs);
    for r in refs {
        collect(defs, &r, out);
    }
}

fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => refs_in(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs_in(i, out)),
        _ => {}
    }
}

/// What the unknown-field check needs of a schema: which properties an
/// object has and the shape of each, without the documentation.
#[derive(Debug)]
enum Shape {
    /// Anything goes (scalars, preserve-unknown-fields, int-or-string).
    Any,
    Object {
        properties: HashMap<String, usize>,
        /// The values' shape of a map (`labels`, `resources.limits`).
        additional: Option<usize>,
    },
    Array(usize),
    /// Not yet resolved: a definition name.
    Ref(String),
}

#[derive(Debug, Default)]
struct Shapes {
    shapes: Vec<Shape>,
    /// Definition name → shape.
    index: HashMap<String, usize>,
}

impl Shapes {
    fn build(defs: &Map<String, Value>) -> Self {
        let mut shapes = Self::default();
        for (name, def) in defs {
            let id = shapes.add(def);
            shapes.index.insert(name.clone(), id);
        }
        shapes
    }

    fn add(&mut self, schema: &Value) -> usize {
        let reference = schema
            .get("$ref")
            .or_else(|| schema.get("allOf")?.get(0)?.get("$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX));
        let shape = if let Some(name) = reference {
            Shape::Ref(name.to_string())
        } else if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            Shape::Any
        } else if let Some(items) = schema.get("items") {
            Shape::Array(self.add(items))
        } else if let Some(Value::Object(props)) = schema.get("properties") {
            let properties = props
                .iter()
                .map(|(k, v)| (k.clone(), self.add(v)))
                .collect();
            Shape::Object {
                properties,
                additional: None,
            }
        } else if let Some(extra @ Value::Object(_)) = schema.get("additionalProperties") {
            let additional = Some(self.add(extra));
            Shape::Object {
                properties: HashMap::new(),
                additional,
            }
        } else {
            Shape::Any
        };
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    fn resolve(&self, mut id: usize) -> Option<&Shape> {
        // A chain of references ends; the bound guards against a loop.
        for _ in 0..8 {
            match self.shapes.get(id)? {
                Shape::Ref(name) => id = *self.index.get(name)?,
                shape => return Some(shape),
            }
        }
        None
    }

    /// Adds to `out` the paths in `value` its shape does not know. `path`
    /// is where `value` sits (grown and cut back on the way down).
    fn walk(&self, id: usize, value: &Value, path: &mut String, out: &mut Vec<String>) {
        match (self.resolve(id), value) {
            (
                Some(Shape::Object {
                    properties,
                    additional,
                }),
                Value::Object(fields),
            ) => {
                // `$patch`, `$setElementOrder/…`: strategic merge patch
                // directives, not fields.
                for (key, v) in fields.iter().filter(|(k, _)| !k.starts_with('$')) {
                    let len = path.len();
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(key);
                    match properties.get(key).or(additional.as_ref()) {
                        Some(child) => self.walk(*child, v, path, out),
                        None => out.push(path.clone()),
                    }
                    path.truncate(len);
                }
            }
            (Some(Shape::Array(item)), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    self.walk(*item, v, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_the_kinds_with_their_group_version_kind() {
        let api = openapi();
        let index: Value = serde_json::from_slice(&api.index()).unwrap_or_default();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or("");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        let doc: Value = serde_json::from_slice(&api.document("apis/apps/v1").unwrap_or_default())
            .unwrap_or_default();
        let deployment = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert!(
            doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                .is_object()
        );
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
        for gv in rudder_api::registry::group_versions() {
            let key = if gv.0.is_empty() {
                format!("api/{}", gv.1)
            } else {
                format!("apis/{}/{}", gv.0, gv.1)
            };
            assert!(api.document(&key).is_some(), "{key}");
        }
    }

    #[test]
    fn unknown_fields_are_named_with_their_paths() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"any": "thing"}, "bogus": 1},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [
                    {"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}},
                    {"name": "d", "imagePullPolcy": "Always", "ports": [{"containerPort": 80, "hostPrt": 1}]}
                ]}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%"}}
            },
            "status": {"replicas": 0}
        });
        let mut unknown = openapi().unknown_fields("apps", "v1", "Deployment", &obj);
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "metadata.bogus",
                "spec.template.spec.containers[1].imagePullPolcy",
                "spec.template.spec.containers[1].ports[0].hostPrt",
            ]
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "extra": true});
        assert_eq!(
            openapi().unknown_fields("", "v1", "ConfigMap", &cm),
            ["extra"]
        );
    }
}
