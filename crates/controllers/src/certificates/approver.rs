//! The CSR approver (`csrapproving-controller`), upstream's: a kubelet
//! client certificate request is approved when its shape is a kubelet's
//! and a SubjectAccessReview says the requester may ask for one — a
//! bootstrap token (`certificatesigningrequests/nodeclient`) or the node
//! renewing its own (`certificatesigningrequests/selfnodeclient`). skiff
//! also approves a node's request for its own serving certificate (as k3s
//! signs them), so joined nodes serve logs and exec without an operator.
//! It never denies: what it does not approve waits for a person
//! (`kubectl certificate approve|deny`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::request::{self, Requested};
use super::{KUBELET_CLIENT, KUBELET_SERVING, condition_patch, has_condition};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    Controller::new(
        Api::<CertificateSigningRequest>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, error_policy, Arc::new(Ctx { client }))
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "csr approver sync");
        }
    })
    .await;
    Ok(())
}

fn error_policy(_csr: Arc<CertificateSigningRequest>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "csr approver sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Which permission approval needs, if the request is one this
/// controller approves at all.
pub fn needed_subresource(csr: &CertificateSigningRequest, r: &Requested) -> Option<&'static str> {
    let spec = &csr.spec;
    let usages = spec.usages.clone().unwrap_or_default();
    let requester = spec.username.as_deref().unwrap_or_default();
    match spec.signer_name.as_str() {
        KUBELET_CLIENT => {
            request::check_kubelet_client(r, &usages).ok()?;
            Some(if requester == r.common_name {
                "selfnodeclient"
            } else {
                "nodeclient"
            })
        }
        KUBELET_SERVING => {
            request::check_kubelet_serving(r, &usages).ok()?;
            let own = requester == r.common_name
                && spec.groups.iter().flatten().any(|g| g == "system:nodes");
            own.then_some("selfnodeclient")
        }
        _ => None,
    }
}

async fn allowed(
    ctx: &Ctx,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool, Error> {
    if subresource == "selfnodeclient" && csr.spec.signer_name == KUBELET_SERVING {
        // A node asking for its own serving certificate: its identity is
        // the check.
        return Ok(true);
    }
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if has_condition(&csr, "Approved") || has_condition(&csr, "Denied") {
        return Ok(Action::await_change());
    }
    let Ok(requested) = request::parse(&csr.spec.request.0) else {
        return Ok(Action::await_change());
    };
    let Some(subresource) = needed_subresource(&csr, &requested) else {
        return Ok(Action::await_change());
    };
    if !allowed(&ctx, &csr, subresource).await? {
        tracing::info!(csr = %csr.name_any(), requester = ?csr.spec.username, "not approving: the requester may not ask for this certificate");
        return Ok(Action::await_change());
    }
    let (reason, message) = if csr.spec.signer_name == KUBELET_SERVING {
        (
            "AutoApproved",
            "Auto approving kubelet serving certificate of the node itself.",
        )
    } else {
        (
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
    };
    let patch = condition_patch(&csr, "Approved", reason, message);
    let api = Api::<CertificateSigningRequest>::all(ctx.client.clone());
    match api
        .patch_subresource(
            "approval",
            &csr.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(csr = %csr.name_any(), signer = %csr.spec.signer_name, "approved");
            Ok(Action::await_change())
        }
        Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
