//! The CSR signer (`csrsigning-controller`), upstream's: approved requests
//! for the built-in signers get a certificate from the cluster CA (the
//! subject and names as requested, the usages from `spec.usages`, valid
//! for `spec.expirationSeconds` capped at the signing duration); a request
//! a signer cannot honour gets a `Failed` condition instead.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::request::{self, RequestError};
use super::{
    API_CLIENT, KUBELET_CLIENT, KUBELET_SERVING, LEGACY_UNKNOWN, condition_patch, has_condition,
    is_issued,
};

/// The CA that signs, and for how long (upstream's
/// `--cluster-signing-duration`, 1 year by default).
#[derive(Clone)]
pub struct Settings {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub duration: Duration,
}

impl Settings {
    pub fn new(ca_cert_pem: String, ca_key_pem: String) -> Self {
        Settings {
            ca_cert_pem,
            ca_key_pem,
            duration: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the signing CA: {0}")]
    Ca(rcgen::Error),
}

struct Ctx {
    client: kube::Client,
    settings: Settings,
}

/// Shortest validity upstream grants (`expirationSeconds` minimum).
const MIN_VALIDITY: Duration = Duration::from_secs(600);

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    // Refuse to start with a CA that cannot sign, rather than fail each CSR.
    let key = KeyPair::from_pem(&settings.ca_key_pem).map_err(Error::Ca)?;
    Issuer::from_ca_cert_pem(&settings.ca_cert_pem, key).map_err(Error::Ca)?;
    Controller::new(
        Api::<CertificateSigningRequest>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, error_policy, Arc::new(Ctx { client, settings }))
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "csr signer sync");
        }
    })
    .await;
    Ok(())
}

fn error_policy(_csr: Arc<CertificateSigningRequest>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "csr signer sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn usage_purposes(usages: &[String]) -> (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    let mut key = Vec::new();
    let mut extended = Vec::new();
    for u in usages {
        match u.as_str() {
            "digital signature" => key.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => key.push(KeyUsagePurpose::KeyEncipherment),
            "content commitment" => key.push(KeyUsagePurpose::ContentCommitment),
            "key agreement" => key.push(KeyUsagePurpose::KeyAgreement),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => extended.push(ExtendedKeyUsagePurpose::ServerAuth),
            "code signing" => extended.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" => extended.push(ExtendedKeyUsagePurpose::EmailProtection),
            _ => {}
        }
    }
    (key, extended)
}

/// Whether the signer may issue what `csr` asks (upstream's per-signer
/// rules).
fn check(csr: &CertificateSigningRequest) -> Result<(), RequestError> {
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let requested = request::parse(&csr.spec.request.0)?;
    match csr.spec.signer_name.as_str() {
        KUBELET_CLIENT => request::check_kubelet_client(&requested, &usages),
        KUBELET_SERVING => request::check_kubelet_serving(&requested, &usages),
        API_CLIENT => {
            if usages.iter().any(|u| u == "client auth")
                && !usages.iter().any(|u| u == "server auth")
            {
                Ok(())
            } else {
                Err(RequestError::Shape(
                    "a client certificate needs \"client auth\" and no \"server auth\"".into(),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The PEM certificate for an approved, valid request.
pub fn sign(settings: &Settings, csr: &CertificateSigningRequest) -> Result<String, RequestError> {
    check(csr)?;
    let der = request::der_of(&csr.spec.request.0)?;
    let mut params = CertificateSigningRequestParams::from_der(&der.into())
        .map_err(|_| RequestError::Unparsable)?;
    let wanted = csr
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)).max(MIN_VALIDITY))
        .unwrap_or(settings.duration)
        .min(settings.duration);
    let now = time::OffsetDateTime::now_utc();
    // Backdated a little, as upstream, for clocks slightly behind.
    params.params.not_before = now - time::Duration::minutes(5);
    params.params.not_after =
        now + time::Duration::seconds(i64::try_from(wanted.as_secs()).unwrap_or(i64::MAX / 2));
    params.params.is_ca = IsCa::ExplicitNoCa;
    let (key_usages, extended) = usage_purposes(&csr.spec.usages.clone().unwrap_or_default());
    params.params.key_usages = key_usages;
    params.params.extended_key_usages = extended;
    params.params.use_authority_key_identifier_extension = true;
    let ca_key = KeyPair::from_pem(&settings.ca_key_pem).map_err(|_| RequestError::Unparsable)?;
    let issuer = Issuer::from_ca_cert_pem(&settings.ca_cert_pem, ca_key)
        .map_err(|_| RequestError::Unparsable)?;
    let cert = params
        .signed_by(&issuer)
        .map_err(|_| RequestError::Unparsable)?;
    Ok(cert.pem())
}

fn signs(signer: &str) -> bool {
    [KUBELET_CLIENT, KUBELET_SERVING, API_CLIENT, LEGACY_UNKNOWN].contains(&signer)
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !signs(&csr.spec.signer_name)
        || !has_condition(&csr, "Approved")
        || has_condition(&csr, "Denied")
        || has_condition(&csr, "Failed")
        || is_issued(&csr)
    {
        return Ok(Action::await_change());
    }
    let api = Api::<CertificateSigningRequest>::all(ctx.client.clone());
    let patch = match sign(&ctx.settings, &csr) {
        Ok(pem) => {
            use base64::Engine;
            json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(pem)}})
        }
        Err(e) => {
            tracing::info!(csr = %csr.name_any(), error = %e, "not signing");
            condition_patch(&csr, "Failed", "SignerValidationFailure", &e.to_string())
        }
    };
    match api
        .patch_status(
            &csr.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(csr = %csr.name_any(), signer = %csr.spec.signer_name, "signed");
            Ok(Action::await_change())
        }
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
