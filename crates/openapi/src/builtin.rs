//! The built-in kinds skiff serves, with their subresources.

use crate::builder::OpenApiBuilder;
use crate::resource::Subresource::{Scale, Status};
use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, certificates, coordination, core, discovery,
    events, networking, node, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;

/// A builder holding every built-in kind of the group-versions skiff
/// serves: core/v1, apps/v1, batch/v1, autoscaling/v1 and v2,
/// networking.k8s.io/v1, policy/v1, rbac.authorization.k8s.io/v1,
/// coordination.k8s.io/v1, discovery.k8s.io/v1, events.k8s.io/v1,
/// storage.k8s.io/v1, scheduling.k8s.io/v1, certificates.k8s.io/v1,
/// admissionregistration.k8s.io/v1, node.k8s.io/v1 and
/// apiextensions.k8s.io/v1 (kubectl looks up CustomResourceDefinition's
/// document to decide how to validate custom resources).
pub fn builtin() -> OpenApiBuilder {
    let mut b = OpenApiBuilder::new();
    {
        use core::v1::*;
        b.add::<ComponentStatus>(&[])
            .add::<ConfigMap>(&[])
            .add::<Endpoints>(&[])
            .add::<Event>(&[])
            .add::<LimitRange>(&[])
            .add::<Namespace>(&[Status])
            .add::<Node>(&[Status])
            .add::<PersistentVolume>(&[Status])
            .add::<PersistentVolumeClaim>(&[Status])
            .add::<Pod>(&[Status])
            .add::<PodTemplate>(&[])
            .add::<ReplicationController>(&[Status, Scale])
            .add::<ResourceQuota>(&[Status])
            .add::<Secret>(&[])
            .add::<Service>(&[Status])
            .add::<ServiceAccount>(&[]);
    }
    {
        use apps::v1::*;
        b.add::<ControllerRevision>(&[])
            .add::<DaemonSet>(&[Status])
            .add::<Deployment>(&[Status, Scale])
            .add::<ReplicaSet>(&[Status, Scale])
            .add::<StatefulSet>(&[Status, Scale]);
    }
    b.add::<batch::v1::CronJob>(&[Status])
        .add::<batch::v1::Job>(&[Status])
        .add::<autoscaling::v1::HorizontalPodAutoscaler>(&[Status])
        .add::<autoscaling::v2::HorizontalPodAutoscaler>(&[Status]);
    {
        use networking::v1::*;
        b.add::<Ingress>(&[Status])
            .add::<IngressClass>(&[])
            .add::<IPAddress>(&[])
            .add::<NetworkPolicy>(&[])
            .add::<ServiceCIDR>(&[Status]);
    }
    b.add::<policy::v1::PodDisruptionBudget>(&[Status]);
    {
        use rbac::v1::*;
        b.add::<ClusterRole>(&[])
            .add::<ClusterRoleBinding>(&[])
            .add::<Role>(&[])
            .add::<RoleBinding>(&[]);
    }
    b.add::<coordination::v1::Lease>(&[])
        .add::<discovery::v1::EndpointSlice>(&[])
        .add::<events::v1::Event>(&[]);
    {
        use storage::v1::*;
        b.add::<CSIDriver>(&[])
            .add::<CSINode>(&[])
            .add::<CSIStorageCapacity>(&[])
            .add::<StorageClass>(&[])
            .add::<VolumeAttachment>(&[Status]);
    }
    b.add::<scheduling::v1::PriorityClass>(&[])
        .add::<certificates::v1::CertificateSigningRequest>(&[Status]);
    {
        use admissionregistration::v1::*;
        b.add::<MutatingWebhookConfiguration>(&[])
            .add::<ValidatingAdmissionPolicy>(&[Status])
            .add::<ValidatingAdmissionPolicyBinding>(&[])
            .add::<ValidatingWebhookConfiguration>(&[]);
    }
    b.add::<node::v1::RuntimeClass>(&[])
        .add::<apiextensions::v1::CustomResourceDefinition>(&[Status]);
    b
}
