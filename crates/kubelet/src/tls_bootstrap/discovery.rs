//! Token discovery: the CA from `kube-public/cluster-info`, fetched
//! without trusting the server, accepted only if its signature with our
//! token verifies and its public key matches the pin.

use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::{JoinError, ca_hash};

fn fail(message: impl Into<String>) -> JoinError {
    JoinError::Discovery(message.into())
}

/// Whether `signature` (a detached HS256 JWS) signs `content` with the
/// token `<id>.<secret>`.
pub fn verify_signature(
    signature: &str,
    content: &str,
    token_id: &str,
    token_secret: &str,
) -> bool {
    let mut parts = signature.split('.');
    let (Some(header), Some(""), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(header_json) = b64.decode(header) else {
        return false;
    };
    let Ok(header_value) = serde_json::from_slice::<serde_json::Value>(&header_json) else {
        return false;
    };
    if header_value.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return false;
    }
    let Ok(tag) = b64.decode(tag) else {
        return false;
    };
    let signed = format!("{header}.{}", b64.encode(content));
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        format!("{token_id}.{token_secret}").as_bytes(),
    );
    ring::hmac::verify(&key, signed.as_bytes(), &tag).is_ok()
}

/// The CA (PEM) inside cluster-info's kubeconfig.
fn ca_of(kubeconfig: &str) -> Result<String, JoinError> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| fail(format!("cluster-info holds no readable kubeconfig: {e}")))?;
    let data = parsed
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .find_map(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| fail("cluster-info names no CA"))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| fail("cluster-info's CA is not base64"))?;
    String::from_utf8(pem).map_err(|_| fail("cluster-info's CA is not PEM"))
}

/// Checks a fetched cluster-info and returns the CA it vouches for.
pub fn check(info: &ConfigMap, token: &str, pin: &str) -> Result<String, JoinError> {
    let (id, secret) = token.split_once('.').ok_or(JoinError::BadToken)?;
    let data = info.data.clone().unwrap_or_default();
    let kubeconfig = data
        .get("kubeconfig")
        .ok_or_else(|| fail("cluster-info has no kubeconfig"))?;
    let signature = data
        .get(&format!("jws-kubeconfig-{id}"))
        .ok_or_else(|| JoinError::NotSigned(id.to_owned()))?;
    if !verify_signature(signature, kubeconfig, id, secret) {
        return Err(fail(format!(
            "cluster-info's signature for token {id} does not verify: this server does not know the token"
        )));
    }
    let ca = ca_of(kubeconfig)?;
    if !ca_hash::matches(pin, &ca) {
        return Err(fail(format!(
            "the server's CA ({}) does not match --ca-cert-hash {pin}: refusing to join",
            ca_hash::of_pem(&ca).unwrap_or_default()
        )));
    }
    Ok(ca)
}

/// Fetches cluster-info from `server` without credentials or trust, then
/// [`check`]s it.
pub async fn discover(server: &str, token: &str, pin: &str) -> Result<String, JoinError> {
    super::request::parse_token(token)?;
    if !pin.starts_with("sha256:") {
        return Err(fail(
            "--ca-cert-hash must look like sha256:<hex> (skiff token create prints it)",
        ));
    }
    let url = server
        .parse()
        .map_err(|e| fail(format!("--server {server}: {e}")))?;
    let mut config = kube::Config::new(url);
    // Nothing secret goes over this connection, and nothing from it is
    // believed until the pin and signature check out.
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config)?;
    let maps: Api<ConfigMap> = Api::namespaced(client, "kube-public");
    let info = maps
        .get("cluster-info")
        .await
        .map_err(|e| fail(format!("reading cluster-info from {server}: {e}")))?;
    check(&info, token, pin)
}
