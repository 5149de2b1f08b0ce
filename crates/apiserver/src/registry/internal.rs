//! Writes the server makes on its own behalf (the CRD controller): the
//! same update and delete paths clients go through, addressed by resource
//! and name instead of by request.

use serde_json::Value;

use super::delete::DeleteOptions;
use super::write::Part;
use super::{Registry, Target};
use crate::resources::ResourceInfo;
use crate::status::ApiError;

impl Registry {
    /// Changes one cluster-scoped object (or its status, with
    /// [`Part::Status`]) through the shared update loop.
    pub(crate) async fn modify<F>(
        &self,
        r: &ResourceInfo,
        name: &str,
        part: Part,
        change: F,
    ) -> Result<Value, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        let t = Target {
            r,
            namespace: None,
            name: Some(name.to_owned()),
        };
        self.update_object(&t, None, false, part, change).await
    }

    /// Deletes every object of a resource (in every namespace) as a
    /// client's delete would: finalizers still hold theirs. Returns how
    /// many are still stored.
    pub(crate) async fn delete_all(&self, r: &ResourceInfo) -> Result<usize, ApiError> {
        let listed = self
            .store
            .list(&r.key_prefix(), Default::default())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut remaining = 0;
        for kv in listed.items {
            let Ok(obj) = crate::object::decode(&kv, r) else {
                continue;
            };
            let t = Target {
                r,
                namespace: crate::object::meta_str(&obj, "namespace").map(str::to_owned),
                name: crate::object::name(&obj).map(str::to_owned),
            };
            match self.delete_one(&t, &DeleteOptions::default(), false).await {
                Ok((_, true)) => {}
                Ok((_, false)) => remaining += 1,
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(remaining)
    }
}
