#![allow(clippy::unwrap_used)]
//! Service account tokens: TokenRequest's JWT and its claims, the token
//! authenticating as the service account, revocation by deleting the pod
//! it is bound to, expired and forged tokens (401), TokenReview with
//! audiences, and the ServiceAccount admission of pods.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

/// A client of the server in `dir` that authenticates with `token`.
async fn client_with_token(dir: &std::path::Path, token: &str) -> kube::Client {
    let admin = std::fs::read_to_string(dir.join("admin.kubeconfig")).unwrap();
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap()
            .trim()
            .to_owned()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        field("server:"),
        field("certificate-authority-data:")
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn post(client: &kube::Client, path: &str, body: Value) -> Result<Value, kube::Error> {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(request).await
}

fn status_code(r: Result<Value, kube::Error>) -> u16 {
    match r {
        Err(kube::Error::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn whoami(client: &kube::Client) -> Result<Value, kube::Error> {
    post(
        client,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await
}

async fn request_token(client: &kube::Client, sa: &str, spec: Value) -> Result<Value, kube::Error> {
    post(
        client,
        &format!("/api/v1/namespaces/default/serviceaccounts/{sa}/token"),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
    )
    .await
}

/// A protobuf field of wire type 2 (bytes, strings, messages).
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).unwrap()];
    out.extend_from_slice(bytes);
    out
}

/// A TokenRequest as typed clients send it in protobuf: audience
/// `vault`, 1200 s.
fn protobuf_token_request() -> Vec<u8> {
    let spec = [field(1, b"vault"), vec![0x20, 0xb0, 0x09]].concat();
    let raw = field(2, &spec);
    let type_meta = [
        field(1, b"authentication.k8s.io/v1"),
        field(2, b"TokenRequest"),
    ]
    .concat();
    let unknown = [field(1, &type_meta), field(2, &raw)].concat();
    [b"k8s\0".as_slice(), &unknown].concat()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn create_sa(client: &kube::Client, name: &str, automount: Option<bool>) -> ServiceAccount {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    sa.automount_service_account_token = automount;
    api.create(&PostParams::default(), &sa).await.unwrap()
}

async fn create_pod(client: &kube::Client, spec: Value) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut pod = json!({"metadata": {"generateName": "p-"}, "spec": spec});
    if pod["spec"]["containers"].is_null() {
        pod["spec"]["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_authentication_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let admin = server.client.clone();
    let sa = create_sa(&admin, "robot", None).await;
    let sa_uid = sa.metadata.uid.unwrap();

    // TokenRequest: upstream's claims and defaults.
    let answer = request_token(&admin, "robot", json!({})).await.unwrap();
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    let token = answer["status"]["token"].as_str().unwrap().to_owned();
    assert!(answer["status"]["expirationTimestamp"].is_string());
    let claims = claims_of(&token);
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(
        claims["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].is_string());
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"],
        json!({"name": "robot", "uid": sa_uid})
    );

    // The protobuf body typed clients may send.
    let request = http::Request::post("/api/v1/namespaces/default/serviceaccounts/robot/token")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header("accept", "application/json")
        .body(protobuf_token_request())
        .unwrap();
    let answer: Value = admin.request(request).await.unwrap();
    assert_eq!(answer["spec"]["expirationSeconds"], 1200, "{answer}");
    let claims = claims_of(answer["status"]["token"].as_str().unwrap());
    assert_eq!(claims["aud"], json!(["vault"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1200
    );

    // Validation: a missing service account, too short a lifetime.
    assert_eq!(
        status_code(request_token(&admin, "nobody", json!({})).await),
        404
    );
    assert_eq!(
        status_code(request_token(&admin, "robot", json!({"expirationSeconds": 60})).await),
        422
    );

    // The token authenticates as the service account.
    let as_sa = client_with_token(dir.path(), &token).await;
    let who = whoami(&as_sa).await.unwrap();
    let user = &who["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:robot");
    assert_eq!(user["uid"], json!(sa_uid));
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );

    // A token bound to a pod carries the pod and dies with it.
    let pod = create_pod(&admin, json!({"serviceAccountName": "robot"}))
        .await
        .unwrap();
    let pod_name = pod.metadata.name.clone().unwrap();
    let pod_uid = pod.metadata.uid.clone().unwrap();
    let wrong_uid = request_token(
        &admin,
        "robot",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": "nope"}}),
    )
    .await;
    assert_eq!(status_code(wrong_uid), 409);
    let bound = request_token(
        &admin,
        "robot",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": pod_uid}}),
    )
    .await
    .unwrap();
    let bound = bound["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims_of(&bound)["kubernetes.io"]["pod"],
        json!({"name": pod_name, "uid": pod_uid})
    );
    let as_pod = client_with_token(dir.path(), &bound).await;
    let who = whoami(&as_pod).await.unwrap();
    assert_eq!(
        who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!([pod_name])
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    pods.delete(&pod_name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let mut revoked = false;
    for _ in 0..50 {
        if whoami(&as_pod).await.is_err() {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "the token outlived its pod");
    assert_eq!(status_code(whoami(&as_pod).await), 401);
    // The unbound token still works.
    whoami(&as_sa).await.unwrap();

    // Bound to a secret: the same.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(admin.clone(), "default");
    let secret = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s1"}})).unwrap(),
        )
        .await
        .unwrap();
    let by_secret = request_token(
        &admin,
        "robot",
        json!({"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s1", "uid": secret.metadata.uid}}),
    )
    .await
    .unwrap();
    let by_secret = by_secret["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims_of(&by_secret)["kubernetes.io"]["secret"]["name"],
        "s1"
    );
    let as_secret = client_with_token(dir.path(), &by_secret).await;
    whoami(&as_secret).await.unwrap();
    secrets
        .delete("s1", &DeleteParams::default())
        .await
        .unwrap();
    let mut revoked = false;
    for _ in 0..50 {
        if whoami(&as_secret).await.is_err() {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "the token outlived its secret");
    // Other kinds cannot be bound.
    let configmap = request_token(
        &admin,
        "robot",
        json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}),
    )
    .await;
    assert_eq!(status_code(configmap), 400);

    // Expired, foreign-audience and forged tokens: 401.
    let now = jiff::Timestamp::now().as_second();
    let mut expired = claims_of(&token);
    expired["iat"] = json!(now - 7200);
    expired["nbf"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let expired = skiff_apiserver::testing::sign_service_account_token(dir.path(), &expired);
    let client = client_with_token(dir.path(), &expired).await;
    assert_eq!(status_code(whoami(&client).await), 401);
    let vault = request_token(&admin, "robot", json!({"audiences": ["vault"]}))
        .await
        .unwrap();
    let vault = vault["status"]["token"].as_str().unwrap().to_owned();
    let client = client_with_token(dir.path(), &vault).await;
    assert_eq!(status_code(whoami(&client).await), 401);
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(86));
    let client = client_with_token(dir.path(), &forged).await;
    assert_eq!(status_code(whoami(&client).await), 401);

    // TokenReview: the API audiences by default, or the ones asked for.
    let review = |token: &str, audiences: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "spec": {"token": token, "audiences": audiences}})
    };
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let r = post(&admin, path, review(&token, json!([]))).await.unwrap();
    assert_eq!(r["status"]["authenticated"], true);
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    let r = post(&admin, path, review(&vault, json!(["vault"])))
        .await
        .unwrap();
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["audiences"], json!(["vault"]));
    let r = post(&admin, path, review(&vault, json!([]))).await.unwrap();
    assert_eq!(r["status"]["authenticated"], false);
    let r = post(&admin, path, review(&bound, json!([]))).await.unwrap();
    assert_eq!(r["status"]["authenticated"], false);

    // Deleting the service account revokes its tokens.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    let mut revoked = false;
    for _ in 0..50 {
        if whoami(&as_sa).await.is_err() {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "the token outlived its service account");
    server.stop().await;
}

fn mounts(pod: &Pod) -> Vec<(String, String)> {
    let spec = pod.spec.clone().unwrap();
    spec.init_containers
        .unwrap_or_default()
        .into_iter()
        .chain(spec.containers)
        .flat_map(|c| c.volume_mounts.unwrap_or_default())
        .map(|m| (m.name, m.mount_path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_the_service_account_and_its_token_volume() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let admin = server.client.clone();
    const PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

    // No `default` service account (no controller here): admitted as
    // `default`, without a token volume.
    let pod = create_pod(&admin, json!({})).await.unwrap();
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(spec.service_account.as_deref(), Some("default"));
    assert!(spec.volumes.unwrap_or_default().is_empty());

    // With it: the projected volume, mounted in every container.
    create_sa(&admin, "default", None).await;
    let pod = create_pod(
        &admin,
        json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
        }),
    )
    .await
    .unwrap();
    let volumes = pod.spec.clone().unwrap().volumes.unwrap();
    assert_eq!(volumes.len(), 1);
    let volume = serde_json::to_value(&volumes[0]).unwrap();
    let name = volume["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("kube-api-access-"), "{name}");
    assert_eq!(volume["projected"]["defaultMode"], 420);
    let sources = &volume["projected"]["sources"];
    assert_eq!(
        sources[0]["serviceAccountToken"],
        json!({"expirationSeconds": 3607, "path": "token"})
    );
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(mounts(&pod), vec![(name.clone(), PATH.to_owned()); 3]);

    // Opting out, on the pod or on the service account.
    let pod = create_pod(&admin, json!({"automountServiceAccountToken": false}))
        .await
        .unwrap();
    assert!(pod.spec.unwrap().volumes.unwrap_or_default().is_empty());
    create_sa(&admin, "quiet", Some(false)).await;
    let pod = create_pod(&admin, json!({"serviceAccountName": "quiet"}))
        .await
        .unwrap();
    assert!(pod.spec.unwrap().volumes.unwrap_or_default().is_empty());

    // The service account's image pull secrets, unless the pod names its
    // own.
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let puller =
        json!({"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "registry"}]});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(puller).unwrap(),
    )
    .await
    .unwrap();
    let pod = create_pod(&admin, json!({"serviceAccountName": "puller"}))
        .await
        .unwrap();
    let secrets = pod.spec.unwrap().image_pull_secrets.unwrap();
    assert_eq!(secrets[0].name, "registry");
    let pod = create_pod(
        &admin,
        json!({"serviceAccountName": "puller", "imagePullSecrets": [{"name": "own"}]}),
    )
    .await
    .unwrap();
    let secrets = pod.spec.unwrap().image_pull_secrets.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].name, "own");

    // A named service account that does not exist: 403.
    let err = create_pod(&admin, json!({"serviceAccountName": "ghost"}))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains(
            r#"error looking up service account default/ghost: serviceaccount "ghost" not found"#
        ),
        "{}",
        status.message
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_secret_tokens_work_while_their_secret_exists() {
    use k8s_openapi::api::core::v1::Secret;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let admin = server.client.clone();
    let sa = create_sa(&admin, "legacy", None).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "legacy-token", "annotations": {"kubernetes.io/service-account.name": "legacy"}},
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let data = created.data.unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert_eq!(data["namespace"].0, b"default");
    assert!(String::from_utf8_lossy(&data["ca.crt"].0).contains("BEGIN CERTIFICATE"));
    assert_eq!(
        created.metadata.annotations.unwrap()["kubernetes.io/service-account.uid"],
        sa.metadata.uid.clone().unwrap()
    );
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], "kubernetes/serviceaccount");
    assert_eq!(claims["sub"], "system:serviceaccount:default:legacy");
    assert!(claims.get("exp").is_none(), "legacy tokens do not expire");

    let as_sa = client_with_token(dir.path(), &token).await;
    let me = whoami(&as_sa).await.unwrap();
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:default:legacy"
    );
    // A secret of this type must name its service account.
    let unnamed: Secret = serde_json::from_value(json!({
        "metadata": {"name": "unnamed"}, "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    let e = secrets
        .create(&PostParams::default(), &unnamed)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 422));
    // Deleting the secret revokes the token.
    secrets
        .delete("legacy-token", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_code(whoami(&as_sa).await), 401);
}
