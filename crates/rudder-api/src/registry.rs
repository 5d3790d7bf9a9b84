//! The resource registry: every kind the API server serves, with what
//! discovery reports about it. Generic code looks resources up here and
//! never matches on kind names.

/// One resource (a kind at one group-version), as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Served with a `/status` subresource (writes to the main resource
    /// keep the stored status; writes to `/status` keep everything else).
    pub status: bool,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as Kubernetes names a resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Served with a `/scale` subresource (autoscaling/v1 Scale).
    pub fn has_scale(&self) -> bool {
        matches!(
            (self.group, self.kind),
            ("apps", "Deployment" | "ReplicaSet" | "StatefulSet") | ("", "ReplicationController")
        )
    }

    /// The store prefix of all objects of this resource. Versions of a
    /// resource share it, and events.k8s.io Events are core Events seen
    /// another way (as in Kubernetes).
    pub fn storage_prefix(&self) -> String {
        let group = match self.group {
            "" | "events.k8s.io" => "core",
            g => g,
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Whether objects of this resource may be stored in another version
    /// (or group) and need [`crate::conversion::convert`] on the way out.
    pub fn converts(&self) -> bool {
        matches!(
            (self.group, self.kind),
            ("autoscaling", "HorizontalPodAutoscaler") | ("" | "events.k8s.io", "Event")
        )
    }
}

/// The verbs every generic resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

macro_rules! resources {
    ($( $group:literal $version:literal $kind:literal $plural:literal $singular:literal
        $ns:literal [$($short:literal),*] [$($cat:literal),*] $status:literal ;)*) => {
        &[$(Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            status: $status,
        }),*]
    };
}

