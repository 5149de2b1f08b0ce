//! projected volumes: configMap, secret, downwardAPI and service account
//! token sources merged into one directory. Tokens come from the
//! TokenRequest API bound to the pod, and are cached and renewed at 80% of
//! their lifetime (or after 24 h) as upstream's token manager does, so the
//! periodic refresh does not mint a token every minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::PostParams;

use super::atomic_writer::{FileProjection, Payload};
use super::{DEFAULT_MODE, VolumeError, config_map, downward_api, mode_bits, secret};

/// Upstream's default token lifetime for a projection.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Tokens older than this are renewed whatever their lifetime.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a projected volume needs besides the pod.
pub(super) struct Context<'a> {
    pub client: &'a kube::Client,
    pub tokens: &'a TokenCache,
    pub allocatable: &'a BTreeMap<String, Quantity>,
}

pub(super) async fn payload(
    ctx: &Context<'_>,
    pod: &Pod,
    src: &ProjectedVolumeSource,
) -> Result<Payload, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = mode_bits(src.default_mode, DEFAULT_MODE);
    let mut payload = Payload::new();
    for source in src.sources.iter().flatten() {
        if let Some(cm) = &source.config_map {
            let files = config_map::project(
                ctx.client,
                ns,
                &cm.name,
                cm.items.as_deref(),
                default_mode,
                cm.optional.unwrap_or(false),
            )
            .await?;
            payload.extend(files);
        }
        if let Some(s) = &source.secret {
            let files = secret::project(
                ctx.client,
                ns,
                &s.name,
                s.items.as_deref(),
                default_mode,
                s.optional.unwrap_or(false),
            )
            .await?;
            payload.extend(files);
        }
        if let Some(d) = &source.downward_api {
            let items = d.items.as_deref().unwrap_or_default();
            payload.extend(downward_api::files(
                pod,
                items,
                default_mode,
                ctx.allocatable,
            )?);
        }
        if let Some(t) = &source.service_account_token {
            let request = TokenKey {
                pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                namespace: ns.to_owned(),
                service_account: service_account(pod),
                audience: t.audience.clone().unwrap_or_default(),
                expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
            };
            if let Some(token) = ctx.tokens.get(ctx.client, pod, request).await? {
                payload.insert(
                    t.path.clone(),
                    FileProjection {
                        data: token.into_bytes(),
                        mode: default_mode,
                    },
                );
            }
        }
        if source.cluster_trust_bundle.is_some() {
            return Err(VolumeError::Unsupported(
                "projected clusterTrustBundle sources".to_owned(),
            ));
        }
    }
    Ok(payload)
}

fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| {
            s.service_account_name
                .clone()
                .or_else(|| s.service_account.clone())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// One token request: the same key gets the cached token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    pod_uid: String,
    namespace: String,
    service_account: String,
    audience: String,
    expiration_seconds: i64,
}

struct CachedToken {
    token: String,
    issued: Instant,
    lifetime: Duration,
}

impl CachedToken {
    fn fresh(&self) -> bool {
        let age = self.issued.elapsed();
        age < self.lifetime.mul_f64(0.8) && age < MAX_TOKEN_AGE
    }
}

/// Service account tokens of the pods on this node.
#[derive(Default)]
pub(super) struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
    /// Whether "TokenRequest is not served" was logged at warn level
    /// already: once is news, every refresh after that is noise.
    warned: AtomicBool,
}

impl TokenCache {
    /// The token for `key`, from the cache or a new TokenRequest; `None`
    /// when the API server does not serve TokenRequest (404/405).
    async fn get(
        &self,
        client: &kube::Client,
        pod: &Pod,
        key: TokenKey,
    ) -> Result<Option<String>, VolumeError> {
        if let Ok(tokens) = self.tokens.lock()
            && let Some(cached) = tokens.get(&key)
            && cached.fresh()
        {
            return Ok(Some(cached.token.clone()));
        }
        let Some(cached) = request_token(client, pod, &key, &self.warned).await? else {
            return Ok(None);
        };
        let token = cached.token.clone();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(key, cached);
        }
        Ok(Some(token))
    }

    /// Drops the tokens of a pod that is gone.
    pub(super) fn forget_pod(&self, pod_uid: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|k, _| k.pod_uid != pod_uid);
        }
    }
}

/// `POST .../serviceaccounts/<sa>/token`, bound to the pod.
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    key: &TokenKey,
    warned: &AtomicBool,
) -> Result<Option<CachedToken>, VolumeError> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if key.audience.is_empty() {
                Vec::new()
            } else {
                vec![key.audience.clone()]
            },
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &key.namespace);
    let issued = Instant::now();
    let response: TokenRequest = match api
        .create_subresource(
            "token",
            &key.service_account,
            &PostParams::default(),
            &request,
        )
        .await
    {
        Ok(response) => response,
        // Not served (yet): 404, or 405 from servers that know the
        // subresource but not its create.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 405) => {
            if warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(message = %status.message, "TokenRequest is not served");
            } else {
                tracing::warn!(
                    namespace = %key.namespace,
                    service_account = %key.service_account,
                    message = %status.message,
                    "TokenRequest is not served; projecting no service account token"
                );
            }
            return Ok(None);
        }
        Err(source) => {
            return Err(VolumeError::Api {
                what: format!(
                    "requesting a token for serviceaccount {}/{}",
                    key.namespace, key.service_account
                ),
                source,
            });
        }
    };
    let Some(status) = response.status else {
        return Err(VolumeError::Mount(format!(
            "the TokenRequest for serviceaccount {}/{} returned no token",
            key.namespace, key.service_account
        )));
    };
    let requested = Duration::from_secs(u64::try_from(key.expiration_seconds).unwrap_or(3600));
    let lifetime = status
        .expiration_timestamp
        .0
        .duration_since(jiff::Timestamp::now())
        .try_into()
        .unwrap_or(requested);
    Ok(Some(CachedToken {
        token: status.token,
        issued,
        lifetime,
    }))
}
