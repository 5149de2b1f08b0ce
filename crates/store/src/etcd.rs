//! The etcd v3 backend, for several servers sharing one cluster state.
//!
//! Keys live under a prefix (default `/registry`, as upstream); revisions are
//! etcd's own; compare-and-swap is an etcd transaction on `mod_revision`;
//! TTLs are etcd leases, shared between keys that expire at about the same
//! time, as upstream's lease manager does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, KvClient, LeaseClient, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
    WatchClient, WatchOptions,
};
use futures::StreamExt;

use crate::keys::{key_after, prefix_end};
use crate::store::{Store, WatchStream};
use crate::{
    DeleteResult, Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, StoreError,
};

/// Largest gRPC response accepted (big lists).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// `host:port` or `http(s)://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Every key is stored under this prefix.
    pub prefix: String,
    /// CA bundle to verify the servers (enables TLS).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for etcd's client-cert auth.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            prefix: "/registry".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

/// A store kept in etcd. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    prefix: String,
    leases: Arc<Mutex<Option<CachedLease>>>,
}

#[derive(Clone, Copy)]
struct CachedLease {
    id: i64,
    expires: Instant,
}

fn tls_options(config: &EtcdConfig) -> Result<Option<TlsOptions>> {
    let read = |p: &PathBuf| std::fs::read(p);
    let mut tls = None;
    if let Some(ca) = &config.ca_file {
        tls = Some(TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?)));
    }
    match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let identity = Identity::from_pem(read(cert)?, read(key)?);
            tls = Some(tls.unwrap_or_default().identity(identity));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Invalid(
                "an etcd client certificate needs both a cert and a key file".into(),
            ));
        }
    }
    Ok(tls)
}

impl EtcdStore {
    /// Connects to the cluster (fails if no endpoint answers).
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(StoreError::Invalid("no etcd endpoints given".into()));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let tls = tls_options(&config)?;
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else if tls.is_some() {
                    format!("https://{e}")
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if let Some(tls) = tls {
            options = options.with_tls(tls);
        }
        let client = Client::connect(&endpoints, Some(options)).await?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            prefix: config.prefix.trim_end_matches('/').to_owned(),
            leases: Arc::new(Mutex::new(None)),
        };
        // Fail now, not at the first request, if etcd is unreachable.
        store.current_revision().await?;
        tracing::info!(endpoints = ?config.endpoints, prefix = %config.prefix, "connected to etcd");
        Ok(store)
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        format!("{}{}", self.prefix, key).into_bytes()
    }

    fn user_key(&self, raw: &[u8]) -> String {
        let raw = raw.strip_prefix(self.prefix.as_bytes()).unwrap_or(raw);
        String::from_utf8_lossy(raw).into_owned()
    }

    fn to_kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: self.user_key(kv.key()),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        }
    }

    /// A lease expiring between `ttl` and `ttl` + 5% (at most a minute) from
    /// now, reused across keys so that many Events do not mean many leases.
    async fn lease_for(&self, ttl: Duration) -> Result<i64> {
        let reuse = (ttl / 20).min(Duration::from_secs(60));
        let now = Instant::now();
        let cached = *self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cached
            && cached.expires >= now + ttl
            && cached.expires <= now + ttl + reuse
        {
            return Ok(cached.id);
        }
        let seconds = (ttl + reuse).as_secs_f64().ceil().max(1.0) as i64;
        let granted = self.lease.clone().grant(seconds, None).await?;
        let lease = CachedLease {
            id: granted.id(),
            expires: now + Duration::from_secs(seconds as u64),
        };
        *self.leases.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
        Ok(lease.id)
    }

    async fn put_options(&self, ttl: Option<Duration>) -> Result<PutOptions> {
        let options = PutOptions::new().with_prev_key();
        Ok(match ttl {
            Some(ttl) => options.with_lease(self.lease_for(ttl).await?),
            None => options,
        })
    }
}

