//! The service account signing key (`<data-dir>/tls/sa.key`, public half
//! in `sa.pub`): created at first start and reused, so tokens survive
//! restarts. ECDSA P-256 (JWS `ES256`, which upstream accepts as a service
//! account key type) because `ring` — already linked for TLS — signs with
//! it and can generate it; it cannot generate RSA keys.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};

/// The SubjectPublicKeyInfo DER prefix of an uncompressed P-256 point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum SaKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM PKCS#8 P-256 private key")]
    BadKey { path: PathBuf },
    #[error("generating the service account key failed")]
    Generate,
}

/// Signs and verifies JWS compact tokens with the service account key.
pub struct SaKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    /// Upstream's key id: base64url of the SHA-256 of the public key DER.
    kid: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).ok()
}

impl SaKey {
    /// Loads `<tls_dir>/sa.key`, or creates it (and `sa.pub`).
    pub fn load_or_create(tls_dir: &Path) -> Result<SaKey, SaKeyError> {
        let key_path = tls_dir.join("sa.key");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SaKeyError::Io { path, source }
        };
        let rng = SystemRandom::new();
        let der = match std::fs::read_to_string(&key_path) {
            Ok(text) => unpem(&text).ok_or_else(|| SaKeyError::BadKey {
                path: key_path.clone(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| SaKeyError::Generate)?;
                std::fs::create_dir_all(tls_dir).map_err(io(tls_dir))?;
                std::fs::write(&key_path, pem("PRIVATE KEY", doc.as_ref()))
                    .map_err(io(&key_path))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io(&key_path))?;
                doc.as_ref().to_vec()
            }
            Err(source) => {
                return Err(SaKeyError::Io {
                    path: key_path,
                    source,
                });
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(
            |_| SaKeyError::BadKey {
                path: key_path.clone(),
            },
        )?;
        let spki = [&SPKI_P256_PREFIX[..], pair.public_key().as_ref()].concat();
        let pub_path = tls_dir.join("sa.pub");
        if !pub_path.exists() {
            std::fs::write(&pub_path, pem("PUBLIC KEY", &spki)).map_err(io(&pub_path))?;
        }
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(SaKey { pair, rng, kid })
    }

    /// A signed compact JWS of `claims`.
    pub fn sign(&self, claims: &serde_json::Value) -> Option<String> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.pair.sign(&self.rng, signing_input.as_bytes()).ok()?;
        Some(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The claims of `token` if it is a JWS this key signed (expiry and
    /// the rest are the caller's to check).
    pub fn verify(&self, token: &str) -> Option<serde_json::Value> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg").and_then(serde_json::Value::as_str) != Some("ES256") {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let signed = &token[..token.len() - parts_len(token)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signed.as_bytes(), &signature)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

/// The length of `.<signature>` at the end of a compact JWS.
fn parts_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |i| token.len() - i)
}

/// Whether `token` looks like a JWT (three base64url parts), so other
/// token kinds are not parsed as one.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signs_verifies_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let key = SaKey::load_or_create(dir.path()).unwrap();
        let token = key.sign(&json!({"sub": "x"})).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(key.verify(&token).unwrap()["sub"], "x");
        let again = SaKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.kid, key.kid);
        assert!(again.verify(&token).is_some());
        // A changed payload fails the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "y"}).to_string());
        parts[1] = &forged;
        assert!(key.verify(&parts.join(".")).is_none());
        // Another key's token fails too.
        let other = tempfile::tempdir().unwrap();
        let other = SaKey::load_or_create(other.path()).unwrap();
        assert!(key.verify(&other.sign(&json!({})).unwrap()).is_none());
        assert!(dir.path().join("sa.pub").exists());
    }
}
