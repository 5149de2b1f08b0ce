#![allow(clippy::unwrap_used)]
//! Pod volumes against a real API server in this process: configMap,
//! secret, downwardAPI, projected, emptyDir and hostPath volumes set up on
//! disk, a ConfigMap update seen through the same path after `refresh`,
//! missing and optional sources, the CRI mounts, and teardown.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_kubelet::volumes::Volumes;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn is_mount_point(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(p) == path)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

#[tokio::test]
async fn volumes_against_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let server = skiff_apiserver::testing::start(&tmp.path().join("server")).await;
    let client = server.client.clone();
    let root = tmp.path().join("kubelet");
    let host_dir = tmp.path().join("host/data");
    let volumes = Volumes::new(root.clone(), client.clone());

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(
        &config_maps,
        json!({"metadata": {"name": "app"}, "data": {"greeting": "hello", "stale": "x"}}),
    )
    .await;
    create(
        &secrets,
        json!({"metadata": {"name": "creds"}, "data": {"password": "czNjcjN0", "user": "YWRtaW4="}}),
    )
    .await;

    let memory_volume = if is_root() {
        json!({"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    } else {
        json!({"name": "mem", "emptyDir": {}})
    };
    // fsGroup needs root (chown to any group).
    let fs_group = is_root().then_some(2000);
    let pod = create(
        &pods,
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "securityContext": {"fsGroup": fs_group},
                "containers": [{
                    "name": "c", "image": "busybox",
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/etc/app"},
                        {"name": "scratch", "mountPath": "/scratch", "subPath": "logs"},
                        {"name": "host", "mountPath": "/host", "readOnly": true},
                    ],
                }],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "app", "defaultMode": 0o640}},
                    {"name": "sec", "secret": {"secretName": "creds", "items": [
                        {"key": "password", "path": "db/password", "mode": 0o400},
                    ]}},
                    {"name": "opt", "configMap": {"name": "absent", "optional": true}},
                    {"name": "down", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    ]}},
                    {"name": "proj", "projected": {"sources": [
                        {"configMap": {"name": "app", "items": [{"key": "greeting", "path": "cm/greeting"}]}},
                        {"secret": {"name": "creds"}},
                        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    ]}},
                    {"name": "scratch", "emptyDir": {}},
                    memory_volume,
                    {"name": "host", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}},
                ],
            },
        }),
    )
    .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let pod_dir = root.join("pods").join(&uid).join("volumes");
    let dir = |plugin: &str, name: &str| -> PathBuf { pod_dir.join(plugin).join(name) };

    let prepared = volumes.setup(&pod).await.unwrap();

    let cfg = dir("kubernetes.io~configmap", "cfg");
    assert_eq!(read(&cfg.join("greeting")), "hello");
    assert_eq!(mode(&cfg.join("greeting")), 0o640);
    assert_eq!(
        std::fs::read_link(cfg.join("greeting")).unwrap(),
        Path::new("..data/greeting")
    );
    let sec = dir("kubernetes.io~secret", "sec");
    assert_eq!(read(&sec.join("db/password")), "s3cr3t");
    if fs_group.is_some() {
        assert_eq!(mode(&sec.join("db/password")), 0o440, "fsGroup reads");
        assert_eq!(
            std::fs::metadata(sec.join("db/password")).unwrap().gid(),
            2000
        );
    } else {
        assert_eq!(mode(&sec.join("db/password")), 0o400);
    }
    assert!(!sec.join("user").exists(), "only the listed items");
    let opt = dir("kubernetes.io~configmap", "opt");
    assert!(opt.is_dir());
    let down = dir("kubernetes.io~downward-api", "down");
    assert_eq!(read(&down.join("labels")), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read(&down.join("name")), "web");
    let proj = dir("kubernetes.io~projected", "proj");
    assert_eq!(read(&proj.join("cm/greeting")), "hello");
    assert_eq!(read(&proj.join("user")), "admin");
    assert_eq!(read(&proj.join("ns")), "default");
    let scratch = dir("kubernetes.io~empty-dir", "scratch");
    assert!(scratch.is_dir());
    let setgid = if fs_group.is_some() { 0o2000 } else { 0 };
    assert_eq!(mode(&scratch), 0o777 | setgid);
    let mem = dir("kubernetes.io~empty-dir", "mem");
    if is_root() {
        assert!(is_mount_point(&mem), "medium: Memory is a tmpfs");
        assert!(is_mount_point(&sec), "secrets stay in memory");
    }
    assert!(host_dir.is_dir());
    assert_eq!(mode(&host_dir), 0o755);

    assert!(volumes.pods_on_disk().await.unwrap().contains(&uid));

    // setup is idempotent (the pod worker retries it).
    volumes.setup(&pod).await.unwrap();

    // Mounts: configMap volumes are read-only, subPath dirs are made.
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let mounts = volumes.mounts(&pod, container, &prepared).unwrap();
    assert_eq!(mounts.len(), 3);
    assert_eq!(mounts[0].host_path, cfg.to_string_lossy());
    assert!(mounts[0].readonly);
    assert!(Path::new(&mounts[1].host_path).ends_with("scratch/logs"));
    assert!(scratch.join("logs").is_dir());
    assert!(!mounts[1].readonly);
    assert!(mounts[2].readonly);

    // An update is visible through the same path after a refresh; a
    // removed key disappears.
    config_maps
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "bonjour", "stale": null}})),
        )
        .await
        .unwrap();
    let before = std::fs::read_link(cfg.join("..data")).unwrap();
    volumes.refresh(&pod, &prepared).await.unwrap();
    assert_eq!(read(&cfg.join("greeting")), "bonjour");
    assert!(std::fs::symlink_metadata(cfg.join("stale")).is_err());
    assert_eq!(read(&proj.join("cm/greeting")), "bonjour");
    assert_ne!(std::fs::read_link(cfg.join("..data")).unwrap(), before);
    // Nothing changed: no new version.
    let current = std::fs::read_link(cfg.join("..data")).unwrap();
    volumes.refresh(&pod, &prepared).await.unwrap();
    assert_eq!(std::fs::read_link(cfg.join("..data")).unwrap(), current);

    // A missing configMap or key is named in the error.
    let missing = create(
        &pods,
        json!({
            "metadata": {"name": "missing"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "cfg", "configMap": {"name": "nope"}}],
            },
        }),
    )
    .await;
    let err = volumes.setup(&missing).await.unwrap_err().to_string();
    assert!(err.contains("configmap \"nope\" not found"), "{err}");
    assert!(err.contains("volume \"cfg\""), "{err}");
    let missing_key = create(
        &pods,
        json!({
            "metadata": {"name": "missing-key"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "s", "secret": {"secretName": "creds", "items": [
                    {"key": "nokey", "path": "x"},
                ]}}],
            },
        }),
    )
    .await;
    let err = volumes.setup(&missing_key).await.unwrap_err().to_string();
    assert!(err.contains("nokey"), "{err}");
    let unbound = create(
        &pods,
        json!({
            "metadata": {"name": "unbound"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}],
            },
        }),
    )
    .await;
    let err = volumes.setup(&unbound).await.unwrap_err().to_string();
    assert!(
        err.contains("persistentvolumeclaim \"claim\" not found"),
        "{err}"
    );

    // A claim without a volume is not bound; a bound claim is its PV's
    // hostPath.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claim_spec = |volume: Option<&str>| {
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": volume,
        })
    };
    create(
        &claims,
        json!({"metadata": {"name": "claim"}, "spec": claim_spec(None)}),
    )
    .await;
    let err = volumes.setup(&unbound).await.unwrap_err().to_string();
    assert!(
        err.contains("persistentvolumeclaim \"claim\" is not bound"),
        "{err}"
    );
    let pv_dir = tmp.path().join("pv");
    create(
        &pvs,
        json!({
            "metadata": {"name": "pv1"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": pv_dir, "type": "DirectoryOrCreate"},
            },
        }),
    )
    .await;
    create(
        &claims,
        json!({"metadata": {"name": "bound"}, "spec": claim_spec(Some("pv1"))}),
    )
    .await;
    claims
        .patch_status(
            "bound",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
    let with_claim = create(
        &pods,
        json!({
            "metadata": {"name": "with-claim"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "bound", "readOnly": true}}],
            },
        }),
    )
    .await;
    let claimed = volumes.setup(&with_claim).await.unwrap();
    assert_eq!(claimed.get("data").unwrap().host_path, pv_dir);
    assert!(pv_dir.is_dir());
    let container = &with_claim.spec.as_ref().unwrap().containers[0];
    let mounts = volumes.mounts(&with_claim, container, &claimed).unwrap();
    assert!(mounts[0].readonly, "the claim's readOnly");

    // Teardown unmounts and removes everything; hostPath data stays.
    volumes.teardown(&uid).await.unwrap();
    assert!(!pod_dir.exists());
    assert!(!is_mount_point(&mem));
    assert!(host_dir.is_dir());
    assert!(!volumes.pods_on_disk().await.unwrap().contains(&uid));
    volumes.teardown(&uid).await.unwrap();

    server.stop().await;
}

