//! The encryption providers of upstream's EncryptionConfiguration, with
//! upstream's stored format: `k8s:enc:<provider>:v1:<key name>:` then the
//! provider's data — aesgcm: nonce (12) + ciphertext and tag, the store
//! key as authenticated data; aescbc: IV (16) + PKCS#7-padded ciphertext;
//! secretbox: nonce (24) + XSalsa20-Poly1305 box.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use crypto_secretbox::aead::{Aead, KeyInit};
use ring::rand::SecureRandom;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Identity,
    AesGcm,
    AesCbc,
    Secretbox,
}

impl ProviderKind {
    fn tag(self) -> &'static str {
        match self {
            ProviderKind::Identity => "identity",
            ProviderKind::AesGcm => "aesgcm",
            ProviderKind::AesCbc => "aescbc",
            ProviderKind::Secretbox => "secretbox",
        }
    }
}

/// One provider with its keys (the first encrypts).
pub struct Provider {
    pub kind: ProviderKind,
    keys: Vec<(String, Vec<u8>)>,
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "no randomness available".to_owned())?;
    Ok(out)
}

impl Provider {
    pub fn identity() -> Self {
        Provider {
            kind: ProviderKind::Identity,
            keys: Vec::new(),
        }
    }

    /// A provider, checking each key's length for its cipher.
    pub fn new(kind: ProviderKind, keys: Vec<(String, Vec<u8>)>) -> Result<Self, String> {
        for (name, key) in &keys {
            let ok = match kind {
                ProviderKind::Identity => true,
                ProviderKind::AesGcm => matches!(key.len(), 16 | 32),
                ProviderKind::AesCbc => matches!(key.len(), 16 | 24 | 32),
                ProviderKind::Secretbox => key.len() == 32,
            };
            if !ok {
                return Err(format!(
                    "key {name:?} of {} has an invalid length of {} bytes",
                    kind.tag(),
                    key.len()
                ));
            }
            if name.is_empty() || name.contains(':') {
                return Err(format!(
                    "key name {name:?} must be non-empty and without ':'"
                ));
            }
        }
        Ok(Provider { kind, keys })
    }

    fn prefix(&self, name: &str) -> String {
        format!("k8s:enc:{}:v1:{name}:", self.kind.tag())
    }

    /// Whether `stored` is what this provider writes now (its first key;
    /// plain data for identity): else a rewrite moves it to that key.
    pub fn wrote(&self, stored: &[u8]) -> bool {
        match self.keys.first() {
            _ if self.kind == ProviderKind::Identity => !stored.starts_with(b"k8s:enc:"),
            Some((name, _)) => stored.starts_with(self.prefix(name).as_bytes()),
            None => false,
        }
    }

    /// `value` as stored under `key`.
    pub fn encrypt(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, String> {
        let Some((name, secret)) = self.keys.first() else {
            return Ok(value.to_vec());
        };
        let mut out = self.prefix(name).into_bytes();
        match self.kind {
            ProviderKind::Identity => return Ok(value.to_vec()),
            ProviderKind::AesGcm => {
                let nonce = random::<12>()?;
                let sealing = gcm_key(secret)?;
                let mut data = value.to_vec();
                sealing
                    .seal_in_place_append_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::from(key.as_bytes()),
                        &mut data,
                    )
                    .map_err(|_| "aesgcm encryption failed".to_owned())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&data);
            }
            ProviderKind::AesCbc => {
                let iv = random::<16>()?;
                let data = cbc_encrypt(secret, &iv, value)?;
                out.extend_from_slice(&iv);
                out.extend_from_slice(&data);
            }
            ProviderKind::Secretbox => {
                let nonce = random::<24>()?;
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret)
                    .map_err(|_| "secretbox key".to_owned())?;
                let sealed = cipher
                    .encrypt(&nonce.into(), value)
                    .map_err(|_| "secretbox encryption failed".to_owned())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// The plaintext of `data` if this provider holds the key named in its
    /// prefix; `None` if it does not.
    pub fn decrypt(&self, key: &str, data: &[u8]) -> Option<Result<Vec<u8>, String>> {
        if self.kind == ProviderKind::Identity {
            return (!data.starts_with(b"k8s:enc:")).then(|| Ok(data.to_vec()));
        }
        let (name, secret) = self
            .keys
            .iter()
            .find(|(name, _)| data.starts_with(self.prefix(name).as_bytes()))?;
        let body = &data[self.prefix(name).len()..];
        Some(match self.kind {
            ProviderKind::Identity => Ok(body.to_vec()),
            ProviderKind::AesGcm => (|| {
                if body.len() < 12 + 16 {
                    return Err("aesgcm data too short".to_owned());
                }
                let (nonce, sealed) = body.split_at(12);
                let opening = gcm_key(secret)?;
                let mut buf = sealed.to_vec();
                let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| "aesgcm nonce".to_owned())?;
                let plain = opening
                    .open_in_place(nonce, ring::aead::Aad::from(key.as_bytes()), &mut buf)
                    .map_err(|_| "aesgcm: wrong key or tampered data".to_owned())?;
                Ok(plain.to_vec())
            })(),
            ProviderKind::AesCbc => {
                if body.len() < 16 {
                    Err("aescbc data too short".to_owned())
                } else {
                    let (iv, data) = body.split_at(16);
                    cbc_decrypt(secret, iv, data)
                }
            }
            ProviderKind::Secretbox => (|| {
                if body.len() < 24 {
                    return Err("secretbox data too short".to_owned());
                }
                let (nonce, sealed) = body.split_at(24);
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret)
                    .map_err(|_| "secretbox key".to_owned())?;
                let nonce = crypto_secretbox::Nonce::from_slice(nonce);
                cipher
                    .decrypt(nonce, sealed)
                    .map_err(|_| "secretbox: wrong key or tampered data".to_owned())
            })(),
        })
    }
}

