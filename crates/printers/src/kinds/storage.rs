//! Storage: persistent volumes and claims, storage classes, volume
//! attributes classes, CSI drivers/nodes/capacities, volume attachments.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::format::{join, quantity};
use crate::value::{arr_at, at, bool_at, count_at, is_deleting, name, opt_bool, opt_str, str_at};

/// Access modes as `RWO,ROX,RWX,RWOP`, in that fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let short = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    join(
        short.iter().filter(|(long, _)| has(long)).map(|(_, s)| *s),
        ",",
    )
}

const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The storage class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(obj: &Value) -> &str {
    opt_str(obj, &["metadata", "annotations", BETA_CLASS_ANNOTATION])
        .unwrap_or_else(|| str_at(obj, &["spec", "storageClassName"]))
}

pub(crate) const PERSISTENT_VOLUME: Printer = Printer::new(
    &[
        NAME,
        Column::string("Capacity", "Storage capacity of the volume."),
        Column::string("Access Modes", "How the volume can be mounted."),
        Column::string(
            "Reclaim Policy",
            "What happens to the volume when its claim is released.",
        ),
        Column::string("Status", "Phase of the volume."),
        Column::string("Claim", "The claim bound to the volume."),
        Column::string("StorageClass", "Storage class of the volume."),
        Column::string(
            "VolumeAttributesClass",
            "Volume attributes class of the volume.",
        ),
        Column::string("Reason", "Why the volume is in its phase."),
        AGE,
        Column::string("VolumeMode", "Filesystem or Block.").wide(),
    ],
    persistent_volume,
);

