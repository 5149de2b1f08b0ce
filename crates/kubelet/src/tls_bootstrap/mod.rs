//! Joining a cluster with a bootstrap token (the kubelet's TLS bootstrap,
//! with kubeadm's token discovery): the node first learns the cluster CA
//! from the anonymously readable `cluster-info` without trusting the
//! server — the CA must match the `--ca-cert-hash` the operator copied, and
//! the server must prove it knows the token by signing `cluster-info` with
//! it — then uses the token, over TLS verified with that CA, only to ask
//! for its own client and serving certificates. Everything after runs as
//! `system:node:<name>`. The credentials are kept in a directory and
//! reused at the next start.

pub mod ca_hash;
pub mod discovery;
pub mod request;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{0}")]
    Discovery(String),
    #[error("the bootstrap token is malformed (expected [a-z0-9]{{6}}.[a-z0-9]{{16}})")]
    BadToken,
    #[error(
        "cluster-info is not signed for token {0} (unknown or expired token, or the bootstrap signer is not running)"
    )]
    NotSigned(String),
    #[error("the certificate request {name}: {message}")]
    Request { name: String, message: String },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating keys: {0}")]
    Keys(#[from] rcgen::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

/// What joining needs.
#[derive(Clone, Debug)]
pub struct JoinParams {
    /// The API server (`https://host:6443`).
    pub server: String,
    /// The bootstrap token (`skiff token create`).
    pub token: String,
    /// `sha256:<hex>` of the CA's public key (`skiff token create` prints it).
    pub ca_cert_hash: String,
    pub node_name: String,
    /// The addresses the serving certificate must cover.
    pub node_ips: Vec<IpAddr>,
    /// Where the credentials are kept.
    pub dir: PathBuf,
    /// How long to wait for cluster-info to be signed with the token (a
    /// token just created is signed within moments).
    pub discovery_timeout: std::time::Duration,
}

/// A joined node's credentials (PEM).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
}

const FILES: [&str; 5] = [
    "ca.crt",
    "kubelet-client.crt",
    "kubelet-client.key",
    "kubelet-serving.crt",
    "kubelet-serving.key",
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JoinError + '_ {
    move |source| JoinError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Credentials {
    /// The credentials kept in `dir`, if all are there and the client
    /// certificate names `node_name` and has not expired.
    pub fn load(dir: &Path, server: &str, node_name: &str) -> Option<Credentials> {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let [ca, cc, ck, sc, sk] = FILES.map(read);
        let creds = Credentials {
            server: server.to_owned(),
            ca_pem: ca?,
            client_cert_pem: cc?,
            client_key_pem: ck?,
            serving_cert_pem: sc?,
            serving_key_pem: sk?,
        };
        request::still_valid(&creds.client_cert_pem, &format!("system:node:{node_name}"))
            .then_some(creds)
    }

    /// Writes the credentials (keys readable by root only) and
    /// `kubelet.kubeconfig` beside them.
    pub fn save(&self, dir: &Path) -> Result<(), JoinError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let contents = [
            &self.ca_pem,
            &self.client_cert_pem,
            &self.client_key_pem,
            &self.serving_cert_pem,
            &self.serving_key_pem,
        ];
        for (file, text) in FILES.iter().zip(contents) {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(io(&path))?;
            if file.ends_with(".key") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io(&path))?;
            }
        }
        let path = dir.join("kubelet.kubeconfig");
        std::fs::write(&path, self.kubeconfig()).map_err(io(&path))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&path))?;
        Ok(())
    }

    /// A kubeconfig with the node's client certificate.
    pub fn kubeconfig(&self) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: node\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: node\ncurrent-context: skiff\n",
            self.server,
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem),
        )
    }

    /// An API client acting as the node.
    pub async fn client(&self) -> Result<kube::Client, JoinError> {
        client_from_yaml(&self.kubeconfig()).await
    }
}

pub(crate) async fn client_from_yaml(yaml: &str) -> Result<kube::Client, JoinError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)
        .map_err(|e| JoinError::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| JoinError::Kubeconfig(e.to_string()))?;
    kube::Client::try_from(config).map_err(JoinError::Kube)
}

/// Joins (or reuses the credentials of an earlier join).
pub async fn join(params: &JoinParams) -> Result<Credentials, JoinError> {
    if let Some(creds) = Credentials::load(&params.dir, &params.server, &params.node_name) {
        tracing::info!(dir = %params.dir.display(), "using this node's certificates from an earlier join");
        return Ok(creds);
    }
    let started = std::time::Instant::now();
    let ca_pem = loop {
        match discovery::discover(&params.server, &params.token, &params.ca_cert_hash).await {
            Err(JoinError::NotSigned(id)) if started.elapsed() < params.discovery_timeout => {
                tracing::info!(token = %id, "cluster-info is not signed for this token yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            other => break other?,
        }
    };
    tracing::info!(server = %params.server, "the server's CA matches --ca-cert-hash and cluster-info is signed with the token");
    let bootstrap = request::bootstrap_client(&params.server, &ca_pem, &params.token).await?;
    let (client_cert_pem, client_key_pem) =
        request::client_certificate(&bootstrap, &params.node_name).await?;
    let node = Credentials {
        server: params.server.clone(),
        ca_pem,
        client_cert_pem,
        client_key_pem,
        serving_cert_pem: String::new(),
        serving_key_pem: String::new(),
    };
    // The serving certificate is asked for as the node itself.
    let as_node = node.client().await?;
    let (serving_cert_pem, serving_key_pem) =
        request::serving_certificate(&as_node, &params.node_name, &params.node_ips).await?;
    let creds = Credentials {
        serving_cert_pem,
        serving_key_pem,
        ..node
    };
    creds.save(&params.dir)?;
    tracing::info!(node = %params.node_name, "joined: this node now uses its own certificate");
    Ok(creds)
}
