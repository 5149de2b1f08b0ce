//! The JSONPath subset printer columns use in practice: dotted fields
//! (`.spec.replicas`), indexes (`.spec.items[0].name`, negative from the
//! end), wildcards (`[*]`, `.*`), quoted keys (`['app.kubernetes.io/name']`)
//! and equality filters (`.status.conditions[?(@.type=="Ready")].status`).
//! An optional `{...}` wrapper and leading `$` are accepted, as kubectl's
//! template syntax allows. Anything else is a syntax error rather than a
//! silent empty column.

use serde_json::Value;
use thiserror::Error;

/// A path that is not in the supported subset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonPathError {
    /// The path does not parse.
    #[error("invalid JSONPath {path:?}: {reason}")]
    Syntax {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter {
        path: Vec<String>,
        cmp: Option<(bool, Value)>, // (equal?, literal); None = existence
    },
}

/// A parsed path, reusable across objects.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// Longest path accepted (columns are short; this bounds parsing work).
const MAX_PATH_LEN: usize = 4096;

impl JsonPath {
    /// Parses `path`.
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let err = |reason: &str| JsonPathError::Syntax {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if path.len() > MAX_PATH_LEN {
            return Err(err("too long"));
        }
        let mut p = path.trim();
        if let Some(inner) = p.strip_prefix('{') {
            p = inner
                .strip_suffix('}')
                .ok_or_else(|| err("unclosed {"))?
                .trim();
        }
        p = p.strip_prefix('$').unwrap_or(p);
        let chars: Vec<char> = p.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'*') {
                        steps.push(Step::Wildcard);
                        i += 1;
                        continue;
                    }
                    let mut name = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        name.push(chars[i]);
                        i += 1;
                    }
                    if name.is_empty() {
                        // a lone "." (the whole object) is fine at the end
                        if i < chars.len() {
                            return Err(err("empty field name"));
                        }
                    } else {
                        steps.push(Step::Field(name));
                    }
                }
                '[' => {
                    let close = find_close(&chars, i).ok_or_else(|| err("unclosed ["))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    steps.push(parse_bracket(inner.trim()).map_err(|r| err(&r))?);
                    i = close + 1;
                }
                c if c.is_whitespace() => i += 1,
                _ if i == 0 => {
                    // "spec.replicas" without the leading dot
                    let mut name = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        name.push(chars[i]);
                        i += 1;
                    }
                    steps.push(Step::Field(name));
                }
                _ => return Err(err("unexpected character")),
            }
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects in `obj`, in document order.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![obj];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in cur {
                apply(step, v, &mut next);
            }
            cur = next;
        }
        cur
    }
}

/// Index of the `]` closing the `[` at `open`, skipping quoted text.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, c) in chars.iter().enumerate().skip(open + 1) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(*c),
            (None, ']') => return Some(j),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(key) = unquote(inner) {
        return Ok(Step::Field(key));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
        return parse_filter(f.trim());
    }
    inner
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported subscript [{inner}]"))
}

fn parse_filter(f: &str) -> Result<Step, String> {
    let (lhs, cmp) = if let Some((l, r)) = f.split_once("==") {
        (l.trim(), Some((true, parse_literal(r.trim())?)))
    } else if let Some((l, r)) = f.split_once("!=") {
        (l.trim(), Some((false, parse_literal(r.trim())?)))
    } else {
        (f, None)
    };
    let rel = lhs
        .strip_prefix('@')
        .ok_or_else(|| "filter must start with @".to_string())?;
    let path: Vec<String> = rel
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Step::Filter { path, cmp })
}

fn parse_literal(s: &str) -> Result<Value, String> {
    if let Some(q) = unquote(s) {
        return Ok(Value::String(q));
    }
    serde_json::from_str::<Value>(s)
        .ok()
        .filter(|v| !v.is_object() && !v.is_array())
        .ok_or_else(|| format!("unsupported literal {s}"))
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, v) {
        (Step::Field(name), Value::Object(m)) => out.extend(m.get(name)),
        (Step::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 {
                i64::try_from(a.len()).ok().map(|n| n + i)
            } else {
                Some(*i)
            };
            if let Some(item) = idx
                .and_then(|x| usize::try_from(x).ok())
                .and_then(|x| a.get(x))
            {
                out.push(item);
            }
        }
        (Step::Wildcard, Value::Array(a)) => out.extend(a.iter()),
        (Step::Wildcard, Value::Object(m)) => out.extend(m.values()),
        (Step::Filter { path, cmp }, Value::Array(a)) => {
            for item in a {
                let mut cur = Some(item);
                for seg in path {
                    cur = cur.and_then(|c| c.get(seg));
                }
                let keep = match (cur, cmp) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(x), Some((eq, lit))) => crate::schema::json::json_eq(x, lit) == *eq,
                };
                if keep {
                    out.push(item);
                }
            }
        }
        _ => {}
    }
}

/// Convenience: parse `path` and return the first value it selects in
/// `obj` (what a printer column cell shows); `Ok(None)` if nothing.
pub fn find_first<'a>(obj: &'a Value, path: &str) -> Result<Option<&'a Value>, JsonPathError> {
    Ok(JsonPath::parse(path)?.find(obj).into_iter().next())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Ready", "status": "False"}
            ]}
        })
    }

    #[test]
    fn column_paths() {
        let o = obj();
        assert_eq!(find_first(&o, ".spec.replicas").unwrap(), Some(&json!(3)));
        assert_eq!(
            find_first(&o, ".metadata.creationTimestamp").unwrap(),
            Some(&json!("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            find_first(&o, ".spec.items[0].name").unwrap(),
            Some(&json!("a"))
        );
        assert_eq!(
            find_first(&o, ".spec.items[-1].name").unwrap(),
            Some(&json!("b"))
        );
        assert_eq!(
            find_first(&o, ".status.conditions[?(@.type==\"Ready\")].status").unwrap(),
            Some(&json!("False"))
        );
        assert_eq!(
            find_first(&o, "{.status.conditions[?(@.type=='Progressing')].status}").unwrap(),
            Some(&json!("True"))
        );
        assert_eq!(
            find_first(&o, ".metadata.labels['app.kubernetes.io/name']").unwrap(),
            Some(&json!("web"))
        );
        assert_eq!(
            find_first(&o, ".metadata.labels.app\\.kubernetes\\.io/name").unwrap(),
            Some(&json!("web"))
        );
        let names: Vec<&Value> = JsonPath::parse(".spec.items[*].name").unwrap().find(&o);
        assert_eq!(names, vec![&json!("a"), &json!("b")]);
        assert_eq!(find_first(&o, ".spec.missing").unwrap(), None);
        assert_eq!(find_first(&o, ".spec.items[9]").unwrap(), None);
    }

    #[test]
    fn syntax_errors() {
        assert!(JsonPath::parse(".spec[").is_err());
        assert!(JsonPath::parse(".spec[abc]").is_err());
        assert!(JsonPath::parse("{.spec").is_err());
        assert!(JsonPath::parse(&".a".repeat(5000)).is_err());
    }
}