fn persistent_volume(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match at(pv, &["spec", "claimRef"]) {
        Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
        None => String::new(),
    };
    let phase = if is_deleting(pv) {
        "Terminating"
    } else {
        str_at(pv, &["status", "phase"])
    };
    vec![
        name(pv).into(),
        quantity(at(pv, &["spec", "capacity", "storage"])).into(),
        access_modes(arr_at(pv, &["spec", "accessModes"])).into(),
        str_at(pv, &["spec", "persistentVolumeReclaimPolicy"]).into(),
        phase.into(),
        claim.into(),
        storage_class(pv).into(),
        opt_str(pv, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        str_at(pv, &["status", "reason"]).into(),
        age(pv, now).into(),
        opt_str(pv, &["spec", "volumeMode"])
            .unwrap_or("<unset>")
            .into(),
    ]
}

pub(crate) const PERSISTENT_VOLUME_CLAIM: Printer = Printer::new(
    &[
        NAME,
        Column::string("Status", "Phase of the claim."),
        Column::string("Volume", "The volume bound to the claim."),
        Column::string("Capacity", "Capacity of the bound volume."),
        Column::string("Access Modes", "How the bound volume can be mounted."),
        Column::string("StorageClass", "Storage class of the claim."),
        Column::string(
            "VolumeAttributesClass",
            "Volume attributes class of the claim.",
        ),
        AGE,
        Column::string("VolumeMode", "Filesystem or Block.").wide(),
    ],
    persistent_volume_claim,
);

fn persistent_volume_claim(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if is_deleting(pvc) {
        "Terminating"
    } else {
        str_at(pvc, &["status", "phase"])
    };
    let volume = str_at(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(arr_at(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        name(pvc).into(),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(pvc).into(),
        opt_str(pvc, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        age(pvc, now).into(),
        opt_str(pvc, &["spec", "volumeMode"])
            .unwrap_or("<unset>")
            .into(),
    ]
}

const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

pub(crate) const STORAGE_CLASS: Printer = Printer::new(
    &[
        NAME,
        Column::string("Provisioner", "The volume plugin that provisions volumes."),
        Column::string("ReclaimPolicy", "Reclaim policy of provisioned volumes."),
        Column::string(
            "VolumeBindingMode",
            "When volumes are bound and provisioned.",
        ),
        Column::string("AllowVolumeExpansion", "Whether claims may be resized."),
        AGE,
    ],
    storage_class_cells,
);

fn storage_class_cells(sc: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|a| opt_str(sc, &["metadata", "annotations", a]) == Some("true"));
    let mut shown = name(sc).to_owned();
    if is_default {
        shown.push_str(" (default)");
    }
    vec![
        shown.into(),
        str_at(sc, &["provisioner"]).into(),
        opt_str(sc, &["reclaimPolicy"]).unwrap_or("Delete").into(),
        opt_str(sc, &["volumeBindingMode"])
            .unwrap_or("Immediate")
            .into(),
        bool_at(sc, &["allowVolumeExpansion"]).into(),
        age(sc, now).into(),
    ]
}

pub(crate) const VOLUME_ATTRIBUTES_CLASS: Printer = Printer::new(
    &[
        NAME,
        Column::string("DriverName", "CSI driver the class applies to."),
        AGE,
    ],
    volume_attributes_class,
);

fn volume_attributes_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = opt_str(
        obj,
        &[
            "metadata",
            "annotations",
            "storage.kubernetes.io/is-default-class",
        ],
    ) == Some("true");
    let mut shown = name(obj).to_owned();
    if is_default {
        shown.push_str(" (default)");
    }
    vec![
        shown.into(),
        str_at(obj, &["driverName"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const VOLUME_ATTACHMENT: Printer = Printer::new(
    &[
        NAME,
        Column::string("Attacher", "The CSI driver attaching the volume.").named(),
        Column::string("PV", "The persistent volume being attached."),
        Column::string("Node", "The node the volume is attached to."),
        Column::boolean("Attached", "Whether the attach operation succeeded."),
        AGE,
    ],
    volume_attachment,
);

fn volume_attachment(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "attacher"]).into(),
        str_at(obj, &["spec", "source", "persistentVolumeName"]).into(),
        str_at(obj, &["spec", "nodeName"]).into(),
        bool_at(obj, &["status", "attached"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const CSI_DRIVER: Printer = Printer::new(
    &[
        NAME,
        Column::boolean("AttachRequired", "Whether volumes need an attach step."),
        Column::boolean(
            "PodInfoOnMount",
            "Whether pod information is passed on mount.",
        ),
        Column::boolean(
            "StorageCapacity",
            "Whether the driver reports storage capacity.",
        ),
        Column::string(
            "TokenRequests",
            "Audiences of service account tokens passed on mount.",
        ),
        Column::boolean(
            "RequiresRepublish",
            "Whether volumes are periodically re-published.",
        ),
        Column::string("Modes", "Volume lifecycle modes the driver supports."),
        AGE,
    ],
    csi_driver,
);

fn csi_driver(obj: &Value, now: Timestamp) -> Vec<Value> {
    let modes = join(
        arr_at(obj, &["spec", "volumeLifecycleModes"])
            .iter()
            .map(|m| m.as_str().unwrap_or("")),
        ",",
    );
    let tokens = match at(obj, &["spec", "tokenRequests"]) {
        None => "<unset>".to_owned(),
        Some(_) => join(
            arr_at(obj, &["spec", "tokenRequests"])
                .iter()
                .map(|t| str_at(t, &["audience"])),
            ",",
        ),
    };
    vec![
        name(obj).into(),
        opt_bool(obj, &["spec", "attachRequired"])
            .unwrap_or(true)
            .into(),
        bool_at(obj, &["spec", "podInfoOnMount"]).into(),
        bool_at(obj, &["spec", "storageCapacity"]).into(),
        tokens.into(),
        bool_at(obj, &["spec", "requiresRepublish"]).into(),
        if modes.is_empty() {
            "<none>".to_owned()
        } else {
            modes
        }
        .into(),
        age(obj, now).into(),
    ]
}

pub(crate) const CSI_NODE: Printer = Printer::new(
    &[
        NAME,
        Column::integer("Drivers", "Number of CSI drivers registered on the node."),
        AGE,
    ],
    csi_node,
);

fn csi_node(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        count_at(obj, &["spec", "drivers"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const CSI_STORAGE_CAPACITY: Printer = Printer::new(
    &[
        NAME,
        Column::string("StorageClassName", "Storage class the capacity applies to."),
        Column::string("Capacity", "Available capacity."),
    ],
    csi_storage_capacity,
);

fn csi_storage_capacity(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let capacity = match at(obj, &["capacity"]) {
        None => "<unset>".to_owned(),
        some => quantity(some),
    };
    vec![
        name(obj).into(),
        str_at(obj, &["storageClassName"]).into(),
        capacity.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn bound_volume_and_claim() {
        let pv = json!({"metadata": {"name": "pv-1", "creationTimestamp": "2024-06-01T11:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            persistent_volume(&pv, now()),
            vec![
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("Filesystem")
            ]
        );
        let pvc = json!({"metadata": {"name": "data"},
            "spec": {"volumeName": "pv-1", "storageClassName": "local",
                "resources": {"requests": {"storage": "5Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let r = persistent_volume_claim(&pvc, now());
        assert_eq!(
            r[1..7],
            [
                json!("Bound"),
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO"),
                json!("local"),
                json!("<unset>")
            ]
        );
        let pending =
            json!({"metadata": {"name": "d"}, "spec": {}, "status": {"phase": "Pending"}});
        let r = persistent_volume_claim(&pending, now());
        assert_eq!(r[2..5], [json!(""), json!(""), json!("")]);
    }

    #[test]
    fn default_storage_class() {
        let sc = json!({"metadata": {"name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        let r = storage_class_cells(&sc, now());
        assert_eq!(
            r[..5],
            [
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
    }

    #[test]
    fn csi_driver_defaults() {
        let d = json!({"metadata": {"name": "hostpath.csi.k8s.io"}, "spec": {}});
        let r = csi_driver(&d, now());
        assert_eq!(
            r[1..7],
            [
                json!(true),
                json!(false),
                json!(false),
                json!("<unset>"),
                json!(false),
                json!("<none>")
            ]
        );
    }
}
