//! CertificateSigningRequests as upstream's registry keeps them: the
//! requester's identity is recorded by the server (never taken from the
//! body, so approvers can trust it), the request must be a PKCS#10 CSR,
//! and the `approval` subresource changes nothing but the conditions.

use base64::Engine;
use serde_json::{Value, json};

use crate::status::ApiError;

const KIND: &str = "CertificateSigningRequest";
const GROUP: &str = "certificates.k8s.io";

fn invalid(obj: &Value, field: &str, detail: &str) -> ApiError {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ApiError::invalid(
        KIND,
        GROUP,
        name,
        format!("{KIND}.{GROUP} \"{name}\" is invalid: {field}: {detail}"),
        vec![json!({"reason": "FieldValueInvalid", "message": detail, "field": field})],
    )
}

/// The DER of the CSR in `spec.request` (base64 of PEM), if it is one.
pub fn request_der(obj: &Value) -> Result<Vec<u8>, String> {
    let encoded = obj
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .ok_or("Required value")?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "not base64")?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&block.contents)
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    Ok(block.contents)
}

/// A new CSR: the requester recorded from the request's user, no status.
pub fn admit_create(obj: &mut Value) -> Result<(), ApiError> {
    if let Err(detail) = request_der(obj) {
        return Err(invalid(obj, "spec.request", &detail));
    }
    if obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(invalid(obj, "spec.signerName", "Required value"));
    }
    if let Some(user) = super::requester::current() {
        let spec = &mut obj["spec"];
        spec["username"] = json!(user.name);
        spec["groups"] = json!(user.groups);
        match user.uid.as_str() {
            "" => {
                if let Some(s) = spec.as_object_mut() {
                    s.remove("uid");
                }
            }
            uid => spec["uid"] = json!(uid),
        }
        if user.extra.is_empty() {
            if let Some(s) = spec.as_object_mut() {
                s.remove("extra");
            }
        } else {
            spec["extra"] = json!(user.extra);
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    Ok(())
}

/// `PUT .../approval`: the current object with the new conditions, which
/// may not both approve and deny, nor take back a decision.
pub fn approval(new: &mut Value, current: &Value) -> Result<(), ApiError> {
    let conditions = new
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let decided = |list: &Value, kind: &str| {
        list.as_array()
            .into_iter()
            .flatten()
            .any(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    };
    if decided(&conditions, "Approved") && decided(&conditions, "Denied") {
        return Err(invalid(
            current,
            "status.conditions",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    let previous = current
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or_else(|| json!([]));
    for kind in ["Approved", "Denied"] {
        if decided(&previous, kind) && !decided(&conditions, kind) {
            return Err(invalid(
                current,
                "status.conditions",
                &format!("updates may not remove a condition of type \"{kind}\""),
            ));
        }
    }
    let mut updated = current.clone();
    if !updated.get("status").is_some_and(Value::is_object) {
        updated["status"] = json!({});
    }
    updated["status"]["conditions"] = conditions;
    if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
        updated["metadata"]["resourceVersion"] = rv;
    }
    *new = updated;
    Ok(())
}
