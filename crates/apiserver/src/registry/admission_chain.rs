//! The admission plugins a new object passes after defaulting and
//! validation, in upstream's order: mutating ones (LimitRanger, Priority,
//! mutating webhooks), then validating ones (PodSecurity, validating
//! webhooks). ResourceQuota, which must come last, is charged by the
//! create itself just before the store write.

use serde_json::Value;

use super::webhooks::{Call, Phase};
use super::{Registry, Target};
use crate::status::ApiError;

/// A `Warning` header value (`299 - "<text>"`, quotes and backslashes
/// escaped), as kubectl prints it after `Warning: `.
pub fn warning(text: &str) -> String {
    let mut value = String::with_capacity(text.len() + 10);
    value.push_str("299 - \"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            value.push('\\');
        }
        value.push(c);
    }
    value.push('"');
    value
}

impl Registry {
    /// Runs the mutating and validating plugins on a new object; warnings
    /// (`Warning` header values) are added to `warnings`.
    pub(super) async fn admit_new_object(
        &self,
        t: &Target<'_>,
        obj: &mut Value,
        dry: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        self.check_rbac_escalation(t, obj).await?;
        self.admit_limit_ranges(t, obj).await?;
        self.admit_priority(t, obj).await?;
        let call = Call {
            operation: "CREATE",
            old: None,
            dry_run: dry,
        };
        let before = obj.clone();
        self.call_webhooks(Phase::Mutating, t, &call, obj, warnings)
            .await?;
        if *obj != before {
            // What webhooks changed must still be a valid object.
            super::admission::admit_create(t.r, obj, t.name.as_deref().unwrap_or_default())?;
        }
        let texts = self.admit_pod_security(t, obj).await?;
        warnings.extend(texts.iter().map(|t| warning(t)));
        self.call_webhooks(Phase::Validating, t, &call, obj, warnings)
            .await
    }

    /// The plugins that also see updates of the main resource: mutating
    /// and validating webhooks, RBAC escalation checks. Their warnings
    /// reach the client through [`super::requester::warn`].
    pub(super) async fn admit_changed_object(
        &self,
        t: &Target<'_>,
        new: &mut Value,
        old: &Value,
        dry: bool,
    ) -> Result<(), ApiError> {
        let call = Call {
            operation: "UPDATE",
            old: Some(old),
            dry_run: dry,
        };
        let mut warnings = Vec::new();
        let before = new.clone();
        self.call_webhooks(Phase::Mutating, t, &call, new, &mut warnings)
            .await?;
        if *new != before {
            super::admission::admit_update(t.r, new, old, t.name.as_deref().unwrap_or_default())?;
        }
        self.call_webhooks(Phase::Validating, t, &call, new, &mut warnings)
            .await?;
        self.check_rbac_escalation(t, new).await?;
        super::requester::warn(warnings);
        Ok(())
    }

    /// Webhooks on a deletion of `current` (deletes and each object of a
    /// deletecollection).
    pub(super) async fn admit_deletion(
        &self,
        t: &Target<'_>,
        current: &Value,
        dry: bool,
    ) -> Result<(), ApiError> {
        let call = Call {
            operation: "DELETE",
            old: Some(current),
            dry_run: dry,
        };
        let mut none = Value::Null;
        let mut warnings = Vec::new();
        self.call_webhooks(Phase::Mutating, t, &call, &mut none, &mut warnings)
            .await?;
        self.call_webhooks(Phase::Validating, t, &call, &mut none, &mut warnings)
            .await
    }
}
