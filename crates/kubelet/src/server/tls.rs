//! The kubelet API's TLS: its serving certificate, and client certificates
//! required and verified against the cluster CA (mutual TLS, as upstream's
//! `--client-ca-file`).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{KubeletTls, ServerError};

pub fn server_config(tls: &KubeletTls) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ServerError::Tls(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad("client CA", &e))?;
        roots.add(cert).map_err(|e| bad("client CA", &e))?;
    }
    if roots.is_empty() {
        return Err(ServerError::Tls("client CA: no certificate".into()));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad("client certificate verifier", &e))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad("serving certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| bad("serving key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("serving certificate", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Who a verified client certificate names: CN and O entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    pub user: String,
    pub groups: Vec<String>,
}

impl Peer {
    pub fn from_certificate(der: &[u8]) -> Option<Peer> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_owned();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        Some(Peer { user, groups })
    }

    /// Reading logs is for cluster administrators and the API server
    /// (`system:masters`, as kubeadm's `apiserver-kubelet-client`); upstream
    /// asks the API server (SubjectAccessReview) instead.
    pub fn may_read_logs(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// exec, attach and port-forward: the same callers as logs.
    pub fn may_stream(&self) -> bool {
        self.may_read_logs()
    }
}
