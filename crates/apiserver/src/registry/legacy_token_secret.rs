//! A new `kubernetes.io/service-account-token` Secret is filled in as
//! upstream's token controller does: the service account's uid, a legacy
//! token, the cluster CA and the namespace. (skiff fills it in as the
//! Secret is created, so it is usable at once.)

use base64::Engine;
use serde_json::{Value, json};

use super::Registry;
use crate::auth::legacy_token::{NAME_ANNOTATION, SECRET_TYPE, UID_ANNOTATION, claims};
use crate::status::ApiError;

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

impl Registry {
    pub(super) async fn fill_legacy_token(
        &self,
        namespace: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if obj.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(sa) = annotation(obj, NAME_ANNOTATION).map(str::to_owned) else {
            let message = format!(
                "Secret \"{name}\" is invalid: metadata.annotations[{NAME_ANNOTATION}]: Required value"
            );
            return Err(ApiError::invalid(
                "Secret",
                "",
                &name,
                message,
                vec![
                    json!({"reason": "FieldValueRequired", "message": "Required value", "field": format!("metadata.annotations[{NAME_ANNOTATION}]")}),
                ],
            ));
        };
        let Some(account) = self.lookup("serviceaccounts", Some(namespace), &sa).await else {
            // As upstream, the Secret waits without a token until its
            // service account exists.
            return Ok(());
        };
        let uid = account
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if annotation(obj, UID_ANNOTATION).is_some_and(|u| u != uid) {
            return Ok(());
        }
        let token = self
            .sa_key
            .sign(&claims(namespace, &sa, &uid, &name))
            .ok_or_else(|| ApiError::internal("signing the service account token failed"))?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        obj["metadata"]["annotations"][UID_ANNOTATION] = json!(uid);
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        obj["data"]["token"] = json!(b64(&token));
        obj["data"]["namespace"] = json!(b64(namespace));
        obj["data"]["ca.crt"] = json!(b64(&self.ca_pem));
        Ok(())
    }
}
