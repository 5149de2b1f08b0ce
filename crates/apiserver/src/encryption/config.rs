//! `--encryption-provider-config`: upstream's EncryptionConfiguration
//! (apiserver.config.k8s.io/v1): per group of resources, an ordered list
//! of providers — the first encrypts new writes, all of them decrypt.

use base64::Engine;
use serde::Deserialize;

use super::provider::{Provider, ProviderKind};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct File {
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    resources: Vec<String>,
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

#[derive(Deserialize)]
struct Keys {
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
struct ProviderConfig {
    identity: Option<serde_json::Value>,
    aescbc: Option<Keys>,
    aesgcm: Option<Keys>,
    secretbox: Option<Keys>,
    kms: Option<serde_json::Value>,
}

/// The providers for the keys under some prefixes.
pub struct Rule {
    /// Store key prefixes (`/secrets/`, `/apps/deployments/`, `/` for `*.*`).
    pub prefixes: Vec<String>,
    pub providers: Vec<Provider>,
}

/// `secrets` → `/secrets/`; `deployments.apps` → `/apps/deployments/`;
/// `*.apps` → `/apps/`; `*.*` → every key.
fn prefix_of(resource: &str) -> Result<String, ConfigError> {
    match resource.split_once('.') {
        None if resource == "*" => Err(ConfigError::Invalid(
            "resource \"*\" is not valid: use \"*.*\" for all resources or \"*.\" for the core group".into(),
        )),
        None => Ok(format!("/{resource}/")),
        Some(("*", "*")) => Ok("/".into()),
        // The core group's resources have no group part in their keys.
        Some(("*", "")) => Ok("/".into()),
        Some(("*", group)) => Ok(format!("/{group}/")),
        Some((name, group)) => Ok(format!("/{group}/{name}/")),
    }
}

fn keys(kind: ProviderKind, keys: Keys) -> Result<Provider, ConfigError> {
    if keys.keys.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{kind:?} needs at least one key"
        )));
    }
    let mut out = Vec::new();
    for k in keys.keys {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(k.secret.trim())
            .map_err(|_| ConfigError::Invalid(format!("key {:?}: secret is not base64", k.name)))?;
        out.push((k.name, secret));
    }
    Provider::new(kind, out).map_err(ConfigError::Invalid)
}

/// Parses a configuration (YAML or JSON).
pub fn parse(text: &str) -> Result<Vec<Rule>, ConfigError> {
    let file: File = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::Invalid(format!("not an EncryptionConfiguration: {e}")))?;
    if file
        .kind
        .as_deref()
        .is_some_and(|k| k != "EncryptionConfiguration")
    {
        return Err(ConfigError::Invalid(
            "kind must be EncryptionConfiguration".into(),
        ));
    }
    let mut rules = Vec::new();
    for r in file.resources {
        let prefixes = r
            .resources
            .iter()
            .map(|name| prefix_of(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut providers = Vec::new();
        for p in r.providers {
            let provider = match p {
                ProviderConfig {
                    identity: Some(_), ..
                } => Provider::identity(),
                ProviderConfig {
                    aescbc: Some(k), ..
                } => keys(ProviderKind::AesCbc, k)?,
                ProviderConfig {
                    aesgcm: Some(k), ..
                } => keys(ProviderKind::AesGcm, k)?,
                ProviderConfig {
                    secretbox: Some(k), ..
                } => keys(ProviderKind::Secretbox, k)?,
                ProviderConfig { kms: Some(_), .. } => {
                    return Err(ConfigError::Invalid(
                        "the kms provider is not supported by skiff".into(),
                    ));
                }
                _ => return Err(ConfigError::Invalid("a provider names no type".into())),
            };
            providers.push(provider);
        }
        if providers.is_empty() {
            return Err(ConfigError::Invalid(
                "a resource group lists no providers".into(),
            ));
        }
        rules.push(Rule {
            prefixes,
            providers,
        });
    }
    Ok(rules)
}

/// Reads and parses `path`.
pub fn load(path: &std::path::Path) -> Result<Vec<Rule>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse(&text).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
