//! Bootstrap tokens' two controllers (upstream's, which kubeadm turns on
//! and skiff runs by default): the bootstrap signer signs `cluster-info`
//! with every signing token so joining nodes can check it came from a
//! server that knows their token; the token cleaner deletes expired
//! tokens.

pub mod cleaner;
pub mod signer;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where bootstrap tokens live.
pub const NAMESPACE: &str = "kube-system";

/// A bootstrap token as its Secret holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub secret: String,
    pub expiration: Option<Timestamp>,
    pub usages: Vec<String>,
    /// The note `skiff token create --description` left.
    pub description: Option<String>,
}

impl Token {
    /// The token of a bootstrap-token Secret (`None` if it is not one or is
    /// malformed).
    pub fn from_secret(s: &Secret) -> Option<Token> {
        if s.type_.as_deref() != Some(SECRET_TYPE) {
            return None;
        }
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in s.data.iter().flatten() {
            if let Ok(text) = String::from_utf8(v.0.clone()) {
                fields.insert(k.as_str(), text);
            }
        }
        for (k, v) in s.string_data.iter().flatten() {
            fields.insert(k.as_str(), v.clone());
        }
        let id = fields.get("token-id")?.clone();
        let secret = fields.get("token-secret")?.clone();
        let expiration = match fields.get("expiration") {
            Some(text) => Some(text.parse().ok()?),
            None => None,
        };
        let usages = fields
            .iter()
            .filter(|(k, v)| k.starts_with("usage-bootstrap-") && v.as_str() == "true")
            .map(|(k, _)| k.trim_start_matches("usage-bootstrap-").to_owned())
            .collect();
        Some(Token {
            id,
            secret,
            expiration,
            usages,
            description: fields.get("description").cloned(),
        })
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    pub fn for_signing(&self) -> bool {
        self.usages.iter().any(|u| u == "signing")
    }
}
