#![allow(clippy::unwrap_used)]
//! The admission plugins as clients meet them: NamespaceLifecycle (missing
//! and terminating namespaces, immortal namespaces), LimitRanger
//! (defaults, bounds), Priority (classes, the system classes, unknown
//! class), PodSecurity (enforce refuses, warn sends a `Warning` header,
//! workloads are only warned about), RBAC escalation prevention (only
//! what one holds may be granted, unless one may `escalate`/`bind`).

mod common;

use serde_json::{Value, json};

struct Answer {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

async fn send(client: &kube::Client, method: &str, path: &str, body: Value) -> Answer {
    send_as(client, None, method, path, body).await
}

/// Like [`send`], impersonating `user` when given.
async fn send_as(
    client: &kube::Client,
    user: Option<&str>,
    method: &str,
    path: &str,
    body: Value,
) -> Answer {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(user) = user {
        request = request.header("impersonate-user", user);
    }
    let request = request.body(serde_json::to_vec(&body).unwrap()).unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    Answer {
        code,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    }
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn plain_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "busybox"}]})
}

async fn namespace(client: &kube::Client, name: &str, labels: Value) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let a = send(client, "POST", "/api/v1/namespaces", ns).await;
    assert_eq!(a.code, 201, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(a.code, 404);
    assert_eq!(a.body["message"], "namespaces \"nowhere\" not found");

    for name in ["default", "kube-system", "kube-public"] {
        let a = send(
            &client,
            "DELETE",
            &format!("/api/v1/namespaces/{name}"),
            json!({}),
        )
        .await;
        assert_eq!(a.code, 403, "{}", a.body);
        assert_eq!(
            a.body["message"],
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
    }

    // A namespace being deleted (held by its finalizer: no controller
    // here) takes no new content.
    namespace(&client, "doomed", json!({})).await;
    let a = send(&client, "DELETE", "/api/v1/namespaces/doomed", json!({})).await;
    assert_eq!(a.code, 200, "{}", a.body);
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/doomed/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}),
    )
    .await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(
        a.body["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let lr = json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
             "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}},
            {"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}},
        ]},
    });
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/limitranges",
        lr,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let path = "/api/v1/namespaces/default/pods";
    let a = send(&client, "POST", path, pod("small", plain_spec())).await;
    assert_eq!(a.code, 201, "{}", a.body);
    let resources = &a.body["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m");
    assert_eq!(resources["limits"]["memory"], "128Mi");
    assert_eq!(resources["requests"]["cpu"], "100m");
    assert_eq!(resources["requests"]["memory"], "128Mi");
    assert_eq!(
        a.body["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let big = json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"limits": {"cpu": "2"}}}]});
    let a = send(&client, "POST", path, pod("big", big)).await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}});
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/persistentvolumeclaims",
        pvc,
    )
    .await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 5Gi"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_classes_set_pod_priority() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let classes = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let a = send(
        &client,
        "GET",
        &format!("{classes}/system-node-critical"),
        json!(null),
    )
    .await;
    assert_eq!(a.code, 200);
    assert_eq!(a.body["value"], 2_000_001_000);
    let a = send(
        &client,
        "GET",
        &format!("{classes}/system-cluster-critical"),
        json!(null),
    )
    .await;
    assert_eq!(a.body["value"], 2_000_000_000);

    let class = |name: &str, value: i64, default: bool| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default,
            "preemptionPolicy": "Never"})
    };
    assert_eq!(
        send(&client, "POST", classes, class("high", 1000, false))
            .await
            .code,
        201
    );
    assert_eq!(
        send(&client, "POST", classes, class("base", 10, true))
            .await
            .code,
        201
    );
    let a = send(&client, "POST", classes, class("other", 20, true)).await;
    assert_eq!(a.code, 403);
    assert_eq!(
        a.body["message"],
        "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass base is already marked as default. Only one default can exist"
    );

    let path = "/api/v1/namespaces/default/pods";
    let mut spec = plain_spec();
    spec["priorityClassName"] = json!("high");
    let a = send(&client, "POST", path, pod("important", spec)).await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.body["spec"]["priority"], 1000);
    assert_eq!(a.body["spec"]["preemptionPolicy"], "Never");

    let a = send(&client, "POST", path, pod("ordinary", plain_spec())).await;
    assert_eq!(a.body["spec"]["priority"], 10);
    assert_eq!(a.body["spec"]["priorityClassName"], "base");

    let mut spec = plain_spec();
    spec["priorityClassName"] = json!("missing");
    let a = send(&client, "POST", path, pod("lost", spec)).await;
    assert_eq!(a.code, 403);
    assert_eq!(
        a.body["message"],
        "pods \"lost\" is forbidden: no PriorityClass with name missing was found"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_enforces_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    namespace(
        &client,
        "locked",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    namespace(
        &client,
        "watched",
        json!({"pod-security.kubernetes.io/enforce": "baseline",
               "pod-security.kubernetes.io/warn": "restricted",
               "pod-security.kubernetes.io/warn-version": "v1.33"}),
    )
    .await;
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/locked/pods",
        pod("loose", plain_spec()),
    )
    .await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "pods \"loose\" is forbidden: violates PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    let tight = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
    });
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/locked/pods",
        pod("tight", tight),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // Baseline enforced, restricted warned about.
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/watched/pods",
        pod("warned", plain_spec()),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert!(
        a.warnings[0].starts_with(
            "299 - \"would violate PodSecurity \\\"restricted:v1.33\\\": allowPrivilegeEscalation != false"
        ),
        "{}",
        a.warnings[0]
    );
    let mut privileged = plain_spec();
    privileged["containers"][0]["securityContext"] = json!({"privileged": true});
    let a = send(
        &client,
        "POST",
        "/api/v1/namespaces/watched/pods",
        pod("privileged", privileged.clone()),
    )
    .await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "pods \"privileged\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
    );

    // A Deployment is admitted, with a warning.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": privileged}},
    });
    let a = send(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/locked/deployments",
        deployment,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert!(
        a.warnings[0].contains(
            "would violate PodSecurity \\\"restricted:latest\\\": privileged (container \\\"c\\\""
        ),
        "{}",
        a.warnings[0]
    );
    server.stop().await;
}

