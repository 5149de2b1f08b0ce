//! configMap volumes (and the configMap sources of projected volumes):
//! the ConfigMap's `data` and `binaryData` keys as files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};
use kube::Api;

use super::atomic_writer::Payload;
use super::{DEFAULT_MODE, VolumeError, mode_bits, project_keys};

pub(super) async fn payload(
    client: &kube::Client,
    namespace: &str,
    src: &ConfigMapVolumeSource,
) -> Result<Payload, VolumeError> {
    project(
        client,
        namespace,
        &src.name,
        src.items.as_deref(),
        mode_bits(src.default_mode, DEFAULT_MODE),
        src.optional.unwrap_or(false),
    )
    .await
}

/// The files of ConfigMap `name` per `items`; no files when it is missing
/// and `optional`.
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
            kind: "configmap",
            name: name.to_owned(),
        });
    };
    project_keys(&data, items, default_mode, optional, |key| {
        format!("configmap references non-existent config key: {key}")
    })
}

/// The ConfigMap's keys with their bytes (`data` as UTF-8, `binaryData`
/// as is), or `None` when it does not exist.
async fn fetch(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        what: format!("getting configmap {namespace}/{name}"),
        source,
    })?;
    Ok(cm.map(|cm| {
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}
