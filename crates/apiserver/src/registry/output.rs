//! What a read answers with: plain JSON objects and lists, or the
//! server-side `Table` kubectl asks for to print `kubectl get` columns.

use http::HeaderMap;
use serde_json::Value;
use skiff_printers::{IncludeObject, TableMeta};

use super::Query;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

#[derive(Clone, Copy, Debug)]
pub enum Output {
    Json,
    Table(IncludeObject),
    /// `PartialObjectMetadata` (`...List` for lists): metadata only, what
    /// metadata informers (the garbage collector) ask for.
    Metadata,
}

/// Whether the Accept header asks for `meta.k8s.io/v1` `as=<what>`.
fn accepts_meta(accept: &str, what: &[&str]) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        what.iter()
            .any(|w| params.contains(&format!("as={w}").as_str()))
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// Reads the Accept header (`application/json;as=Table;v=v1;g=meta.k8s.io`,
/// or `as=PartialObjectMetadata[List]`) and `includeObject`.
pub fn negotiate(headers: &HeaderMap, query: &Query) -> Result<Output, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accepts_meta(accept, &["Table"]) {
        if accepts_meta(
            accept,
            &["PartialObjectMetadata", "PartialObjectMetadataList"],
        ) {
            return Ok(Output::Metadata);
        }
        return Ok(Output::Json);
    }
    let include = IncludeObject::from_query(query.get("includeObject").map(String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Output::Table(include))
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A Table of `objects` with list metadata.
pub fn table(
    r: &ResourceInfo,
    include: IncludeObject,
    objects: &[Value],
    meta: &TableMeta,
    with_columns: bool,
) -> Value {
    if let Some(custom) = &r.custom {
        return crate::crd::printing::table(custom, objects, include, meta, now(), with_columns);
    }
    skiff_printers::table(
        &r.group,
        &r.kind,
        objects,
        include,
        meta,
        now(),
        with_columns,
    )
}

/// A one-row Table for a single object (GET, or one watch event).
pub fn object_table(
    r: &ResourceInfo,
    include: IncludeObject,
    obj: &Value,
    with_columns: bool,
) -> Value {
    let meta = TableMeta::for_object(obj);
    table(r, include, std::slice::from_ref(obj), &meta, with_columns)
}

/// An object reduced to `PartialObjectMetadata`.
pub fn metadata_only(obj: &Value) -> Value {
    skiff_printers::partial_object_metadata(obj)
}
