//! The 403 every admission plugin answers with, in upstream's
//! `admission.NewForbidden` shape, so kubectl prints the same line as
//! against upstream.

use serde_json::json;

use crate::status::ApiError;

/// `<resource>[.<group>] "<name>" is forbidden: <reason>`, with
/// `details.{name,group,kind}` as upstream fills them.
pub fn forbidden(resource: &str, group: &str, name: &str, reason: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let mut e = ApiError::forbidden(format!("{qualified} \"{name}\" is forbidden: {reason}"));
    let mut details = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    e.details = Some(details);
    e
}
