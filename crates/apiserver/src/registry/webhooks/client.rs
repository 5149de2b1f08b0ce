//! Calling one admission webhook: an HTTPS POST of an AdmissionReview to
//! its `clientConfig` (a `url`, or a Service reached at its ClusterIP with
//! the server name `<name>.<namespace>.svc`), verified against its
//! `caBundle`, bounded by `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest answer read from a webhook.
const MAX_RESPONSE: usize = 3 << 20;

/// Why a webhook could not be called (upstream's "failed calling webhook").
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid webhook URL {0:?}")]
    Url(String),
    #[error("the webhook's service {0} has no ClusterIP")]
    NoService(String),
    #[error("bad caBundle: {0}")]
    CaBundle(String),
    #[error("failed to call webhook: Post \"{url}\": {reason}")]
    Transport { url: String, reason: String },
    #[error("failed to call webhook: Post \"{url}\": context deadline exceeded")]
    Timeout { url: String },
    #[error("received invalid webhook response: {0}")]
    Response(String),
}

/// Where to send a review: the dialled address, the TLS name, the URL
/// (for messages) and the request path.
pub struct Endpoint {
    pub addr: String,
    pub server_name: String,
    pub url: String,
    pub path: String,
}

/// An `https://host[:port]/path` URL as an endpoint.
pub fn url_endpoint(url: &str) -> Result<Endpoint, CallError> {
    let uri: http::Uri = url.parse().map_err(|_| CallError::Url(url.to_owned()))?;
    if uri.scheme_str() != Some("https") {
        return Err(CallError::Url(url.to_owned()));
    }
    let host = uri
        .host()
        .ok_or_else(|| CallError::Url(url.to_owned()))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    Ok(Endpoint {
        addr,
        server_name: host,
        url: url.to_owned(),
        path,
    })
}

fn roots(ca_bundle: Option<&str>) -> Result<RootCertStore, CallError> {
    let mut roots = RootCertStore::empty();
    let Some(b64) = ca_bundle.filter(|b| !b.is_empty()) else {
        return Ok(roots);
    };
    let pem = STANDARD
        .decode(b64)
        .map_err(|e| CallError::CaBundle(e.to_string()))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| CallError::CaBundle(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| CallError::CaBundle(e.to_string()))?;
    }
    Ok(roots)
}

/// POSTs `review` and returns the parsed answer.
pub async fn post(
    endpoint: &Endpoint,
    ca_bundle: Option<&str>,
    review: &Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    let transport = |reason: String| CallError::Transport {
        url: endpoint.url.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| transport(e.to_string()))?
        .with_root_certificates(roots(ca_bundle)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|_| CallError::Url(endpoint.url.clone()))?;
    let body = Bytes::from(serde_json::to_vec(review).unwrap_or_default());
    let call = async {
        let tcp = TcpStream::connect(&endpoint.addr)
            .await
            .map_err(|e| transport(format!("dial tcp {}: {e}", endpoint.addr)))?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls))
                .await
                .map_err(|e| transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::post(endpoint.path.as_str())
            .header(http::header::HOST, &endpoint.addr)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| transport(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(CallError::Response(format!(
                "the server responded with the status code {}",
                status.as_u16()
            )));
        }
        serde_json::from_slice::<Value>(&bytes).map_err(|e| CallError::Response(e.to_string()))
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| CallError::Timeout {
            url: endpoint.url.clone(),
        })?
}
