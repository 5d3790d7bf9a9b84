//! The container runtime side of the node agent: a CRI v1 client over a
//! unix socket ([`Cri`]) and the containerd the agent starts and
//! supervises for itself ([`containerd::Containerd`]), configured as
//! `shared/notes/containerd-cri.md` found works on these machines.

pub mod containerd;
pub mod health;
pub mod oci;

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
/// The CRI v1 messages and services.
pub use k8s_cri::v1 as api;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{program} is not installed: install the Debian package {package} (apt-get install {package})"
    )]
    Missing {
        program: &'static str,
        package: &'static str,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connecting to the CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("CRI call {call} failed: {status}")]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("importing the image archive {archive}: {message}")]
    Import { archive: PathBuf, message: String },
    #[error("containerd did not come up within {seconds} s; its log is {log}")]
    StartTimeout { seconds: u64, log: PathBuf },
    #[error("containerd exited during start-up ({status}); its log is {log}")]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
}

/// The runtime and image services of one CRI endpoint.
#[derive(Debug, Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the CRI socket at `socket` (the channel reconnects by
    /// itself if the runtime restarts).
    pub async fn connect(socket: &Path) -> Result<Self, Error> {
        let path = socket.to_path_buf();
        let connect_to = path.clone();
        // The URI is required by tonic and unused: every connection goes to
        // the unix socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = connect_to.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|source| Error::Connect { path, source })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// The runtime's name and versions (`Version`).
    pub async fn version(&mut self) -> Result<api::VersionResponse, Error> {
        self.runtime
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::Call {
                call: "Version",
                status: Box::new(status),
            })
    }

    /// The runtime's conditions (`Status`): RuntimeReady, NetworkReady.
    pub async fn conditions(&mut self) -> Result<Vec<api::RuntimeCondition>, Error> {
        self.runtime
            .status(api::StatusRequest { verbose: false })
            .await
            .map(|r| {
                r.into_inner()
                    .status
                    .map(|s| s.conditions)
                    .unwrap_or_default()
            })
            .map_err(|status| Error::Call {
                call: "Status",
                status: Box::new(status),
            })
    }
}
