//! Bound service account tokens: the claims upstream's TokenRequest puts
//! in a JWT, and their validation when a token comes back (signature,
//! time, audience, then the service account and the bound object must
//! still exist with the same uid — so deleting the pod a token is bound to
//! revokes it).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::sa_key::{SaKey, looks_like_jwt};
use crate::object;
use crate::registry::Registry;
use crate::tls::UserInfo;

/// The issuer (and default API audience), upstream's and k3s's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Clock skew tolerated on `exp`/`nbf` (go-jose's default leeway).
const LEEWAY_SECONDS: i64 = 60;

/// The audiences the API server itself accepts (`--api-audiences`).
pub fn api_audiences() -> Vec<String> {
    vec![ISSUER.to_owned()]
}

/// An object a token is bound to (its lifetime ends the token's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod` or `Secret`.
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// The node a bound pod runs on (name, uid).
    pub node: Option<(String, String)>,
}

/// A token to issue.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub service_account_uid: &'a str,
    pub audiences: &'a [String],
    pub expiration_seconds: i64,
    pub bound: Option<&'a BoundObject>,
}

/// The claims of a new token, as upstream's `claims.go` builds them.
pub fn claims(r: &Request<'_>, now: i64) -> Value {
    let mut k8s = json!({
        "namespace": r.namespace,
        "serviceaccount": {"name": r.service_account, "uid": r.service_account_uid},
    });
    if let Some(b) = r.bound {
        let key = if b.kind == "Pod" { "pod" } else { "secret" };
        k8s[key] = json!({"name": b.name, "uid": b.uid});
        if let Some((name, uid)) = &b.node {
            k8s["node"] = json!({"name": name, "uid": uid});
        }
    }
    json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{}:{}", r.namespace, r.service_account),
        "aud": r.audiences,
        "exp": now + r.expiration_seconds,
        "iat": now,
        "nbf": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
    })
}

