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
}

/// Reads the Accept header (`application/json;as=Table;v=v1;g=meta.k8s.io`)
/// and `includeObject`.
pub fn negotiate(headers: &HeaderMap, query: &Query) -> Result<Output, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    });
    if !table {
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
