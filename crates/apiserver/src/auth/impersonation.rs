//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the
//! `Impersonate-*` headers turn the request into another user's, once the
//! real user is authorized for the `impersonate` verb on each part.

use std::collections::BTreeMap;

use http::HeaderMap;
use skiff_rbac::Attributes;

use crate::status::ApiError;
use crate::tls::UserInfo;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What the headers ask to become.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub user: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// Reads the headers; `None` when the request impersonates nobody.
pub fn requested(headers: &HeaderMap) -> Result<Option<Requested>, ApiError> {
    let users = values(headers, USER);
    let groups = values(headers, GROUP);
    let uid = values(headers, UID).into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = value.to_str()
        {
            let key = percent_decode(key);
            extra.entry(key).or_default().push(v.to_owned());
        }
    }
    let Some(user) = users.into_iter().next() else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(None);
    };
    Ok(Some(Requested {
        user,
        uid,
        groups,
        extra,
    }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `impersonate` checks the real user must pass, in upstream's order.
pub fn checks(real: &skiff_rbac::UserInfo, r: &Requested) -> Vec<Attributes> {
    let mut out = Vec::new();
    let user = match r.user.strip_prefix("system:serviceaccount:") {
        Some(rest) => match rest.split_once(':') {
            Some((ns, name)) => {
                Attributes::resource(real.clone(), "impersonate", "", "serviceaccounts")
                    .in_namespace(ns)
                    .named(name)
            }
            None => Attributes::resource(real.clone(), "impersonate", "", "users").named(&r.user),
        },
        None => Attributes::resource(real.clone(), "impersonate", "", "users").named(&r.user),
    };
    out.push(user);
    for g in &r.groups {
        out.push(Attributes::resource(real.clone(), "impersonate", "", "groups").named(g));
    }
    if let Some(uid) = &r.uid {
        out.push(
            Attributes::resource(real.clone(), "impersonate", "authentication.k8s.io", "uids")
                .named(uid),
        );
    }
    for (key, vals) in &r.extra {
        for v in vals {
            out.push(
                Attributes::resource(
                    real.clone(),
                    "impersonate",
                    "authentication.k8s.io",
                    "userextras",
                )
                .with_subresource(key)
                .named(v),
            );
        }
    }
    out
}

/// The user the request then runs as (upstream adds
/// `system:authenticated`, and the service-account groups).
pub fn impersonated(r: &Requested) -> UserInfo {
    let mut groups = r.groups.clone();
    if let Some(ns) = r
        .user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns)
        && r.groups.is_empty()
    {
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if r.user != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    UserInfo {
        name: r.user.clone(),
        uid: r.uid.clone().unwrap_or_default(),
        groups,
        extra: r.extra.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checks() {
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h).unwrap(), None);
        h.append("impersonate-group", "devs".parse().unwrap());
        assert!(requested(&h).is_err(), "a group without a user");
        h.append("impersonate-user", "alice".parse().unwrap());
        h.append("impersonate-extra-scopes%2Fa", "x".parse().unwrap());
        let r = requested(&h).unwrap().unwrap();
        assert_eq!(r.user, "alice");
        assert_eq!(r.extra["scopes/a"], ["x"]);
        let real = skiff_rbac::UserInfo::new("admin", &[]);
        let c = checks(&real, &r);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].resource.as_str(), c[0].name.as_str()),
            ("users", "alice")
        );
        assert_eq!(
            (c[1].resource.as_str(), c[1].name.as_str()),
            ("groups", "devs")
        );
        assert_eq!(impersonated(&r).groups, ["devs", "system:authenticated"]);
        let sa = Requested {
            user: "system:serviceaccount:ns1:builder".into(),
            ..Default::default()
        };
        assert_eq!(checks(&real, &sa)[0].resource, "serviceaccounts");
        assert_eq!(checks(&real, &sa)[0].namespace, "ns1");
        assert_eq!(
            impersonated(&sa).groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
    }
}