/// Every served resource. Short names and categories are Kubernetes' own
/// (kubernetes/kubernetes pkg/registry/*/rest). A group-version is
/// advertised only once every resource listed for it is served.
pub static RESOURCES: &[Resource] = resources! {
    "" "v1" "Pod" "pods" "pod" true ["po"] ["all"] true;
    "" "v1" "Service" "services" "service" true ["svc"] ["all"] true;
    "" "v1" "Endpoints" "endpoints" "endpoints" true ["ep"] [] false;
    "" "v1" "ConfigMap" "configmaps" "configmap" true ["cm"] [] false;
    "" "v1" "Secret" "secrets" "secret" true [] [] false;
    "" "v1" "Namespace" "namespaces" "namespace" false ["ns"] [] true;
    "" "v1" "Node" "nodes" "node" false ["no"] [] true;
    "" "v1" "ServiceAccount" "serviceaccounts" "serviceaccount" true ["sa"] [] false;
    "" "v1" "Event" "events" "event" true ["ev"] [] false;
    "" "v1" "PersistentVolume" "persistentvolumes" "persistentvolume" false ["pv"] [] true;
    "" "v1" "PersistentVolumeClaim" "persistentvolumeclaims" "persistentvolumeclaim" true ["pvc"] [] true;
    "" "v1" "ReplicationController" "replicationcontrollers" "replicationcontroller" true ["rc"] ["all"] true;
    "" "v1" "ResourceQuota" "resourcequotas" "resourcequota" true ["quota"] [] true;
    "" "v1" "LimitRange" "limitranges" "limitrange" true ["limits"] [] false;
    "" "v1" "PodTemplate" "podtemplates" "podtemplate" true [] [] false;
    "apps" "v1" "Deployment" "deployments" "deployment" true ["deploy"] ["all"] true;
    "apps" "v1" "ReplicaSet" "replicasets" "replicaset" true ["rs"] ["all"] true;
    "apps" "v1" "StatefulSet" "statefulsets" "statefulset" true ["sts"] ["all"] true;
    "apps" "v1" "DaemonSet" "daemonsets" "daemonset" true ["ds"] ["all"] true;
    "apps" "v1" "ControllerRevision" "controllerrevisions" "controllerrevision" true [] [] false;
    "batch" "v1" "Job" "jobs" "job" true [] ["all"] true;
    "batch" "v1" "CronJob" "cronjobs" "cronjob" true ["cj"] ["all"] true;
    "autoscaling" "v2" "HorizontalPodAutoscaler" "horizontalpodautoscalers" "horizontalpodautoscaler" true ["hpa"] ["all"] true;
    "autoscaling" "v1" "HorizontalPodAutoscaler" "horizontalpodautoscalers" "horizontalpodautoscaler" true [] ["all"] true;
    "networking.k8s.io" "v1" "Ingress" "ingresses" "ingress" true ["ing"] [] true;
    "networking.k8s.io" "v1" "IngressClass" "ingressclasses" "ingressclass" false [] [] false;
    "networking.k8s.io" "v1" "NetworkPolicy" "networkpolicies" "networkpolicy" true ["netpol"] [] false;
    "policy" "v1" "PodDisruptionBudget" "poddisruptionbudgets" "poddisruptionbudget" true ["pdb"] [] true;
    "rbac.authorization.k8s.io" "v1" "Role" "roles" "role" true [] [] false;
    "rbac.authorization.k8s.io" "v1" "RoleBinding" "rolebindings" "rolebinding" true [] [] false;
    "rbac.authorization.k8s.io" "v1" "ClusterRole" "clusterroles" "clusterrole" false [] [] false;
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" "clusterrolebindings" "clusterrolebinding" false [] [] false;
    "storage.k8s.io" "v1" "StorageClass" "storageclasses" "storageclass" false ["sc"] [] false;
    "storage.k8s.io" "v1" "CSIDriver" "csidrivers" "csidriver" false [] [] false;
    "storage.k8s.io" "v1" "CSINode" "csinodes" "csinode" false [] [] false;
    "storage.k8s.io" "v1" "VolumeAttachment" "volumeattachments" "volumeattachment" false [] [] true;
    "storage.k8s.io" "v1" "CSIStorageCapacity" "csistoragecapacities" "csistoragecapacity" true [] [] false;
    "coordination.k8s.io" "v1" "Lease" "leases" "lease" true [] [] false;
    "discovery.k8s.io" "v1" "EndpointSlice" "endpointslices" "endpointslice" true [] [] false;
    "events.k8s.io" "v1" "Event" "events" "event" true [] [] false;
    "scheduling.k8s.io" "v1" "PriorityClass" "priorityclasses" "priorityclass" false ["pc"] [] false;
    "node.k8s.io" "v1" "RuntimeClass" "runtimeclasses" "runtimeclass" false [] [] false;
    // Served for the clients of Kubernetes 1.36 (its controller manager,
    // scheduler and e2e suite list them); stored and listed, their
    // behaviour (signing, admission policies, priority and fairness, DRA
    // allocation) comes with later work.
    "certificates.k8s.io" "v1" "CertificateSigningRequest" "certificatesigningrequests" "certificatesigningrequest" false ["csr"] [] true;
    "networking.k8s.io" "v1" "IPAddress" "ipaddresses" "ipaddress" false ["ip"] [] false;
    "networking.k8s.io" "v1" "ServiceCIDR" "servicecidrs" "servicecidr" false [] [] true;
    "storage.k8s.io" "v1" "VolumeAttributesClass" "volumeattributesclasses" "volumeattributesclass" false ["vac"] [] false;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicy" "validatingadmissionpolicies" "validatingadmissionpolicy" false [] ["api-extensions"] true;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicyBinding" "validatingadmissionpolicybindings" "validatingadmissionpolicybinding" false [] ["api-extensions"] false;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicy" "mutatingadmissionpolicies" "mutatingadmissionpolicy" false [] ["api-extensions"] false;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicyBinding" "mutatingadmissionpolicybindings" "mutatingadmissionpolicybinding" false [] ["api-extensions"] false;
    "flowcontrol.apiserver.k8s.io" "v1" "FlowSchema" "flowschemas" "flowschema" false [] [] true;
    "flowcontrol.apiserver.k8s.io" "v1" "PriorityLevelConfiguration" "prioritylevelconfigurations" "prioritylevelconfiguration" false [] [] true;
    "coordination.k8s.io" "v1beta1" "LeaseCandidate" "leasecandidates" "leasecandidate" true [] [] false;
    "resource.k8s.io" "v1" "DeviceClass" "deviceclasses" "deviceclass" false [] [] false;
    "resource.k8s.io" "v1" "ResourceClaim" "resourceclaims" "resourceclaim" true [] [] true;
    "resource.k8s.io" "v1" "ResourceClaimTemplate" "resourceclaimtemplates" "resourceclaimtemplate" true [] [] false;
    "resource.k8s.io" "v1" "ResourceSlice" "resourceslices" "resourceslice" false [] [] false;
};

/// Finds a resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind, for objects that name their own kind.
pub fn by_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Served group-versions in discovery order: core first, then groups in
/// the order Kubernetes lists them.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (`""`, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                let same_gv = a.group == b.group && a.version == b.version;
                assert!(!(same_gv && a.plural == b.plural), "{} twice", a.plural);
                assert!(!(same_gv && a.kind == b.kind), "{} twice", a.kind);
            }
        }
    }

    #[test]
    fn short_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES {
            for s in r.short_names {
                assert!(seen.insert(*s), "short name {s} twice");
            }
        }
    }

    #[test]
    fn lookups_find_core_and_grouped_resources() {
        assert_eq!(lookup("", "v1", "pods").map(|r| r.kind), Some("Pod"));
        assert_eq!(
            by_kind("apps", "v1", "Deployment").map(|r| r.plural),
            Some("deployments")
        );
        assert_eq!(lookup("apps", "v1", "pods"), None);
        assert_eq!(
            lookup("", "v1", "deployments").map(Resource::qualified_plural),
            None
        );
        let d = by_kind("apps", "v1", "Deployment").unwrap();
        assert_eq!(d.qualified_plural(), "deployments.apps");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(group_versions()[0], ("", "v1"));
    }
}
