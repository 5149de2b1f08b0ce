//! Applying PATCH bodies: JSON patch (RFC 6902) and JSON merge patch
//! (RFC 7386) through the `json-patch` crate, strategic merge patch through
//! `skiff-strategic` with the kind's merge keys from its schema. Server-side
//! apply bodies are decoded here and merged in `managed_fields`.

use serde_json::Value;
use skiff_apimachinery::shape::ShapeId;
use skiff_openapi::OpenApi;

use crate::resources::ResourceInfo;
use crate::status::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        match content_type {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::StrategicMerge),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Drops strategic-merge directives (`$patch`, `$retainKeys`,
/// `$setElementOrder/...`, `$deleteFromPrimitiveList/...`).
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// The patch kind (from Content-Type) and the parsed patch body.
pub fn decode(headers: &http::HeaderMap, body: &[u8]) -> Result<(PatchKind, Value), ApiError> {
    if body.len() > super::body::MAX_BODY_BYTES {
        return Err(ApiError::too_large(
            "Request entity too large: limit is 3145728",
        ));
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let kind = PatchKind::from_content_type(content_type)?;
    let patch = serde_json::from_slice(body).map_err(|e| {
        if kind == PatchKind::Apply {
            ApiError::bad_request(format!(
                "error decoding YAML: this server reads apply configurations written as JSON (as kubectl and client libraries send them): {e}"
            ))
        } else {
            ApiError::bad_request(format!("error decoding patch: {e}"))
        }
    })?;
    Ok((kind, patch))
}

/// Applies one kind of patch to objects of one resource.
pub struct Patcher<'a> {
    kind: PatchKind,
    docs: &'a OpenApi,
    root: Option<ShapeId>,
}

impl<'a> Patcher<'a> {
    /// Strategic merge patch is for built-in kinds only (415 for custom
    /// resources, as upstream).
    pub fn new(kind: PatchKind, r: &ResourceInfo, docs: &'a OpenApi) -> Result<Self, ApiError> {
        if kind == PatchKind::StrategicMerge && r.custom.is_some() {
            return Err(ApiError::unsupported_media(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        Ok(Patcher {
            kind,
            docs,
            root: docs.shapes().root(&r.group, &r.version, &r.kind),
        })
    }

    pub fn apply(&self, current: &Value, patch: &Value) -> Result<Value, ApiError> {
        match (self.kind, self.root) {
            (PatchKind::StrategicMerge, Some(root)) => {
                skiff_strategic::apply_patch(current, patch, self.docs.shapes(), root)
                    .map_err(|e| ApiError::bad_request(e.to_string()))
            }
            (kind, _) => apply(kind, current, patch),
        }
    }
}

pub fn apply(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                // Upstream's JSON patch library words a failed test this way.
                let detail = match e.kind {
                    json_patch::PatchErrorKind::TestFailed => {
                        format!("testing value {} failed: test failed", e.path)
                    }
                    _ => e.to_string(),
                };
                ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "the server rejected our request due to an error in our request: {detail}"
                    ),
                )
            })?;
        }
        PatchKind::Merge | PatchKind::StrategicMerge | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("patch body must be a JSON object"));
            }
            let mut patch = patch.clone();
            if kind == PatchKind::StrategicMerge {
                strip_directives(&mut patch);
            }
            json_patch::merge(&mut doc, &patch);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes_fields() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patched = apply(
            PatchKind::Merge,
            &current,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn json_patch_operations_apply() {
        let current = json!({"spec": {"replicas": 1}});
        let patched = apply(
            PatchKind::Json,
            &current,
            &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .unwrap();
        assert_eq!(patched["spec"]["replicas"], 3);
        assert!(
            apply(
                PatchKind::Json,
                &current,
                &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])
            )
            .is_err()
        );
    }

    #[test]
    fn strategic_directives_are_not_stored() {
        let patched = apply(
            PatchKind::StrategicMerge,
            &json!({}),
            &json!({"spec": {"$setElementOrder/containers": [], "x": 1}}),
        )
        .unwrap();
        assert_eq!(patched, json!({"spec": {"x": 1}}));
    }
}
