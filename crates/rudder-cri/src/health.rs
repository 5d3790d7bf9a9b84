//! The client side of the gRPC health protocol (`grpc.health.v1.Health/
//! Check`), which grpc probes speak. Its two messages are small enough to
//! declare here rather than compile a proto for them.

use std::time::Duration;

use tonic::transport::Endpoint;

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `HealthCheckResponse.ServingStatus`, by name.
fn status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNRECOGNIZED",
    }
}

/// Checks `service` ("" for the whole server) at `host:port` over plain
/// HTTP/2 within `timeout`, as `user_agent`. The error is what the kubelet
/// says about the failure (pkg/probe/grpc), so events read the same.
pub async fn check(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
    user_agent: &str,
) -> Result<(), String> {
    let secs = timeout.as_secs();
    let target = if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    };
    let endpoint = Endpoint::from_shared(target)
        .map_err(|e| format!("error: invalid probe address: {e}"))?
        .user_agent(user_agent.to_string())
        .map_err(|e| format!("error: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| {
        format!("timeout: failed to connect service \"{host}:{port}\" within {secs}s: {e}")
    })?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let request = tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    });
    let response: Result<tonic::Response<HealthCheckResponse>, tonic::Status> = grpc
        .unary(request, path, tonic_prost::ProstCodec::default())
        .await;
    match response {
        Ok(r) if r.get_ref().status == 1 => Ok(()),
        Ok(r) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            status_name(r.get_ref().status)
        )),
        Err(s) if s.code() == tonic::Code::Unimplemented => Err(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            s.message()
        )),
        Err(s)
            if s.code() == tonic::Code::DeadlineExceeded || s.code() == tonic::Code::Cancelled =>
        {
            Err(format!(
                "timeout: health rpc did not complete within {secs}s"
            ))
        }
        Err(s) => Err(format!(
            "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
            s.code(),
            s.message()
        )),
    }
}
