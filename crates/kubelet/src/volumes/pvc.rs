//! persistentVolumeClaim volumes: the claim's bound PersistentVolume, when
//! it is one the node can use in place (`hostPath` or `local.path`).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource,
};
use kube::Api;

use super::{PodVolume, VolumeError, host_path};

pub(super) async fn setup(
    client: &kube::Client,
    namespace: &str,
    src: &PersistentVolumeClaimVolumeSource,
) -> Result<PodVolume, VolumeError> {
    let claim_name = &src.claim_name;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims
        .get_opt(claim_name)
        .await
        .map_err(|source| VolumeError::Api {
            what: format!("getting persistentvolumeclaim {namespace}/{claim_name}"),
            source,
        })?
        .ok_or_else(|| VolumeError::NotFound {
            kind: "persistentvolumeclaim",
            name: claim_name.clone(),
        })?;
    let bound = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|phase| phase == "Bound");
    let pv_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty() && bound)
        .ok_or_else(|| VolumeError::NotBound(claim_name.clone()))?;

    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get_opt(&pv_name)
        .await
        .map_err(|source| VolumeError::Api {
            what: format!("getting persistentvolume {pv_name}"),
            source,
        })?
        .ok_or_else(|| VolumeError::NotFound {
            kind: "persistentvolume",
            name: pv_name.clone(),
        })?;
    let spec = pv.spec.unwrap_or_default();
    let host_path = if let Some(src) = &spec.host_path {
        host_path::setup(src).await?
    } else if let Some(local) = &spec.local {
        let path = PathBuf::from(&local.path);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(VolumeError::InvalidPath(format!(
                "local volume path {:?} of persistentvolume {pv_name:?} does not exist",
                local.path
            )));
        }
        path
    } else {
        return Err(VolumeError::Unsupported(format!(
            "persistentvolume {pv_name:?} is neither hostPath nor local"
        )));
    };
    Ok(PodVolume {
        host_path,
        read_only: src.read_only.unwrap_or(false),
        refreshable: false,
    })
}
