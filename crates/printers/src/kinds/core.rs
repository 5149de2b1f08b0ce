//! Simple core kinds: namespaces, config maps, secrets, service accounts,
//! pod templates and resource quotas.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::format::{containers, labels, quantity};
use crate::value::{at, count_at, name, obj_at, str_at};

pub(crate) const NAMESPACE: Printer = Printer::new(
    &[
        NAME,
        Column::string("Status", "Phase of the namespace (Active or Terminating)."),
        AGE,
    ],
    namespace,
);

fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["status", "phase"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const CONFIG_MAP: Printer = Printer::new(
    &[
        NAME,
        Column::string("Data", "Number of keys in data and binaryData."),
        AGE,
    ],
    config_map,
);

fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    let keys = count_at(obj, &["data"]).saturating_add(count_at(obj, &["binaryData"]));
    vec![name(obj).into(), keys.into(), age(obj, now).into()]
}

pub(crate) const SECRET: Printer = Printer::new(
    &[
        NAME,
        Column::string("Type", "Type of the secret's contents."),
        Column::string("Data", "Number of keys in data."),
        AGE,
    ],
    secret,
);

fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["type"]).into(),
        count_at(obj, &["data"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const SERVICE_ACCOUNT: Printer = Printer::new(
    &[
        NAME,
        Column::string("Secrets", "Number of secrets listed for the account."),
        AGE,
    ],
    service_account,
);

fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        count_at(obj, &["secrets"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const POD_TEMPLATE: Printer = Printer::new(
    &[
        NAME,
        Column::string("Containers", "Names of the containers in the template."),
        Column::string("Images", "Images of the containers in the template."),
        Column::string("Pod Labels", "Labels of the pods made from the template."),
    ],
    pod_template,
);

fn pod_template(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(at(obj, &["template", "spec"]));
    vec![
        name(obj).into(),
        names.into(),
        images.into(),
        labels(obj_at(obj, &["template", "metadata", "labels"])).into(),
    ]
}

pub(crate) const RESOURCE_QUOTA: Printer = Printer::new(
    &[
        NAME,
        Column::string("Request", "Used and hard request quotas (used/hard)."),
        Column::string("Limit", "Used and hard limit quotas (used/hard)."),
        AGE,
    ],
    resource_quota,
);

fn resource_quota(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = obj_at(obj, &["status", "hard"])
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in resources {
        let used = quantity(at(obj, &["status", "used", resource]));
        let hard = quantity(at(obj, &["status", "hard", resource]));
        let text = format!("{resource}: {used}/{hard}");
        let mut pieces = resource.split('.');
        let is_limit = pieces.next() == Some("limits") && pieces.next().is_some();
        if is_limit {
            limits.push(text);
        } else {
            requests.push(text);
        }
    }
    vec![
        name(obj).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn namespace_config_map_secret() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T12:00:00Z"},
            "status": {"phase": "Active"}});
        assert_eq!(
            namespace(&ns, now()),
            vec![json!("default"), json!("Active"), json!("31d")]
        );
        let cm = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "x"},
            "binaryData": {"b": "AA=="}});
        assert_eq!(config_map(&cm, now())[1], json!(2));
        let s = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            secret(&s, now())[1..3],
            [json!("kubernetes.io/tls"), json!(2)]
        );
        let sa = json!({"metadata": {"name": "default"}});
        assert_eq!(service_account(&sa, now())[1], json!(0));
    }

    #[test]
    fn pod_template_row() {
        let pt = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "busybox"}]}}});
        assert_eq!(
            pod_template(&pt, now()),
            vec![json!("t"), json!("a"), json!("busybox"), json!("app=x")]
        );
    }

    #[test]
    fn resource_quota_row() {
        let rq = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi", "limits": "1"},
            "used": {"pods": "3", "requests.cpu": "500m"}}});
        let r = resource_quota(&rq, now());
        assert_eq!(r[1], json!("limits: 0/1, pods: 3/10, requests.cpu: 500m/4"));
        assert_eq!(r[2], json!("limits.memory: 0/8Gi"));
    }
}
