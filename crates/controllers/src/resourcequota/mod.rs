//! The ResourceQuota controller (`resourcequota-controller`): keeps each
//! quota's `status.hard` (its spec) and `status.used` (what the namespace
//! uses of each listed resource, [`usage`]) current — what `kubectl
//! describe quota` shows. Pod changes refresh their namespace's quotas at
//! once; everything else is recounted every `resync`.

pub mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Tuning.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every quota is recounted (upstream's
    /// `--resource-quota-sync-period` is 5 min; object deletions there
    /// also trigger a recount, which this controller does only for pods).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(30),
        }
    }
}

struct Ctx {
    client: kube::Client,
    settings: Settings,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), kube::Error> {
    let controller = Controller::new(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        settings,
    });
    controller
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            move |pod: Pod| {
                let ns = pod.namespace();
                quotas
                    .state()
                    .iter()
                    .filter(|q| q.namespace() == ns)
                    .map(|q| ObjectRef::from_obj(q.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "resource quota sync");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_q: Arc<ResourceQuota>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "resource quota sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The core/v1 kinds quotas count by their short names.
fn counted(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match name {
        "pods" => ("", "v1", "pods"),
        "services" => ("", "v1", "services"),
        "configmaps" => ("", "v1", "configmaps"),
        "secrets" => ("", "v1", "secrets"),
        "persistentvolumeclaims" => ("", "v1", "persistentvolumeclaims"),
        "replicationcontrollers" => ("", "v1", "replicationcontrollers"),
        "resourcequotas" => ("", "v1", "resourcequotas"),
        _ => return None,
    })
}

/// `count/<resource>[.<group>]` as (group, plural).
fn count_of(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((plural, group)) => (group.to_owned(), plural.to_owned()),
        None => (String::new(), rest.to_owned()),
    })
}

/// How many objects of a resource the namespace has (through discovery
/// for `count/` names of other groups).
async fn object_count(
    client: &kube::Client,
    ns: &str,
    group: &str,
    plural: &str,
) -> Result<Option<i128>, kube::Error> {
    let version = if group.is_empty() {
        "v1".to_owned()
    } else {
        match kube::discovery::group(client, group).await {
            Ok(g) => g.preferred_version_or_latest().to_owned(),
            Err(_) => return Ok(None),
        }
    };
    let resource = ApiResource {
        group: group.to_owned(),
        version: version.clone(),
        api_version: if group.is_empty() {
            version
        } else {
            format!("{group}/{version}")
        },
        kind: String::new(),
        plural: plural.to_owned(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items.len() as i128)),
        Err(e) if crate::api_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    if quota.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = quota.namespace().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(usage::counts_against_quota)
        .collect();
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    for name in hard.keys() {
        let value = if name == "pods" {
            Some(pods.len() as i128)
        } else if let Some((kind, resource)) = usage::compute(name) {
            let milli: i128 = pods
                .iter()
                .map(|p| usage::pod_value(p, kind, resource))
                .sum();
            used.insert(name.clone(), usage::format(milli, name));
            continue;
        } else if let Some((group, _, plural)) = counted(name) {
            object_count(&ctx.client, &ns, group, plural).await?
        } else if let Some((group, plural)) = count_of(name) {
            object_count(&ctx.client, &ns, &group, &plural).await?
        } else {
            None
        };
        if let Some(v) = value {
            used.insert(name.clone(), v.to_string());
        }
    }
    let status = quota.status.clone().unwrap_or_default();
    let same_hard = status.hard.as_ref() == Some(&hard);
    let same_used = status.used.as_ref().is_some_and(|u| {
        u.len() == used.len() && used.iter().all(|(k, v)| u.get(k).map(|q| &q.0) == Some(v))
    });
    if !same_hard || !same_used {
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
        // Merge patches replace maps key by key: drop keys no longer listed.
        let mut used_patch: serde_json::Map<String, serde_json::Value> = status
            .used
            .iter()
            .flatten()
            .map(|(k, _)| (k.clone(), serde_json::Value::Null))
            .collect();
        used_patch.extend(used.iter().map(|(k, v)| (k.clone(), json!(v))));
        let mut hard_patch: serde_json::Map<String, serde_json::Value> = status
            .hard
            .iter()
            .flatten()
            .map(|(k, _)| (k.clone(), serde_json::Value::Null))
            .collect();
        hard_patch.extend(hard.iter().map(|(k, v)| (k.clone(), json!(v))));
        let patch = json!({"status": {"hard": hard_patch, "used": used_patch}});
        if !crate::patch_status(&api, &quota.name_any(), &patch).await? {
            return Ok(Action::await_change());
        }
    }
    Ok(Action::requeue(ctx.settings.resync))
}