fn gcm_key(secret: &[u8]) -> Result<ring::aead::LessSafeKey, String> {
    let algorithm = match secret.len() {
        16 => &ring::aead::AES_128_GCM,
        _ => &ring::aead::AES_256_GCM,
    };
    ring::aead::UnboundKey::new(algorithm, secret)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| "aesgcm key".to_owned())
}

fn cbc_encrypt(secret: &[u8], iv: &[u8; 16], value: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |_| "aescbc key".to_owned();
    Ok(match secret.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(secret, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(value),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(secret, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(value),
        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(secret, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(value),
    })
}

fn cbc_decrypt(secret: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |_| "aescbc key".to_owned();
    let wrong = |_| "aescbc: wrong key or tampered data".to_owned();
    match secret.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(secret, iv)
            .map_err(bad)?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(wrong),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(secret, iv)
            .map_err(bad)?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(wrong),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(secret, iv)
            .map_err(bad)?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(wrong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_round_trips_and_hides_the_plaintext() {
        for (kind, len) in [
            (ProviderKind::AesGcm, 32),
            (ProviderKind::AesGcm, 16),
            (ProviderKind::AesCbc, 32),
            (ProviderKind::AesCbc, 16),
            (ProviderKind::Secretbox, 32),
        ] {
            let p = Provider::new(kind, vec![("k1".into(), vec![7u8; len])]).unwrap();
            let stored = p.encrypt("/secrets/ns/s", b"top secret value").unwrap();
            assert!(stored.starts_with(format!("k8s:enc:{}:v1:k1:", kind.tag()).as_bytes()));
            assert!(!stored.windows(10).any(|w| w == b"top secret"), "{kind:?}");
            let back = p.decrypt("/secrets/ns/s", &stored).unwrap().unwrap();
            assert_eq!(back, b"top secret value");
            let other = Provider::new(kind, vec![("k1".into(), vec![8u8; len])]).unwrap();
            assert!(
                other.decrypt("/secrets/ns/s", &stored).unwrap().is_err(),
                "{kind:?}"
            );
            let unnamed = Provider::new(kind, vec![("k2".into(), vec![7u8; len])]).unwrap();
            assert!(unnamed.decrypt("/secrets/ns/s", &stored).is_none());
        }
    }

    #[test]
    fn aesgcm_binds_the_data_to_its_key() {
        let p = Provider::new(ProviderKind::AesGcm, vec![("k".into(), vec![1u8; 32])]).unwrap();
        let stored = p.encrypt("/secrets/a/x", b"v").unwrap();
        assert!(p.decrypt("/secrets/b/x", &stored).unwrap().is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Provider::new(ProviderKind::AesCbc, vec![("k".into(), vec![0u8; 10])]).is_err());
        assert!(Provider::new(ProviderKind::Secretbox, vec![("k".into(), vec![0u8; 16])]).is_err());
        assert!(Provider::new(ProviderKind::AesGcm, vec![("a:b".into(), vec![0u8; 32])]).is_err());
    }
}
