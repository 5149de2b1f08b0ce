//! create, update (PUT) and patch, and the one update loop they share.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use skiff_store::StoreError;

use super::admission::{admit_create, admit_update};
use super::body::decode_object;
use super::field_validation::with_warnings;
use super::managed_fields::Recorder;
use super::patch::{PatchKind, Patcher};
use super::{Query, Registry, Target, json_response, strategy};
use crate::object::{self, meta_mut, meta_str};
use crate::status::ApiError;

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: spec and metadata (status is kept).
    Main,
    /// The status subresource: only status.
    Status,
    /// A deletion mark: like `Main`, but the change may set
    /// `deletionTimestamp` and `deletionGracePeriodSeconds`.
    Mark,
    /// A namespace's `finalize` subresource: only `spec.finalizers`.
    Finalize,
    /// `pods/binding`: like `Main`, and the one write that may set the
    /// otherwise immutable `spec.nodeName`.
    Bind,
    /// A CertificateSigningRequest's `approval`: only the conditions.
    Approval,
}

impl Part {
    /// The object a change of this part makes of `current`.
    fn prepare(self, r: &crate::resources::ResourceInfo, new: &mut Value, current: &Value) {
        match self {
            Part::Main | Part::Mark | Part::Bind => {
                strategy::keep_system_metadata(new, current, self == Part::Mark);
                strategy::prepare_for_update(r, new, current);
            }
            Part::Status => strategy::prepare_for_status_update(new, current),
            // Checked and prepared by `certificate_requests::approval`.
            Part::Approval => {}
            Part::Finalize => {
                let finalizers = new.pointer("/spec/finalizers").cloned();
                *new = current.clone();
                new["spec"]["finalizers"] = finalizers.unwrap_or_else(|| json!([]));
            }
        }
    }
}

pub fn dry_run(query: &Query) -> bool {
    query.get("dryRun").is_some_and(|d| d == "All")
}

/// Checks apiVersion/kind of a body against the endpoint it was sent to
/// (absent ones are filled in).
fn check_kind(t: &Target<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let expected = t.r.api_version();
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != t.r.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.r.kind
        )));
    }
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str)
        && api_version != expected
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    object::set_type(obj, t.r);
    Ok(())
}

/// The namespace in the body must agree with the path (it is filled in when
/// absent).
fn check_namespace(t: &Target<'_>, obj: &mut Value) -> Result<(), ApiError> {
    if !t.r.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let path_ns = t.namespace.as_deref().unwrap_or("default");
    match meta_str(obj, "namespace") {
        Some(ns) if !ns.is_empty() && ns != path_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(path_ns));
            Ok(())
        }
    }
}

impl Registry {
    pub(super) async fn create(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let obj = decode_object(headers, &body)?;
        let warnings = self.check_body_fields(t, query, headers, &body)?;
        let recorder = Recorder::new(self.openapi.current(), t, query, headers, None)?;
        self.create_object(t, query, obj, &warnings, Recording::Update(&recorder))
            .await
    }

