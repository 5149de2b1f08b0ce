//! Node certificates: the CSR approver (`csrapproving-controller`) approves
//! kubelets' requests after a SubjectAccessReview, the signer
//! (`csrsigning-controller`) issues approved ones with the cluster CA —
//! together the server half of node join and certificate renewal.

pub mod approver;
pub mod request;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// Kubelets' client certificates (`system:node:<name>`, `system:nodes`).
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Kubelets' serving certificates (their HTTPS API on 10250).
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// Any client certificate for the API server (approved by people).
pub const API_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Upstream's catch-all legacy signer.
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// Whether the CSR has a condition of `kind` ("Approved", "Denied",
/// "Failed") that is true.
pub fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == kind && c.status == "True")
}

/// Whether the CSR already has a certificate.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// A status patch adding a true condition to the CSR's conditions (merge
/// patches replace lists whole, so the old ones are repeated).
pub fn condition_patch(
    csr: &CertificateSigningRequest,
    kind: &str,
    reason: &str,
    message: &str,
) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut conditions: Vec<serde_json::Value> = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(serde_json::json!({
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    }));
    serde_json::json!({"status": {"conditions": conditions}})
}
