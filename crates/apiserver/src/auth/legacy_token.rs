//! Legacy service account tokens (for compatibility): a Secret of type
//! `kubernetes.io/service-account-token` gets a non-expiring JWT with
//! upstream's legacy claims, valid while that Secret (still holding the
//! same token) and its service account exist. Bound tokens from the
//! TokenRequest API are what pods get; these serve tools that create such
//! Secrets on purpose.

use serde_json::{Value, json};

use crate::registry::Registry;
use crate::tls::UserInfo;

/// The issuer of legacy tokens.
pub const ISSUER: &str = "kubernetes/serviceaccount";
/// The Secret type that holds one.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

const PREFIX: &str = "kubernetes.io/serviceaccount/";

/// The claims of a Secret's token, as upstream's `LegacyClaims`.
pub fn claims(namespace: &str, service_account: &str, uid: &str, secret: &str) -> Value {
    json!({
        "iss": ISSUER,
        format!("{PREFIX}namespace"): namespace,
        format!("{PREFIX}secret.name"): secret,
        format!("{PREFIX}service-account.name"): service_account,
        format!("{PREFIX}service-account.uid"): uid,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    })
}

fn claim<'a>(claims: &'a Value, name: &str) -> &'a str {
    claims
        .get(format!("{PREFIX}{name}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether verified `claims` are a legacy token's.
pub fn is_legacy(claims: &Value) -> bool {
    claims.get("iss").and_then(Value::as_str) == Some(ISSUER)
}

/// The user of a legacy token whose signature checked out: its Secret must
/// still hold this very token and its service account must be the same.
pub async fn authenticate(
    registry: &Registry,
    claims: &Value,
    token: &str,
) -> Result<UserInfo, String> {
    let ns = claim(claims, "namespace");
    let sa = claim(claims, "service-account.name");
    let uid = claim(claims, "service-account.uid");
    let secret_name = claim(claims, "secret.name");
    let secret = registry
        .lookup("secrets", Some(ns), secret_name)
        .await
        .ok_or_else(|| format!("secret {ns}/{secret_name} holding the token has been deleted"))?;
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        });
    if stored.as_deref() != Some(token.as_bytes()) {
        return Err(format!("token does not match secret {ns}/{secret_name}"));
    }
    let account = registry
        .lookup("serviceaccounts", Some(ns), sa)
        .await
        .ok_or_else(|| format!("service account {ns}/{sa} has been deleted"))?;
    if account.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return Err(format!("service account {ns}/{sa} has been recreated"));
    }
    Ok(UserInfo {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        uid: uid.to_owned(),
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_owned(),
        ],
        extra: Default::default(),
    })
}
