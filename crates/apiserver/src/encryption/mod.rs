//! Encryption at rest (`--encryption-provider-config`): a [`Store`] that
//! encrypts the values of the configured resources on their way into the
//! store and decrypts them on the way out (get, list, watch), so the rest
//! of the API server never sees ciphertext and the database never sees
//! the plaintext. Rotation: put a new key first, restart, rewrite the
//! objects (`kubectl get secrets -A -o json | kubectl replace -f -`).

pub mod config;
pub mod provider;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use skiff_store::{
    DeleteResult, Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError,
    WatchStream,
};

pub use config::{ConfigError, Rule, load};

/// The store with encryption for the configured resources.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    rules: Arc<Vec<Rule>>,
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn Store>, rules: Vec<Rule>) -> Self {
        EncryptedStore {
            inner,
            rules: Arc::new(rules),
        }
    }
}

/// The rule of the first resource group that covers `key`, as upstream
/// picks it.
fn rule_for<'a>(rules: &'a [Rule], key: &str) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
}

fn seal(rules: &[Rule], key: &str, value: Bytes) -> Result<Bytes> {
    let Some(rule) = rule_for(rules, key) else {
        return Ok(value);
    };
    if value.is_empty() {
        return Ok(value);
    }
    let first = &rule.providers[0];
    first
        .encrypt(key, &value)
        .map(Bytes::from)
        .map_err(|e| StoreError::WriteFailed(format!("encrypting {key}: {e}")))
}

fn open(rules: &[Rule], key: &str, value: Bytes) -> Result<Bytes> {
    let Some(rule) = rule_for(rules, key) else {
        return Ok(value);
    };
    if value.is_empty() {
        return Ok(value);
    }
    for p in &rule.providers {
        if let Some(result) = p.decrypt(key, &value) {
            return result
                .map(Bytes::from)
                .map_err(|reason| StoreError::Corrupt {
                    path: key.to_owned(),
                    reason: format!("cannot decrypt: {reason}"),
                });
        }
    }
    Err(StoreError::Corrupt {
        path: key.to_owned(),
        reason: "no configured encryption provider can read this value".into(),
    })
}

fn open_kv(rules: &[Rule], mut kv: KeyValue) -> Result<KeyValue> {
    kv.value = open(rules, &kv.key, std::mem::take(&mut kv.value))?;
    Ok(kv)
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.inner.get(key).await? {
            Some(kv) => open_kv(&self.rules, kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let mut result = self.inner.list(prefix, options).await?;
        result.items = std::mem::take(&mut result.items)
            .into_iter()
            .map(|kv| open_kv(&self.rules, kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(result)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        let sealed = seal(&self.rules, key, value.clone())?;
        let mut kv = self.inner.create(key, sealed, ttl).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let sealed = seal(&self.rules, key, value.clone())?;
        let mut kv = self
            .inner
            .update(key, sealed, expected_mod_revision, ttl)
            .await?;
        kv.value = value;
        Ok(kv)
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult> {
        let mut deleted = self.inner.delete(key, expected_mod_revision).await?;
        deleted.prev = open_kv(&self.rules, deleted.prev)?;
        Ok(deleted)
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let rules = self.rules.clone();
        let events = self.inner.watch(prefix, from_revision).await?;
        Ok(events
            .map(move |event| {
                let Event { kind, kv, prev } = event?;
                Ok(Event {
                    kind,
                    kv: open_kv(&rules, kv)?,
                    prev: prev.map(|p| open_kv(&rules, p)).transpose()?,
                })
            })
            .boxed())
    }

    async fn needs_rewrite(&self, key: &str) -> Result<bool> {
        let Some(rule) = rule_for(&self.rules, key) else {
            return Ok(false);
        };
        let Some(kv) = self.inner.get(key).await? else {
            return Ok(false);
        };
        Ok(!rule.providers[0].wrote(&kv.value))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key2
              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
      - aesgcm:
          keys:
            - name: key1
              secret: ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=
      - identity: {}
";

    #[test]
    fn the_first_provider_writes_and_all_read() {
        let rules = config::parse(CONFIG).unwrap();
        let sealed = seal(&rules, "/secrets/ns/s", Bytes::from_static(b"{\"data\":1}")).unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aescbc:v1:key2:"));
        assert_eq!(
            open(&rules, "/secrets/ns/s", sealed).unwrap(),
            &b"{\"data\":1}"[..]
        );
        // Other resources are untouched.
        let plain = seal(&rules, "/configmaps/ns/c", Bytes::from_static(b"x")).unwrap();
        assert_eq!(plain, &b"x"[..]);
        // Values written before encryption (identity) and with the older
        // key still read.
        assert_eq!(
            open(&rules, "/secrets/ns/old", Bytes::from_static(b"{}")).unwrap(),
            &b"{}"[..]
        );
        let older = rules[0].providers[1]
            .encrypt("/secrets/ns/s", b"v")
            .unwrap();
        assert_eq!(
            open(&rules, "/secrets/ns/s", older.into()).unwrap(),
            &b"v"[..]
        );
    }

    #[test]
    fn resources_map_to_key_prefixes() {
        let rules = config::parse(
            "resources:\n- resources: [deployments.apps, '*.batch', configmaps]\n  providers: [{identity: {}}]\n",
        )
        .unwrap();
        assert_eq!(
            rules[0].prefixes,
            ["/apps/deployments/", "/batch/", "/configmaps/"]
        );
        assert!(
            config::parse("resources:\n- resources: [secrets]\n  providers: [{kms: {}}]\n")
                .is_err()
        );
    }
}