/// What a token with valid signature and times claims.
#[derive(Debug, PartialEq, Eq)]
pub struct Claimed {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub bound: Option<BoundObject>,
    pub jti: String,
    /// The token's audiences that the checker accepts.
    pub audiences: Vec<String>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Checks issuer, times and audience of verified claims; `accepted` are
/// the audiences the token must share one of.
pub fn check(claims: &Value, now: i64, accepted: &[String]) -> Result<Claimed, String> {
    if str_at(claims, "/iss") != ISSUER {
        return Err("token issuer is not recognized".into());
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if now > exp + LEEWAY_SECONDS {
        return Err("service account token has expired".into());
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now + LEEWAY_SECONDS < nbf
    {
        return Err("service account token is not valid yet".into());
    }
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let audiences: Vec<String> = aud
        .iter()
        .filter(|a| accepted.contains(a))
        .cloned()
        .collect();
    if audiences.is_empty() {
        return Err(format!(
            "token audiences {aud:?} is invalid for the target audiences {accepted:?}"
        ));
    }
    let k8s = claims.get("kubernetes.io").cloned().unwrap_or_default();
    let namespace = str_at(&k8s, "/namespace").to_owned();
    let service_account = str_at(&k8s, "/serviceaccount/name").to_owned();
    let sub = format!("system:serviceaccount:{namespace}:{service_account}");
    if namespace.is_empty() || service_account.is_empty() || str_at(claims, "/sub") != sub {
        return Err("service account token claims are malformed".into());
    }
    let node = k8s
        .get("node")
        .map(|n| (str_at(n, "/name").to_owned(), str_at(n, "/uid").to_owned()));
    let bound = [("pod", "Pod"), ("secret", "Secret")]
        .into_iter()
        .find_map(|(key, kind)| {
            k8s.get(key).map(|o| BoundObject {
                kind: kind.to_owned(),
                name: str_at(o, "/name").to_owned(),
                uid: str_at(o, "/uid").to_owned(),
                node: node.clone().filter(|_| kind == "Pod"),
            })
        });
    Ok(Claimed {
        service_account_uid: str_at(&k8s, "/serviceaccount/uid").to_owned(),
        namespace,
        service_account,
        bound,
        jti: str_at(claims, "/jti").to_owned(),
        audiences,
    })
}

/// The user a service account token authenticates.
pub fn user_of(c: &Claimed) -> UserInfo {
    let mut extra = BTreeMap::new();
    if let Some(b) = c.bound.as_ref().filter(|b| b.kind == "Pod") {
        extra.insert(
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec![b.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".to_owned(),
            vec![b.uid.clone()],
        );
        if let Some((name, uid)) = &b.node {
            extra.insert(
                "authentication.kubernetes.io/node-name".to_owned(),
                vec![name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/node-uid".to_owned(),
                vec![uid.clone()],
            );
        }
    }
    if !c.jti.is_empty() {
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_owned(),
            vec![format!("JTI={}", c.jti)],
        );
    }
    UserInfo {
        name: format!(
            "system:serviceaccount:{}:{}",
            c.namespace, c.service_account
        ),
        uid: c.service_account_uid.clone(),
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", c.namespace),
            "system:authenticated".to_owned(),
        ],
        extra,
    }
}

/// Whether `obj` is there with `uid` and not being deleted.
fn alive(obj: Option<&Value>, uid: &str) -> bool {
    obj.is_some_and(|o| {
        o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid) && !object::is_deleting(o)
    })
}

/// Validates a bearer token as a service account token: `Ok(None)` when
/// it is not one of ours (another authenticator may know it).
pub async fn authenticate(
    key: &SaKey,
    registry: &Registry,
    token: &str,
    accepted: &[String],
) -> Result<Option<(UserInfo, Vec<String>)>, String> {
    if !looks_like_jwt(token) {
        return Ok(None);
    }
    let Some(claims) = key.verify(token) else {
        return Ok(None);
    };
    if super::legacy_token::is_legacy(&claims) {
        let user = super::legacy_token::authenticate(registry, &claims, token).await?;
        return Ok(Some((user, accepted.to_vec())));
    }
    let claimed = check(&claims, jiff::Timestamp::now().as_second(), accepted)?;
    let ns = claimed.namespace.as_str();
    let sa = registry
        .lookup("serviceaccounts", Some(ns), &claimed.service_account)
        .await;
    if !alive(sa.as_deref(), &claimed.service_account_uid) {
        return Err(format!(
            "service account {ns}/{} has been deleted",
            claimed.service_account
        ));
    }
    if let Some(b) = &claimed.bound {
        let plural = if b.kind == "Pod" { "pods" } else { "secrets" };
        let obj = registry.lookup(plural, Some(ns), &b.name).await;
        if !alive(obj.as_deref(), &b.uid) {
            return Err(format!(
                "{} {ns}/{} bound to the token has been deleted",
                b.kind, b.name
            ));
        }
    }
    Ok(Some((user_of(&claimed), claimed.audiences)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(aud: &'a [String], bound: Option<&'a BoundObject>) -> Request<'a> {
        Request {
            namespace: "ns",
            service_account: "default",
            service_account_uid: "sa-uid",
            audiences: aud,
            expiration_seconds: 600,
            bound,
        }
    }

    #[test]
    fn claims_round_trip_as_upstream() {
        let aud = api_audiences();
        let pod = BoundObject {
            kind: "Pod".into(),
            name: "p".into(),
            uid: "pod-uid".into(),
            node: Some(("n1".into(), "node-uid".into())),
        };
        let c = claims(&request(&aud, Some(&pod)), 1000);
        assert_eq!(c["sub"], "system:serviceaccount:ns:default");
        assert_eq!(c["exp"], 1600);
        assert_eq!(c["kubernetes.io"]["pod"]["uid"], "pod-uid");
        assert_eq!(c["kubernetes.io"]["node"]["name"], "n1");
        let claimed = check(&c, 1000, &aud).unwrap();
        assert_eq!(claimed.bound, Some(pod));
        let user = user_of(&claimed);
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["p"]);
    }

    #[test]
    fn expiry_and_audience_are_checked() {
        let aud = api_audiences();
        let c = claims(&request(&aud, None), 1000);
        assert!(check(&c, 1600 + LEEWAY_SECONDS, &aud).is_ok());
        assert!(
            check(&c, 1601 + LEEWAY_SECONDS, &aud)
                .unwrap_err()
                .contains("expired")
        );
        assert!(check(&c, 1000 - 2 * LEEWAY_SECONDS, &aud).is_err());
        let vault = ["vault".to_owned()];
        assert!(check(&c, 1000, &vault).unwrap_err().contains("audiences"));
        let other = claims(&request(&vault, None), 1000);
        assert_eq!(check(&other, 1000, &vault).unwrap().audiences, vault);
    }
}
