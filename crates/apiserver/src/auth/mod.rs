//! Who a request comes from: a verified client certificate (checked at the
//! TLS layer), else a bearer token (`--token-auth-file`, then bootstrap
//! tokens, then service account JWTs), else anonymous — upstream's union authenticator, in its
//! order.

pub mod authorize;
pub mod bootstrap_token;
pub mod impersonation;
pub mod legacy_token;
pub mod node_authorizer;
pub mod reviews;
pub mod sa_key;
pub mod sa_token;
pub mod token_file;

use std::collections::HashMap;
use std::path::Path;

use http::HeaderMap;
use serde_json::json;
use skiff_rbac::Attributes;

use crate::registry::Registry;
use crate::request::RequestInfo;
use crate::status::ApiError;
use crate::tls::UserInfo;

use authorize::{Authorizer, request_attributes};

/// The one object anonymous clients may read: the CA and server address
/// for joining nodes, signed with each bootstrap token (as kubeadm's
/// `cluster-info`).
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// The bearer-token authenticators.
#[derive(Default)]
pub struct Authenticator {
    /// From the static token file.
    tokens: HashMap<String, UserInfo>,
}

/// A bearer token that names nobody (why, as TokenReview reports it): the
/// request gets 401, even where anonymous requests would pass (as
/// upstream).
#[derive(Debug)]
pub struct InvalidToken(pub String);

impl Authenticator {
    pub fn new(token_file: Option<&Path>) -> Result<Self, token_file::TokenFileError> {
        let tokens = match token_file {
            Some(path) => token_file::load(path)?,
            None => HashMap::new(),
        };
        Ok(Authenticator { tokens })
    }

    /// The token of `Authorization: Bearer <token>`; `None` without one.
    pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// The user of a static token-file token.
    pub fn static_token(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }

    /// Who `token` names, with the audiences it was accepted for: the
    /// token file, then service account tokens (which must be for one of
    /// `audiences`, by default the API server's). Also `TokenReview`.
    pub async fn token(
        &self,
        registry: &Registry,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<(UserInfo, Vec<String>), InvalidToken> {
        let api = sa_token::api_audiences();
        let accepted = audiences.unwrap_or(&api);
        if let Some(user) = self.static_token(token) {
            return Ok((user, accepted.to_vec()));
        }
        match bootstrap_token::authenticate(registry, token).await {
            Ok(Some(user)) => return Ok((user, accepted.to_vec())),
            Ok(None) => {}
            Err(e) => return Err(InvalidToken(format!("[invalid bearer token, {e}]"))),
        }
        match sa_token::authenticate(&registry.sa_key, registry, token, accepted).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(InvalidToken("invalid bearer token".into())),
            Err(e) => Err(InvalidToken(format!("[invalid bearer token, {e}]"))),
        }
    }
}

/// 403 in upstream's words, with the details kubectl shows.
fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let mut e = ApiError::forbidden(skiff_rbac::forbidden_status_message(a, reason));
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
    registry: &Registry,
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
                return Err(forbidden(&a, ""));
            }
        }
        effective = impersonation::impersonated(&requested);
    }
    for a in request_attributes(&effective, method, path, info) {
        match authorizer.decide(registry, &a) {
            skiff_rbac::Decision::Allow { .. } => {}
            skiff_rbac::Decision::NoOpinion { reason } => {
                // RBAC's reasons (unresolvable roles) are not shown, as
                // upstream; the Node authorizer's are.
                let shown = if node_authorizer::node_of(&a.user.name, &a.user.groups).is_some() {
                    reason.as_str()
                } else {
                    ""
                };
                return Err(forbidden(&a, shown));
            }
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
        assert!(Authenticator::bearer_token(&h).is_none());
        h.insert("authorization", "Bearer secret".parse().unwrap());
        let token = Authenticator::bearer_token(&h).unwrap();
        assert_eq!(auth.static_token(token).unwrap().name, "alice");
        assert!(auth.static_token("forged").is_none());
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(Authenticator::bearer_token(&h).is_none());
    }
}
