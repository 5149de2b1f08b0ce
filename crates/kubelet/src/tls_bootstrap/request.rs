//! Asking for the node's certificates: a key made here (it never leaves
//! the node), a CertificateSigningRequest, then waiting until the
//! controller manager approves and signs it.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::{JoinError, client_from_yaml};

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// How often the request is looked at while waiting.
const POLL: Duration = Duration::from_millis(300);
/// How often waiting is reported.
const NOTE_EVERY: Duration = Duration::from_secs(30);

/// The token's id and secret, if well-formed.
pub fn parse_token(token: &str) -> Result<(&str, &str), JoinError> {
    let (id, secret) = token.split_once('.').ok_or(JoinError::BadToken)?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if ok(id, 6) && ok(secret, 16) {
        Ok((id, secret))
    } else {
        Err(JoinError::BadToken)
    }
}

/// A client that authenticates with the bootstrap token and trusts only
/// the discovered CA.
pub async fn bootstrap_client(
    server: &str,
    ca_pem: &str,
    token: &str,
) -> Result<kube::Client, JoinError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: bootstrap\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: bootstrap\ncurrent-context: skiff\n",
        b64(ca_pem)
    );
    client_from_yaml(&yaml).await
}

fn node_subject(node_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("system:node:{node_name}"));
    dn.push(DnType::OrganizationName, "system:nodes");
    dn
}

/// Submits a CSR and waits for its certificate; returns (cert, key) PEM.
async fn obtain(
    client: &kube::Client,
    params: CertificateParams,
    signer: &str,
    usages: &[&str],
) -> Result<(String, String), JoinError> {
    let key = KeyPair::generate()?;
    let request = params.serialize_request(&key)?.pem()?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, signer, "asked for a certificate; waiting for approval");
    let mut last_note = std::time::Instant::now();
    loop {
        let current = api.get(&name).await?;
        let status = current.status.unwrap_or_default();
        for c in status.conditions.iter().flatten() {
            if (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True" {
                return Err(JoinError::Request {
                    name,
                    message: format!(
                        "{}: {}",
                        c.type_.to_lowercase(),
                        c.message.clone().unwrap_or_default()
                    ),
                });
            }
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let pem = String::from_utf8(cert.0).map_err(|_| JoinError::Request {
                name: name.clone(),
                message: "the certificate is not PEM".into(),
            })?;
            return Ok((pem, key.serialize_pem()));
        }
        if last_note.elapsed() >= NOTE_EVERY {
            tracing::info!(csr = %name, "still waiting for approval (kubectl certificate approve {name})");
            last_note = std::time::Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The node's client certificate (`system:node:<name>`, `system:nodes`).
pub async fn client_certificate(
    client: &kube::Client,
    node_name: &str,
) -> Result<(String, String), JoinError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = node_subject(node_name);
    obtain(
        client,
        params,
        CLIENT_SIGNER,
        &["digital signature", "client auth"],
    )
    .await
}

/// The kubelet API's serving certificate: the node name, `localhost`,
/// loopback and the node's addresses.
pub async fn serving_certificate(
    client: &kube::Client,
    node_name: &str,
    ips: &[IpAddr],
) -> Result<(String, String), JoinError> {
    let mut names = vec![
        node_name.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    names.extend(ips.iter().map(IpAddr::to_string));
    names.dedup();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = node_subject(node_name);
    obtain(
        client,
        params,
        SERVING_SIGNER,
        &["digital signature", "key encipherment", "server auth"],
    )
    .await
}

/// Whether `cert_pem` names `user` and is valid for at least another day.
pub fn still_valid(cert_pem: &str, user: &str) -> bool {
    use rustls_pki_types::pem::PemObject;
    let Ok(der) = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let named = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        == Some(user);
    let day_from_now = jiff::Timestamp::now().as_second() + 24 * 3600;
    named && cert.validity().not_after.timestamp() > day_from_now
}
