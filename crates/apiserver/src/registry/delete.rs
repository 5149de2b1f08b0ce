//! delete and deletecollection: immediate removal, or marking an object
//! (deletionTimestamp) while finalizers or a Pod's grace period hold it.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_store::StoreError;

use super::write::{Part, dry_run};
use super::{Query, Registry, Target, json_response, strategy};
use crate::object::{self, meta_mut};
use crate::status::{ApiError, success_status};

/// The parts of `DeleteOptions` we act on (body or query parameters).
#[derive(Default, Debug)]
pub(super) struct DeleteOptions {
    grace_period: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(query: &Query, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut options = DeleteOptions::default();
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        options.grace_period = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        options.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        options.resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(g) = query.get("gracePeriodSeconds") {
        options.grace_period = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request("gracePeriodSeconds must be an integer"))?,
        );
    }
    Ok(options)
}

impl Registry {
    pub(super) async fn delete(
        &self,
        t: &Target<'_>,
        query: &Query,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let options = delete_options(query, &body)?;
        let (obj, removed) = self.delete_one(t, &options, dry_run(query)).await?;
        if removed {
            let uid = object::meta_str(&obj, "uid").unwrap_or_default().to_owned();
            Ok(json_response(
                StatusCode::OK,
                &success_status(&t.subject(), &uid),
            ))
        } else {
            Ok(json_response(StatusCode::OK, &obj))
        }
    }

    /// Deletes or marks one object; returns it and whether it left the store.
    pub(super) async fn delete_one(
        &self,
        t: &Target<'_>,
        options: &DeleteOptions,
        dry: bool,
    ) -> Result<(Value, bool), ApiError> {
        let key = t.key()?;
        loop {
            let (current, revision) = self.load(t).await?;
            if let Some(uid) = &options.uid
                && object::meta_str(&current, "uid") != Some(uid.as_str())
            {
                return Err(ApiError::conflict(&t.subject()).with_message(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::meta_str(&current, "uid").unwrap_or_default()
                )));
            }
            if let Some(rv) = &options.resource_version
                && rv != &revision.to_string()
            {
                return Err(ApiError::conflict(&t.subject()).with_message(format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
                )));
            }
            let grace = if t.r.kind == "Pod" && t.r.group.is_empty() {
                strategy::pod_grace_period(&current, options.grace_period)
            } else {
                None
            };
            let held = !object::finalizers(&current).is_empty();
            if !held && grace.is_none() {
                if dry {
                    return Ok((current, true));
                }
                match self.store.delete(&key, Some(revision)).await {
                    Ok(_) => {
                        self.after_delete(t.r, &current).await;
                        if t.r.kind == "Namespace" && t.r.group.is_empty() {
                            self.delete_namespace_contents(t.name.as_deref().unwrap_or_default())
                                .await;
                        }
                        return Ok((current, true));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, &t.subject())),
                }
            }
            // Mark it: finalizers or the kubelet finish the deletion.
            let obj = self
                .update_object(t, None, dry, Part::Mark, |cur| {
                    let mut marked = cur.clone();
                    let meta = meta_mut(&mut marked);
                    let seconds = grace.unwrap_or(0);
                    if !meta.contains_key("deletionTimestamp") {
                        meta.insert(
                            "deletionTimestamp".into(),
                            json!(object::rfc3339_in(seconds)),
                        );
                    }
                    meta.insert("deletionGracePeriodSeconds".into(), json!(seconds));
                    Ok(marked)
                })
                .await?;
            return Ok((obj, false));
        }
    }

    pub(super) async fn delete_collection(
        &self,
        t: &Target<'_>,
        query: &Query,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let options = delete_options(query, &body)?;
        let mut list_query = query.clone();
        list_query.remove("limit");
        list_query.remove("continue");
        let page = self.list_page(t, &list_query).await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let one = Target {
                r: t.r,
                namespace: object::meta_str(&obj, "namespace").map(str::to_owned),
                name: object::name(&obj).map(str::to_owned),
            };
            match self.delete_one(&one, &options, dry_run(query)).await {
                Ok((obj, _)) => deleted.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "kind": t.r.list_kind,
            "apiVersion": t.r.api_version(),
            "metadata": {"resourceVersion": page.revision.to_string()},
            "items": deleted,
        });
        Ok(json_response(StatusCode::OK, &list))
    }

    /// Removes every namespaced object of a deleted namespace (the namespace
    /// controller's job upstream; done here until skiff has one).
    async fn delete_namespace_contents(&self, namespace: &str) {
        for r in self.resources.snapshot().iter().filter(|r| r.namespaced) {
            let prefix = r.namespace_prefix(Some(namespace));
            let Ok(listed) = self.store.list(&prefix, Default::default()).await else {
                continue;
            };
            for kv in listed.items {
                if let Ok(obj) = object::decode(&kv, r) {
                    let _ = self.store.delete(&kv.key, None).await;
                    self.after_delete(r, &obj).await;
                }
            }
        }
    }
}