    /// Creates a decoded object: metadata, strategy, admission,
    /// allocations, then the store.
    pub(super) async fn create_object(
        &self,
        t: &Target<'_>,
        query: &Query,
        mut obj: Value,
        warnings: &[String],
        recording: Recording<'_>,
    ) -> Result<Response, ApiError> {
        if t.r.custom.as_ref().is_some_and(|c| c.terminating) {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        check_kind(t, &mut obj)?;
        check_namespace(t, &mut obj)?;
        let name = match (object::name(&obj), meta_str(&obj, "generateName")) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", object::random_suffix())
            }
            _ => {
                let message = format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    t.r.kind
                );
                let cause = json!({"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"});
                return Err(ApiError::invalid(
                    &t.r.kind,
                    &t.r.group,
                    "",
                    message,
                    vec![cause],
                ));
            }
        };
        let t = Target {
            r: t.r,
            namespace: t.namespace.clone(),
            name: Some(name.clone()),
        };
        {
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), json!(name));
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
            for field in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(field);
            }
        }
        strategy::prepare_for_create(t.r, &mut obj);
        if t.r.group == "batch" && t.r.kind == "Job" {
            let uid = meta_str(&obj, "uid").unwrap_or_default().to_owned();
            skiff_apimachinery::defaults::generate_job_selector(&mut obj, &uid);
        }
        admit_create(t.r, &mut obj, &name)?;
        super::node_restriction::admit_create(t.r, &obj)?;
        if t.r.group == "certificates.k8s.io" && t.r.kind == "CertificateSigningRequest" {
            super::certificate_requests::admit_create(&mut obj)?;
        }
        if let Recording::Update(recorder) = recording {
            recorder.record(None, &mut obj);
        }
        self.check_namespace_open(&t).await?;
        // Mutating admission after the managed fields are recorded, as
        // upstream (its additions belong to no manager).
        if t.r.group.is_empty() && t.r.kind == "Pod" {
            let ns = t.namespace.clone().unwrap_or_default();
            self.admit_service_account(&ns, &mut obj).await?;
        }
        if t.r.group.is_empty() && t.r.kind == "Secret" {
            let ns = t.namespace.clone().unwrap_or_default();
            self.fill_legacy_token(&ns, &mut obj).await?;
        }
        let mut warnings = warnings.to_vec();
        let dry = dry_run(query);
        self.admit_new_object(&t, &mut obj, dry, &mut warnings)
            .await?;
        let allocated = self.allocate_for_create(t.r, &mut obj, dry).await?;
        let charged = match self.admit_quota(&t, &obj, dry).await {
            Ok(charged) => charged,
            Err(e) => {
                self.release(&allocated).await;
                return Err(e);
            }
        };
        if dry {
            return Ok(with_warnings(
                json_response(StatusCode::CREATED, &obj),
                &warnings,
            ));
        }
        let value = object::encode(&obj)?;
        match self.store.create(&t.key()?, value, t.r.ttl).await {
            Ok(kv) => {
                object::stamp(&mut obj, t.r, kv.mod_revision);
                Ok(with_warnings(
                    json_response(StatusCode::CREATED, &obj),
                    &warnings,
                ))
            }
            Err(e) => {
                self.release(&allocated).await;
                self.refund(t.namespace.as_deref().unwrap_or_default(), &charged)
                    .await;
                Err(ApiError::from_store(e, &t.subject()))
            }
        }
    }

    /// PUT of the main resource or of `status`.
    pub(super) async fn replace(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
        part: Part,
    ) -> Result<Response, ApiError> {
        let mut new = decode_object(headers, &body)?;
        check_kind(t, &mut new)?;
        let warnings = self.check_body_fields(t, query, headers, &body)?;
        check_namespace(t, &mut new)?;
        let name = t.name.clone().unwrap_or_default();
        if object::name(&new).is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&new).unwrap_or_default()
            )));
        }
        meta_mut(&mut new).insert("name".into(), json!(name));
        let expected = match meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(rv) => Some(object::parse_revision(rv)?),
            None => None,
        };
        let recorder = Recorder::new(
            self.openapi.current(),
            t,
            query,
            headers,
            (part == Part::Status).then_some("status"),
        )?;
        let obj = self
            .update_object_recorded(
                t,
                expected,
                dry_run(query),
                part,
                Some(&recorder),
                |_current| Ok(new.clone()),
            )
            .await?;
        Ok(with_warnings(
            json_response(StatusCode::OK, &obj),
            &warnings,
        ))
    }

    /// The shared update loop: read, apply `change`, keep what a client may
    /// not change, validate, compare-and-swap; retried on a concurrent write
    /// unless the client named the revision it expects (then 409).
    pub(super) async fn update_object<F>(
        &self,
        t: &Target<'_>,
        expected: Option<i64>,
        dry: bool,
        part: Part,
        change: F,
    ) -> Result<Value, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        self.update_object_recorded(t, expected, dry, part, None, change)
            .await
    }

    /// [`Self::update_object`] recording the writer in managedFields.
    pub(super) async fn update_object_recorded<F>(
        &self,
        t: &Target<'_>,
        expected: Option<i64>,
        dry: bool,
        part: Part,
        recorder: Option<&Recorder>,
        change: F,
    ) -> Result<Value, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        let key = t.key()?;
        let name = t.name.clone().unwrap_or_default();
        loop {
            let (current, revision) = self.load(t).await?;
            if expected.is_some_and(|rv| rv != revision) {
                return Err(ApiError::conflict(&t.subject()));
            }
            let mut new = change(&current)?;
            check_kind(t, &mut new)?;
            check_namespace(t, &mut new)?;
            meta_mut(&mut new).insert("name".into(), json!(name));
            if part == Part::Approval {
                super::certificate_requests::approval(&mut new, &current)?;
            }
            part.prepare(t.r, &mut new, &current);
            meta_mut(&mut new).insert("resourceVersion".into(), json!(revision.to_string()));
            if part == Part::Bind {
                // Binding checks its own preconditions; the pod update rules
                // must not forbid the nodeName it sets.
                let mut before = current.clone();
                before["spec"]["nodeName"] = new["spec"]["nodeName"].clone();
                admit_update(t.r, &mut new, &before, &name)?;
            } else {
                admit_update(t.r, &mut new, &current, &name)?;
            }
            if part == Part::Mark {
                super::node_restriction::admit_delete(t.r, &current)?;
            } else {
                super::node_restriction::admit_update(t.r, &new, &current)?;
            }
            self.keep_allocations(t.r, &mut new, &current)?;
            if let Some(recorder) = recorder {
                recorder.record(Some(&current), &mut new);
            }
            // Unchanged objects are not written, unless their stored bytes
            // are due a rewrite (an older encryption key, as upstream's
            // stale reads).
            if new == current && !self.store.needs_rewrite(&key).await.unwrap_or(false) {
                return Ok(current);
            }
            if part == Part::Main {
                self.admit_changed_object(t, &mut new, &current, dry)
                    .await?;
            }
            // The last finalizer of an object being deleted is gone: delete it.
            if object::is_deleting(&new)
                && object::finalizers(&new).is_empty()
                && !self.awaits_grace(t, &new)
                && !strategy::namespace_finalizers_pending(t.r, &new)
            {
                if dry {
                    return Ok(new);
                }
                match self.store.delete(&key, Some(revision)).await {
                    Ok(deleted) => {
                        self.after_delete(t.r, &new).await;
                        object::stamp(&mut new, t.r, deleted.revision);
                        return Ok(new);
                    }
                    Err(StoreError::Conflict { .. } | StoreError::NotFound { .. })
                        if expected.is_none() =>
                    {
                        continue;
                    }
                    Err(e) => return Err(ApiError::from_store(e, &t.subject())),
                }
            }
            if dry {
                return Ok(new);
            }
            match self
                .store
                .update(&key, object::encode(&new)?, revision, t.r.ttl)
                .await
            {
                Ok(updated) => {
                    object::stamp(&mut new, t.r, updated.mod_revision);
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, &t.subject())),
            }
        }
    }

    /// A Pod being deleted gracefully stays until its grace period is
    /// confirmed over by its kubelet (a delete with grace period 0).
    fn awaits_grace(&self, t: &Target<'_>, obj: &Value) -> bool {
        t.r.kind == "Pod"
            && t.r.group.is_empty()
            && obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|g| g > 0)
    }

    /// PATCH of the main resource or a subresource part.
    pub(super) async fn patch(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
        part: Part,
    ) -> Result<Response, ApiError> {
        let (kind, patch) = super::patch::decode(headers, &body)?;
        let docs = self.openapi.current();
        let subresource = (part == Part::Status).then_some("status");
        let recorder = Recorder::new(docs.clone(), t, query, headers, subresource)?;
        let force = query.get("force").map(String::as_str);
        if kind == PatchKind::Apply {
            return self.apply(t, query, &body, &patch, part, &recorder).await;
        }
        if force.is_some() {
            return Err(ApiError::bad_request(
                "force may not be specified for non-apply patch",
            ));
        }
        let patcher = Patcher::new(kind, t.r, &docs)?;
        let expected = match patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv) if kind != PatchKind::Json => Some(object::parse_revision(rv)?),
            _ => None,
        };
        let obj = self
            .update_object_recorded(
                t,
                expected,
                dry_run(query),
                part,
                Some(&recorder),
                |current| {
                    let patched = patcher.apply(current, &patch)?;
                    self.check_patched(t, query, &patched)?;
                    Ok(patched)
                },
            )
            .await?;
        Ok(json_response(StatusCode::OK, &obj))
    }

    /// Server-side apply: merges the configuration into the live object
    /// (or creates it), recording the manager's fields; conflicts are 409
    /// unless `force=true`.
    async fn apply(
        &self,
        t: &Target<'_>,
        query: &Query,
        body: &[u8],
        config: &Value,
        part: Part,
        recorder: &Recorder,
    ) -> Result<Response, ApiError> {
        if !query.contains_key("fieldManager") {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            ));
        }
        let force = match query.get("force").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid force value {other:?}: must be true or false"
                )));
            }
        };
        let api_version = config.get("apiVersion").and_then(Value::as_str);
        let kind = config.get("kind").and_then(Value::as_str);
        if api_version != Some(t.r.api_version().as_str()) || kind != Some(t.r.kind.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {}, expected: {}",
                api_version.unwrap_or(""),
                t.r.api_version()
            )));
        }
        if let Some(name) = object::name(config)
            && Some(name) != t.name.as_deref()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                t.name.as_deref().unwrap_or("")
            )));
        }
        let warnings = self.check_fields(t, query, body)?;
        let result = self
            .update_object_recorded(t, None, dry_run(query), part, None, |current| {
                recorder.apply(t, Some(current), config, force)
            })
            .await;
        match result {
            Ok(obj) => Ok(with_warnings(
                json_response(StatusCode::OK, &obj),
                &warnings,
            )),
            Err(e) if e.code == 404 && part == Part::Main => {
                let mut created = recorder.apply(t, None, config, force)?;
                meta_mut(&mut created)
                    .insert("name".into(), json!(t.name.as_deref().unwrap_or_default()));
                self.create_object(t, query, created, &warnings, Recording::Applied)
                    .await
            }
            Err(e) => Err(e),
        }
    }
}

/// How a create records managedFields.
#[derive(Clone, Copy)]
pub enum Recording<'a> {
    /// An Update by this recorder's manager.
    Update(&'a Recorder),
    /// Already set by server-side apply.
    Applied,
}
