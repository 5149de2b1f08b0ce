//! The CRI client: containerd (or any CRI runtime) over its unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Both CRI services over one connection.
#[derive(Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("connecting to the CRI runtime at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("CRI call: {0}")]
    Status(#[from] tonic::Status),
}

impl Cri {
    /// Connects to a runtime listening on the unix socket `path`
    /// (`unix://` prefix allowed, as kubelet's `--container-runtime-endpoint`).
    pub async fn connect(path: &Path) -> Result<Cri, CriError> {
        let path = PathBuf::from(
            path.to_string_lossy()
                .trim_start_matches("unix://")
                .to_owned(),
        );
        let socket = path.clone();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://cri.local")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    tokio::net::UnixStream::connect(socket)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|source| CriError::Connect { path, source })?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }
}
