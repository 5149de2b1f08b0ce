//! secret volumes (and the secret sources of projected volumes): the
//! Secret's `data` keys as files (already decoded from base64 by serde).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Secret, SecretVolumeSource};
use kube::Api;

use super::atomic_writer::Payload;
use super::{DEFAULT_MODE, VolumeError, mode_bits, project_keys};

pub(super) async fn payload(
    client: &kube::Client,
    namespace: &str,
    src: &SecretVolumeSource,
) -> Result<Payload, VolumeError> {
    project(
        client,
        namespace,
        src.secret_name.as_deref().unwrap_or_default(),
        src.items.as_deref(),
        mode_bits(src.default_mode, DEFAULT_MODE),
        src.optional.unwrap_or(false),
    )
    .await
}

/// The files of Secret `name` per `items`; no files when it is missing and
/// `optional`.
pub(super) async fn project(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let Some(data) = fetch(client, namespace, name).await? else {
        if optional {
            return Ok(Payload::new());
        }
        return Err(VolumeError::NotFound {
            kind: "secret",
            name: name.to_owned(),
        });
    };
    project_keys(&data, items, default_mode, optional, |key| {
        format!("references non-existent secret key: {key}")
    })
}

async fn fetch(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    if name.is_empty() {
        return Err(VolumeError::InvalidPath(
            "secret volume has no secretName".to_owned(),
        ));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        what: format!("getting secret {namespace}/{name}"),
        source,
    })?;
    Ok(secret.map(|s| {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        // `stringData` is folded into `data` on write by upstream API
        // servers; read it too in case a server returns it as is.
        for (k, v) in s.string_data.unwrap_or_default() {
            data.entry(k).or_insert_with(|| v.into_bytes());
        }
        data
    }))
}
