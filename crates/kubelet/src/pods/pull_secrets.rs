//! Registry credentials for an image pull from the pod's
//! `imagePullSecrets` (`kubernetes.io/dockerconfigjson` and the older
//! `kubernetes.io/dockercfg`), matched by registry host as upstream.

use base64::Engine;
use k8s_cri::v1::AuthConfig;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

/// The registry host an image reference names (`docker.io` when none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Normalizes a docker config key (`https://index.docker.io/v1/`,
/// `registry:5000`) to a host for comparison.
fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// The credentials in one docker config (`auths` map or the legacy
/// top-level map) for `registry`.
pub fn auth_for(config: &serde_json::Value, registry: &str) -> Option<AuthConfig> {
    let auths = config.get("auths").unwrap_or(config).as_object()?;
    let (key, entry) = auths.iter().find(|(key, _)| key_host(key) == registry)?;
    let text = |field: &str| {
        entry
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (mut username, mut password) = (text("username"), text("password"));
    let auth = text("auth");
    if username.is_empty()
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth)
        && let Some((user, pass)) = String::from_utf8_lossy(&decoded).split_once(':')
    {
        username = user.to_owned();
        password = pass.to_owned();
    }
    Some(AuthConfig {
        username,
        password,
        auth,
        server_address: key.clone(),
        identity_token: text("identitytoken"),
        registry_token: text("registrytoken"),
    })
}

/// The first credentials among the pod's pull secrets that match the
/// image's registry; missing or malformed secrets are skipped (the pull
/// then goes anonymous, as upstream).
pub async fn credentials(client: &kube::Client, pod: &Pod, image: &str) -> Option<AuthConfig> {
    let refs = pod.spec.as_ref()?.image_pull_secrets.as_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let registry = registry_of(image);
    for r in refs {
        let Ok(Some(secret)) = api.get_opt(&r.name).await else {
            tracing::debug!(secret = %r.name, "image pull secret not found");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let raw = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
            .map(|b| b.0.clone());
        let Some(config) = raw.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            continue;
        };
        if let Some(auth) = auth_for(&config, registry) {
            return Some(auth);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_read_from_image_names() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("quay.io/x/y"), "quay.io");
        assert_eq!(registry_of("localhost:5000/app"), "localhost:5000");
    }

    #[test]
    fn credentials_match_by_host_and_decode_auth() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "registry.example:5000": {"username": "a", "password": "b"}
        }});
        let hub = auth_for(&config, "docker.io").unwrap_or_default();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass")
        );
        let own = auth_for(&config, "registry.example:5000").unwrap_or_default();
        assert_eq!(own.username, "a");
        assert!(auth_for(&config, "quay.io").is_none());
    }
}