/// Retries `attempt` until it answers `code` (the authorizer follows RBAC
/// changes through the watch cache, a moment after they are written).
async fn eventually(code: u16, mut attempt: impl AsyncFnMut() -> Answer) -> Answer {
    let mut last = attempt().await;
    for _ in 0..100 {
        if last.code == code {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        last = attempt().await;
    }
    panic!("expected {code}, got {}: {}", last.code, last.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_writes_cannot_grant_more_than_the_writer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    // bob may manage roles and bindings in `default`, and read pods.
    let manager = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "manager"},
    "rules": [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "update", "get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]});
    let a = send(
        &client,
        "POST",
        &format!("{rbac}/namespaces/default/roles"),
        manager,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let binding = |name: &str, kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}]})
    };
    let bindings = format!("{rbac}/namespaces/default/rolebindings");
    let a = send(
        &client,
        "POST",
        &bindings,
        binding("bob-manager", "Role", "manager"),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);

    let reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let roles = format!("{rbac}/namespaces/default/roles");
    eventually(201, async || {
        send_as(&client, Some("bob"), "POST", &roles, reader.clone()).await
    })
    .await;

    let deleter = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "deleter"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]});
    let a = send_as(&client, Some("bob"), "POST", &roles, deleter.clone()).await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "roles.rbac.authorization.k8s.io \"deleter\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
    );
    // Binding the `admin` ClusterRole bob does not hold is refused too.
    let a = send_as(
        &client,
        Some("bob"),
        "POST",
        &bindings,
        binding("bob-admin", "ClusterRole", "admin"),
    )
    .await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        a.body
    );

    // With `escalate` on roles, bob may.
    let escalator = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "escalator"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]});
    assert_eq!(send(&client, "POST", &roles, escalator).await.code, 201);
    assert_eq!(
        send(
            &client,
            "POST",
            &bindings,
            binding("bob-escalator", "Role", "escalator")
        )
        .await
        .code,
        201
    );
    eventually(201, async || {
        send_as(&client, Some("bob"), "POST", &roles, deleter.clone()).await
    })
    .await;
    server.stop().await;
}
