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
        bridge: "rudder-t0".into(),
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

fn busybox_archive() -> Vec<u8> {
    rudder_cri::oci::busybox_image("docker.io/local/busybox:v1")
        .expect("/bin/busybox: install the Debian package busybox-static")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_through_cri_with_locally_made_images() {
    use rudder_cri::api;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        dir: dir.path().join("containerd"),
        pod_subnet: "10.42.251.0/24".into(),
        sandbox_image: "localhost/pause:3.10".into(),
        bridge: "rudder-t1".into(),
    };
    let containerd = Containerd::start(&opts).await.unwrap();
    for (name, archive) in [
        (
            "pause.tar",
            rudder_cri::oci::pause_image("localhost/pause:3.10"),
        ),
        ("busybox.tar", busybox_archive()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, archive).unwrap();
        containerd.import(&path).await.unwrap();
    }
    let mut cri = Cri::connect(containerd.socket()).await.unwrap();

    // The pod's cgroups go under a parent of the test's own, removed after.
    let cgroup_parent = format!("/rudder-test-{}", std::process::id());
    let logs = dir.path().join("pods/default_hello");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "hello".into(),
            uid: "uid-hello".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "hello".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = cri
        .runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let status = cri
        .runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with("10.42.251."), "pod IP {ip}");

    let container = cri
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "say".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: "docker.io/local/busybox:v1".into(),
                    ..Default::default()
                }),
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "echo hello from $(hostname)".into(),
                ],
                log_path: "say/0.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    cri.runtime
        .start_container(api::StartContainerRequest {
            container_id: container.clone(),
        })
        .await
        .unwrap();
    // Wait for it to exit (bounded: a container that never exits fails).
    let mut exit_code = None;
    for _ in 0..200 {
        let status = cri
            .runtime
            .container_status(api::ContainerStatusRequest {
                container_id: container.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if status.state == api::ContainerState::ContainerExited as i32 {
            exit_code = Some(status.exit_code);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(exit_code, Some(0));
    let log = std::fs::read_to_string(logs.join("say/0.log")).unwrap();
    assert!(log.contains(" stdout F hello from hello"), "{log}");

    // Tear down: nothing of the pod may be left.
    cri.runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        })
        .await
        .unwrap();
    cri.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await
        .unwrap();
    let left = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(left.is_empty(), "{left:?}");
    containerd.stop().await;
    // What the runtime leaves by design: the cgroup parent and the bridge.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let parent = hierarchy.path().join(cgroup_parent.trim_start_matches('/'));
        if parent.exists() {
            std::fs::remove_dir(&parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "rudder-t1"])
        .status();
}
