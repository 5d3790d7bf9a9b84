//! The gRPC health client against a real gRPC server: etcd registers
//! `grpc.health.v1.Health` on its client port.

use std::time::Duration;

use rudder_cri::health::check;

const AGENT: &str = "kube-probe/1.33";

#[tokio::test]
async fn grpc_health_checks_read_as_the_kubelets() {
    let etcd = rudder_testing::EtcdServer::start().unwrap();
    let port: u16 = etcd.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let second = Duration::from_secs(1);

    check("127.0.0.1", port, "", second, AGENT).await.unwrap();

    let unknown = check("127.0.0.1", port, "no.such.Service", second, AGENT)
        .await
        .unwrap_err();
    assert!(
        unknown.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
        "{unknown}"
    );

    let closed = rudder_testing::free_port().unwrap();
    let refused = check("127.0.0.1", closed, "", second, AGENT)
        .await
        .unwrap_err();
    assert!(
        refused.starts_with(&format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s"
        )),
        "{refused}"
    );
}
