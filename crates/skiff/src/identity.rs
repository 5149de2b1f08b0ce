//! Each component inside `skiff server` talks to the API server as itself:
//! the scheduler as `system:kube-scheduler`, the controller manager as
//! `system:kube-controller-manager`, kube-proxy as `system:kube-proxy`, the
//! server's own kubelet as `system:node:<name>` — with the rights upstream
//! gives those identities, never the admin's.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use kube::config::Kubeconfig;
use skiff_apiserver::pki::ClusterPki;

/// The identities the server's components use.
pub enum Component<'a> {
    Scheduler,
    ControllerManager,
    Proxy,
    Node(&'a str),
    Dns,
}

impl Component<'_> {
    /// (certificate file, user, groups)
    fn identity(&self) -> (String, String, Vec<&'static str>) {
        match self {
            Component::Scheduler => (
                "kube-scheduler".into(),
                "system:kube-scheduler".into(),
                vec![],
            ),
            Component::ControllerManager => (
                "kube-controller-manager".into(),
                "system:kube-controller-manager".into(),
                vec![],
            ),
            Component::Proxy => ("kube-proxy".into(), "system:kube-proxy".into(), vec![]),
            Component::Node(name) => (
                format!("kubelet-{name}"),
                format!("system:node:{name}"),
                vec!["system:nodes"],
            ),
            Component::Dns => ("skiff-dns".into(), "system:skiff-dns".into(), vec![]),
        }
    }
}

/// A client for `component`: the admin kubeconfig's server and CA with
/// the component's own certificate.
pub async fn client(
    data_dir: &Path,
    admin_kubeconfig: &Path,
    component: Component<'_>,
) -> anyhow::Result<kube::Client> {
    let pki = ClusterPki::load_or_create(data_dir, &[], &[]).context("loading the cluster CA")?;
    let (file, user, groups) = component.identity();
    let pair = pki
        .component(&file, &user, &groups)
        .with_context(|| format!("issuing the certificate of {user}"))?;
    let mut kubeconfig = Kubeconfig::read_from(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.client_certificate_data = Some(b64(&pair.cert_pem));
            auth.client_key_data = Some(b64(&pair.key_pem).into());
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("a client for {user}"))?;
    kube::Client::try_from(config).with_context(|| format!("a client for {user}"))
}
