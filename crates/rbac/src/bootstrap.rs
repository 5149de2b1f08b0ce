//! The default ClusterRoles and ClusterRoleBindings a fresh cluster starts
//! with, modelled on upstream's bootstrap policy so that tools and charts
//! that assume `admin`/`edit`/`view`, `system:discovery` and friends work.

use serde_json::{Value, json};

use crate::aggregate::aggregate;
use crate::rule::PolicyRule;

/// Set on every bootstrap object: the server may reconcile it on start.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// `kubernetes.io/bootstrapping: rbac-defaults`, set on every object.
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

const CORE: &str = "";
const APPS: &str = "apps";
const AUTHENTICATION: &str = "authentication.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTIFICATES: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EVENTS: &str = "events.k8s.io";
const EXTENSIONS: &str = "extensions";
const NETWORKING: &str = "networking.k8s.io";
const NODE: &str = "node.k8s.io";
const POLICY: &str = "policy";
const STORAGE: &str = "storage.k8s.io";

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule::new(verbs).groups(&[group]).resources(resources)
}

/// Components record events through both the core and events.k8s.io APIs.
fn events_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create", "update", "patch"], CORE, &["events"]),
        rule(&["create", "update", "patch"], EVENTS, &["events"]),
    ]
}

fn metadata(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAP_LABEL.0.into(), BOOTSTRAP_LABEL.1.into());
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    })
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "rules": rules,
    })
}

/// A ClusterRole whose rules are filled by aggregation from roles carrying
/// `selector_label: "true"`.
fn aggregated_role(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]});
    role
}

fn group(name: &str) -> Value {
    json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": name})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": RBAC_GROUP, "kind": "User", "name": name})
}

fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

/// A ClusterRoleBinding named after the ClusterRole it binds.
fn binding(role: &str, subjects: Vec<Value>) -> Value {
    named_binding(role, role, subjects)
}

fn named_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn aggregate_to_admin() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], AUTHORIZATION, &["localsubjectaccessreviews"]),
        rule(READ_WRITE, RBAC_GROUP, &["roles", "rolebindings"]),
    ]
}

fn aggregate_to_edit() -> Vec<PolicyRule> {
    vec![
        rule(&["impersonate"], CORE, &["serviceaccounts"]),
        rule(
            WRITE,
            CORE,
            &[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ],
        ),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(
            WRITE,
            CORE,
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(
            WRITE,
            APPS,
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, AUTOSCALING, &["horizontalpodautoscalers"]),
        rule(WRITE, BATCH, &["jobs", "cronjobs"]),
        rule(
            WRITE,
            EXTENSIONS,
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(WRITE, POLICY, &["poddisruptionbudgets"]),
        rule(WRITE, NETWORKING, &["networkpolicies", "ingresses"]),
        // Read access to the escalating resources view leaves out.
        rule(
            READ,
            CORE,
            &[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ],
        ),
    ]
}

fn aggregate_to_view() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            CORE,
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            CORE,
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        // Reading namespaces at namespace scope shows which ones you can use.
        rule(READ, CORE, &["namespaces"]),
        rule(READ, DISCOVERY, &["endpointslices"]),
        rule(
            READ,
            APPS,
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(
            READ,
            AUTOSCALING,
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            BATCH,
            &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
        ),
        rule(
            READ,
            EXTENSIONS,
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(
            READ,
            POLICY,
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            NETWORKING,
            &["networkpolicies", "ingresses", "ingresses/status"],
        ),
    ]
}

/// The kubelet's powers; upstream additionally restricts them per node
/// through the Node authorizer, which is why this role is not bound.
fn node_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(
            &["create"],
            AUTHORIZATION,
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, CORE, &["services"]),
        rule(&["create", "get", "list", "watch"], CORE, &["nodes"]),
        rule(&["update", "patch"], CORE, &["nodes/status"]),
        rule(&["update", "patch", "delete"], CORE, &["nodes"]),
        rule(READ, CORE, &["pods"]),
        rule(&["create", "delete"], CORE, &["pods"]),
        rule(&["update", "patch"], CORE, &["pods/status"]),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(READ, CORE, &["secrets", "configmaps"]),
        rule(
            &["get"],
            CORE,
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(
            &["get", "update", "patch"],
            CORE,
            &["persistentvolumeclaims/status"],
        ),
        rule(&["get"], CORE, &["endpoints"]),
        // A joined agent's kube-proxy runs as the node (upstream's gets its
        // own identity); it needs the Services' endpoints.
        rule(&["list", "watch"], CORE, &["endpoints"]),
        rule(&["list", "watch"], DISCOVERY, &["endpointslices"]),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(
            &["create", "get", "list", "watch"],
            CERTIFICATES,
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            COORDINATION,
            &["leases"],
        ),
        rule(&["get"], STORAGE, &["volumeattachments"]),
        rule(READ, STORAGE, &["csidrivers"]),
        rule(READ_WRITE, STORAGE, &["csinodes"]),
        rule(READ, NODE, &["runtimeclasses"]),
    ];
    rules.extend(events_rules());
    rules
}

fn node_proxier_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(&["list", "watch"], CORE, &["services", "endpoints"]),
        rule(READ, CORE, &["nodes"]),
        rule(&["list", "watch"], DISCOVERY, &["endpointslices"]),
    ];
    rules.extend(events_rules());
    rules
}