/// The `kube-api-access-*` volume the ServiceAccount admission adds: the
/// kubelet writes a TokenRequest token bound to the pod, the CA and the
/// namespace.
#[tokio::test]
async fn service_account_token_is_projected() {
    use base64::Engine;
    use k8s_openapi::api::core::v1::ServiceAccount;

    let tmp = tempfile::tempdir().unwrap();
    let server = skiff_apiserver::testing::start(&tmp.path().join("server")).await;
    let client = server.client.clone();
    let root = tmp.path().join("kubelet");
    let volumes = Volumes::new(root.clone(), client.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(&accounts, json!({"metadata": {"name": "default"}})).await;
    create(
        &config_maps,
        json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "CA"}}),
    )
    .await;
    let pod = create(
        &pods,
        json!({"metadata": {"name": "app"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let spec = pod.spec.clone().unwrap();
    let volume = spec.volumes.unwrap()[0].name.clone();
    assert!(volume.starts_with("kube-api-access-"));
    volumes.setup(&pod).await.unwrap();
    let dir = root
        .join("pods")
        .join(pod.metadata.uid.clone().unwrap())
        .join("volumes/kubernetes.io~projected")
        .join(&volume);
    assert_eq!(read(&dir.join("ca.crt")), "CA");
    assert_eq!(read(&dir.join("namespace")), "default");
    assert_eq!(mode(&dir.join("token")), 0o644);
    let token = read(&dir.join("token"));
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "app");
    assert_eq!(
        claims["kubernetes.io"]["pod"]["uid"].as_str(),
        pod.metadata.uid.as_deref()
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3607
    );
    server.stop().await;
}
