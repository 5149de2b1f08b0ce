//! delete and deletecollection: immediate removal, or marking an object
//! (deletionTimestamp) while finalizers or a Pod's grace period hold it.
//!
//! `propagationPolicy` (or the legacy `orphanDependents`) becomes a
//! finalizer as upstream: `Orphan` adds `orphan`, `Foreground` adds
//! `foregroundDeletion`, `Background` (the default) removes both; the
//! garbage collector (skiff-controllers) acts on them and removes them.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_apimachinery::{FieldError, Path, invalid_message};
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
    /// `propagationPolicy` as sent (validated against [`POLICIES`]).
    propagation: Option<String>,
    /// The legacy `orphanDependents`.
    orphan_dependents: Option<bool>,
}

/// The finalizer that makes the garbage collector orphan the dependents.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer that makes the garbage collector delete the dependents
/// before the owner (foreground cascading deletion).
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
const POLICIES: [&str; 3] = ["Foreground", "Background", "Orphan"];

impl DeleteOptions {
    /// Upstream's ValidateDeleteOptions: a 422 on `DeleteOptions.meta.k8s.io`.
    fn validate(&self) -> Result<(), ApiError> {
        let field = Path::new("propagationPolicy");
        let mut errors = Vec::new();
        if let (Some(_), Some(policy)) = (self.orphan_dependents, &self.propagation) {
            errors.push(FieldError::invalid(
                &field,
                policy.as_str(),
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        if let Some(policy) = &self.propagation
            && !POLICIES.contains(&policy.as_str())
        {
            errors.push(FieldError::not_supported(
                &field,
                policy.as_str(),
                &["Foreground", "Background", "Orphan", "nil"],
            ));
        }
        if errors.is_empty() {
            return Ok(());
        }
        let causes = errors.iter().map(FieldError::cause).collect();
        Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            invalid_message("meta.k8s.io", "DeleteOptions", "", &errors),
            causes,
        ))
    }

    /// Upstream's shouldOrphanDependents / shouldDeleteDependents: an
    /// explicit option wins, else a finalizer already on the object, else
    /// the default (Background for every kind skiff serves).
    fn cascade(&self, finalizers: &[String]) -> (bool, bool) {
        if let Some(orphan) = self.orphan_dependents {
            return (orphan, false);
        }
        match self.propagation.as_deref() {
            Some("Orphan") => return (true, false),
            Some("Foreground") => return (false, true),
            Some(_) => return (false, false),
            None => {}
        }
        for f in finalizers {
            if f == FINALIZER_ORPHAN {
                return (true, false);
            }
            if f == FINALIZER_FOREGROUND {
                return (false, true);
            }
        }
        (false, false)
    }

    /// The object's finalizers after this deletion's cascade policy is
    /// applied (upstream's deletionFinalizersForGarbageCollection).
    fn finalizers_for(&self, finalizers: &[String]) -> Vec<String> {
        let (orphan, foreground) = self.cascade(finalizers);
        let mut out: Vec<String> = Vec::with_capacity(finalizers.len() + 1);
        for f in finalizers {
            let drop = (f == FINALIZER_ORPHAN && !orphan)
                || (f == FINALIZER_FOREGROUND && !foreground)
                || out.contains(f);
            if !drop {
                out.push(f.clone());
            }
        }
        for (wanted, name) in [
            (orphan, FINALIZER_ORPHAN),
            (foreground, FINALIZER_FOREGROUND),
        ] {
            if wanted && !out.iter().any(|f| f == name) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

fn delete_options(query: &Query, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut options = DeleteOptions::default();
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        options.grace_period = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        options.propagation = match v.get("propagationPolicy") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid DeleteOptions: propagationPolicy must be a string, not {other}"
                )));
            }
        };
        options.orphan_dependents = match v.get("orphanDependents") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid DeleteOptions: orphanDependents must be a boolean, not {other}"
                )));
            }
        };
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
    if let Some(p) = query.get("propagationPolicy") {
        options.propagation = Some(p.clone());
    }
    if let Some(o) = query.get("orphanDependents") {
        options.orphan_dependents = Some(
            o.parse()
                .map_err(|_| ApiError::bad_request("orphanDependents must be a boolean"))?,
        );
    }
    options.validate()?;
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
        super::namespace_lifecycle::check_delete(t)?;
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
            super::node_restriction::admit_delete(t.r, &current)?;
            self.admit_deletion(t, &current, dry).await?;
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
            // A namespace is also held by `spec.finalizers` (`kubernetes`: the
            // namespace controller empties it, then finalizes).
            let held = !options
                .finalizers_for(&object::finalizers(&current))
                .is_empty()
                || strategy::namespace_finalizers_pending(t.r, &current);
            if !held && grace.is_none() {
                if dry {
                    return Ok((current, true));
                }
                match self.store.delete(&key, Some(revision)).await {
                    Ok(_) => {
                        self.after_delete(t.r, &current).await;
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
                    let finalizers = options.finalizers_for(&object::finalizers(cur));
                    let meta = meta_mut(&mut marked);
                    if finalizers.is_empty() {
                        meta.remove("finalizers");
                    } else {
                        meta.insert("finalizers".into(), json!(finalizers));
                    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(query: &[(&str, &str)], body: &str) -> Result<DeleteOptions, ApiError> {
        let query: Query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        delete_options(&query, &Bytes::from(body.to_owned()))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn propagation_policy_becomes_a_finalizer() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (r#"{"propagationPolicy":"Orphan"}"#, &[], &["orphan"]),
            (
                r#"{"propagationPolicy":"Foreground"}"#,
                &["a"],
                &["a", "foregroundDeletion"],
            ),
            (r#"{"propagationPolicy":"Background"}"#, &["orphan"], &[]),
            (
                r#"{"propagationPolicy":"Orphan"}"#,
                &["foregroundDeletion", "x"],
                &["x", "orphan"],
            ),
            (r#"{"orphanDependents":true}"#, &[], &["orphan"]),
            (
                r#"{"orphanDependents":false}"#,
                &["orphan", "foregroundDeletion"],
                &[],
            ),
            // No policy: a finalizer already there decides; default Background.
            ("", &["foregroundDeletion"], &["foregroundDeletion"]),
            ("", &["orphan"], &["orphan"]),
            ("", &["x"], &["x"]),
            ("", &[], &[]),
        ];
        for (body, before, after) in cases {
            let o = options(&[], body).unwrap_or_default();
            assert_eq!(
                o.finalizers_for(&strings(before)),
                strings(after),
                "{body} on {before:?}"
            );
        }
        let o = options(&[("propagationPolicy", "Foreground")], "").unwrap_or_default();
        assert_eq!(o.finalizers_for(&[]), strings(&["foregroundDeletion"]));
        let o = options(&[("orphanDependents", "true")], "").unwrap_or_default();
        assert_eq!(o.finalizers_for(&[]), strings(&["orphan"]));
    }

    #[test]
    fn invalid_delete_options_are_rejected_as_upstream() {
        let Err(e) = options(&[], r#"{"propagationPolicy":"Bogus"}"#) else {
            panic!("accepted an unknown policy");
        };
        assert_eq!(e.code, 422);
        let status = e.to_status();
        assert_eq!(
            status["message"],
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Bogus": supported values: "Foreground", "Background", "Orphan", "nil""#
        );
        assert_eq!(status["details"]["causes"][0]["field"], "propagationPolicy");
        let Err(e) = options(
            &[],
            r#"{"propagationPolicy":"Orphan","orphanDependents":true}"#,
        ) else {
            panic!("accepted both");
        };
        assert_eq!(e.code, 422);
        assert!(
            e.to_status()["message"]
                .as_str()
                .unwrap_or_default()
                .contains("orphanDependents and deletionPropagation cannot be both set")
        );
        let Err(e) = options(&[("orphanDependents", "maybe")], "") else {
            panic!("accepted a non-boolean");
        };
        assert_eq!(e.code, 400);
        let Err(e) = options(&[("propagationPolicy", "foreground")], "") else {
            panic!("accepted a lower-case policy");
        };
        assert_eq!(e.code, 422);
    }
}
