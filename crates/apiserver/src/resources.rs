//! The table of resources the API server serves. One generic registry serves
//! all of them; this table is what makes a kind a resource (path, scope,
//! verbs, short names, subresources, storage key).

use std::any::TypeId;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, authentication::v1 as authentication,
    authorization::v1 as authorization, autoscaling::v1 as autoscaling1,
    autoscaling::v2 as autoscaling2, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource};

/// Every verb of a normal resource, as discovery lists them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A name in the table: static for built-in kinds, owned for custom
/// resources.
pub type Name = Cow<'static, str>;

/// One served resource (one group/version/plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: Name,
    pub version: Name,
    pub kind: Name,
    pub list_kind: Name,
    pub plural: Name,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short_names: Vec<Name>,
    pub categories: Vec<Name>,
    pub subresources: &'static [&'static str],
    /// Stored objects expire after this long (Events: one hour, as upstream).
    pub ttl: Option<Duration>,
    /// The definition of a custom resource.
    pub custom: Option<Arc<crate::crd::CustomInfo>>,
}

impl ResourceInfo {
    fn of<T: Resource + ListableResource + 'static>(
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
        subresources: &'static [&'static str],
    ) -> Self {
        ResourceInfo {
            group: T::GROUP.into(),
            version: T::VERSION.into(),
            kind: T::KIND.into(),
            list_kind: T::LIST_KIND.into(),
            plural: T::URL_PATH_SEGMENT.into(),
            namespaced: TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>(),
            verbs: ALL_VERBS,
            short_names: short_names.iter().map(|n| Name::Borrowed(*n)).collect(),
            categories: categories.iter().map(|n| Name::Borrowed(*n)).collect(),
            subresources,
            ttl: None,
            custom: None,
        }
    }

    /// A kind that is only ever created and never stored: `bindings` and
    /// the review APIs, whose answer is computed.
    fn create_only<T: Resource>(namespaced: bool) -> Self {
        ResourceInfo {
            group: T::GROUP.into(),
            version: T::VERSION.into(),
            kind: T::KIND.into(),
            list_kind: "".into(),
            plural: T::URL_PATH_SEGMENT.into(),
            namespaced,
            verbs: &["create"],
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: NONE,
            ttl: None,
            custom: None,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Lowercase kind, as discovery's `singularName`.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }

    /// Store key prefix of every object of this resource (all versions of a
    /// group share it): `/pods/` or `/apps/deployments/`.
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/{}/", self.plural)
        } else {
            format!("/{}/{}/", self.group, self.plural)
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{ns}/{name}", self.key_prefix()),
            None => format!("{}{name}", self.key_prefix()),
        }
    }

    /// Prefix of the objects in one namespace (or all of them).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{ns}/", self.key_prefix()),
            None => self.key_prefix(),
        }
    }
}

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];
const STATUS: &[&str] = &["status"];
const SCALE: &[&str] = &["scale", "status"];
const NONE: &[&str] = &[];

