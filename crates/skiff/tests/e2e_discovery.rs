#![allow(clippy::unwrap_used)]
//! What a user sees first: `kubectl version`, `api-resources`,
//! `api-versions` and `cluster-info`, with kubectl 1.27 and 1.33.

mod common;

use common::{Ctl, KUBECTLS};

/// `kubectl api-resources` against upstream v1.33 for the group-versions
/// skiff serves (NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND), in
/// kubectl's order.
const UPSTREAM_API_RESOURCES: &[[&str; 5]] = &[
    ["bindings", "", "v1", "true", "Binding"],
    ["componentstatuses", "cs", "v1", "false", "ComponentStatus"],
    ["configmaps", "cm", "v1", "true", "ConfigMap"],
    ["endpoints", "ep", "v1", "true", "Endpoints"],
    ["events", "ev", "v1", "true", "Event"],
    ["limitranges", "limits", "v1", "true", "LimitRange"],
    ["namespaces", "ns", "v1", "false", "Namespace"],
    ["nodes", "no", "v1", "false", "Node"],
    [
        "persistentvolumeclaims",
        "pvc",
        "v1",
        "true",
        "PersistentVolumeClaim",
    ],
    ["persistentvolumes", "pv", "v1", "false", "PersistentVolume"],
    ["pods", "po", "v1", "true", "Pod"],
    ["podtemplates", "", "v1", "true", "PodTemplate"],
    [
        "replicationcontrollers",
        "rc",
        "v1",
        "true",
        "ReplicationController",
    ],
    ["resourcequotas", "quota", "v1", "true", "ResourceQuota"],
    ["secrets", "", "v1", "true", "Secret"],
    ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
    ["services", "svc", "v1", "true", "Service"],
    [
        "mutatingwebhookconfigurations",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "MutatingWebhookConfiguration",
    ],
    [
        "validatingadmissionpolicies",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicy",
    ],
    [
        "validatingadmissionpolicybindings",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicyBinding",
    ],
    [
        "validatingwebhookconfigurations",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingWebhookConfiguration",
    ],
    [
        "customresourcedefinitions",
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    ],
    [
        "controllerrevisions",
        "",
        "apps/v1",
        "true",
        "ControllerRevision",
    ],
    ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"],
    ["deployments", "deploy", "apps/v1", "true", "Deployment"],
    ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
    ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"],
    [
        "selfsubjectreviews",
        "",
        "authentication.k8s.io/v1",
        "false",
        "SelfSubjectReview",
    ],
    [
        "tokenreviews",
        "",
        "authentication.k8s.io/v1",
        "false",
        "TokenReview",
    ],
    [
        "localsubjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "true",
        "LocalSubjectAccessReview",
    ],
    [
        "selfsubjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SelfSubjectAccessReview",
    ],
    [
        "selfsubjectrulesreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SelfSubjectRulesReview",
    ],
    [
        "subjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SubjectAccessReview",
    ],
    [
        "horizontalpodautoscalers",
        "hpa",
        "autoscaling/v2",
        "true",
        "HorizontalPodAutoscaler",
    ],
    ["cronjobs", "cj", "batch/v1", "true", "CronJob"],
    ["jobs", "", "batch/v1", "true", "Job"],
    [
        "certificatesigningrequests",
        "csr",
        "certificates.k8s.io/v1",
        "false",
        "CertificateSigningRequest",
    ],
    ["leases", "", "coordination.k8s.io/v1", "true", "Lease"],
    [
        "endpointslices",
        "",
        "discovery.k8s.io/v1",
        "true",
        "EndpointSlice",
    ],
    ["events", "ev", "events.k8s.io/v1", "true", "Event"],
    [
        "ingressclasses",
        "",
        "networking.k8s.io/v1",
        "false",
        "IngressClass",
    ],
    [
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    ],
    [
        "ipaddresses",
        "ip",
        "networking.k8s.io/v1",
        "false",
        "IPAddress",
    ],
    [
        "networkpolicies",
        "netpol",
        "networking.k8s.io/v1",
        "true",
        "NetworkPolicy",
    ],
    [
        "servicecidrs",
        "",
        "networking.k8s.io/v1",
        "false",
        "ServiceCIDR",
    ],
    [
        "runtimeclasses",
        "",
        "node.k8s.io/v1",
        "false",
        "RuntimeClass",
    ],
    [
        "poddisruptionbudgets",
        "pdb",
        "policy/v1",
        "true",
        "PodDisruptionBudget",
    ],
    [
        "clusterrolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRoleBinding",
    ],
    [
        "clusterroles",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRole",
    ],
    [
        "rolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "true",
        "RoleBinding",
    ],
    ["roles", "", "rbac.authorization.k8s.io/v1", "true", "Role"],
    [
        "priorityclasses",
        "pc",
        "scheduling.k8s.io/v1",
        "false",
        "PriorityClass",
    ],
    ["csidrivers", "", "storage.k8s.io/v1", "false", "CSIDriver"],
    ["csinodes", "", "storage.k8s.io/v1", "false", "CSINode"],
    [
        "csistoragecapacities",
        "",
        "storage.k8s.io/v1",
        "true",
        "CSIStorageCapacity",
    ],
    [
        "storageclasses",
        "sc",
        "storage.k8s.io/v1",
        "false",
        "StorageClass",
    ],
    [
        "volumeattachments",
        "",
        "storage.k8s.io/v1",
        "false",
        "VolumeAttachment",
    ],
];

