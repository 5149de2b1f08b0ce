//! The admission plugins a new object passes after defaulting and
//! validation, in upstream's order (ResourceQuota, which must come last,
//! is charged by the create itself just before the store write).

use serde_json::Value;

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
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        self.check_rbac_escalation(t, obj).await?;
        self.admit_limit_ranges(t, obj).await?;
        self.admit_priority(t, obj).await?;
        let texts = self.admit_pod_security(t, obj).await?;
        warnings.extend(texts.iter().map(|t| warning(t)));
        Ok(())
    }
}
