//! get: one object.

use axum::response::Response;
use http::StatusCode;

use super::output::{Output, metadata_only, negotiate, object_table};
use super::{Query, Registry, Target, json_response};
use crate::object;
use crate::status::ApiError;

impl Registry {
    pub(super) async fn get(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &http::HeaderMap,
    ) -> Result<Response, ApiError> {
        let output = negotiate(headers, query)?;
        let obj = self.read_object(t).await?;
        Ok(match output {
            Output::Json => json_response(StatusCode::OK, &obj),
            Output::Table(include) => {
                json_response(StatusCode::OK, &object_table(t.r, include, &obj, true))
            }
            Output::Metadata => json_response(StatusCode::OK, &metadata_only(&obj)),
        })
    }

    /// The current object, as clients see it.
    pub(super) async fn read_object(&self, t: &Target<'_>) -> Result<serde_json::Value, ApiError> {
        Ok(self.load(t).await?.0)
    }

    /// The current object and its revision (what a compare-and-swap
    /// expects).
    pub(super) async fn load(&self, t: &Target<'_>) -> Result<(serde_json::Value, i64), ApiError> {
        let kv = self
            .store
            .get(&t.key()?)
            .await
            .map_err(|e| ApiError::from_store(e, &t.subject()))?
            .ok_or_else(|| ApiError::not_found(&t.subject()))?;
        Ok((object::decode(&kv, t.r)?, kv.mod_revision))
    }

    /// A built-in core object by resource, namespace and name: from the
    /// watch cache, else the store (the cache may not have caught up with
    /// a create yet) — cheap enough for every authenticated request.
    pub(crate) async fn lookup(
        &self,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<std::sync::Arc<serde_json::Value>> {
        let r = self.resources.find("", "v1", plural)?;
        let key = r.key(namespace, name);
        if let Some(obj) = self.cache.resource(&r).and_then(|c| c.get(&key)) {
            return Some(obj);
        }
        let kv = self.store.get(&key).await.ok()??;
        object::decode(&kv, &r).ok().map(std::sync::Arc::new)
    }
}
