//! The bootstrap signer (`bootstrap-signer-controller`): keeps one
//! `jws-kubeconfig-<token-id>` entry in `kube-public/cluster-info` per
//! valid signing token — a detached JWS (HS256, keyed by the whole token)
//! of the `kubeconfig` entry — and removes entries of tokens that are
//! gone.

use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{NAMESPACE, SECRET_TYPE, Token};

/// The ConfigMap joining nodes read.
pub const CLUSTER_INFO: &str = "cluster-info";
pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
/// Entries the signer owns start with this.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";
/// A full pass this often even without changes (expiries are not events).
const RESYNC: Duration = Duration::from_secs(30);

/// A detached JWS (`header..signature`) of `content`, as upstream's
/// `ComputeDetachedSignature`: HS256 keyed by `<id>.<secret>`, `kid` = id.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(json!({"alg": "HS256", "kid": token_id})
        .to_string()
        .as_bytes());
    let payload = b64(content.as_bytes());
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        format!("{token_id}.{token_secret}").as_bytes(),
    );
    let tag = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", b64(tag.as_ref()))
}

/// The signature entries `cluster-info` should have for these tokens.
pub fn wanted_signatures(kubeconfig: &str, tokens: &[Token], now: Timestamp) -> Map<String, Value> {
    tokens
        .iter()
        .filter(|t| t.for_signing() && !t.expired(now))
        .map(|t| {
            (
                format!("{SIGNATURE_PREFIX}{}", t.id),
                json!(detached_signature(kubeconfig, &t.id, &t.secret)),
            )
        })
        .collect()
}

async fn sync(client: &kube::Client) -> Result<(), kube::Error> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), CLUSTER_INFO_NAMESPACE);
    let Some(info) = maps.get_opt(CLUSTER_INFO).await? else {
        return Ok(());
    };
    let data = info.data.unwrap_or_default();
    let Some(kubeconfig) = data.get("kubeconfig") else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let listed = secrets
        .list(&ListParams::default().fields(&format!("type={SECRET_TYPE}")))
        .await?;
    let tokens: Vec<Token> = listed.items.iter().filter_map(Token::from_secret).collect();
    let wanted = wanted_signatures(kubeconfig, &tokens, Timestamp::now());
    let mut patch = Map::new();
    for (k, v) in &data {
        if k.starts_with(SIGNATURE_PREFIX) && wanted.get(k) != Some(&json!(v)) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    for (k, v) in &wanted {
        if data.get(k).map(|d| json!(d)).as_ref() != Some(v) {
            patch.insert(k.clone(), v.clone());
        }
    }
    if patch.is_empty() {
        return Ok(());
    }
    tracing::info!(entries = patch.len(), "re-signing cluster-info");
    maps.patch(
        CLUSTER_INFO,
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": patch})),
    )
    .await?;
    Ok(())
}

/// Runs the controller until `shutdown`: a pass at start, after each
/// change of a token or of `cluster-info`, and every 30 s.
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), kube::Error> {
    let secrets = watcher(
        Api::<Secret>::namespaced(client.clone(), NAMESPACE),
        watcher::Config::default().fields(&format!("type={SECRET_TYPE}")),
    )
    .map(|_| ())
    .boxed();
    let info = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), CLUSTER_INFO_NAMESPACE),
        watcher::Config::default().fields(&format!("metadata.name={CLUSTER_INFO}")),
    )
    .map(|_| ())
    .boxed();
    let mut changes = futures::stream::select(secrets, info);
    loop {
        if let Err(e) = sync(&client).await {
            tracing::warn!(error = %e, "signing cluster-info failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = changes.next() => {
                // Let a burst of events settle into one pass.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, usages: &[&str], expiration: Option<&str>) -> Token {
        Token {
            id: id.into(),
            secret: "0123456789abcdef".into(),
            expiration: expiration.map(|e| e.parse().unwrap()),
            usages: usages.iter().map(|s| s.to_string()).collect(),
            description: None,
        }
    }

    #[test]
    fn signatures_are_detached_hs256_jws() {
        let sig = detached_signature("content", "abcdef", "0123456789abcdef");
        let parts: Vec<&str> = sig.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[1].is_empty(), "payload must be detached: {sig}");
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "kid": "abcdef"}));
        assert_ne!(
            sig,
            detached_signature("content", "abcdef", "0123456789abcdee")
        );
        assert_ne!(
            sig,
            detached_signature("other", "abcdef", "0123456789abcdef")
        );
    }

    #[test]
    fn only_live_signing_tokens_sign() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let tokens = [
            token("aaaaaa", &["signing", "authentication"], None),
            token("bbbbbb", &["authentication"], None),
            token("cccccc", &["signing"], Some("2025-01-01T00:00:00Z")),
            token("dddddd", &["signing"], Some("2027-01-01T00:00:00Z")),
        ];
        let wanted = wanted_signatures("kc", &tokens, now);
        let keys: Vec<&String> = wanted.keys().collect();
        assert_eq!(keys, ["jws-kubeconfig-aaaaaa", "jws-kubeconfig-dddddd"]);
    }
}
