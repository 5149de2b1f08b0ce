//! A container's environment, resolved as upstream's kubelet does:
//! service link variables, then `envFrom` sources in order, then `env`
//! (later wins), with `$(VAR)` references expanded against what came
//! before.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::Api;
use skiff_apimachinery::quantity::parse_milli;

/// Why the environment could not be built; the container waits with
/// `CreateContainerConfigError` and this message.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0}")]
    Config(String),
    #[error("reading {what}: {source}")]
    Api { what: String, source: kube::Error },
}

/// Ordered name → value pairs, as the container will see them.
pub type Env = Vec<(String, String)>;

/// Resolves every variable of `container` in `pod`.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ip: &str,
) -> Result<Env, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: Vec<(String, String)> = Vec::new();
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.enable_service_links).unwrap_or(true) {
        vars.extend(service_env(client, ns).await?);
    } else {
        vars.extend(service_env_of(&kubernetes_service(client).await?));
    }
    let mut cache = Sources::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(cm) = &from.config_map_ref {
            let optional = cm.optional.unwrap_or(false);
            if let Some(data) = cache.config_map(client, ns, &cm.name, optional).await? {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
        }
        if let Some(secret) = &from.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            if let Some(data) = cache.secret(client, ns, &secret.name, optional).await? {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            expand(value, &vars)
        } else if let Some(from) = &var.value_from {
            let value = if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cache.config_map(client, ns, &r.name, optional).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(EnvError::Config(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None => None,
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cache.secret(client, ns, &r.name, optional).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(EnvError::Config(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None => None,
                }
            } else if let Some(r) = &from.field_ref {
                Some(field_value(pod, &r.field_path, host_ip, pod_ip)?)
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(name) if !name.is_empty() => spec
                        .and_then(|s| s.containers.iter().find(|c| c.name == name))
                        .unwrap_or(container),
                    _ => container,
                };
                Some(resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                )?)
            } else {
                None
            };
            match value {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = value,
        None => vars.push((name, value)),
    }
}

/// Upstream's `$(VAR)` expansion: defined references are replaced, `$$`
/// escapes a `$`, anything else is left as written.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        if let Some((_, v)) = vars.iter().find(|(n, _)| n == name) {
                            out.push_str(v);
                        } else {
                            out.push_str(&input[i..i + 3 + end]);
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// A `fieldRef` value, for the paths upstream supports in env.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ip: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let bracket = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")))
            .and_then(|rest| rest.strip_suffix("']").or_else(|| rest.strip_suffix("\"]")))
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_owned(),
        "status.podIP" | "status.podIPs" => pod_ip.to_owned(),
        _ => {
            if let Some(key) = bracket("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = bracket("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(EnvError::Config(format!(
                    "unsupported fieldRef path {path:?}"
                )));
            }
        }
    })
}

/// A `resourceFieldRef` value: `limits.cpu` etc. divided by `divisor`
/// and rounded up, as upstream (cpu limits default to the node's cores).
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, EnvError> {
    let resources = container.resources.as_ref();
    let (map, name) = match resource.split_once('.') {
        Some(("limits", name)) => (resources.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (resources.and_then(|r| r.requests.as_ref()), name),
        _ => {
            return Err(EnvError::Config(format!(
                "unsupported resourceFieldRef {resource:?}"
            )));
        }
    };
    let value = map
        .and_then(|m| m.get(name))
        .and_then(|q| parse_milli(&q.0));
    let value = match value {
        Some(v) => v,
        None if resource == "limits.cpu" => {
            std::thread::available_parallelism().map_or(1, |n| n.get()) as i128 * 1000
        }
        None if resource == "limits.memory" => memory_total_milli(),
        None => 0,
    };
    let divisor = divisor
        .and_then(parse_milli)
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let result = (value + divisor - 1) / divisor;
    Ok(result.to_string())
}

fn memory_total_milli() -> i128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<i128>().ok()
        })
        .map_or(0, |kib| kib * 1024 * 1000)
}

