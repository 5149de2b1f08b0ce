//! get: one object.

use axum::response::Response;
use http::StatusCode;

use super::{Registry, Target, json_response};
use crate::object;
use crate::status::ApiError;

impl Registry {
    pub(super) async fn get(&self, t: &Target<'_>) -> Result<Response, ApiError> {
        let obj = self.read_object(t).await?;
        Ok(json_response(StatusCode::OK, &obj))
    }

    /// The current object, as clients see it.
    pub(super) async fn read_object(&self, t: &Target<'_>) -> Result<serde_json::Value, ApiError> {
        let key = t.key()?;
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, &t.subject()))?
            .ok_or_else(|| ApiError::not_found(&t.subject()))?;
        object::decode(&kv, t.r)
    }
}
