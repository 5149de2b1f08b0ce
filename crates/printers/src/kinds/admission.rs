//! Admission configuration: webhook configurations and validating
//! admission policies and their bindings.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::format::selector_string;
use crate::value::{at, count_at, name, non_empty, str_at};

pub(crate) const WEBHOOKS: Printer = Printer::new(
    &[
        NAME,
        Column::integer("Webhooks", "Number of webhooks in the configuration."),
        AGE,
    ],
    webhooks,
);

fn webhooks(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        count_at(obj, &["webhooks"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const POLICY: Printer = Printer::new(
    &[
        NAME,
        Column::integer("Validations", "Number of validation rules in the policy."),
        Column::string(
            "ParamKind",
            "Kind of the resources that parameterize the policy.",
        ),
        AGE,
    ],
    policy,
);

fn policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_kind = match at(obj, &["spec", "paramKind"]) {
        Some(p) => format!("{}/{}", str_at(p, &["apiVersion"]), str_at(p, &["kind"])),
        None => "<unset>".to_owned(),
    };
    vec![
        name(obj).into(),
        count_at(obj, &["spec", "validations"]).into(),
        param_kind.into(),
        age(obj, now).into(),
    ]
}

pub(crate) const POLICY_BINDING: Printer = Printer::new(
    &[
        NAME,
        Column::string("PolicyName", "The policy this binding applies."),
        Column::string("ParamRef", "The resource holding the policy's parameters."),
        AGE,
    ],
    policy_binding,
);

fn policy_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param = match at(obj, &["spec", "paramRef"]) {
        None => "<unset>".to_owned(),
        Some(p) => match (non_empty(p, &["name"]), non_empty(p, &["namespace"])) {
            (Some(n), Some(ns)) => format!("{ns}/{n}"),
            (Some(n), None) => format!("*/{n}"),
            (None, _) => match at(p, &["selector"]) {
                Some(sel) => selector_string(Some(sel)).unwrap_or_default(),
                None => "<unset>".to_owned(),
            },
        },
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "policyName"]).into(),
        param.into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhook_count_and_binding() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let w = json!({"metadata": {"name": "w"}, "webhooks": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(webhooks(&w, now)[1], json!(2));
        let b = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p",
            "paramRef": {"name": "cfg"}}});
        assert_eq!(policy_binding(&b, now)[2], json!("*/cfg"));
    }
}
