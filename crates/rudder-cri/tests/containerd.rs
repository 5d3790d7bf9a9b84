//! The agent's own containerd, started for real (root, the Debian
//! containerd, runc and CNI plugins), answering CRI v1 over its socket.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use rudder_cri::Cri;
use rudder_cri::containerd::{Containerd, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_starts_answers_cri_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        dir: dir.path().join("containerd"),
        pod_subnet: "10.42.250.0/24".into(),
        sandbox_image: "localhost/pause:3.9".into(),
    };
    let containerd = Containerd::start(&opts).await.unwrap();
    let pid = containerd.pid().unwrap();
    let mut cri = Cri::connect(containerd.socket()).await.unwrap();

    let version = cri.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // The runtime is ready, and so is the network (our CNI config).
    let conditions = cri.conditions().await.unwrap();
    for kind in ["RuntimeReady", "NetworkReady"] {
        let c = conditions.iter().find(|c| c.r#type == kind).unwrap();
        assert!(c.status, "{kind}: {c:?}");
    }
    // Nothing runs in a fresh containerd.
    let sandboxes = cri
        .runtime
        .list_pod_sandbox(rudder_cri::api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    assert!(sandboxes.items.is_empty());

    containerd.stop().await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "containerd {pid} still runs"
    );
}
