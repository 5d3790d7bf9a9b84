//! Legacy discovery (`/api`, `/apis`, per group-version resource lists)
//! and `/version`, built from the registry. Legacy discovery serves every
//! kubectl from 1.27 to 1.33 (they fall back from aggregated discovery when
//! the response is plain JSON).

use rudder_api::registry::{self, RESOURCES, Resource, VERBS};

use crate::reviews::REVIEWS;
use serde_json::{Value, json};

/// The Kubernetes version Rudder speaks; its minor picks the kubectl.
pub(crate) const KUBE_MAJOR: &str = "1";
pub(crate) const KUBE_MINOR: &str = "33";

pub(crate) fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+rudder"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (rudder is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str) -> Value {
    let versions: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions.clone(), "preferredVersion": versions[0].clone()})
}

/// Served group-versions: the registry's and the review APIs'.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs = registry::group_versions();
    for (g, v, _, _) in REVIEWS {
        if !gvs.contains(&(*g, *v)) {
            gvs.push((g, v));
        }
    }
    gvs
}

pub(crate) fn api_group_list() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let groups: Vec<Value> = groups.into_iter().map(group_json).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(group: &str) -> Option<Value> {
    group_versions()
        .iter()
        .any(|(g, _)| *g == group && !g.is_empty())
        .then(|| {
            let mut g = group_json(group);
            g["kind"] = "APIGroup".into();
            g["apiVersion"] = "v1".into();
            g
        })
}

pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "categories": r.categories,
            "storageVersionHash": "",
        }));
        for sub in subresources(r) {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            // Clients read a subresource's own group-version from here
            // (the scale client, kubectl drain's eviction).
            if (sub.group, sub.version) != (r.group, r.version) {
                entry["group"] = sub.group.into();
                entry["version"] = sub.version.into();
            }
            resources.push(entry);
        }
    }
    for (_, _, plural, kind) in REVIEWS
        .iter()
        .filter(|(g, v, _, _)| *g == group && *v == version)
    {
        resources.push(json!({
            "name": plural, "singularName": "", "namespaced": false, "kind": kind, "verbs": ["create"],
        }));
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Which aggregated discovery version the client asked for, if any: the
/// first `as=APIGroupDiscoveryList` range of its Accept header that names
/// v2 or v2beta1 (kubectl 1.27-1.29 ask only for v2beta1).
pub(crate) fn aggregated_version(accept: Option<&str>) -> Option<&'static str> {
    for range in accept.unwrap_or("").split(',') {
        let params: Vec<(&str, &str)> = range
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if param("as") == Some("APIGroupDiscoveryList") && param("g") == Some("apidiscovery.k8s.io")
        {
            match param("v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
        if range.trim().starts_with("application/json") && params.is_empty() {
            return None;
        }
    }
    None
}

/// The aggregated discovery document for the core group (`core`) or for
/// every other group.
pub(crate) fn aggregated(core: bool, version: &str) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in group_versions() {
        if g.is_empty() == core && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|group| {
            let versions: Vec<Value> = group_versions()
                .into_iter()
                .filter(|(g, _)| g == group)
                .map(|(g, v)| json!({"version": v, "resources": aggregated_resources(g, v), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// A subresource, as both discoveries list it.
struct Subresource {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

const GET_UPDATE: &[&str] = &["get", "patch", "update"];

/// The subresources of a resource, as kube-apiserver lists them: status,
/// the pod subresources the node agent serves, scale, and the few kinds'
/// own.
fn subresources(r: &Resource) -> Vec<Subresource> {
    let sub = |name, group, version, kind, verbs| Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    };
    let mut out = Vec::new();
    if r.status {
        out.push(sub("status", r.group, r.version, r.kind, GET_UPDATE));
    }
    match (r.group, r.kind) {
        ("", "Node") => out.push(sub(
            "proxy",
            "",
            "v1",
            "NodeProxyOptions",
            &["create", "delete", "get", "patch", "update"],
        )),
        ("", "Pod") => out.extend([
            sub("attach", "", "v1", "PodAttachOptions", &["create", "get"]),
            sub("binding", "", "v1", "Binding", &["create"]),
            sub("eviction", "policy", "v1", "Eviction", &["create"]),
            sub("exec", "", "v1", "PodExecOptions", &["create", "get"]),
            sub("log", "", "v1", "Pod", &["get"]),
            sub(
                "portforward",
                "",
                "v1",
                "PodPortForwardOptions",
                &["create", "get"],
            ),
        ]),
        ("", "Namespace") => out.push(sub("finalize", "", "v1", "Namespace", &["update"])),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            out.push(sub("approval", r.group, r.version, r.kind, GET_UPDATE))
        }
        _ => {}
    }
    if r.has_scale() {
        out.push(sub("scale", "autoscaling", "v1", "Scale", GET_UPDATE));
    }
    out
}

fn aggregated_resources(group: &str, version: &str) -> Vec<Value> {
    let kind = |k: &str| json!({"group": group, "version": version, "kind": k});
    let mut out: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let subresources: Vec<Value> = subresources(r)
                .iter()
                .map(|sub| {
                    json!({"subresource": sub.name,
                           "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                           "verbs": sub.verbs})
                })
                .collect();
            json!({
                "resource": r.plural,
                "responseKind": kind(r.kind),
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": VERBS,
                "shortNames": r.short_names,
                "categories": r.categories,
                "subresources": subresources,
            })
        })
        .collect();
    for (_, _, plural, k) in REVIEWS
        .iter()
        .filter(|(g, v, _, _)| *g == group && *v == version)
    {
        out.push(
            json!({"resource": plural, "responseKind": kind(k), "scope": "Cluster",
                        "singularResource": plural.trim_end_matches('s'), "verbs": ["create"]}),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_answers_in_the_version_asked_for() {
        let v133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(Some(v133)), Some("v2"));
        let v127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(Some(v127)), Some("v2beta1"));
        assert_eq!(aggregated_version(Some("application/json, */*")), None);
        let core = aggregated(true, "v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["subresources"][0]["subresource"], "status");
        let groups = aggregated(false, "v2beta1");
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert!(
            groups["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "apps")
        );
    }

    #[test]
    fn discovery_lists_what_the_registry_serves() {
        let core = resource_list("", "v1").unwrap();
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
        let groups = api_group_list();
        let names: Vec<_> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].clone())
            .collect();
        assert!(names.contains(&json!("apps")));
        assert!(
            !names.contains(&json!("")),
            "the core group is served under /api"
        );
        assert!(resource_list("apps", "v2").is_none());
        assert!(api_group("nope").is_none());
        assert_eq!(version()["minor"], "33");
    }
}
