//! Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ReplicationController, Job, CronJob — selectors that must match their
//! pod templates, counts, strategies, and what may not change on update.

use serde_json::Value;

use super::meta::{self, to_map};
use super::pod::{self, diff_paths};
use super::shape;
use crate::field_error::FieldError;
use crate::names;
use crate::path::Path;
use crate::selectors::LabelSelector;

const SELECTOR_OPERATORS: &[&str] = &["DoesNotExist", "Exists", "In", "NotIn"];

/// Validates the spec of an `apps` workload (Deployment, ReplicaSet,
/// StatefulSet, DaemonSet).
pub(crate) fn validate_apps(kind: &str, obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    let Some(spec) = spec_of(obj, errs) else {
        return;
    };
    let selector = validate_label_selector(spec, "selector", &at, kind, errs);
    let labels = pod::validate_template(spec, "template", &at, errs);
    if let (Some(sel), Some(labels)) = (selector, labels) {
        check_selector_matches(&sel, &labels, &at, errs);
    }
    if kind != "DaemonSet" {
        shape::non_negative(spec, "replicas", &at, errs);
    }
    shape::non_negative(spec, "minReadySeconds", &at, errs);
    shape::non_negative(spec, "revisionHistoryLimit", &at, errs);
    if let Some(rp) = pod::template_restart_policy(shape::get(spec, "template"))
        && rp != "Always"
    {
        errs.push(FieldError::not_supported(
            &at.child("template").child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    match kind {
        "Deployment" => validate_deployment_strategy(spec, &at, errs),
        "StatefulSet" => {
            shape::one_of(
                spec,
                "podManagementPolicy",
                &at,
                &["OrderedReady", "Parallel"],
                errs,
            );
            if let Some(s) = shape::object(spec, "updateStrategy", &at, errs) {
                let s = Value::Object(s.clone());
                shape::one_of(
                    &s,
                    "type",
                    &at.child("updateStrategy"),
                    &["OnDelete", "RollingUpdate"],
                    errs,
                );
            }
            if let Some(name) = shape::string(spec, "serviceName", &at, errs)
                && !name.is_empty()
            {
                for m in names::dns1123_label(name) {
                    errs.push(FieldError::invalid(&at.child("serviceName"), name, m));
                }
            }
        }
        "DaemonSet" => {
            if let Some(s) = shape::object(spec, "updateStrategy", &at, errs) {
                let s = Value::Object(s.clone());
                shape::one_of(
                    &s,
                    "type",
                    &at.child("updateStrategy"),
                    &["OnDelete", "RollingUpdate"],
                    errs,
                );
            }
        }
        _ => {}
    }
}

fn spec_of<'a>(obj: &'a Value, errs: &mut Vec<FieldError>) -> Option<&'a Value> {
    let at = Path::new("spec");
    match shape::get(obj, "spec") {
        None => {
            errs.push(FieldError::required(&at, ""));
            None
        }
        Some(s) if s.is_object() => Some(s),
        Some(s) => {
            errs.push(FieldError::type_invalid(&at, s, "object"));
            None
        }
    }
}

/// Validates a `metav1.LabelSelector` field; returns it compiled when
/// valid. Absent selectors are Required; empty ones are invalid for
/// workloads.
fn validate_label_selector(
    parent: &Value,
    key: &str,
    at: &Path,
    kind: &str,
    errs: &mut Vec<FieldError>,
) -> Option<LabelSelector> {
    let path = at.child(key);
    let Some(sel) = shape::get(parent, key) else {
        errs.push(FieldError::required(&path, ""));
        return None;
    };
    if !sel.is_object() {
        errs.push(FieldError::type_invalid(&path, sel, "object"));
        return None;
    }
    let before = errs.len();
    let match_labels = shape::string_map(sel, "matchLabels", &path, errs);
    meta::validate_labels(&match_labels, &path.child("matchLabels"), errs);
    for (_, e, ep) in shape::objects(sel, "matchExpressions", &path, errs) {
        let key = shape::string(e, "key", &ep, errs).unwrap_or("");
        for m in names::qualified_name(key) {
            errs.push(FieldError::invalid(&ep.child("key"), key, m));
        }
        let op = shape::string(e, "operator", &ep, errs).unwrap_or("");
        let values = shape::array(e, "values", &ep, errs).map_or(0, Vec::len);
        match op {
            "In" | "NotIn" if values == 0 => errs.push(FieldError::required(
                &ep.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => errs.push(FieldError::forbidden(
                &ep.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            _ if !SELECTOR_OPERATORS.contains(&op) => errs.push(FieldError::invalid(
                &ep.child("operator"),
                op,
                "not a valid selector operator",
            )),
            _ => {}
        }
    }
    if errs.len() > before {
        return None;
    }
    let compiled = LabelSelector::from_json(sel).ok()?;
    if compiled.is_empty() {
        let what = match kind {
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            _ => "deployment",
        };
        errs.push(FieldError::invalid(
            &path,
            sel.clone(),
            format!("empty selector is invalid for {what}"),
        ));
        return None;
    }
    Some(compiled)
}

fn check_selector_matches(
    sel: &LabelSelector,
    labels: &[(String, String)],
    at: &Path,
    errs: &mut Vec<FieldError>,
) {
    let map = labels.iter().cloned().collect();
    if !sel.matches(&map) {
        errs.push(FieldError::invalid(
            &at.child("template").child("metadata").child("labels"),
            labels_value(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

fn labels_value(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Checks an int-or-percent (`maxSurge: 1` or `"25%"`); returns its
/// value as (number, is_percent).
fn int_or_percent(
    parent: &Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<(i64, bool)> {
    let v = shape::get(parent, key)?;
    let path = at.child(key);
    if let Some(i) = v.as_i64() {
        if i < 0 {
            errs.push(FieldError::invalid(
                &path,
                i,
                "must be greater than or equal to 0",
            ));
        }
        return Some((i, false));
    }
    if let Some(s) = v.as_str() {
        let digits = s.strip_suffix('%').unwrap_or("");
        match digits.parse::<i64>() {
            Ok(n) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                return Some((n, true));
            }
            _ => {
                errs.push(FieldError::invalid(
                    &path,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                return None;
            }
        }
    }
    errs.push(FieldError::type_invalid(
        &path,
        v,
        "integer or percent string",
    ));
    None
}

fn validate_deployment_strategy(spec: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let sp = at.child("strategy");
    if let Some(s) = shape::object(spec, "strategy", at, errs) {
        let s = Value::Object(s.clone());
        let ty = shape::one_of(&s, "type", &sp, &["Recreate", "RollingUpdate"], errs);
        let ru = shape::object(&s, "rollingUpdate", &sp, errs).map(|m| Value::Object(m.clone()));
        if ty.as_deref() == Some("Recreate") && ru.is_some() {
            errs.push(FieldError::forbidden(
                &sp.child("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            ));
        } else if let Some(ru) = ru {
            let rp = sp.child("rollingUpdate");
            let unavailable = int_or_percent(&ru, "maxUnavailable", &rp, errs);
            let surge = int_or_percent(&ru, "maxSurge", &rp, errs);
            if let Some((n, true)) = unavailable
                && n > 100
            {
                errs.push(FieldError::invalid(
                    &rp.child("maxUnavailable"),
                    format!("{n}%"),
                    "must not be greater than 100%",
                ));
            }
            if let (Some((0, u_pct)), Some((0, _))) = (unavailable, surge) {
                let shown: Value = if u_pct { "0%".into() } else { 0.into() };
                errs.push(FieldError::invalid(
                    &rp.child("maxUnavailable"),
                    shown,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
    }
    let min_ready = spec
        .get("minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(pd) = shape::non_negative(spec, "progressDeadlineSeconds", at, errs)
        && pd <= min_ready
    {
        errs.push(FieldError::invalid(
            &at.child("progressDeadlineSeconds"),
            pd,
            "must be greater than minReadySeconds",
        ));
    }
}

/// Validates a ReplicationController spec (map selector).
pub(crate) fn validate_replication_controller(obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    let Some(spec) = spec_of(obj, errs) else {
        return;
    };
    shape::non_negative(spec, "replicas", &at, errs);
    shape::non_negative(spec, "minReadySeconds", &at, errs);
    let selector = shape::string_map(spec, "selector", &at, errs);
    meta::validate_labels(&selector, &at.child("selector"), errs);
    if selector.is_empty() {
        errs.push(FieldError::required(&at.child("selector"), ""));
    }
    let selector = to_map(&selector);
    let labels = pod::validate_template(spec, "template", &at, errs);
    if let Some(labels) = labels
        && !selector.is_empty()
        && !selector
            .iter()
            .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
    {
        errs.push(FieldError::invalid(
            &at.child("template").child("metadata").child("labels"),
            labels_value(&labels),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(rp) = pod::template_restart_policy(shape::get(spec, "template"))
        && rp != "Always"
    {
        errs.push(FieldError::not_supported(
            &at.child("template").child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
}

/// Validates a Job spec at `at` (also used for CronJob job templates).
fn validate_job_spec(spec: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        shape::non_negative(spec, key, at, errs);
    }
    shape::boolean(spec, "suspend", at, errs);
    let mode = shape::one_of(spec, "completionMode", at, &["NonIndexed", "Indexed"], errs);
    if mode.as_deref() == Some("Indexed") && shape::get(spec, "completions").is_none() {
        errs.push(FieldError::required(
            &at.child("completions"),
            "when completion mode is Indexed",
        ));
    }
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    let selector = if shape::get(spec, "selector").is_some() || manual {
        validate_label_selector(spec, "selector", at, "job", errs)
    } else {
        None
    };
    let labels = pod::validate_template(spec, "template", at, errs);
    if let (Some(sel), Some(labels)) = (selector, labels) {
        check_selector_matches(&sel, &labels, at, errs);
    }
    let rp = pod::template_restart_policy(shape::get(spec, "template"));
    if shape::get(spec, "template").is_some() && !matches!(rp, Some("OnFailure" | "Never")) {
        errs.push(FieldError::required(
            &at.child("template").child("spec").child("restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
}

/// Validates a Job.
pub(crate) fn validate_job(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(spec) = spec_of(obj, errs) {
        validate_job_spec(spec, &Path::new("spec"), errs);
    }
}

/// Validates a CronJob: schedule, policies, and its job template.
pub(crate) fn validate_cron_job(obj: &Value, errs: &mut Vec<FieldError>) {
    let at = Path::new("spec");
    if let Some(name) = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        && name.len() > 52
    {
        errs.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            name,
            names::max_len_error(52),
        ));
    }
    let Some(spec) = spec_of(obj, errs) else {
        return;
    };
    match shape::string(spec, "schedule", &at, errs) {
        None | Some("") => errs.push(FieldError::required(&at.child("schedule"), "")),
        Some(s) => {
            if let Err(m) = check_schedule(s) {
                errs.push(FieldError::invalid(&at.child("schedule"), s, m));
            }
        }
    }
    shape::one_of(
        spec,
        "concurrencyPolicy",
        &at,
        &["Allow", "Forbid", "Replace"],
        errs,
    );
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        shape::non_negative(spec, key, &at, errs);
    }
    shape::boolean(spec, "suspend", &at, errs);
    let jt = at.child("jobTemplate");
    match shape::get(spec, "jobTemplate") {
        None => errs.push(FieldError::required(&jt, "")),
        Some(t) if t.is_object() => match shape::get(t, "spec") {
            Some(js) if js.is_object() => validate_job_spec(js, &jt.child("spec"), errs),
            Some(js) => errs.push(FieldError::type_invalid(&jt.child("spec"), js, "object")),
            None => errs.push(FieldError::required(&jt.child("spec"), "")),
        },
        Some(t) => errs.push(FieldError::type_invalid(&jt, t, "object")),
    }
}

/// Checks a cron schedule the way the standard 5-field parser upstream
/// uses does (plus `@hourly`-style descriptors and `@every`).
pub fn check_schedule(s: &str) -> Result<(), String> {
    if s.contains("TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    let s = s.trim();
    if let Some(d) = s.strip_prefix('@') {
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(i64, i64, &[&str], i64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (lo, hi, words, word_base)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            check_cron_part(part, lo, hi, words, word_base)?;
        }
    }
    Ok(())
}

fn check_cron_part(part: &str, lo: i64, hi: i64, words: &[&str], base: i64) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<i64>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("failed to parse int from {step}")),
        }
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    let num = |t: &str| -> Result<i64, String> {
        if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case(t)) {
            return Ok(i as i64 + base);
        }
        t.parse::<i64>()
            .map_err(|_| format!("failed to parse int from {t}"))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(range)?;
            (n, n)
        }
    };
    if start < lo {
        return Err(format!(
            "beginning of range ({start}) below minimum ({lo}): {part}"
        ));
    }
    if end > hi {
        return Err(format!("end of range ({end}) above maximum ({hi}): {part}"));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {part}"
        ));
    }
    Ok(())
}

/// Update rules for workloads: immutable selectors, Job templates, and
/// the StatefulSet fields that may change.
pub(crate) fn validate_workload_update(
    kind: &str,
    new: &Value,
    old: &Value,
    errs: &mut Vec<FieldError>,
) {
    let at = Path::new("spec");
    let null = Value::Null;
    let new_spec = new.get("spec").unwrap_or(&null);
    let old_spec = old.get("spec").unwrap_or(&null);
    let immutable = |key: &str, errs: &mut Vec<FieldError>| {
        let n = new_spec.get(key).unwrap_or(&null);
        let o = old_spec.get(key).unwrap_or(&null);
        if n != o {
            errs.push(FieldError::invalid(
                &at.child(key),
                n.clone(),
                "field is immutable",
            ));
        }
    };
    match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => immutable("selector", errs),
        "StatefulSet" => {
            let mut a = new_spec.clone();
            let mut b = old_spec.clone();
            for key in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                if let Some(m) = a.as_object_mut() {
                    m.remove(key);
                }
                if let Some(m) = b.as_object_mut() {
                    m.remove(key);
                }
            }
            if a != b {
                let mut changed = Vec::new();
                diff_paths(&b, &a, "spec", &mut changed);
                errs.push(FieldError::forbidden(
                    &at,
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        "Job" => {
            immutable("selector", errs);
            immutable("template", errs);
            immutable("completionMode", errs);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    }

    fn deploy(spec: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_apps("Deployment", &json!({"spec": spec}), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn valid_deployment() {
        let e = deploy(
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web", "x": "y"})),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}, "progressDeadlineSeconds": 600}),
        );
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn selector_rules() {
        assert_eq!(
            deploy(json!({"template": template(json!({"app": "web"}))})),
            vec!["spec.selector: Required value"]
        );
        assert_eq!(
            deploy(
                json!({"selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "web"}))})
            ),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
        assert_eq!(
            deploy(json!({"selector": {}, "template": template(json!({"app": "web"}))})),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        let e = deploy(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]}, {"key": "c", "operator": "Foo"}]}, "template": template(json!({}))}),
        );
        assert_eq!(
            e,
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Foo\": not a valid selector operator",
            ]
        );
    }

    #[test]
    fn replicas_restart_policy_and_strategy() {
        let mut t = template(json!({"app": "web"}));
        t["spec"]["restartPolicy"] = json!("Never");
        let e = deploy(
            json!({"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": t,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
        );
        assert_eq!(
            e,
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
        let e = deploy(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
            "strategy": {"type": "Recreate", "rollingUpdate": {}}, "minReadySeconds": 10, "progressDeadlineSeconds": 5}),
        );
        assert_eq!(
            e,
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
                "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
            ]
        );
        let e = deploy(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
            "strategy": {"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}}}),
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%") || e[1].contains("must not be greater than 100%"));
    }

    #[test]
    fn statefulset_and_daemonset() {
        let mut errs = Vec::new();
        validate_apps(
            "StatefulSet",
            &json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"})),
            "podManagementPolicy": "Random", "updateStrategy": {"type": "Sometimes"}}}),
            &mut errs,
        );
        let e: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            vec![
                "spec.podManagementPolicy: Unsupported value: \"Random\": supported values: \"OrderedReady\", \"Parallel\"",
                "spec.updateStrategy.type: Unsupported value: \"Sometimes\": supported values: \"OnDelete\", \"RollingUpdate\"",
            ]
        );
        let mut errs = Vec::new();
        validate_apps(
            "DaemonSet",
            &json!({"spec": {"selector": {}, "template": template(json!({"a": "b"}))}}),
            &mut errs,
        );
        assert_eq!(
            errs[0].to_string(),
            "spec.selector: Invalid value: {}: empty selector is invalid for daemonset"
        );
    }

    #[test]
    fn replication_controller() {
        let mut errs = Vec::new();
        validate_replication_controller(
            &json!({"spec": {"selector": {"a": "b"}, "template": template(json!({"a": "c"}))}}),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .ends_with("`selector` does not match template `labels`")
        );
        let mut errs = Vec::new();
        validate_replication_controller(
            &json!({"spec": {"template": template(json!({"a": "c"}))}}),
            &mut errs,
        );
        assert_eq!(errs[0].to_string(), "spec.selector: Required value");
    }

    #[test]
    fn job_rules() {
        let mut errs = Vec::new();
        validate_job(
            &json!({"spec": {"template": template(json!({})), "backoffLimit": -1, "completionMode": "Indexed"}}),
            &mut errs,
        );
        let e: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            vec![
                "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.completions: Required value: when completion mode is Indexed",
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ]
        );
        let mut t = template(json!({}));
        t["spec"]["restartPolicy"] = json!("Never");
        let mut errs = Vec::new();
        validate_job(&json!({"spec": {"template": t}}), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn cron_job_rules() {
        let mut t = template(json!({}));
        t["spec"]["restartPolicy"] = json!("OnFailure");
        let ok = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": t}}}});
        let mut errs = Vec::new();
        validate_cron_job(&ok, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let mut errs = Vec::new();
        validate_cron_job(
            &json!({"metadata": {"name": "x".repeat(53)}, "spec": {"concurrencyPolicy": "Never", "jobTemplate": {"spec": {"template": t}}}}),
            &mut errs,
        );
        let e: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(e[0].ends_with("must be no more than 52 characters"));
        assert_eq!(e[1], "spec.schedule: Required value");
        assert_eq!(
            e[2],
            "spec.concurrencyPolicy: Unsupported value: \"Never\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        );
    }

    #[test]
    fn schedules() {
        for ok in [
            "* * * * *",
            "0 0 1 1 0",
            "0-59/5 0,12 * jan-mar MON-FRI",
            "@hourly",
            "@every 5m",
            "? * * * *",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_schedule("* * *"),
            Err("expected exactly 5 fields, found 3: * * *".into())
        );
        assert_eq!(
            check_schedule("60 * * * *"),
            Err("end of range (60) above maximum (59): 60".into())
        );
        assert!(check_schedule("x * * * *").is_err());
        assert!(check_schedule("5-1 * * * *").is_err());
        assert!(check_schedule("@sometimes").is_err());
        assert!(check_schedule("*/0 * * * *").is_err());
        assert!(check_schedule("TZ=UTC * * * * *").is_err());
    }

    #[test]
    fn immutable_selectors_and_job_template() {
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"x": 1}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"a": "c"}}, "template": {"x": 2}}});
        let mut errs = Vec::new();
        validate_workload_update("Deployment", &new, &old, &mut errs);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("spec.selector: Invalid value: ")
        );
        assert!(errs[0].to_string().ends_with(": field is immutable"));
        let mut errs = Vec::new();
        validate_workload_update("Job", &new, &old, &mut errs);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].field, "spec.template");
        let mut errs = Vec::new();
        validate_workload_update(
            "StatefulSet",
            &json!({"spec": {"replicas": 3, "serviceName": "b"}}),
            &json!({"spec": {"replicas": 1, "serviceName": "a"}}),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with(
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
        ));
        let mut errs = Vec::new();
        validate_workload_update(
            "StatefulSet",
            &json!({"spec": {"replicas": 3}}),
            &json!({"spec": {"replicas": 1}}),
            &mut errs,
        );
        assert!(errs.is_empty());
    }
}
