//! `POST serviceaccounts/<name>/token` (TokenRequest): a signed JWT for
//! the service account, optionally bound to a pod or secret, validated as
//! upstream's TokenREST does.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::body::decode_object;
use super::{Registry, Target, json_response};
use crate::auth::sa_token::{self, BoundObject};
use crate::status::{ApiError, Subject};

/// Upstream's default and minimum token lifetimes, and its ceiling.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn invalid(name: &str, field: &str, value: Value, detail: &str) -> ApiError {
    let message = format!(
        "TokenRequest.authentication.k8s.io \"{name}\" is invalid: {field}: Invalid value: {value}: {detail}"
    );
    let cause = json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {detail}"), "field": field});
    ApiError::invalid(
        "TokenRequest",
        "authentication.k8s.io",
        name,
        message,
        vec![cause],
    )
}

impl Registry {
    pub(super) async fn token_request(
        &self,
        t: &Target<'_>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let mut request = decode_object(headers, &body)?;
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone().unwrap_or_default();
        let sa = self.read_object(t).await?;
        let expiration = match request.pointer("/spec/expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
            Some(v) => v.as_i64().unwrap_or(0),
        };
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(invalid(
                &name,
                "spec.expirationSeconds",
                json!(expiration),
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            return Err(invalid(
                &name,
                "spec.expirationSeconds",
                json!(expiration),
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        let mut audiences: Vec<String> = request
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences = sa_token::api_audiences();
        }
        let bound = match request
            .pointer("/spec/boundObjectRef")
            .filter(|r| r.is_object())
        {
            Some(r) => Some(self.bound_object(&ns, &name, r).await?),
            None => {
                super::node_restriction::admit_token(None)?;
                None
            }
        };
        let now = jiff::Timestamp::now();
        let claims = sa_token::claims(
            &sa_token::Request {
                namespace: &ns,
                service_account: &name,
                service_account_uid: str_at(&sa, "/metadata/uid"),
                audiences: &audiences,
                expiration_seconds: expiration,
                bound: bound.as_ref(),
            },
            now.as_second(),
        );
        let token = self
            .sa_key
            .sign(&claims)
            .ok_or_else(|| ApiError::internal("signing the service account token failed"))?;
        let expires = jiff::Timestamp::from_second(now.as_second() + expiration)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        request["apiVersion"] = json!("authentication.k8s.io/v1");
        request["kind"] = json!("TokenRequest");
        request["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
        let mut spec = request
            .get("spec")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        spec["audiences"] = json!(audiences);
        spec["expirationSeconds"] = json!(expiration);
        request["spec"] = spec;
        request["status"] = json!({
            "token": token,
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        Ok(json_response(StatusCode::CREATED, &request))
    }

    /// The object a token is bound to: it must exist with the given uid
    /// (and a pod must run as this service account).
    async fn bound_object(&self, ns: &str, sa: &str, r: &Value) -> Result<BoundObject, ApiError> {
        let kind = str_at(r, "/kind");
        let plural = match (str_at(r, "/apiVersion"), kind) {
            ("v1", "Pod") => "pods",
            ("v1", "Secret") => "secrets",
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount \"{sa}\" to object of type {}, Kind={kind}",
                    str_at(r, "/apiVersion")
                )));
            }
        };
        let name = str_at(r, "/name");
        let obj = self.lookup(plural, Some(ns), name).await.ok_or_else(|| {
            ApiError::not_found(&Subject {
                group: "",
                resource: plural,
                name,
            })
        })?;
        let uid = str_at(&obj, "/metadata/uid");
        let wanted = str_at(r, "/uid");
        if !wanted.is_empty() && wanted != uid {
            return Err(ApiError::conflict(&Subject {
                group: "",
                resource: kind,
                name,
            })
            .with_message(format!(
                "Operation cannot be fulfilled on {kind} \"{name}\": the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
            )));
        }
        super::node_restriction::admit_token((plural == "pods").then_some(&*obj))?;
        let mut node = None;
        if plural == "pods" {
            let runs_as = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if runs_as != sa {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount \"{sa}\" to pod running with different serviceaccount name."
                )));
            }
            let node_name = str_at(&obj, "/spec/nodeName");
            if !node_name.is_empty()
                && let Some(n) = self.lookup("nodes", None, node_name).await
            {
                node = Some((node_name.to_owned(), str_at(&n, "/metadata/uid").to_owned()));
            }
        }
        Ok(BoundObject {
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            node,
        })
    }
}
