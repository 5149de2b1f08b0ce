//! The API server as a client of kubelets (their HTTPS API on 10250): the
//! one deliberate exception to "components only talk through the API", for
//! `pods/log`, exec, attach and port-forward, as upstream.
//!
//! The API server presents its own client certificate
//! (`kube-apiserver-kubelet-client`, group `system:masters`) and verifies
//! the kubelet's serving certificate against the cluster CA, for the
//! address it dials (the Node's InternalIP). One connection per request:
//! these requests are rare and often long (`follow`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::pki::ClusterPki;
use crate::tls::TlsError;

/// How long connecting (TCP, TLS, the response's headers) may take; the
/// body itself has no time limit (`follow` streams for hours).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HEADERS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a kubelet could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("dialing the kubelet at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("dialing the kubelet at {addr}: timed out")]
    Timeout { addr: String },
    #[error("the kubelet's address {0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("talking to the kubelet at {addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("building the request to the kubelet: {0}")]
    Request(#[from] http::Error),
}

/// TLS configurations for dialing kubelets.
pub struct KubeletClient {
    verified: Arc<rustls::ClientConfig>,
    /// `insecureSkipTLSVerifyBackend=true`: the kubelet's certificate is not
    /// checked (ours is still presented).
    insecure: Arc<rustls::ClientConfig>,
}

fn client_auth(
    pki: &ClusterPki,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_slice_iter(pki.kubelet_client.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(pki.kubelet_client.key_pem.as_bytes())?;
    Ok((chain, key))
}

impl KubeletClient {
    pub fn new(pki: &ClusterPki) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.ca.cert_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let (chain, key) = client_auth(pki)?;
        let mut verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        verified.alpn_protocols = vec![b"http/1.1".to_vec()];
        let (chain, key) = client_auth(pki)?;
        let mut insecure = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
            .with_client_auth_cert(chain, key)?;
        insecure.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            verified: Arc::new(verified),
            insecure: Arc::new(insecure),
        })
    }

    /// TCP, TLS and the HTTP/1.1 handshake with a kubelet.
    async fn dial(
        &self,
        host: &str,
        port: u16,
        skip_verify: bool,
    ) -> Result<(String, Sender, KubeletConnection), KubeletError> {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| KubeletError::ServerName(host.to_owned()))?;
        let config = if skip_verify {
            self.insecure.clone()
        } else {
            self.verified.clone()
        };
        let connect = async {
            let tcp = TcpStream::connect(&addr)
                .await
                .map_err(|source| KubeletError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|source| KubeletError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            hyper::client::conn::http1::handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(
                tls,
            ))
            .await
            .map_err(|source| KubeletError::Http {
                addr: addr.clone(),
                source,
            })
        };
        let (sender, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| KubeletError::Timeout { addr: addr.clone() })??;
        Ok((addr, sender, connection))
    }

    /// Sends `request` and waits (bounded) for the response's headers.
    async fn send(
        addr: &str,
        sender: &mut Sender,
        request: http::Request<http_body_util::Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, KubeletError> {
        tokio::time::timeout(HEADERS_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| KubeletError::Timeout {
                addr: addr.to_owned(),
            })?
            .map_err(|source| KubeletError::Http {
                addr: addr.to_owned(),
                source,
            })
    }

    /// `GET https://<host>:<port><path_and_query>`; the response's body
    /// streams as the kubelet writes it, and ends early when `shutdown` is
    /// cancelled. Dropping the response closes the connection.
    pub async fn get(
        &self,
        host: &str,
        port: u16,
        path_and_query: &str,
        skip_verify: bool,
        shutdown: CancellationToken,
    ) -> Result<http::Response<axum::body::Body>, KubeletError> {
        let (addr, mut sender, connection) = self.dial(host, port, skip_verify).await?;
        let connection = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        }));
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, &addr)
            .body(http_body_util::Empty::<Bytes>::new())?;
        let response = Self::send(&addr, &mut sender, request).await?;
        let (parts, body) = response.into_parts();
        // The body as a stream of data frames that keeps the connection
        // task alive as long as it is read, and stops at shutdown.
        let frames = body
            .into_data_stream()
            .map(move |frame| {
                let _keep = &connection;
                frame
            })
            .take_until(shutdown.cancelled_owned());
        Ok(http::Response::from_parts(
            parts,
            axum::body::Body::from_stream(frames),
        ))
    }

    /// An upgrade request (exec, attach, port-forward) with the client's
    /// upgrade headers; on `101` the caller takes the upgraded connection
    /// with `hyper::upgrade::on(&mut response)`.
    pub async fn upgrade(
        &self,
        host: &str,
        port: u16,
        method: http::Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
    ) -> Result<http::Response<hyper::body::Incoming>, KubeletError> {
        let (addr, mut sender, connection) = self.dial(host, port, false).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet streaming connection ended with an error");
            }
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, &addr);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(http_body_util::Empty::<Bytes>::new())?;
        Self::send(&addr, &mut sender, request).await
    }
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>;
type KubeletConnection = hyper::client::conn::http1::Connection<
    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    http_body_util::Empty<Bytes>,
>;

/// Aborts the connection task when the response body is dropped (the
/// client went away): the kubelet then sees its writes fail and stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `insecureSkipTLSVerifyBackend`: accepts any certificate, still checking
/// the handshake's signatures.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
