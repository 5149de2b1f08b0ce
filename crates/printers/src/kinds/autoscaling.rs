//! Horizontal pod autoscalers: target reference, metric targets with
//! current values (`cpu: 40%/80%`), replica bounds and count.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::value::{arr_at, at, int_at, name, opt_int, str_at};

pub(crate) const HPA: Printer = Printer::new(
    &[
        NAME,
        Column::string("Reference", "The scaled object, as Kind/name."),
        Column::string("Targets", "Current and target values of the metrics."),
        Column::string("MinPods", "Lower replica bound."),
        Column::string("MaxPods", "Upper replica bound."),
        Column::string("Replicas", "Current number of replicas."),
        AGE,
    ],
    cells,
);

/// A `resource.Quantity` cell; Go prints a nil quantity as `<nil>`.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<nil>".to_owned(),
    }
}

fn percent(v: Option<i64>) -> Option<String> {
    v.map(|p| format!("{p}%"))
}

/// One metric: `spec` is the metric spec, `status` the matching status
/// entry (same index), if any.
fn metric(spec: &Value, status: Option<&Value>) -> String {
    let source = |kind: &str| status.and_then(|s| at(s, &[kind]));
    match str_at(spec, &["type"]) {
        kind @ ("External" | "Object") => {
            let key = if kind == "External" {
                "external"
            } else {
                "object"
            };
            let target = at(spec, &[key, "target"]);
            if let Some(avg) = target.and_then(|t| at(t, &["averageValue"])) {
                let current = source(key)
                    .and_then(|s| at(s, &["current", "averageValue"]))
                    .map_or_else(|| "<unknown>".to_owned(), |v| quantity(Some(v)));
                format!("{current}/{} (avg)", quantity(Some(avg)))
            } else {
                let current = source(key).map_or_else(
                    || "<unknown>".to_owned(),
                    |s| quantity(at(s, &["current", "value"])),
                );
                format!(
                    "{current}/{}",
                    quantity(target.and_then(|t| at(t, &["value"])))
                )
            }
        }
        "Pods" => {
            let current = source("pods").map_or_else(
                || "<unknown>".to_owned(),
                |s| quantity(at(s, &["current", "averageValue"])),
            );
            format!(
                "{current}/{}",
                quantity(at(spec, &["pods", "target", "averageValue"]))
            )
        }
        kind @ ("Resource" | "ContainerResource") => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource = str_at(spec, &[key, "name"]);
            let target = at(spec, &[key, "target"]);
            if let Some(avg) = target.and_then(|t| at(t, &["averageValue"])) {
                let current = source(key).map_or_else(
                    || "<unknown>".to_owned(),
                    |s| quantity(at(s, &["current", "averageValue"])),
                );
                format!("{resource}: {current}/{}", quantity(Some(avg)))
            } else {
                let current = percent(
                    source(key).and_then(|s| opt_int(s, &["current", "averageUtilization"])),
                )
                .unwrap_or_else(|| "<unknown>".to_owned());
                let target = percent(target.and_then(|t| opt_int(t, &["averageUtilization"])))
                    .unwrap_or_else(|| "<auto>".to_owned());
                format!("{resource}: {current}/{target}")
            }
        }
        _ => "<unknown type>".to_owned(),
    }
}

fn targets(hpa: &Value) -> String {
    const MAX: usize = 2;
    let specs = arr_at(hpa, &["spec", "metrics"]);
    let statuses = arr_at(hpa, &["status", "currentMetrics"]);
    let mut list: Vec<String> = if specs.is_empty() {
        // autoscaling/v1 shape: a single CPU utilization target.
        match opt_int(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
            None => return "<none>".to_owned(),
            Some(target) => {
                let current = percent(opt_int(hpa, &["status", "currentCPUUtilizationPercentage"]))
                    .unwrap_or_else(|| "<unknown>".to_owned());
                vec![format!("cpu: {current}/{target}%")]
            }
        }
    } else {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| metric(spec, statuses.get(i)))
            .collect()
    };
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(", "), count - MAX);
    }
    list.join(", ")
}

fn cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let min = opt_int(hpa, &["spec", "minReplicas"])
        .map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    vec![
        name(hpa).into(),
        format!(
            "{}/{}",
            str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
            str_at(hpa, &["spec", "scaleTargetRef", "name"])
        )
        .into(),
        targets(hpa).into(),
        min.into(),
        int_at(hpa, &["spec", "maxReplicas"]).into(),
        int_at(hpa, &["status", "currentReplicas"]).into(),
        age(hpa, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cpu_utilization() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let hpa = json!({"metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "40m"}}}]}});
        assert_eq!(
            cells(&hpa, now)[..6],
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 40%/80%"),
                json!("1"),
                json!(10),
                json!(2)
            ]
        );
        let no_status = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "memory", "target": {"averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
            {"type": "Weird"}]}});
        assert_eq!(
            targets(&no_status),
            "memory: <unknown>/100Mi, <unknown>/1k + 1 more..."
        );
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 50}});
        assert_eq!(targets(&v1), "cpu: <unknown>/50%");
    }
}