/// Parses kubectl's api-resources table by its header's column offsets
/// (SHORTNAMES may be empty).
fn api_resources_rows(table: &str) -> Vec<[String; 5]> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let names = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
    let starts: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .find(n)
                .unwrap_or_else(|| panic!("no {n} column: {header}"))
        })
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            std::array::from_fn(|i| {
                let end = starts.get(i + 1).copied().unwrap_or(l.len()).min(l.len());
                l.get(starts[i]..end).unwrap_or("").trim().to_owned()
            })
        })
        .collect()
}

#[test]
fn version_reports_the_server_as_1_33() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok(&["version", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["clientVersion"]["minor"], minor.to_string(), "{out}");
        assert_eq!(v["serverVersion"]["major"], "1", "{out}");
        assert_eq!(v["serverVersion"]["minor"], "33", "{out}");
        assert!(
            v["serverVersion"]["gitVersion"]
                .as_str()
                .is_some_and(|g| g.starts_with("v1.33.")),
            "{out}"
        );
        assert_eq!(v["serverVersion"]["platform"], "linux/amd64", "{out}");
        let plain = k.ok(&["version"]);
        assert!(plain.contains("Server Version:"), "{plain}");
        assert!(plain.contains("v1.33."), "{plain}");
    }
}

#[test]
fn api_resources_rows_are_upstream_rows_in_upstream_order() {
    let c = common::cluster();
    let golden: Vec<[String; 5]> = UPSTREAM_API_RESOURCES
        .iter()
        .map(|r| r.map(str::to_owned))
        .collect();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let table = k.ok(&["api-resources"]);
        let served = api_resources_rows(&table);
        assert!(
            served.len() >= 45,
            "kubectl 1.{minor} api-resources:\n{table}"
        );
        // Every row kubectl prints is exactly an upstream row, in upstream order.
        let mut next = 0;
        for row in &served {
            let at = golden[next..].iter().position(|g| g == row).unwrap_or_else(|| {
                panic!(
                    "kubectl 1.{minor}: row {row:?} is not an upstream row (or out of order)\n{table}"
                )
            });
            next += at + 1;
        }
        // The resources kubectl users name every day are all there.
        for name in [
            "pods",
            "services",
            "configmaps",
            "secrets",
            "namespaces",
            "nodes",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "jobs",
            "cronjobs",
            "ingresses",
            "leases",
            "endpointslices",
            "roles",
            "storageclasses",
        ] {
            assert!(
                served.iter().any(|r| r[0] == name),
                "kubectl 1.{minor}: {name} missing\n{table}"
            );
        }
        // -o name and filters work too.
        let names = k.ok(&["api-resources", "-o", "name", "--api-group=apps"]);
        assert_eq!(
            names.lines().collect::<Vec<_>>(),
            [
                "controllerrevisions.apps",
                "daemonsets.apps",
                "deployments.apps",
                "replicasets.apps",
                "statefulsets.apps"
            ]
        );
        let cluster_scoped = k.ok(&[
            "api-resources",
            "--namespaced=false",
            "-o",
            "name",
            "--api-group=",
        ]);
        assert_eq!(
            cluster_scoped.lines().collect::<Vec<_>>(),
            [
                "componentstatuses",
                "namespaces",
                "nodes",
                "persistentvolumes"
            ]
        );
        let wide = k.ok(&["api-resources", "-o", "wide", "--api-group=apps"]);
        let deploy = wide
            .lines()
            .find(|l| l.starts_with("deployments "))
            .unwrap_or_else(|| panic!("{wide}"));
        assert!(
            deploy.contains("create,delete,deletecollection,get,list,patch,update,watch"),
            "{wide}"
        );
        assert!(
            deploy.trim_end().ends_with("all"),
            "deployments are in category all: {wide}"
        );
    }
}

#[test]
fn api_versions_lists_every_served_group_version() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok(&["api-versions"]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "admissionregistration.k8s.io/v1",
                "apiextensions.k8s.io/v1",
                "apps/v1",
                "authentication.k8s.io/v1",
                "authorization.k8s.io/v1",
                "autoscaling/v1",
                "autoscaling/v2",
                "batch/v1",
                "certificates.k8s.io/v1",
                "coordination.k8s.io/v1",
                "discovery.k8s.io/v1",
                "events.k8s.io/v1",
                "networking.k8s.io/v1",
                "node.k8s.io/v1",
                "policy/v1",
                "rbac.authorization.k8s.io/v1",
                "scheduling.k8s.io/v1",
                "storage.k8s.io/v1",
                "v1",
            ],
            "kubectl 1.{minor} api-versions"
        );
    }
}

#[test]
fn cluster_info_names_the_control_plane() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok(&["cluster-info"]);
        // kubectl 1.27 colours its output even when not on a terminal.
        let plain = common::strip_ansi(&out);
        assert!(
            plain.contains(&format!(
                "Kubernetes control plane is running at https://127.0.0.1:{}",
                c.port
            )),
            "kubectl 1.{minor} cluster-info:\n{out}"
        );
    }
}

#[test]
fn api_resources_lists_bindings() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let out = k.ok(&["api-resources", "--api-group=", "-o", "name"]);
        assert!(
            out.lines().any(|l| l == "bindings"),
            "kubectl 1.{minor} api-resources --api-group= -o name:\n{out}"
        );
    }
}