/// Every built-in resource, in discovery order (groups in upstream's order).
pub fn builtin() -> Vec<ResourceInfo> {
    let mut list = vec![
        // core/v1
        ResourceInfo::of::<core::ComponentStatus>(&["cs"], NONE, NONE),
        ResourceInfo::of::<core::ConfigMap>(&["cm"], NONE, NONE),
        ResourceInfo::of::<core::Endpoints>(&["ep"], NONE, NONE),
        ResourceInfo::of::<core::Event>(&["ev"], NONE, NONE),
        ResourceInfo::of::<core::LimitRange>(&["limits"], NONE, NONE),
        ResourceInfo::of::<core::Namespace>(&["ns"], NONE, &["finalize", "status"]),
        ResourceInfo::of::<core::Node>(&["no"], NONE, &["proxy", "status"]),
        ResourceInfo::of::<core::PersistentVolumeClaim>(&["pvc"], NONE, STATUS),
        ResourceInfo::of::<core::PersistentVolume>(&["pv"], NONE, STATUS),
        ResourceInfo::of::<core::Pod>(
            &["po"],
            ALL,
            &[
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status",
            ],
        ),
        ResourceInfo::of::<core::PodTemplate>(NONE, NONE, NONE),
        ResourceInfo::of::<core::ReplicationController>(&["rc"], ALL, SCALE),
        ResourceInfo::of::<core::ResourceQuota>(&["quota"], NONE, STATUS),
        ResourceInfo::of::<core::Secret>(NONE, NONE, NONE),
        ResourceInfo::of::<core::ServiceAccount>(&["sa"], NONE, &["token"]),
        ResourceInfo::of::<core::Service>(&["svc"], ALL, &["proxy", "status"]),
        // apps/v1
        ResourceInfo::of::<apps::ControllerRevision>(NONE, NONE, NONE),
        ResourceInfo::of::<apps::DaemonSet>(&["ds"], ALL, STATUS),
        ResourceInfo::of::<apps::Deployment>(&["deploy"], ALL, SCALE),
        ResourceInfo::of::<apps::ReplicaSet>(&["rs"], ALL, SCALE),
        ResourceInfo::of::<apps::StatefulSet>(&["sts"], ALL, SCALE),
        // events.k8s.io/v1
        ResourceInfo::of::<events::Event>(&["ev"], NONE, NONE),
        // authentication.k8s.io/v1, authorization.k8s.io/v1: answers
        // computed per request (auth/reviews.rs)
        ResourceInfo::create_only::<authentication::SelfSubjectReview>(false),
        ResourceInfo::create_only::<authentication::TokenReview>(false),
        ResourceInfo::create_only::<authorization::LocalSubjectAccessReview>(true),
        ResourceInfo::create_only::<authorization::SelfSubjectAccessReview>(false),
        ResourceInfo::create_only::<authorization::SelfSubjectRulesReview>(false),
        ResourceInfo::create_only::<authorization::SubjectAccessReview>(false),
        // autoscaling
        ResourceInfo::of::<autoscaling2::HorizontalPodAutoscaler>(&["hpa"], ALL, STATUS),
        ResourceInfo::of::<autoscaling1::HorizontalPodAutoscaler>(&["hpa"], ALL, STATUS),
        // batch/v1
        ResourceInfo::of::<batch::CronJob>(&["cj"], ALL, STATUS),
        ResourceInfo::of::<batch::Job>(NONE, ALL, STATUS),
        // certificates.k8s.io/v1
        ResourceInfo::of::<certificates::CertificateSigningRequest>(
            &["csr"],
            NONE,
            &["approval", "status"],
        ),
        // networking.k8s.io/v1
        ResourceInfo::of::<networking::IPAddress>(&["ip"], NONE, NONE),
        ResourceInfo::of::<networking::IngressClass>(NONE, NONE, NONE),
        ResourceInfo::of::<networking::Ingress>(&["ing"], NONE, STATUS),
        ResourceInfo::of::<networking::NetworkPolicy>(&["netpol"], NONE, NONE),
        ResourceInfo::of::<networking::ServiceCIDR>(NONE, NONE, STATUS),
        // policy/v1
        ResourceInfo::of::<policy::PodDisruptionBudget>(&["pdb"], NONE, STATUS),
        // rbac.authorization.k8s.io/v1
        ResourceInfo::of::<rbac::ClusterRoleBinding>(NONE, NONE, NONE),
        ResourceInfo::of::<rbac::ClusterRole>(NONE, NONE, NONE),
        ResourceInfo::of::<rbac::RoleBinding>(NONE, NONE, NONE),
        ResourceInfo::of::<rbac::Role>(NONE, NONE, NONE),
        // storage.k8s.io/v1
        ResourceInfo::of::<storage::CSIDriver>(NONE, NONE, NONE),
        ResourceInfo::of::<storage::CSINode>(NONE, NONE, NONE),
        ResourceInfo::of::<storage::CSIStorageCapacity>(NONE, NONE, NONE),
        ResourceInfo::of::<storage::StorageClass>(&["sc"], NONE, NONE),
        ResourceInfo::of::<storage::VolumeAttachment>(NONE, NONE, STATUS),
        // admissionregistration.k8s.io/v1
        ResourceInfo::of::<admission::MutatingWebhookConfiguration>(NONE, API_EXTENSIONS, NONE),
        ResourceInfo::of::<admission::ValidatingAdmissionPolicy>(NONE, API_EXTENSIONS, STATUS),
        ResourceInfo::of::<admission::ValidatingAdmissionPolicyBinding>(NONE, API_EXTENSIONS, NONE),
        ResourceInfo::of::<admission::ValidatingWebhookConfiguration>(NONE, API_EXTENSIONS, NONE),
        // scheduling.k8s.io/v1
        ResourceInfo::of::<scheduling::PriorityClass>(&["pc"], NONE, NONE),
        // coordination.k8s.io/v1
        ResourceInfo::of::<coordination::Lease>(NONE, NONE, NONE),
        // node.k8s.io/v1
        ResourceInfo::of::<node::RuntimeClass>(NONE, NONE, NONE),
        // apiextensions.k8s.io/v1
        ResourceInfo::of::<apiextensions::CustomResourceDefinition>(
            &["crd", "crds"],
            API_EXTENSIONS,
            STATUS,
        ),
        // discovery.k8s.io/v1
        ResourceInfo::of::<discovery::EndpointSlice>(NONE, NONE, NONE),
    ];
    // `bindings`: create-only, the legacy way to bind a pod to a node.
    list.insert(1, ResourceInfo::create_only::<core::Binding>(true));
    for r in &mut list {
        if r.kind == "Event" {
            r.ttl = Some(Duration::from_secs(3600));
        }
        if r.kind == "ComponentStatus" {
            r.verbs = &["get", "list"];
        }
    }
    list
}

