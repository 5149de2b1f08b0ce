//! list: consistent, optionally paged reads of many objects.
//!
//! resourceVersion semantics as upstream: unset = the latest state; "0" =
//! any state (we serve the latest); with `resourceVersionMatch=Exact` the
//! state at exactly that revision; otherwise (NotOlderThan) the latest state
//! once the store has reached that revision. Every page of a paged list
//! reads the revision of the first page (carried in the continue token).

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_store::ListOptions;

use super::continue_token::ContinueToken;
use super::output::{Output, metadata_only, negotiate, table};
use super::selection::Selection;
use super::{Query, Registry, Target, json_response};
use crate::object;
use crate::status::ApiError;

/// Objects read from the store per round trip while filtering.
const SCAN_PAGE: usize = 500;

/// One page of results.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

fn parse_limit(query: &Query) -> Result<Option<usize>, ApiError> {
    match query.get("limit").map(|l| l.parse::<i64>()) {
        None => Ok(None),
        Some(Ok(l)) if l > 0 => Ok(Some(l as usize)),
        Some(Ok(_)) => Ok(None),
        Some(Err(_)) => Err(ApiError::bad_request("limit must be an integer")),
    }
}

impl Registry {
    pub(super) async fn list(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &http::HeaderMap,
    ) -> Result<Response, ApiError> {
        let output = negotiate(headers, query)?;
        let page = self.list_page(t, query).await?;
        if let Output::Table(include) = output {
            let meta = skiff_printers::TableMeta {
                resource_version: page.revision.to_string(),
                continue_token: page.continue_token.clone(),
                remaining_item_count: page.remaining,
            };
            return Ok(json_response(
                StatusCode::OK,
                &table(t.r, include, &page.items, &meta, true),
            ));
        }
        let mut metadata = json!({"resourceVersion": page.revision.to_string()});
        if let Some(token) = &page.continue_token {
            metadata["continue"] = json!(token);
        }
        if let Some(remaining) = page.remaining {
            metadata["remainingItemCount"] = json!(remaining);
        }
        let list = if let Output::Metadata = output {
            let items: Vec<Value> = page.items.iter().map(metadata_only).collect();
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items,
            })
        } else {
            json!({
                "kind": t.r.list_kind,
                "apiVersion": t.r.api_version(),
                "metadata": metadata,
                "items": page.items,
            })
        };
        Ok(json_response(StatusCode::OK, &list))
    }

    /// The revision a list without a continue token reads at.
    async fn list_revision(&self, query: &Query) -> Result<Option<i64>, ApiError> {
        let rv = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let exact = query.get("resourceVersionMatch").map(String::as_str);
        match (rv, exact) {
            ("" | "0", Some("Exact")) => Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            )),
            ("", Some(_)) => Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            (_, Some(m)) if !matches!(m, "Exact" | "NotOlderThan") => {
                Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                )))
            }
            ("" | "0", _) => Ok(None),
            (rv, Some("Exact")) => Ok(Some(object::parse_revision(rv)?)),
            (rv, _) => {
                let wanted = object::parse_revision(rv)?;
                let current = self
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if wanted > current {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {wanted}, current: {current}"
                    )));
                }
                Ok(None)
            }
        }
    }

    pub(super) async fn list_page(&self, t: &Target<'_>, query: &Query) -> Result<Page, ApiError> {
        if let Some(page) = self.list_from_cache(t, query).await? {
            return Ok(page);
        }
        self.list_from_store(t, query).await
    }

    /// Serves a list from the watch cache when it can be as fresh as asked:
    /// not for `continue` pages or exact revisions (those read the store at
    /// the revision they name).
    async fn list_from_cache(
        &self,
        t: &Target<'_>,
        query: &Query,
    ) -> Result<Option<Page>, ApiError> {
        let rv = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let exact = query.get("resourceVersionMatch").map(String::as_str);
        if query.get("continue").is_some_and(|c| !c.is_empty()) || exact.is_some() {
            return Ok(None);
        }
        let Some(cache) = self.cache.resource(t.r) else {
            return Ok(None);
        };
        let wait = std::time::Duration::from_secs(3);
        match rv {
            "0" => {}
            "" => {
                let current = self
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if !self.cache.wait_for(current, wait).await {
                    return Ok(None);
                }
            }
            rv => {
                let wanted = object::parse_revision(rv)?;
                if !self.cache.wait_for(wanted, wait).await {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {wanted}, current: {}",
                        self.cache.revision()
                    )));
                }
            }
        }
        let selection = Selection::from_query(t.r, query, None)?;
        let limit = parse_limit(query)?;
        let prefix = t.r.namespace_prefix(t.namespace.as_deref());
        let (objects, revision) = self.cache.consistent_snapshot(&cache, &prefix);
        let restamp = cache.r.version != t.r.version;
        let mut items = Vec::new();
        let mut last_key = None;
        let mut matched = 0usize;
        for (key, obj) in &objects {
            if !selection.matches(obj) {
                continue;
            }
            matched += 1;
            if limit.is_some_and(|l| items.len() >= l) {
                continue;
            }
            let mut obj = Value::clone(obj);
            if restamp {
                object::set_type(&mut obj, t.r);
            }
            items.push(obj);
            last_key = Some(key.clone());
        }
        let more = matched > items.len();
        let continue_token = match (&last_key, more) {
            (Some(key), true) => Some(ContinueToken::encode(
                revision,
                key.strip_prefix(&prefix).unwrap_or(key),
            )),
            _ => None,
        };
        let remaining = (more && !selection.is_filtering()).then(|| (matched - items.len()) as i64);
        Ok(Some(Page {
            items,
            revision,
            continue_token,
            remaining,
        }))
    }

    async fn list_from_store(&self, t: &Target<'_>, query: &Query) -> Result<Page, ApiError> {
        let selection = Selection::from_query(t.r, query, None)?;
        let limit = parse_limit(query)?;
        let prefix = t.r.namespace_prefix(t.namespace.as_deref());
        let (mut revision, mut after) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let token = ContinueToken::decode(token)?;
                (Some(token.rv), Some(format!("{prefix}{}", token.start)))
            }
            None => (self.list_revision(query).await?, None),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more;
        let mut remaining = None;
        loop {
            let want = limit.map(|l| l - items.len());
            let options = ListOptions {
                limit: Some(if selection.is_filtering() {
                    SCAN_PAGE
                } else {
                    want.unwrap_or(0)
                }),
                continue_after: after.clone(),
                revision,
            };
            let result = self.store.list(&prefix, options).await.map_err(|e| match e {
                skiff_store::StoreError::Compacted { .. } if query.contains_key("continue") => {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                }
                other => ApiError::from_store(other, &t.subject()),
            })?;
            revision = Some(result.revision);
            more = result.more();
            for kv in &result.items {
                last_key = Some(kv.key.clone());
                let obj = object::decode(kv, t.r)?;
                if selection.matches(&obj) {
                    items.push(obj);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    more = more || result.items.last().is_some_and(|l| l.key != kv.key);
                    break;
                }
            }
            if !selection.is_filtering() && more {
                remaining = Some(result.remaining as i64);
            }
            if !more || limit.is_some_and(|l| items.len() >= l) {
                break;
            }
            after = last_key.clone();
        }
        let revision = match revision {
            Some(r) if r > 0 => r,
            _ => self.store.current_revision().await.unwrap_or(0),
        };
        let continue_token = match (more, &last_key) {
            (true, Some(key)) => Some(ContinueToken::encode(
                revision,
                key.strip_prefix(&prefix).unwrap_or(key),
            )),
            _ => None,
        };
        Ok(Page {
            items,
            revision,
            continue_token,
            remaining: remaining.filter(|_| more),
        })
    }
}
