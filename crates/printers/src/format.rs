//! Cell formats shared by several kinds: label maps, label selectors,
//! container lists, optional booleans, "a,b,c + 2 more..." lists.

use serde_json::{Map, Value};

use crate::value::{arr_at, str_at};

/// `k1=v1,k2=v2` sorted by key, or `<none>` (upstream `labels.FormatLabels`).
pub(crate) fn labels(map: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_owned();
    }
    pairs.sort_unstable();
    join(pairs.iter().map(|(k, v)| format!("{k}={v}")), ",")
}

/// Why a label selector cannot be turned into a selector string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSelector;

/// A `metav1.LabelSelector` as selector syntax (`app=web,tier in (a,b)`);
/// empty for a missing or empty selector.
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().ok_or(InvalidSelector)?;
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    for expr in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<&str> = arr_at(expr, &["values"])
            .iter()
            .map(|v| v.as_str().ok_or(InvalidSelector))
            .collect::<Result<_, _>>()?;
        values.sort_unstable();
        let text = match str_at(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(InvalidSelector),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(InvalidSelector),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(InvalidSelector),
        };
        if key.is_empty() {
            return Err(InvalidSelector);
        }
        reqs.push((key.to_owned(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(join(reqs.into_iter().map(|(_, text)| text), ","))
}

/// A label selector for display: `<none>` when empty, `<error>` when
/// invalid (upstream `metav1.FormatLabelSelector`).
pub(crate) fn label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_owned(),
        Ok(s) => s,
        Err(InvalidSelector) => "<error>".to_owned(),
    }
}

/// Comma-separated container names and images of a pod spec.
pub(crate) fn containers(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map(|s| arr_at(s, &["containers"])).unwrap_or(&[]);
    let names = join(containers.iter().map(|c| str_at(c, &["name"])), ",");
    let images = join(containers.iter().map(|c| str_at(c, &["image"])), ",");
    (names, images)
}

/// `True`/`False`/`<unset>` for an optional boolean.
pub(crate) fn bool_ptr(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// Joins the first items, appending ` + N more...` when `count` exceeded
/// `max`; `<unset>` for an empty list.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        return "<unset>".to_owned();
    }
    ret
}

/// Joins any iterator of displayable items.
pub(crate) fn join<I>(items: I, sep: &str) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(item.as_ref());
    }
    out
}

/// A `resource.Quantity` as printed: the stored string, `0` when absent.
pub(crate) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_sorted_or_none() {
        let m = json!({"b": "2", "a": "1"});
        assert_eq!(labels(m.as_object()), "a=1,b=2");
        assert_eq!(labels(None), "<none>");
    }

    #[test]
    fn selectors() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "x", "operator": "NotIn", "values": ["1"]}
            ]
        });
        assert_eq!(
            label_selector(Some(&sel)),
            "app=web,!env,tier in (a,b),x notin (1),zone"
        );
        assert_eq!(label_selector(Some(&json!({}))), "<none>");
        assert_eq!(label_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]});
        assert_eq!(label_selector(Some(&bad)), "<error>");
    }

    #[test]
    fn more_lists() {
        let l: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(list_with_more(&l, 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&l, 3, 3), "a,b,c");
        assert_eq!(list_with_more(&[], 0, 3), "<unset>");
    }
}