fn scheduler_rules() -> Vec<PolicyRule> {
    let mut rules = events_rules();
    rules.extend([
        // leader election
        rule(&["create"], COORDINATION, &["leases"]),
        rule(&["get", "update"], COORDINATION, &["leases"]).names(&["kube-scheduler"]),
        rule(READ, CORE, &["nodes"]),
        rule(READ, CORE, &["pods"]),
        rule(&["delete"], CORE, &["pods"]),
        rule(&["create"], CORE, &["pods/binding", "bindings"]),
        rule(&["patch", "update"], CORE, &["pods/status"]),
        rule(
            READ,
            CORE,
            &[
                "replicationcontrollers",
                "services",
                "namespaces",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
        ),
        rule(READ, APPS, &["replicasets", "statefulsets"]),
        rule(READ, POLICY, &["poddisruptionbudgets"]),
        rule(
            READ,
            STORAGE,
            &[
                "storageclasses",
                "csinodes",
                "csidrivers",
                "csistoragecapacities",
            ],
        ),
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
    ]);
    rules
}

/// Upstream's role plus write access to every resource: skiff runs all
/// controllers under the controller manager's own identity instead of one
/// ServiceAccount per controller, and the garbage collector and namespace
/// controller must delete anything. `escalate`, `bind` and `impersonate`
/// stay out.
fn controller_manager_rules() -> Vec<PolicyRule> {
    let mut rules = events_rules();
    rules.extend([
        rule(&["create"], COORDINATION, &["leases"]),
        rule(&["get", "update"], COORDINATION, &["leases"]).names(&["kube-controller-manager"]),
        rule(&["create"], CORE, &["secrets", "serviceaccounts"]),
        rule(&["delete"], CORE, &["secrets"]),
        rule(
            &["get"],
            CORE,
            &["namespaces", "secrets", "serviceaccounts"],
        ),
        rule(&["update"], CORE, &["secrets", "serviceaccounts"]),
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
        rule(&["list", "watch"], "*", &["*"]),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(READ_WRITE, "*", &["*"]),
        rule(&["approve", "sign"], CERTIFICATES, &["signers"]),
    ]);
    rules
}

/// The bootstrap ClusterRoles, with the aggregated roles' rules already
/// filled in (the aggregation controller then finds nothing to change).
pub fn bootstrap_cluster_roles() -> Vec<Value> {
    let health_urls = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let mut discovery_urls = vec![
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
    ];
    discovery_urls.extend(health_urls);
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![
                rule(&["*"], "*", &["*"]),
                PolicyRule::new(&["*"]).urls(&["*"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![PolicyRule::new(&["get"]).urls(&discovery_urls)],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![PolicyRule::new(&["get"]).urls(&health_urls)],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![PolicyRule::new(&["get"]).urls(&[
                "/metrics",
                "/metrics/slis",
                "/livez",
                "/readyz",
                "/healthz",
                "/livez/*",
                "/readyz/*",
                "/healthz/*",
            ])],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    AUTHORIZATION,
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], AUTHENTICATION, &["selfsubjectreviews"]),
            ],
        ),
        aggregated_role("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated_role("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated_role("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            aggregate_to_admin(),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            aggregate_to_edit(),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            aggregate_to_view(),
        ),
        cluster_role("system:node", &[], node_rules()),
        cluster_role("system:node-proxier", &[], node_proxier_rules()),
        cluster_role("system:kube-scheduler", &[], scheduler_rules()),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            controller_manager_rules(),
        ),
        cluster_role(
            "system:kube-dns",
            &[],
            vec![
                rule(&["list", "watch"], CORE, &["endpoints", "services"]),
                rule(&["list", "watch"], DISCOVERY, &["endpointslices"]),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                CERTIFICATES,
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["create"],
                CERTIFICATES,
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["create"],
                CERTIFICATES,
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
                rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
            ],
        ),
    ];
    for (name, rules) in aggregate(&roles) {
        if let Some(role) = roles
            .iter_mut()
            .find(|r| r["metadata"]["name"] == name.as_str())
        {
            role["rules"] = json!(rules);
        }
    }
    roles
}

/// The bootstrap ClusterRoleBindings. `system:node` is deliberately not
/// bound: nodes get their powers from the Node authorizer, as upstream.
pub fn bootstrap_cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", vec![group("system:masters")]),
        binding("system:discovery", vec![group("system:authenticated")]),
        binding(
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        binding("system:basic-user", vec![group("system:authenticated")]),
        binding("system:monitoring", vec![group("system:monitoring")]),
        binding("system:node-proxier", vec![user("system:kube-proxy")]),
        binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        binding(
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        binding(
            "system:kube-dns",
            vec![
                service_account("kube-system", "kube-dns"),
                // skiff's DNS inside `skiff server`.
                user("system:skiff-dns"),
            ],
        ),
        // Node join, as kubeadm binds it: a bootstrap token may ask for a
        // node client certificate, which is then approved automatically;
        // nodes may renew their own.
        named_binding(
            "skiff:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![group("system:bootstrappers")],
        ),
        named_binding(
            "skiff:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![group("system:bootstrappers")],
        ),
        named_binding(
            "skiff:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group("system:nodes")],
        ),
    ]
}

/// Every bootstrap object: the ClusterRoles, then the ClusterRoleBindings.
pub fn bootstrap_policy() -> Vec<Value> {
    let mut out = bootstrap_cluster_roles();
    out.extend(bootstrap_cluster_role_bindings());
    out
}

#[cfg(test)]
mod tests;
