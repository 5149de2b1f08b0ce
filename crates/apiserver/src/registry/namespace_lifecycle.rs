//! Upstream's NamespaceLifecycle admission: new content only goes into a
//! namespace that exists and is not being deleted (so the namespace
//! controller can empty it for good), and the namespaces the system itself
//! lives in can never be deleted.

use serde_json::{Value, json};

use super::forbidden::forbidden;
use super::{Registry, Target};
use crate::object;
use crate::status::{ApiError, Subject};

/// Namespaces that may not be deleted (upstream's immortal namespaces).
pub const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The 403 refusing the deletion of an immortal namespace.
pub fn check_delete(t: &Target<'_>) -> Result<(), ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    if t.r.group.is_empty() && t.r.plural == "namespaces" && IMMORTAL.contains(&name) {
        return Err(forbidden(
            &t.r.plural,
            "",
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// The 403 of a create in a terminating namespace, with upstream's
/// `NamespaceTerminating` cause.
fn terminating(t: &Target<'_>, ns: &str) -> ApiError {
    let name = t.name.as_deref().unwrap_or_default();
    let mut e = forbidden(
        &t.r.plural,
        &t.r.group,
        name,
        &format!("unable to create new content in namespace {ns} because it is being terminated"),
    );
    if let Some(details) = e.details.as_mut() {
        details["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }]);
    }
    e
}

impl Registry {
    /// Namespaced objects may only be created in a namespace that exists
    /// (else 404 on the namespace) and is not being deleted (else 403).
    /// Read from the store, not the cache: a namespace just marked for
    /// deletion must refuse content at once.
    pub(super) async fn check_namespace_open(&self, t: &Target<'_>) -> Result<(), ApiError> {
        let Some(ns) = t.namespace.as_deref().filter(|_| t.r.namespaced) else {
            return Ok(());
        };
        let subject = Subject {
            group: "",
            resource: "namespaces",
            name: ns,
        };
        let kv = self
            .store
            .get(&format!("/namespaces/{ns}"))
            .await
            .map_err(|e| ApiError::from_store(e, &subject))?
            .ok_or_else(|| ApiError::not_found(&subject))?;
        let namespace: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
        let phase = namespace.pointer("/status/phase").and_then(Value::as_str);
        if object::is_deleting(&namespace) || phase == Some("Terminating") {
            return Err(terminating(t, ns));
        }
        Ok(())
    }
}