/// Maps etcd's errors to the store's distinct ones where a caller must react.
fn map_err(e: etcd_client::Error, revision: Revision) -> StoreError {
    let message = e.to_string();
    if message.contains("required revision has been compacted") {
        StoreError::Compacted {
            requested: revision,
            compacted: revision + 1,
        }
    } else if message.contains("required revision is a future revision") {
        StoreError::FutureRevision {
            requested: revision,
            current: 0,
        }
    } else {
        StoreError::Etcd(e)
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.kv.clone().get(self.full_key(key), None).await?;
        Ok(response.kvs().first().map(|kv| self.to_kv(kv)))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let mut start = full_prefix.clone();
        if let Some(after) = &options.continue_after {
            start = start.max(key_after(&self.full_key(after)));
        }
        let mut get = GetOptions::new().with_range(end);
        if let Some(limit) = options.limit.filter(|l| *l > 0) {
            get = get.with_limit(limit as i64);
        }
        let at = options.revision.filter(|r| *r > 0);
        if let Some(revision) = at {
            get = get.with_revision(revision);
        }
        let response = self
            .kv
            .clone()
            .get(start, Some(get))
            .await
            .map_err(|e| map_err(e, at.unwrap_or(0)))?;
        let items: Vec<KeyValue> = response.kvs().iter().map(|kv| self.to_kv(kv)).collect();
        let remaining = (response.count() as u64).saturating_sub(items.len() as u64);
        Ok(ListResult {
            revision: at.unwrap_or_else(|| header_revision(response.header())),
            items,
            remaining,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let options = GetOptions::new().with_range(end).with_count_only();
        let response = self.kv.clone().get(full_prefix, Some(options)).await?;
        Ok(response.count() as u64)
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        crate::types::check_value_size(key, &value)?;
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                full,
                value.to_vec(),
                Some(self.put_options(ttl).await?),
            )]);
        let response = self.kv.clone().txn(txn).await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        let revision = header_revision(response.header());
        Ok(KeyValue {
            key: key.into(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        crate::types::check_value_size(key, &value)?;
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected_mod_revision,
            )])
            .and_then([TxnOp::put(
                full.clone(),
                value.to_vec(),
                Some(self.put_options(ttl).await?),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.kv.clone().txn(txn).await?;
        let revision = header_revision(response.header());
        let first = response.op_responses().into_iter().next();
        if !response.succeeded() {
            let actual = match first {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| kv.mod_revision()),
                _ => None,
            };
            return Err(match actual {
                Some(actual) => StoreError::Conflict {
                    key: key.into(),
                    expected: expected_mod_revision,
                    actual,
                },
                None => StoreError::NotFound { key: key.into() },
            });
        }
        let create_revision = match first {
            Some(TxnOpResponse::Put(put)) => {
                put.prev_key().map_or(revision, |p| p.create_revision())
            }
            _ => revision,
        };
        Ok(KeyValue {
            key: key.into(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult> {
        let full = self.full_key(key);
        let compare = match expected_mod_revision {
            Some(expected) => Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            None => Compare::mod_revision(full.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.kv.clone().txn(txn).await?;
        let revision = header_revision(response.header());
        let first = response.op_responses().into_iter().next();
        match (response.succeeded(), first) {
            (true, Some(TxnOpResponse::Delete(deleted))) => match deleted.prev_kvs().first() {
                Some(prev) => Ok(DeleteResult {
                    prev: self.to_kv(prev),
                    revision,
                }),
                None => Err(StoreError::NotFound { key: key.into() }),
            },
            (false, Some(TxnOpResponse::Get(get))) => match get.kvs().first() {
                Some(current) => Err(StoreError::Conflict {
                    key: key.into(),
                    expected: expected_mod_revision.unwrap_or(0),
                    actual: current.mod_revision(),
                }),
                None => Err(StoreError::NotFound { key: key.into() }),
            },
            _ => Err(StoreError::NotFound { key: key.into() }),
        }
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(from_revision + 1)
            .with_prev_key();
        let mut stream = self.watch.clone().watch(full_prefix, Some(options)).await?;
        // The first response confirms the watch or reports compaction.
        let first = stream.message().await?;
        if let Some(response) = &first
            && (response.canceled() || response.compact_revision() > 0)
        {
            {
                return Err(if response.compact_revision() > 0 {
                    StoreError::Compacted {
                        requested: from_revision,
                        compacted: response.compact_revision(),
                    }
                } else {
                    StoreError::Invalid(format!(
                        "etcd refused the watch: {}",
                        response.cancel_reason()
                    ))
                });
            }
        }
        let this = self.clone();
        let responses = futures::stream::unfold(Some(stream), move |state| async move {
            let mut stream = state?;
            let item = match stream.message().await {
                Ok(Some(response)) if response.compact_revision() > 0 => {
                    Err(StoreError::Compacted {
                        requested: from_revision,
                        compacted: response.compact_revision(),
                    })
                }
                Ok(Some(response)) if response.canceled() => Err(StoreError::Invalid(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ))),
                Ok(Some(response)) => return Some((Ok(response), Some(stream))),
                Ok(None) => return None,
                Err(e) => Err(StoreError::Etcd(e)),
            };
            Some((item, None))
        });
        let events = responses.flat_map(move |item| {
            let batch: Vec<Result<Event>> = match item {
                Ok(response) => response
                    .events()
                    .iter()
                    .filter_map(|e| this.to_event(e))
                    .map(Ok)
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(batch)
        });
        Ok(Box::pin(events))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        let response = self
            .kv
            .clone()
            .get(self.full_key("/"), Some(options))
            .await?;
        Ok(header_revision(response.header()))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e, revision) {
                // Already compacted past it: nothing to do.
                StoreError::Compacted { .. } => Ok(()),
                StoreError::FutureRevision { requested, .. } => Err(StoreError::FutureRevision {
                    requested,
                    current: self.current_revision().await?,
                }),
                other => Err(other),
            },
        }
    }
}

impl EtcdStore {
    fn to_event(&self, event: &etcd_client::Event) -> Option<Event> {
        let kv = event.kv()?;
        let prev = event.prev_kv().map(|p| self.to_kv(p));
        Some(match event.event_type() {
            EventType::Put => Event {
                kind: EventKind::Put,
                kv: self.to_kv(kv),
                prev,
            },
            EventType::Delete => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: self.user_key(kv.key()),
                    value: Bytes::new(),
                    create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
                    mod_revision: kv.mod_revision(),
                },
                prev,
            },
        })
    }
}
