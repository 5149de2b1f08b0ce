//! The cluster's certificates: a CA, the API server's serving certificate,
//! the admin client certificate and the API server's client certificate for
//! kubelets (logs, exec), created at first start and reused after; and
//! serving certificates for kubelets, signed by the same CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the certificates could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// PEM files of one certificate and its key.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Everything TLS needs, as PEM.
#[derive(Clone, Debug)]
pub struct ClusterPki {
    pub ca: CertPair,
    pub serving: CertPair,
    pub admin: CertPair,
    /// The API server's identity towards kubelets (`pods/log` and other
    /// streaming subresources): CN `kube-apiserver-kubelet-client`, O
    /// `system:masters`, as kubeadm's `apiserver-kubelet-client.crt`.
    pub kubelet_client: CertPair,
    pub dir: PathBuf,
}

/// DNS names the serving certificate must cover (in-cluster clients use them).
const SERVICE_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn load_pair(dir: &Path, name: &str) -> Result<Option<CertPair>, PkiError> {
    let cert = read(&dir.join(format!("{name}.crt")))?;
    let key = read(&dir.join(format!("{name}.key")))?;
    Ok(match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => Some(CertPair { cert_pem, key_pem }),
        _ => None,
    })
}

fn save_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<(), PkiError> {
    write(&dir.join(format!("{name}.key")), &pair.key_pem, true)?;
    write(&dir.join(format!("{name}.crt")), &pair.cert_pem, false)
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

fn new_ca() -> Result<CertPair, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name("skiff-ca", None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issue(
    ca: &CertPair,
    mut params: CertificateParams,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertPair, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a client certificate: CN is the user, O entries are the groups
/// (how Kubernetes reads identities from client certificates).
pub fn issue_client(ca: &CertPair, user: &str, groups: &[&str]) -> Result<CertPair, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = name(user, None);
    for group in groups {
        dn.push(DnType::OrganizationName, *group);
    }
    params.distinguished_name = dn;
    issue(ca, params, ExtendedKeyUsagePurpose::ClientAuth)
}

/// Issues a serving certificate (server authentication) for `common_name`,
/// valid for `dns_names` and `ips`.
pub fn issue_serving(
    ca: &CertPair,
    common_name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<CertPair, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name, None);
    let mut sans: Vec<SanType> = Vec::new();
    for dns in dns_names {
        if let Ok(ia5) = dns.as_str().try_into() {
            sans.push(SanType::DnsName(ia5));
        }
    }
    let mut ips = ips.to_vec();
    ips.sort();
    ips.dedup();
    sans.extend(ips.into_iter().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    issue(ca, params, ExtendedKeyUsagePurpose::ServerAuth)
}

/// A kubelet's serving certificate (its HTTPS API on 10250): valid for the
/// node name, `localhost`, loopback and the node's `addresses`, which is
/// how the API server reaches it (the Node's InternalIP).
pub fn issue_kubelet_serving(
    ca: &CertPair,
    node_name: &str,
    addresses: &[IpAddr],
) -> Result<CertPair, PkiError> {
    let mut ips = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    ips.extend_from_slice(addresses);
    issue_serving(
        ca,
        node_name,
        &[node_name.to_owned(), "localhost".to_owned()],
        &ips,
    )
}

fn serving_params(
    extra_ips: &[IpAddr],
    extra_names: &[String],
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name("kube-apiserver", None);
    let mut sans: Vec<SanType> = Vec::new();
    for dns in SERVICE_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(extra_names.iter().cloned())
    {
        if let Ok(ia5) = dns.as_str().try_into() {
            sans.push(SanType::DnsName(ia5));
        }
    }
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([10, 43, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    ips.extend(extra_ips.iter().copied());
    ips.sort();
    ips.dedup();
    sans.extend(ips.into_iter().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    Ok(params)
}

impl ClusterPki {
    /// Loads the certificates from `<data_dir>/tls`, creating what is
    /// missing. The serving certificate covers the service names, loopback,
    /// 10.43.0.1 and `extra_ips`/`extra_names` (host name and addresses).
    pub fn load_or_create(
        data_dir: &Path,
        extra_ips: &[IpAddr],
        extra_names: &[String],
    ) -> Result<Self, PkiError> {
        let dir = data_dir.join("tls");
        let ca = match load_pair(&dir, "ca")? {
            Some(ca) => ca,
            None => {
                let ca = new_ca()?;
                save_pair(&dir, "ca", &ca)?;
                tracing::info!(dir = %dir.display(), "created cluster CA");
                ca
            }
        };
        let serving = match load_pair(&dir, "serving")? {
            Some(pair) => pair,
            None => {
                let params = serving_params(extra_ips, extra_names)?;
                let pair = issue(&ca, params, ExtendedKeyUsagePurpose::ServerAuth)?;
                save_pair(&dir, "serving", &pair)?;
                pair
            }
        };
        let admin = match load_pair(&dir, "admin")? {
            Some(pair) => pair,
            None => {
                let pair = issue_client(&ca, "skiff-admin", &["system:masters"])?;
                save_pair(&dir, "admin", &pair)?;
                pair
            }
        };
        let kubelet_client = match load_pair(&dir, "apiserver-kubelet-client")? {
            Some(pair) => pair,
            None => {
                let pair = issue_client(&ca, "kube-apiserver-kubelet-client", &["system:masters"])?;
                save_pair(&dir, "apiserver-kubelet-client", &pair)?;
                pair
            }
        };
        Ok(ClusterPki {
            ca,
            serving,
            admin,
            kubelet_client,
            dir,
        })
    }

    /// A component's own client certificate (`tls/<file>.crt`), created at
    /// first use and reused after: each component acts as itself, with
    /// the rights RBAC gives that identity, never as the admin.
    pub fn component(&self, file: &str, user: &str, groups: &[&str]) -> Result<CertPair, PkiError> {
        if let Some(pair) = load_pair(&self.dir, file)? {
            return Ok(pair);
        }
        let pair = issue_client(&self.ca, user, groups)?;
        save_pair(&self.dir, file, &pair)?;
        Ok(pair)
    }

    /// Writes a kubeconfig for the admin user pointing at `server_url`.
    pub fn write_admin_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        write(path, &self.kubeconfig(server_url, &self.admin), true)
    }

    /// A kubeconfig with the CA and the given client certificate inlined.
    pub fn kubeconfig(&self, server_url: &str, client: &CertPair) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\nusers:\n- name: skiff-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff-admin\ncurrent-context: skiff\n",
            b64(&self.ca.cert_pem),
            b64(&client.cert_pem),
            b64(&client.key_pem),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::load_or_create(dir.path(), &[], &["myhost".into()]).unwrap();
        let again = ClusterPki::load_or_create(dir.path(), &[], &[]).unwrap();
        assert_eq!(first.ca.cert_pem, again.ca.cert_pem);
        assert_eq!(first.serving.cert_pem, again.serving.cert_pem);
        assert_eq!(first.admin.key_pem, again.admin.key_pem);
        assert_eq!(first.kubelet_client.cert_pem, again.kubelet_client.cert_pem);
        let kubeconfig = first.kubeconfig("https://127.0.0.1:6443", &first.admin);
        assert!(kubeconfig.contains("server: https://127.0.0.1:6443"));
    }

    #[test]
    fn kubelet_serving_certificate_names_the_node_and_its_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path(), &[], &[]).unwrap();
        let pair =
            issue_kubelet_serving(&pki.ca, "node-a", &[IpAddr::from([10, 0, 0, 7])]).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", sans.value.general_names);
        assert!(text.contains("node-a"), "{text}");
        assert!(text.contains("localhost"), "{text}");
        assert!(text.contains("[10, 0, 0, 7]"), "{text}");
        assert!(text.contains("[127, 0, 0, 1]"), "{text}");
    }
}
