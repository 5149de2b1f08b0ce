//! The printers, one module per API area, and the lookup from
//! (group, kind) to printer.

mod admission;
mod autoscaling;
mod cluster;
mod core;
mod event;
mod fallback;
mod network;
mod node;
mod pod;
mod rbac;
mod storage;
mod workloads;

use jiff::Timestamp;
use serde_json::Value;

use crate::column::Column;

/// How one kind is printed: its columns and how to compute a row.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) columns: &'static [Column],
    /// All cells of a row, wide ones included (the server always prints
    /// wide; kubectl hides priority 1 columns itself).
    pub(crate) cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// `TableRowCondition`s of a row (only pods have any).
    pub(crate) conditions: fn(&Value) -> Vec<Value>,
}

impl Printer {
    const fn new(columns: &'static [Column], cells: fn(&Value, Timestamp) -> Vec<Value>) -> Self {
        Printer {
            columns,
            cells,
            conditions: no_conditions,
        }
    }
}

fn no_conditions(_: &Value) -> Vec<Value> {
    Vec::new()
}

/// Every (group, kind) with a dedicated printer.
pub(crate) const PRINTED: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "Node"),
    ("", "Event"),
    ("", "Namespace"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("", "ConfigMap"),
    ("", "ResourceQuota"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ControllerRevision"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("networking.k8s.io", "IPAddress"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("events.k8s.io", "Event"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "CSIStorageCapacity"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("coordination.k8s.io", "Lease"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
];

/// The printer for a kind; kinds without one get upstream's defaults
/// (see [`fallback`]).
pub(crate) fn lookup(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => pod::PRINTER,
        ("", "PodTemplate") => core::POD_TEMPLATE,
        ("", "ReplicationController") => workloads::REPLICATION_CONTROLLER,
        ("", "Service") => network::SERVICE,
        ("", "Endpoints") => network::ENDPOINTS,
        ("", "Node") => node::PRINTER,
        ("", "Event") => event::CORE,
        ("", "Namespace") => core::NAMESPACE,
        ("", "Secret") => core::SECRET,
        ("", "ServiceAccount") => core::SERVICE_ACCOUNT,
        ("", "PersistentVolume") => storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => storage::PERSISTENT_VOLUME_CLAIM,
        ("", "ConfigMap") => core::CONFIG_MAP,
        ("", "ResourceQuota") => core::RESOURCE_QUOTA,
        ("apps", "Deployment") => workloads::DEPLOYMENT,
        ("apps", "ReplicaSet") => workloads::REPLICA_SET,
        ("apps", "StatefulSet") => workloads::STATEFUL_SET,
        ("apps", "DaemonSet") => workloads::DAEMON_SET,
        ("apps", "ControllerRevision") => workloads::CONTROLLER_REVISION,
        ("batch", "Job") => workloads::JOB,
        ("batch", "CronJob") => workloads::CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::HPA,
        ("policy", "PodDisruptionBudget") => cluster::POD_DISRUPTION_BUDGET,
        ("networking.k8s.io", "Ingress") => network::INGRESS,
        ("networking.k8s.io", "IngressClass") => network::INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => network::NETWORK_POLICY,
        ("networking.k8s.io", "ServiceCIDR") => network::SERVICE_CIDR,
        ("networking.k8s.io", "IPAddress") => network::IP_ADDRESS,
        ("discovery.k8s.io", "EndpointSlice") => network::ENDPOINT_SLICE,
        ("events.k8s.io", "Event") => event::EVENTS_V1,
        ("rbac.authorization.k8s.io", "RoleBinding") => rbac::ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => rbac::CLUSTER_ROLE_BINDING,
        ("storage.k8s.io", "StorageClass") => storage::STORAGE_CLASS,
        ("storage.k8s.io", "VolumeAttachment") => storage::VOLUME_ATTACHMENT,
        ("storage.k8s.io", "CSIDriver") => storage::CSI_DRIVER,
        ("storage.k8s.io", "CSINode") => storage::CSI_NODE,
        ("storage.k8s.io", "CSIStorageCapacity") => storage::CSI_STORAGE_CAPACITY,
        ("storage.k8s.io", "VolumeAttributesClass") => storage::VOLUME_ATTRIBUTES_CLASS,
        ("coordination.k8s.io", "Lease") => cluster::LEASE,
        ("certificates.k8s.io", "CertificateSigningRequest") => cluster::CSR,
        ("scheduling.k8s.io", "PriorityClass") => cluster::PRIORITY_CLASS,
        ("node.k8s.io", "RuntimeClass") => cluster::RUNTIME_CLASS,
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => admission::WEBHOOKS,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => admission::POLICY,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            admission::POLICY_BINDING
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => cluster::FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => cluster::PRIORITY_LEVEL,
        ("apiregistration.k8s.io", "APIService") => cluster::API_SERVICE,
        _ if fallback::is_built_in_group(group) => fallback::BUILT_IN,
        _ => fallback::CUSTOM_RESOURCE,
    }
}
