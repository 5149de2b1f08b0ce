//! downwardAPI volumes (and the downwardAPI sources of projected volumes):
//! pod fields and container resources as files, rendered as upstream does
//! (`metadata.labels` as sorted `key="value"` lines, resources divided by
//! `divisor` and rounded up).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, Pod, ResourceFieldSelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_apimachinery::quantity::parse_milli;

use super::atomic_writer::{FileProjection, Payload};
use super::{DEFAULT_MODE, VolumeError, mode_bits};

pub(super) fn payload(
    pod: &Pod,
    src: &DownwardAPIVolumeSource,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, VolumeError> {
    files(
        pod,
        src.items.as_deref().unwrap_or_default(),
        mode_bits(src.default_mode, DEFAULT_MODE),
        allocatable,
    )
}

/// The files of `items`, each with its own mode or `default_mode`.
pub(super) fn files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    for item in items {
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(field), _) => field_value(pod, &field.field_path)?,
            (None, Some(resource)) => resource_value(pod, resource, allocatable)?,
            (None, None) => {
                return Err(VolumeError::InvalidPath(format!(
                    "downward API item {:?} has neither fieldRef nor resourceFieldRef",
                    item.path
                )));
            }
        };
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: mode_bits(item.mode, default_mode),
            },
        );
    }
    Ok(payload)
}

/// A pod field as the downward API renders it (volumes and env).
pub(super) fn field_value(pod: &Pod, path: &str) -> Result<String, VolumeError> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(labels.get(key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(annotations.get(key).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(labels)),
        "metadata.annotations" => Some(format_map(annotations)),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.podIPs" => status.and_then(|s| s.pod_ips.as_ref()).map(|ips| {
            ips.iter()
                .map(|ip| ip.ip.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        "status.hostIPs" => status.and_then(|s| s.host_ips.as_ref()).map(|ips| {
            ips.iter()
                .map(|ip| ip.ip.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        _ => {
            return Err(VolumeError::InvalidPath(format!(
                "unsupported fieldPath: {path}"
            )));
        }
    };
    Ok(value.unwrap_or_default())
}

/// `key` of `prefix['key']` (upstream's subscript syntax).
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Labels/annotations as upstream's `FormatMap`: sorted `key="value"`
/// lines (Go `%q` quoting), no trailing newline.
pub(super) fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", skiff_apimachinery::go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A container's limit or request divided by `divisor`, rounded up. A
/// limit the container does not set is the node's allocatable, as
/// upstream.
fn resource_value(
    pod: &Pod,
    sel: &ResourceFieldSelector,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, VolumeError> {
    let container_name = sel.container_name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or(VolumeError::PodField("spec"))?;
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container_name)
        .ok_or_else(|| {
            VolumeError::InvalidPath(format!(
                "resourceFieldRef: container {container_name:?} not found"
            ))
        })?;
    let unsupported =
        || VolumeError::InvalidPath(format!("unsupported container resource : {}", sel.resource));
    let (kind, name) = sel.resource.split_once('.').ok_or_else(unsupported)?;
    let supported =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !supported {
        return Err(unsupported());
    }
    let resources = container.resources.as_ref();
    let quantity = match kind {
        "limits" => resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .or_else(|| allocatable.get(name)),
        "requests" => resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name))
            // The API server defaults requests to limits; be as kind to
            // objects that skipped defaulting.
            .or_else(|| {
                resources
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|l| l.get(name))
            }),
        _ => return Err(unsupported()),
    };
    let milli = |q: &Quantity| {
        parse_milli(&q.0).ok_or_else(|| {
            VolumeError::InvalidPath(format!("invalid quantity {:?} for {}", q.0, sel.resource))
        })
    };
    let value = quantity.map(milli).transpose()?.unwrap_or(0);
    let divisor = sel.divisor.as_ref().map(milli).transpose()?.unwrap_or(1000);
    // CPU divides milli-values; memory, storage and hugepages whole units
    // (rounded up first), as upstream's convertResource*ToString.
    let (value, divisor) = if name == "cpu" {
        (value, divisor)
    } else {
        (ceil_div(value, 1000), ceil_div(divisor, 1000))
    };
    if divisor <= 0 {
        return Err(VolumeError::InvalidPath(format!(
            "invalid divisor for {}: must be positive",
            sel.resource
        )));
    }
    Ok(ceil_div(value, divisor).to_string())
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "prod", "uid": "u-1",
                "labels": {"b": "2", "a": "x\"y"},
                "annotations": {"note": "line1\nline2"},
            },
            "spec": {
                "nodeName": "n1",
                "containers": [{
                    "name": "c", "image": "i",
                    "resources": {
                        "limits": {"cpu": "250m", "memory": "128Mi"},
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                    },
                }, {"name": "bare", "image": "i"}],
            },
        }))
        .unwrap()
    }

    fn resource(container: &str, resource: &str, divisor: Option<&str>) -> String {
        let sel = ResourceFieldSelector {
            container_name: Some(container.to_owned()),
            resource: resource.to_owned(),
            divisor: divisor.map(|d| Quantity(d.to_owned())),
        };
        let allocatable = BTreeMap::from([
            ("cpu".to_owned(), Quantity("4".to_owned())),
            ("memory".to_owned(), Quantity("8Gi".to_owned())),
        ]);
        resource_value(&pod(), &sel, &allocatable).unwrap()
    }

    #[test]
    fn fields() {
        let p = pod();
        assert_eq!(field_value(&p, "metadata.name").unwrap(), "web");
        assert_eq!(field_value(&p, "metadata.namespace").unwrap(), "prod");
        assert_eq!(field_value(&p, "metadata.uid").unwrap(), "u-1");
        assert_eq!(field_value(&p, "spec.nodeName").unwrap(), "n1");
        assert_eq!(
            field_value(&p, "metadata.labels").unwrap(),
            "a=\"x\\\"y\"\nb=\"2\""
        );
        assert_eq!(
            field_value(&p, "metadata.annotations").unwrap(),
            "note=\"line1\\nline2\""
        );
        assert_eq!(field_value(&p, "metadata.labels['b']").unwrap(), "2");
        assert_eq!(field_value(&p, "metadata.labels['zz']").unwrap(), "");
        assert!(field_value(&p, "spec.containers").is_err());
    }

    #[test]
    fn resources_with_divisor() {
        assert_eq!(resource("c", "limits.cpu", None), "1");
        assert_eq!(resource("c", "limits.cpu", Some("1m")), "250");
        assert_eq!(resource("c", "requests.cpu", Some("1m")), "100");
        assert_eq!(resource("c", "limits.memory", None), "134217728");
        assert_eq!(resource("c", "limits.memory", Some("1Mi")), "128");
        assert_eq!(resource("c", "requests.memory", Some("1M")), "68");
        // No limit: the node's allocatable.
        assert_eq!(resource("bare", "limits.cpu", None), "4");
        assert_eq!(resource("bare", "limits.memory", Some("1Gi")), "8");
        assert_eq!(resource("bare", "requests.cpu", None), "0");
    }

    #[test]
    fn payload_with_modes() {
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "sub/name", "mode": 0o400, "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
        ]))
        .unwrap();
        let payload = files(&pod(), &items, 0o644, &BTreeMap::new()).unwrap();
        assert_eq!(payload["sub/name"].data, b"web");
        assert_eq!(payload["sub/name"].mode, 0o400);
        assert_eq!(payload["labels"].mode, 0o644);
        assert_eq!(payload["cpu"].data, b"250");
    }
}
