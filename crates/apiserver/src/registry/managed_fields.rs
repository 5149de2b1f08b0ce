//! `metadata.managedFields` on every write, and server-side apply, through
//! `skiff-fieldmanager` with the kind's shape from the OpenAPI documents.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{Value, json};
use skiff_apimachinery::shape::ShapeId;
use skiff_fieldmanager as fm;
use skiff_openapi::OpenApi;

use super::{Query, Target};
use crate::object;
use crate::status::ApiError;

/// Upstream's limit on `fieldManager`.
const MAX_MANAGER_BYTES: usize = 128;

/// Records who changed which fields on one request's write.
pub struct Recorder {
    docs: Arc<OpenApi>,
    root: Option<ShapeId>,
    manager: String,
    api_version: String,
    subresource: Option<String>,
}

impl Recorder {
    /// The manager is `fieldManager`, else the client's User-Agent up to
    /// the first `/` (upstream's default).
    pub fn new(
        docs: Arc<OpenApi>,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        subresource: Option<&str>,
    ) -> Result<Recorder, ApiError> {
        let manager = match query.get("fieldManager") {
            Some(m) => m.clone(),
            None => headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .unwrap_or("")
                .to_owned(),
        };
        if manager.len() > MAX_MANAGER_BYTES {
            return Err(ApiError::invalid(
                &t.r.kind,
                &t.r.group,
                t.name.as_deref().unwrap_or(""),
                format!("fieldManager: Too long: must have at most {MAX_MANAGER_BYTES} bytes"),
                vec![
                    json!({"reason": "FieldValueTooLong", "message": format!("Too long: must have at most {MAX_MANAGER_BYTES} bytes"), "field": "fieldManager"}),
                ],
            ));
        }
        let root = docs.shapes().root(&t.r.group, &t.r.version, &t.r.kind);
        Ok(Recorder {
            docs,
            root,
            manager,
            api_version: t.r.api_version(),
            subresource: subresource.map(str::to_owned),
        })
    }

    /// Sets `new`'s managedFields for a non-apply write from `old`
    /// (`None` on create).
    pub fn record(&self, old: Option<&Value>, new: &mut Value) {
        let Some(root) = self.root else {
            return;
        };
        let managed = fm::managed_fields_for_update(old, new, self.subresource.is_some());
        let entries = fm::update(
            old,
            new,
            &self.manager,
            &managed,
            self.docs.shapes(),
            root,
            &self.api_version,
            &object::now_rfc3339(),
            self.subresource.as_deref(),
        );
        fm::set_managed_fields(new, &entries);
    }

    /// Server-side apply of `config` onto `live` (`None`: the object is
    /// created by this apply).
    pub fn apply(
        &self,
        t: &Target<'_>,
        live: Option<&Value>,
        config: &Value,
        force: bool,
    ) -> Result<Value, ApiError> {
        let Some(root) = self.root else {
            return Err(ApiError::unsupported_media(format!(
                "server-side apply is not supported for {}",
                t.r.plural
            )));
        };
        fm::apply(
            live,
            config,
            &self.manager,
            force,
            &live
                .map(|l| fm::managed_fields_of(l).unwrap_or_default())
                .unwrap_or_default(),
            self.docs.shapes(),
            root,
            &self.api_version,
            &object::now_rfc3339(),
        )
        .map(|applied| applied.object)
        .map_err(|e| apply_error(t, e))
    }
}

fn apply_error(t: &Target<'_>, e: fm::ApplyError) -> ApiError {
    match e {
        fm::ApplyError::Conflicts(conflicts) => {
            let mut details = json!({
                "name": t.name.as_deref().unwrap_or(""),
                "kind": t.r.plural.as_ref(),
                "causes": fm::conflict_causes(&conflicts),
            });
            if !t.r.group.is_empty() {
                details["group"] = json!(t.r.group.as_ref());
            }
            ApiError {
                details: Some(details),
                ..ApiError::new(409, "Conflict", fm::conflict_message(&conflicts))
            }
        }
        fm::ApplyError::Invalid(invalid) => ApiError::new(
            422,
            "Invalid",
            format!("failed to create typed patch object: {invalid}"),
        ),
        other => ApiError::bad_request(other.to_string()),
    }
}
