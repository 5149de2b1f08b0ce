//! Who a request comes from: a verified client certificate (checked at the
//! TLS layer), else a bearer token (`--token-auth-file`), else anonymous —
//! upstream's union authenticator, in its order.

pub mod authorize;
pub mod impersonation;
pub mod reviews;
pub mod token_file;

use std::collections::HashMap;
use std::path::Path;

use http::HeaderMap;
use serde_json::json;
use skiff_rbac::Attributes;

use crate::request::RequestInfo;
use crate::status::ApiError;
use crate::tls::UserInfo;

use authorize::{Authorizer, request_attributes};

/// The bearer-token authenticators.
#[derive(Default)]
pub struct Authenticator {
    /// From the static token file.
    tokens: HashMap<String, UserInfo>,
}

/// A bearer token that names nobody: the request gets 401, even where
/// anonymous requests would pass (as upstream).
#[derive(Debug)]
pub struct InvalidToken;

impl Authenticator {
    pub fn new(token_file: Option<&Path>) -> Result<Self, token_file::TokenFileError> {
        let tokens = match token_file {
            Some(path) => token_file::load(path)?,
            None => HashMap::new(),
        };
        Ok(Authenticator { tokens })
    }

    /// The user of `Authorization: Bearer <token>`; `None` without one.
    pub fn bearer(&self, headers: &HeaderMap) -> Option<Result<UserInfo, InvalidToken>> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Some(self.token(token.trim()).ok_or(InvalidToken))
    }

    /// Who `token` names, if anyone (also `TokenReview`).
    pub fn token(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

/// 403 in upstream's words, with the details kubectl shows.
fn forbidden(a: &Attributes) -> ApiError {
    let mut e = ApiError::forbidden(skiff_rbac::forbidden_status_message(a, ""));
    if a.resource_request {
        let mut details = json!({"kind": a.resource});
        if !a.name.is_empty() {
            details["name"] = json!(a.name);
        }
        if !a.api_group.is_empty() {
            details["group"] = json!(a.api_group);
        }
        e.details = Some(details);
    }
    e
}

/// Impersonation (if asked for and allowed), then authorization of the
/// request itself; returns the user the request runs as.
pub fn admit(
    authorizer: &Authorizer,
    user: &UserInfo,
    headers: &HeaderMap,
    method: &http::Method,
    path: &str,
    info: Option<&RequestInfo>,
) -> Result<UserInfo, ApiError> {
    let mut effective = user.clone();
    if let Some(requested) = impersonation::requested(headers)? {
        let real = authorize::rbac_user(user);
        for a in impersonation::checks(&real, &requested) {
            if !authorizer.allows(&a) {
                return Err(forbidden(&a));
            }
        }
        effective = impersonation::impersonated(&requested);
    }
    for a in request_attributes(&effective, method, path, info) {
        if !authorizer.allows(&a) {
            return Err(forbidden(&a));
        }
    }
    Ok(effective)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let auth = Authenticator {
            tokens: token_file::parse("t", "secret,alice,1,devs").unwrap(),
        };
        let mut h = HeaderMap::new();
        assert!(auth.bearer(&h).is_none());
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert_eq!(auth.bearer(&h).unwrap().unwrap().name, "alice");
        h.insert("authorization", "Bearer forged".parse().unwrap());
        assert!(auth.bearer(&h).unwrap().is_err());
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(auth.bearer(&h).is_none());
    }
}
