//! The review APIs: nothing is stored, the answer is computed for the
//! request — `SelfSubjectReview` (`kubectl auth whoami`), `TokenReview`,
//! and the access reviews (`kubectl auth can-i`), which ask the
//! authorizer.

use serde_json::{Value, json};

use skiff_rbac::Attributes;

use super::authorize::{Decision, rbac_user};
use crate::http::App;
use crate::request::{RequestInfo, Verb};
use crate::status::ApiError;
use crate::tls::UserInfo;

/// Which review a request is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    SelfSubject,
    Token,
    SelfSubjectAccess,
    LocalSubjectAccess,
    SubjectAccess,
    SelfSubjectRules,
}

impl Review {
    pub fn of(info: &RequestInfo) -> Option<Review> {
        if info.verb != Verb::Create || info.subresource.is_some() {
            return None;
        }
        match (info.group.as_str(), info.resource.as_str()) {
            ("authentication.k8s.io", "selfsubjectreviews") => Some(Review::SelfSubject),
            ("authentication.k8s.io", "tokenreviews") => Some(Review::Token),
            ("authorization.k8s.io", "selfsubjectaccessreviews") => Some(Review::SelfSubjectAccess),
            ("authorization.k8s.io", "localsubjectaccessreviews") => {
                Some(Review::LocalSubjectAccess)
            }
            ("authorization.k8s.io", "subjectaccessreviews") => Some(Review::SubjectAccess),
            ("authorization.k8s.io", "selfsubjectrulesreviews") => Some(Review::SelfSubjectRules),
            _ => None,
        }
    }
}

fn user_info_json(user: &UserInfo) -> Value {
    let mut u = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        u["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        u["extra"] = json!(user.extra);
    }
    u
}

/// JSON, YAML or protobuf (kubectl's typed clients send protobuf).
fn decode(headers: &http::HeaderMap, body: &bytes::Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    crate::registry::decode_object(headers, body)
}

/// The review echoed back with its status, as upstream answers (the
/// request's apiVersion, a null creationTimestamp).
fn answer(info: &RequestInfo, kind: &str, mut review: Value, status: Value) -> Value {
    let api_version = format!("{}/{}", info.group, info.version);
    review["apiVersion"] = json!(api_version);
    review["kind"] = json!(kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    review
}

/// `spec.resourceAttributes` / `spec.nonResourceAttributes` of an access
/// review, asked for `user`.
fn attributes_of(user: &UserInfo, spec: &Value, namespace_override: Option<&str>) -> Attributes {
    let user = rbac_user(user);
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let namespace = namespace_override
            .map(str::to_owned)
            .unwrap_or_else(|| field("namespace"));
        Attributes::resource(user, &field("verb"), &field("group"), &field("resource"))
            .with_version(&field("version"))
            .with_subresource(&field("subresource"))
            .named(&field("name"))
            .in_namespace(&namespace)
    } else {
        let n = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or_default();
        let field = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Attributes::non_resource(user, &field("verb"), &field("path"))
    }
}

fn access_status(decision: Decision) -> Value {
    match decision {
        Decision::Allow { reason } => json!({"allowed": true, "reason": reason}),
        Decision::NoOpinion { reason } => json!({"allowed": false, "reason": reason}),
    }
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> UserInfo {
    UserInfo {
        name: spec
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// Computes the answer to a review.
pub async fn serve(
    review: Review,
    info: &RequestInfo,
    user: &UserInfo,
    app: &App,
    headers: &http::HeaderMap,
    body: &bytes::Bytes,
) -> Result<Value, ApiError> {
    let authorizer = &app.authorizer;
    let request = decode(headers, body)?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    Ok(match review {
        Review::SelfSubject => answer(
            info,
            "SelfSubjectReview",
            request,
            json!({"userInfo": user_info_json(user)}),
        ),
        Review::Token => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            let audiences: Option<Vec<String>> = spec
                .get("audiences")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                });
            let status = match app
                .authenticator
                .token(&app.registry, token, audiences.as_deref())
                .await
            {
                Ok((u, audiences)) => json!({
                    "authenticated": true,
                    "user": user_info_json(&u),
                    "audiences": audiences,
                }),
                Err(e) => json!({"authenticated": false, "error": e.0}),
            };
            answer(info, "TokenReview", request, status)
        }
        Review::SelfSubjectAccess => {
            let attrs = attributes_of(user, &spec, None);
            let status = access_status(authorizer.decide(&app.registry, &attrs));
            answer(info, "SelfSubjectAccessReview", request, status)
        }
        Review::SubjectAccess | Review::LocalSubjectAccess => {
            let namespace = (review == Review::LocalSubjectAccess)
                .then(|| info.namespace.clone().unwrap_or_default());
            if let (Some(ns), Some(asked)) = (
                namespace.as_deref(),
                spec.pointer("/resourceAttributes/namespace")
                    .and_then(Value::as_str),
            ) && !asked.is_empty()
                && asked != ns
            {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {ns}"
                )));
            }
            let attrs = attributes_of(&subject_of(&spec), &spec, namespace.as_deref());
            let status = access_status(authorizer.decide(&app.registry, &attrs));
            let kind = if review == Review::SubjectAccess {
                "SubjectAccessReview"
            } else {
                "LocalSubjectAccessReview"
            };
            answer(info, kind, request, status)
        }
        Review::SelfSubjectRules => {
            let namespace = spec
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let status = authorizer.rules_review(user, &namespace);
            answer(info, "SelfSubjectRulesReview", request, status)
        }
    })
}