/// The served resources: the built-in ones, then those of the current
/// CustomResourceDefinitions. Requests take a snapshot; the CRD controller
/// swaps the custom part.
pub struct ResourceTable {
    builtin: usize,
    all: RwLock<Arc<[Arc<ResourceInfo>]>>,
}

impl ResourceTable {
    pub fn new(builtin: Vec<ResourceInfo>) -> ResourceTable {
        ResourceTable {
            builtin: builtin.len(),
            all: RwLock::new(builtin.into_iter().map(Arc::new).collect()),
        }
    }

    /// Every resource now served, in discovery order.
    pub fn snapshot(&self) -> Arc<[Arc<ResourceInfo>]> {
        self.all.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Whether `custom` differs from the custom resources served now.
    pub fn custom_differs(&self, custom: &[ResourceInfo]) -> bool {
        let all = self.all.read().unwrap_or_else(|e| e.into_inner());
        let current = &all[self.builtin.min(all.len())..];
        current.len() != custom.len() || current.iter().zip(custom).any(|(a, b)| **a != *b)
    }

    /// Replaces the custom resources.
    pub fn set_custom(&self, custom: Vec<ResourceInfo>) {
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        let builtin = all[..self.builtin.min(all.len())].iter().cloned();
        *all = builtin.chain(custom.into_iter().map(Arc::new)).collect();
    }
}

/// Group versions in discovery order; the first version of a group is its
/// preferred version.
pub fn group_versions<'a>(
    resources: impl IntoIterator<Item = &'a ResourceInfo>,
) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in resources {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version.as_ref()) {
                    versions.push(&r.version);
                }
            }
            None => groups.push((&r.group, vec![&r.version])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_knows_scope_and_keys() {
        let all = builtin();
        let pods = all.iter().find(|r| r.plural == "pods").unwrap();
        assert!(pods.namespaced);
        assert_eq!(pods.key(Some("default"), "web"), "/pods/default/web");
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(deploy.key(Some("ns"), "d"), "/apps/deployments/ns/d");
        let nodes = all.iter().find(|r| r.plural == "nodes").unwrap();
        assert!(!nodes.namespaced);
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/nodes/n1");
        let groups = group_versions(&all);
        let autoscaling = groups.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
    }
}
