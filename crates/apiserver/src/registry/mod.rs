//! The one generic registry: get, list, watch, create, update, patch,
//! delete and deletecollection for every resource in the table, with
//! kind-specific behaviour in [`strategy`].

mod admission;
mod admission_chain;
mod body;
mod certificate_requests;
mod continue_token;
mod default_tolerations;
mod delete;
mod eviction;
mod field_validation;
mod forbidden;
mod internal;
mod legacy_token_secret;
mod limit_ranger;
mod list;
mod managed_fields;
mod namespace_lifecycle;
pub(crate) mod node_restriction;
mod output;
mod patch;
mod pod_logs;
mod pod_security;
mod pod_stream;
pub(crate) mod priority;
mod quota_admission;
mod rbac_escalation;
mod read;
mod requester;
mod selection;
mod service_account_admission;
mod services;
pub mod strategy;
mod subresources;
mod token_request;
mod watch;
mod webhooks;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use skiff_store::Store;
use tokio_util::sync::CancellationToken;

use crate::allocator::Allocator;
use crate::request::{RequestInfo, Verb};
use crate::resources::ResourceInfo;
use crate::status::ApiError;

pub use body::{MAX_BODY_BYTES, decode_object, json_response};
pub(crate) use pod_stream::is_pod_stream;
pub(crate) use requester::as_user;
pub(crate) use write::Part;

/// Query parameters of a request.
pub type Query = HashMap<String, String>;

pub struct Registry {
    pub store: Arc<dyn Store>,
    pub resources: crate::resources::ResourceTable,
    pub allocator: Allocator,
    pub cache: Arc<crate::watch_cache::WatchCache>,
    /// The OpenAPI documents and compiled schemas (field validation,
    /// merges), rebuilt when CustomResourceDefinitions change.
    pub openapi: crate::openapi::Documents,
    /// Ends watches when the server shuts down.
    pub shutdown: CancellationToken,
    /// Dials kubelets for `pods/log`.
    pub kubelet: Arc<crate::kubelet_client::KubeletClient>,
    /// Signs (TokenRequest) and verifies service account tokens.
    pub sa_key: Arc<crate::auth::sa_key::SaKey>,
    /// The cluster CA (PEM), put in legacy service account token Secrets.
    pub ca_pem: Arc<String>,
}

/// One request, resolved against the resource table.
pub struct Target<'a> {
    pub r: &'a ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Target<'_> {
    fn subject(&self) -> crate::status::Subject<'_> {
        crate::status::Subject {
            group: &self.r.group,
            resource: &self.r.plural,
            name: self.name.as_deref().unwrap_or(""),
        }
    }

    fn key(&self) -> Result<String, ApiError> {
        let name = self
            .name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("a name is required"))?;
        Ok(self.r.key(self.namespace.as_deref(), name))
    }
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

impl Registry {
    pub async fn handle(
        &self,
        info: RequestInfo,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let r = self
            .resources
            .find(&info.group, &info.version, &info.resource)
            .ok_or_else(not_found_path)?;
        let r = &*r;
        if !r.verbs.contains(&info.verb.as_str()) && info.subresource.is_none() {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}",
                info.verb.as_str(),
                r.plural
            )));
        }
        // A namespaced resource needs a namespace except to list or watch
        // across all of them; a cluster-scoped one never has one.
        if r.namespaced {
            if info.namespace.is_none() && !matches!(info.verb, Verb::List | Verb::Watch) {
                return Err(not_found_path());
            }
        } else if info.namespace.is_some() {
            return Err(not_found_path());
        }
        let target = Target {
            r,
            namespace: info.namespace.clone(),
            name: info.name.clone(),
        };
        if r.kind == "Binding" && r.group.is_empty() {
            return self.create_binding(&target, query, headers, body).await;
        }
        if let Some(sub) = info.subresource.as_deref() {
            if !r.has_subresource(sub) {
                return Err(not_found_path());
            }
            return self
                .subresource(&target, sub, info.verb, query, headers, body)
                .await;
        }
        match info.verb {
            Verb::Get => self.get(&target, query, headers).await,
            Verb::List => self.list(&target, query, headers).await,
            Verb::Watch => self.watch(&target, query, headers).await,
            Verb::Create => self.create(&target, query, headers, body).await,
            Verb::Update => {
                self.replace(&target, query, headers, body, write::Part::Main)
                    .await
            }
            Verb::Patch => {
                self.patch(&target, query, headers, body, write::Part::Main)
                    .await
            }
            Verb::Delete => self.delete(&target, query, body).await,
            Verb::DeleteCollection => self.delete_collection(&target, query, body).await,
        }
    }
}