/// Per-container cache of the ConfigMaps and Secrets read.
#[derive(Default)]
struct Sources {
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    async fn config_map(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if let Some(hit) = self.config_maps.get(name) {
            return Ok(hit.clone());
        }
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let data = match api.get_opt(name).await {
            Ok(Some(cm)) => Some(cm.data.unwrap_or_default()),
            Ok(None) if optional => None,
            Ok(None) => {
                return Err(EnvError::Config(format!("configmap \"{name}\" not found")));
            }
            Err(source) => {
                return Err(EnvError::Api {
                    what: format!("configmap {ns}/{name}"),
                    source,
                });
            }
        };
        self.config_maps.insert(name.to_owned(), data.clone());
        Ok(data)
    }

    async fn secret(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if let Some(hit) = self.secrets.get(name) {
            return Ok(hit.clone());
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let data = match api.get_opt(name).await {
            Ok(Some(secret)) => {
                let mut data: BTreeMap<String, String> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                data.extend(secret.string_data.unwrap_or_default());
                Some(data)
            }
            Ok(None) if optional => None,
            Ok(None) => return Err(EnvError::Config(format!("secret \"{name}\" not found"))),
            Err(source) => {
                return Err(EnvError::Api {
                    what: format!("secret {ns}/{name}"),
                    source,
                });
            }
        };
        self.secrets.insert(name.to_owned(), data.clone());
        Ok(data)
    }
}

async fn kubernetes_service(client: &kube::Client) -> Result<Vec<Service>, EnvError> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    match api.get_opt("kubernetes").await {
        Ok(svc) => Ok(svc.into_iter().collect()),
        Err(source) => Err(EnvError::Api {
            what: "service default/kubernetes".into(),
            source,
        }),
    }
}

/// Docker-link style variables of the namespace's Services (plus the
/// `kubernetes` Service), as upstream's `enableServiceLinks`.
async fn service_env(client: &kube::Client, ns: &str) -> Result<Env, EnvError> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let mut services = match api.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(source) => {
            return Err(EnvError::Api {
                what: format!("services in {ns}"),
                source,
            });
        }
    };
    if ns != "default" {
        services.extend(kubernetes_service(client).await?);
    }
    Ok(service_env_of(&services))
}

fn service_env_of(services: &[Service]) -> Env {
    let mut vars = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let name = svc
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        vars.push((format!("{name}_SERVICE_HOST"), ip.to_owned()));
        vars.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for port in ports {
            if let Some(pname) = &port.name {
                vars.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    port.port.to_string(),
                ));
            }
        }
        let proto = first.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        vars.push((
            format!("{name}_PORT"),
            format!("{proto}://{ip}:{}", first.port),
        ));
        for port in ports {
            let proto_lower = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            let proto_upper = proto_lower.to_uppercase();
            let prefix = format!("{name}_PORT_{}_{proto_upper}", port.port);
            vars.push((
                prefix.clone(),
                format!("{proto_lower}://{ip}:{}", port.port),
            ));
            vars.push((format!("{prefix}_PROTO"), proto_lower));
            vars.push((format!("{prefix}_PORT"), port.port.to_string()));
            vars.push((format!("{prefix}_ADDR"), ip.to_owned()));
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn references_expand_like_upstream() {
        let v = vars(&[("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)", &v), "x-y");
        assert_eq!(expand("$(C)", &v), "$(C)");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("a$", &v), "a$");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("é$(A)ü", &v), "éxü");
    }

    #[test]
    fn resource_values_are_divided_and_rounded_up() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}
        }))
        .unwrap_or_default();
        assert_eq!(
            resource_value(&container, "limits.cpu", None)
                .ok()
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            resource_value(&container, "limits.cpu", Some("1m"))
                .ok()
                .as_deref(),
            Some("500")
        );
        assert_eq!(
            resource_value(&container, "limits.memory", Some("1Mi"))
                .ok()
                .as_deref(),
            Some("64")
        );
        assert_eq!(
            resource_value(&container, "requests.memory", None)
                .ok()
                .as_deref(),
            Some("0")
        );
    }

    #[test]
    fn labels_are_read_by_key() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}
        }))
        .unwrap_or_default();
        assert_eq!(
            field_value(&pod, "metadata.labels['app']", "", "")
                .ok()
                .as_deref(),
            Some("web")
        );
        assert_eq!(
            field_value(&pod, "metadata.namespace", "", "")
                .ok()
                .as_deref(),
            Some("ns")
        );
        assert!(field_value(&pod, "spec.bogus", "", "").is_err());
    }
}
