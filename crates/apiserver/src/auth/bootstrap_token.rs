//! Bootstrap tokens (`abcdef.0123456789abcdef`), upstream's format: a new
//! node's only credential until it has its own certificate. Each token is a
//! `bootstrap.kubernetes.io/token` Secret named `bootstrap-token-<id>` in
//! kube-system; the token authenticates as `system:bootstrap:<id>` in the
//! `system:bootstrappers` group while the Secret allows it and has not
//! expired.

use base64::Engine;
use serde_json::Value;

use crate::object;
use crate::registry::Registry;
use crate::tls::UserInfo;

/// The Secret type holding a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token belongs to.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// The id and secret halves of a well-formed token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// A field of the Secret's `data` (base64) or `stringData`.
fn field(secret: &Value, key: &str) -> Option<String> {
    if let Some(encoded) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Constant-time comparison: the secret half must not leak by timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether `secret` (at `now`, Unix seconds) lets `token` authenticate;
/// the user it names if so, else why not.
pub fn check(secret: &Value, token: &str, now: i64) -> Result<UserInfo, String> {
    let Some((id, token_secret)) = parse(token) else {
        return Err("not a bootstrap token".into());
    };
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(format!(
            "secret bootstrap-token-{id} is not a bootstrap token"
        ));
    }
    if object::is_deleting(secret) {
        return Err(format!("bootstrap token {id} is being deleted"));
    }
    if field(secret, "token-id").as_deref() != Some(id)
        || !field(secret, "token-secret").is_some_and(|s| same(&s, token_secret))
    {
        return Err(format!("bootstrap token {id} does not match"));
    }
    if field(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(format!("bootstrap token {id} is not for authentication"));
    }
    if let Some(expiration) = field(secret, "expiration") {
        let expires = expiration
            .parse::<jiff::Timestamp>()
            .map_err(|_| format!("bootstrap token {id} has an unreadable expiration"))?;
        if expires.as_second() <= now {
            return Err(format!("bootstrap token {id} has expired"));
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_owned()];
    for extra in field(secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !extra.starts_with("system:bootstrappers:") {
            return Err(format!(
                "bootstrap token {id} names group {extra:?} outside system:bootstrappers:"
            ));
        }
        groups.push(extra.to_owned());
    }
    groups.push("system:authenticated".to_owned());
    Ok(UserInfo {
        name: format!("system:bootstrap:{id}"),
        groups,
        ..Default::default()
    })
}

/// Validates a bearer token as a bootstrap token: `Ok(None)` when it does
/// not look like one (another authenticator may know it).
pub async fn authenticate(registry: &Registry, token: &str) -> Result<Option<UserInfo>, String> {
    let Some((id, _)) = parse(token) else {
        return Ok(None);
    };
    let secret = registry
        .lookup(
            "secrets",
            Some("kube-system"),
            &format!("bootstrap-token-{id}"),
        )
        .await
        .ok_or_else(|| format!("no bootstrap token {id}"))?;
    check(&secret, token, jiff::Timestamp::now().as_second()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(extra: Value) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            data[k] = json!(b64(v.as_str().unwrap_or_default()));
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn well_formed_tokens_only() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert!(parse("ABCDEF.0123456789abcdef").is_none());
        assert!(parse("abcdef.0123456789abcde").is_none());
        assert!(parse("abcdef0123456789abcdef").is_none());
        assert!(parse("eyJhbGciOi.x.y").is_none());
    }

    #[test]
    fn a_valid_token_is_a_bootstrapper() {
        let s =
            secret(json!({"auth-extra-groups": "system:bootstrappers:skiff:default-node-token"}));
        let user = check(&s, "abcdef.0123456789abcdef", 0).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:skiff:default-node-token",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn wrong_secret_expiry_usage_and_groups_are_refused() {
        let s = secret(json!({}));
        assert!(check(&s, "abcdef.0123456789abcdee", 0).is_err());
        let expired = secret(json!({"expiration": "2020-01-01T00:00:00Z"}));
        let at = "2020-01-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        assert!(check(&expired, "abcdef.0123456789abcdef", at - 1).is_ok());
        assert!(
            check(&expired, "abcdef.0123456789abcdef", at)
                .unwrap_err()
                .contains("expired")
        );
        let mut unused = secret(json!({}));
        unused["data"]
            .as_object_mut()
            .unwrap()
            .remove("usage-bootstrap-authentication");
        assert!(check(&unused, "abcdef.0123456789abcdef", 0).is_err());
        let bad_group = secret(json!({"auth-extra-groups": "system:masters"}));
        assert!(check(&bad_group, "abcdef.0123456789abcdef", 0).is_err());
        let mut opaque = secret(json!({}));
        opaque["type"] = json!("Opaque");
        assert!(check(&opaque, "abcdef.0123456789abcdef", 0).is_err());
    }
}
