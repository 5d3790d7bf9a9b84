//! What every namespace holds: a `default` ServiceAccount (kube's
//! serviceaccounts-controller) and the `kube-root-ca.crt` ConfigMap with
//! the cluster's CA (kube's root-ca-cert-publisher), made again when
//! deleted and put back when changed. One controller over Namespaces,
//! woken by changes to either object.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

/// The ConfigMap the CA is published in.
pub const ROOT_CA: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Context {
    client: kube::Client,
    ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kube::Error);

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client, ca_pem: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    let default_only = watcher::Config::default().fields("metadata.name=default");
    let ca_only = watcher::Config::default().fields(&format!("metadata.name={ROOT_CA}"));
    let context = Arc::new(Context { client, ca_pem });
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, default_only, |sa| namespace_of(&sa))
        .watches(maps, ca_only, |cm| namespace_of(&cm))
        .run(reconcile, error_policy, context)
        .for_each(|_| std::future::ready(()))
        .await;
}

fn namespace_of<K: kube::Resource>(obj: &K) -> Option<ObjectRef<Namespace>> {
    obj.meta().namespace.as_deref().map(ObjectRef::new)
}

async fn reconcile(ns: Arc<Namespace>, cx: Arc<Context>) -> Result<Action, Error> {
    // Nothing new goes into a namespace being deleted.
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let accounts: Api<ServiceAccount> = Api::namespaced(cx.client.clone(), &name);
    if accounts.get_opt("default").await?.is_none() {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}}))
            .map_err(kube::Error::SerdeError)?;
        match accounts.create(&PostParams::default(), &sa).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            other => drop(other?),
        }
    }
    let maps: Api<ConfigMap> = Api::namespaced(cx.client.clone(), &name);
    let want = json!({
        "metadata": {"name": ROOT_CA, "annotations": {"kubernetes.io/description": DESCRIPTION}},
        "data": {"ca.crt": cx.ca_pem},
    });
    match maps.get_opt(ROOT_CA).await? {
        None => {
            let cm: ConfigMap = serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
            match maps.create(&PostParams::default(), &cm).await {
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                other => drop(other?),
            }
        }
        Some(cm) => {
            let data_ok = cm.data.as_ref().and_then(|d| d.get("ca.crt")) == Some(&cx.ca_pem);
            let described = cm
                .annotations()
                .get("kubernetes.io/description")
                .map(String::as_str)
                == Some(DESCRIPTION);
            if !data_ok || !described {
                maps.patch(ROOT_CA, &PatchParams::default(), &Patch::Merge(&want))
                    .await?;
            }
        }
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), "namespace defaults: {error}");
    Action::requeue(Duration::from_secs(1))
}
