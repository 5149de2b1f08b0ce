//! Removing a namespace's content, as upstream's namespacedResourcesDeleter:
//! discovery of every namespaced resource that can be deleted (preferred
//! versions, custom resources included), a `deletecollection` (or list and
//! delete each) per resource in the background, then a list of what is
//! left to count remaining objects and their finalizers.

use std::collections::BTreeMap;

use kube::Api;
use kube::api::{DeleteParams, ListParams};
use kube::core::{ApiResource, DynamicObject};
use kube::discovery::verbs;

/// How long to wait for objects held by finalizers (upstream's
/// finalizerEstimateSeconds).
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 5;

/// A namespaced resource that can be deleted.
#[derive(Clone, Debug)]
pub struct Deletable {
    pub resource: ApiResource,
    pub deletecollection: bool,
    pub list: bool,
}

/// What one pass over a namespace's content found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Groups whose discovery failed (`group/version: error`).
    pub discovery_errors: Vec<String>,
    /// Resources whose deletion or listing failed.
    pub delete_errors: Vec<String>,
    /// `resource.group` → objects still present.
    pub remaining: BTreeMap<String, usize>,
    /// finalizer → objects still holding it.
    pub finalizers: BTreeMap<String, usize>,
    /// Seconds until the remaining content is expected to be gone.
    pub estimate: i64,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        !self.discovery_errors.is_empty() || !self.delete_errors.is_empty()
    }

    pub fn content_left(&self) -> bool {
        self.remaining.values().any(|n| *n > 0)
    }
}

/// Every namespaced resource (preferred version of each group) that
/// supports `delete`; failing groups are reported, not fatal.
pub async fn discover(client: &kube::Client) -> (Vec<Deletable>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    match client.list_core_api_resources("v1").await {
        Ok(list) => collect(&mut found, "", "v1", &list),
        Err(e) => errors.push(format!("v1: {e}")),
    }
    match client.list_api_groups().await {
        Ok(groups) => {
            for group in groups.groups {
                let Some(version) = group
                    .preferred_version
                    .as_ref()
                    .or_else(|| group.versions.first())
                    .map(|v| v.group_version.clone())
                else {
                    continue;
                };
                match client.list_api_group_resources(&version).await {
                    Ok(list) => {
                        let v = version.rsplit('/').next().unwrap_or_default().to_owned();
                        collect(&mut found, &group.name, &v, &list);
                    }
                    Err(e) => errors.push(format!("{version}: {e}")),
                }
            }
        }
        Err(e) => errors.push(format!("apis: {e}")),
    }
    (found, errors)
}

fn collect(
    out: &mut Vec<Deletable>,
    group: &str,
    version: &str,
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) {
    for r in &list.resources {
        if !r.namespaced || r.name.contains('/') {
            continue;
        }
        let has = |v: &str| r.verbs.iter().any(|x| x == v);
        if !has(verbs::DELETE) {
            continue;
        }
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        out.push(Deletable {
            resource: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version,
                kind: r.kind.clone(),
                plural: r.name.clone(),
            },
            deletecollection: has(verbs::DELETE_COLLECTION),
            list: has(verbs::LIST),
        });
    }
}

fn unsupported(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 405)
}

/// Deletes everything in `namespace` that discovery found; counts what is
/// left (upstream's deleteAllContent).
pub async fn delete_all(client: &kube::Client, namespace: &str) -> Outcome {
    let (resources, discovery_errors) = discover(client).await;
    let mut outcome = Outcome {
        discovery_errors,
        ..Outcome::default()
    };
    for d in &resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &d.resource);
        let key = format!("{}.{}", d.resource.plural, d.resource.group);
        let estimate = if d.resource.group.is_empty() && d.resource.plural == "pods" {
            pod_estimate(&api).await
        } else {
            0
        };
        if let Err(e) = delete_resource(&api, d).await {
            outcome.delete_errors.push(format!("{key}: {e}"));
            continue;
        }
        if !d.list {
            continue;
        }
        let left = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if unsupported(&e) => continue,
            Err(e) => {
                outcome.delete_errors.push(format!("{key}: {e}"));
                continue;
            }
        };
        if left.is_empty() {
            continue;
        }
        outcome.remaining.insert(key.clone(), left.len());
        let mut with_finalizers = false;
        for obj in &left {
            for f in obj.metadata.finalizers.iter().flatten() {
                with_finalizers = true;
                *outcome.finalizers.entry(f.clone()).or_insert(0) += 1;
            }
        }
        if estimate > 0 {
            outcome.estimate = outcome.estimate.max(estimate);
        } else if with_finalizers {
            outcome.estimate = outcome.estimate.max(FINALIZER_ESTIMATE_SECONDS);
        } else {
            outcome.delete_errors.push(format!(
                "unexpected items still remain in namespace: {namespace} for gvr: {}/{}, Resource={}",
                d.resource.group, d.resource.version, d.resource.plural
            ));
        }
    }
    outcome
}

async fn delete_resource(api: &Api<DynamicObject>, d: &Deletable) -> Result<(), kube::Error> {
    let params = DeleteParams::background();
    if d.deletecollection {
        match api.delete_collection(&params, &ListParams::default()).await {
            Ok(_) => return Ok(()),
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if !d.list {
        return Ok(());
    }
    let items = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) if unsupported(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for obj in items {
        let Some(name) = obj.metadata.name.as_deref() else {
            continue;
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The longest termination grace period of the pods not yet terminal
/// (upstream's estimateGracefulTerminationForPods).
async fn pod_estimate(api: &Api<DynamicObject>) -> i64 {
    let Ok(pods) = api.list(&ListParams::default()).await else {
        return 0;
    };
    pods.items
        .iter()
        .filter(|p| {
            let phase = p.data.pointer("/status/phase").and_then(|v| v.as_str());
            phase != Some("Succeeded") && phase != Some("Failed")
        })
        .filter_map(|p| {
            p.data
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(serde_json::Value::as_i64)
        })
        .max()
        .unwrap_or(0)
}
