//! Objects every cluster has: the system namespaces and the `kubernetes`
//! Service with its Endpoints and EndpointSlice pointing at this server.

use std::net::IpAddr;

use bytes::Bytes;
use serde_json::{Value, json};
use skiff_store::{Store, StoreError};

use crate::object;

pub const NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn with_identity(mut obj: Value) -> Value {
    let meta = object::meta_mut(&mut obj);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    obj
}

async fn ensure(store: &dyn Store, key: &str, obj: Value) -> Result<(), StoreError> {
    if store.get(key).await?.is_some() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&with_identity(obj))
        .map(Bytes::from)
        .unwrap_or_default();
    match store.create(key, bytes, None).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates what is missing; safe to run at every start and from several
/// servers at once.
pub async fn run(
    store: &dyn Store,
    advertise: IpAddr,
    port: u16,
    service_ip: &str,
    ca_pem: &str,
) -> Result<(), StoreError> {
    for name in NAMESPACES {
        ensure(store, &format!("/namespaces/{name}"), namespace(name)).await?;
    }
    // Upstream's default roles and bindings (created when missing).
    for obj in skiff_rbac::bootstrap_policy() {
        let plural = match obj.get("kind").and_then(Value::as_str) {
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            _ => continue,
        };
        let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let key = format!("/rbac.authorization.k8s.io/{plural}/{name}");
        ensure(store, &key, obj.clone()).await?;
    }
    // Upstream's system PriorityClasses.
    for (name, value, description) in crate::registry::priority::SYSTEM_CLASSES {
        let key = format!("/scheduling.k8s.io/priorityclasses/{name}");
        let class = crate::registry::priority::system_class(name, value, description);
        ensure(store, &key, class).await?;
    }
    // Claim the kubernetes Service's address so the allocator never hands it out.
    match store
        .create(
            &format!("/ranges/serviceips/{service_ip}"),
            Bytes::new(),
            None,
        )
        .await
    {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    ensure(
        store,
        "/services/default/kubernetes",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "spec": {
                "type": "ClusterIP", "clusterIP": service_ip, "clusterIPs": [service_ip],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        }),
    )
    .await?;
    let ip = advertise.to_string();
    ensure(
        store,
        "/endpoints/default/kubernetes",
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }),
    )
    .await?;
    dns_publisher(store).await?;
    cluster_info(
        store,
        &format!("https://{}", std::net::SocketAddr::new(advertise, port)),
        ca_pem,
    )
    .await?;
    ensure(
        store,
        "/discovery.k8s.io/endpointslices/default/kubernetes",
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "skiff-apiserver"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }),
    )
    .await?;
    Ok(())
}

/// Whether the bootstrap objects exist (part of readiness).
pub async fn present(store: &dyn Store) -> bool {
    for key in ["/namespaces/default", "/services/default/kubernetes"] {
        if !matches!(store.get(key).await, Ok(Some(_))) {
            return false;
        }
    }
    true
}

/// A Role in `namespace` and its RoleBinding (same name) to one user.
async fn role_for_user(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    rules: Value,
    user: &str,
) -> Result<(), StoreError> {
    let rbac = "rbac.authorization.k8s.io";
    ensure(
        store,
        &format!("/{rbac}/roles/{namespace}/{name}"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules,
        }),
    )
    .await?;
    ensure(
        store,
        &format!("/{rbac}/rolebindings/{namespace}/{name}"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"apiGroup": rbac, "kind": "User", "name": user}],
        }),
    )
    .await
}

/// skiff's DNS publishes the `kube-dns` Service and its endpoints in
/// kube-system; this Role (bound to its identity) lets it, and no more.
async fn dns_publisher(store: &dyn Store) -> Result<(), StoreError> {
    let verbs = ["get", "create", "update", "patch"];
    role_for_user(
        store,
        "kube-system",
        "skiff:dns-publisher",
        json!([
            {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": verbs},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": verbs},
        ]),
        "system:skiff-dns",
    )
    .await
}

/// The `cluster-info` ConfigMap in kube-public (kubeadm's): a kubeconfig
/// with the CA and the server address, readable anonymously so that a
/// joining node can fetch it before it trusts the server; it checks the
/// CA against its `--ca-cert-hash` and the signatures the bootstrap signer
/// adds with each token.
async fn cluster_info(store: &dyn Store, server_url: &str, ca_pem: &str) -> Result<(), StoreError> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: {ca}\n    server: {server_url}\ncontexts: null\ncurrent-context: \"\"\npreferences: {{}}\nusers: null\n"
    );
    ensure(
        store,
        "/configmaps/kube-public/cluster-info",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": kubeconfig},
        }),
    )
    .await?;
    role_for_user(
        store,
        "kube-public",
        "skiff:bootstrap-signer-clusterinfo",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}]),
        "system:anonymous",
    )
    .await
}
