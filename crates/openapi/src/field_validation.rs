//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`).
//!
//! Our documents list `fieldValidation` on every write, so kubectl leaves
//! schema checks to the server and sends `fieldValidation=Strict` (its
//! default, `--validate=true`). Upstream's API server then reports fields
//! an object's schema does not declare, and keys given twice (which a JSON
//! decoder otherwise silently collapses):
//!
//! - `Strict`: the write fails, 400 BadRequest, message
//!   `Deployment in version "v1" cannot be handled as a Deployment: strict
//!   decoding error: unknown field "spec.foo", duplicate field "spec.paused"`
//!   ([`strict_error_message`]).
//! - `Warn` (the default when the parameter is absent): the write succeeds
//!   and each problem is a `Warning: 299 - "unknown field \"spec.foo\""`
//!   response header ([`warning_header_values`]).
//! - `Ignore`: nothing is reported.
//!
//! Paths are as upstream prints them: no leading dot, `.` between fields
//! and map keys, `[i]` for list items
//! (`spec.template.spec.containers[0].imagee`).

use crate::builder::OpenApi;
use crate::field_scan::{Scanner, push_index, push_key};
use crate::schema_tree::{Node, NodeId, Other, SchemaTree};
use serde_json::Value;
use skiff_apimachinery::go_quote;
use std::fmt;
use std::str::FromStr;

/// The `fieldValidation` query parameter of create, update and patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FieldValidation {
    /// Drop unknown fields silently, keep the last of duplicates.
    Ignore,
    /// Accept the write, warn about each problem. Upstream's default.
    #[default]
    Warn,
    /// Refuse the write with 400 BadRequest listing every problem.
    Strict,
}

impl FieldValidation {
    /// The directive of a request: a missing or empty parameter means
    /// [`FieldValidation::Warn`], as upstream. Values are case-sensitive.
    pub fn from_query(value: Option<&str>) -> Result<Self, InvalidFieldValidation> {
        match value {
            None | Some("") => Ok(FieldValidation::Warn),
            Some(v) => v.parse(),
        }
    }
}

impl FromStr for FieldValidation {
    type Err = InvalidFieldValidation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Ignore" => Ok(FieldValidation::Ignore),
            "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(InvalidFieldValidation(other.to_owned())),
        }
    }
}

/// An unsupported `fieldValidation` value; upstream answers 400 BadRequest
/// with this message (`field.NotSupported` on the `fieldValidation` path).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "fieldValidation: Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
    go_quote(.0)
)]
pub struct InvalidFieldValidation(pub String);

/// One problem strict decoding finds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldProblem {
    /// A field the schema does not declare (upstream drops it).
    Unknown(String),
    /// A key given twice in one JSON object (the last one wins).
    Duplicate(String),
}

impl FieldProblem {
    /// The field's path, e.g. `spec.template.spec.containers[0].imagee`.
    pub fn path(&self) -> &str {
        match self {
            FieldProblem::Unknown(p) | FieldProblem::Duplicate(p) => p,
        }
    }
}

/// `unknown field "<path>"` / `duplicate field "<path>"`, the path quoted
/// as Go's `%q` does.
impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            FieldProblem::Unknown(_) => "unknown",
            FieldProblem::Duplicate(_) => "duplicate",
        };
        write!(f, "{what} field {}", go_quote(self.path()))
    }
}

/// `strict decoding error: unknown field "spec.foo", duplicate field
/// "spec.bar"`: upstream's strict decoding error, problems in the order
/// given.
pub fn strict_message(problems: &[FieldProblem]) -> String {
    let mut out = String::from("strict decoding error: ");
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&problem.to_string());
    }
    out
}

/// The whole message of the 400 BadRequest `Status` a Strict write gets:
/// `<Kind> in version "<version>" cannot be handled as a <Kind>: strict
/// decoding error: ...` (`version` without the group, e.g. `v1` for
/// `apps/v1`).
pub fn strict_error_message(kind: &str, version: &str, problems: &[FieldProblem]) -> String {
    format!(
        "{kind} in version {} cannot be handled as a {kind}: {}",
        go_quote(version),
        strict_message(problems)
    )
}

/// One `Warning` response header value per problem, for `Warn`:
/// `299 - "unknown field \"spec.foo\""` (code 299, agent `-`, the text
/// quoted with `"` and `\` escaped, as upstream's `NewWarningHeader`).
///
/// Values may hold non-ASCII bytes (field names are UTF-8): build header
/// values from bytes (`HeaderValue::from_bytes`), not `from_str`.
pub fn warning_header_values(problems: &[FieldProblem]) -> Vec<String> {
    problems
        .iter()
        .map(|problem| {
            let text = problem.to_string();
            let mut value = String::with_capacity(text.len() + 10);
            value.push_str("299 - \"");
            for c in text.chars() {
                if matches!(c, '"' | '\\') {
                    value.push('\\');
                }
                value.push(c);
            }
            value.push('"');
            value
        })
        .collect()
}

/// Paths of the keys repeated within one JSON object anywhere in `json`,
/// in document order (serde_json silently keeps the last one; upstream's
/// strict decoder reports them). Schema-agnostic: see
/// [`OpenApi::field_problems`] for upstream's exact combination with
/// unknown fields. Malformed JSON is scanned up to the error.
pub fn duplicate_fields(json: &[u8]) -> Vec<String> {
    let mut scanner = Scanner::new(json, None, false);
    scanner.scan(None);
    scanner
        .problems
        .list
        .into_iter()
        .map(|p| p.path().to_owned())
        .collect()
}

impl OpenApi {
    /// Whether (group, version, kind) has a schema to validate against.
    pub fn has_schema(&self, group: &str, version: &str, kind: &str) -> bool {
        self.fields().root(group, version, kind).is_some()
    }

    /// Paths of the fields in `obj` that the schema of (group, version,
    /// kind) does not declare, e.g. `spec.template.spec.containers[0].imagee`;
    /// nothing below an unknown field is reported. Empty when the kind has
    /// no schema ([`OpenApi::has_schema`]).
    ///
    /// `apiVersion` and `kind` are always allowed; `metadata` must follow
    /// ObjectMeta; maps take any key; `x-kubernetes-preserve-unknown-fields`
    /// subtrees, int-or-string and quantities take anything.
    /// Order: the object's key order (sorted, with serde_json's default
    /// map).
    pub fn unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        obj: &Value,
    ) -> Vec<String> {
        let tree = self.fields();
        let mut out = Vec::new();
        if let Some((root, _)) = tree.root(group, version, kind) {
            let mut path = String::new();
            walk(tree, root, obj, &mut path, &mut out);
        }
        out
    }

    /// Every problem strict decoding of the request body `json` finds for
    /// (group, version, kind), in upstream's order and wording: for
    /// built-in kinds unknown and duplicate fields in document order (a
    /// repeated unknown field is reported once, as unknown); for custom
    /// resources the duplicates first, then the unknown fields (metadata
    /// first, then sorted), as upstream's decode-then-prune does. Kinds
    /// without a schema get duplicates only. Like upstream, at most 100
    /// problems, each once.
    pub fn field_problems(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        json: &[u8],
    ) -> Vec<FieldProblem> {
        let tree = self.fields();
        let root = tree.root(group, version, kind);
        let custom = root.is_some_and(|(_, custom)| custom);
        let mut scanner = Scanner::new(json, Some(tree), custom);
        scanner.scan(root.map(|(id, _)| id));
        let mut problems = scanner.problems.list;
        if custom {
            // Stable: duplicates keep document order.
            problems.sort_by(|a, b| custom_order(a).cmp(&custom_order(b)));
        }
        problems
    }
}

/// Upstream's order for custom resources: duplicates (strict JSON decode),
/// then unknown metadata fields (ObjectMeta decode), then the pruned
/// fields, sorted.
fn custom_order(problem: &FieldProblem) -> (u8, &str) {
    match problem {
        FieldProblem::Duplicate(_) => (0, ""),
        FieldProblem::Unknown(p) if p.starts_with("metadata.") => (1, p),
        FieldProblem::Unknown(p) => (2, p),
    }
}

fn walk(tree: &SchemaTree, id: NodeId, value: &Value, path: &mut String, out: &mut Vec<String>) {
    match (tree.node(id), value) {
        (Node::Object { fields, other }, Value::Object(map)) => {
            for (key, child) in map {
                let next = match fields.binary_search_by(|(k, _)| k.as_ref().cmp(key)) {
                    Ok(i) => Some(fields[i].1),
                    Err(_) => match other {
                        Other::Any => None,
                        Other::Schema(id) => Some(*id),
                        Other::Unknown => {
                            let len = path.len();
                            push_key(path, key);
                            out.push(path.clone());
                            path.truncate(len);
                            None
                        }
                    },
                };
                if let Some(next) = next
                    && (child.is_object() || child.is_array())
                {
                    let len = path.len();
                    push_key(path, key);
                    walk(tree, next, child, path, out);
                    path.truncate(len);
                }
            }
        }
        (Node::Array(item), Value::Array(items)) => {
            for (i, child) in items.iter().enumerate() {
                if child.is_object() || child.is_array() {
                    let len = path.len();
                    push_index(path, i);
                    walk(tree, *item, child, path, out);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\ny\u{1}é"), r#""x\ny\x01é""#);
    }

    #[test]
    fn directive_parsing() {
        assert_eq!(FieldValidation::from_query(None), Ok(FieldValidation::Warn));
        assert_eq!(
            FieldValidation::from_query(Some("")),
            Ok(FieldValidation::Warn)
        );
        assert_eq!(
            FieldValidation::from_query(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        let err = FieldValidation::from_query(Some("strict")).expect_err("case-sensitive");
        assert_eq!(
            err.to_string(),
            r#"fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn""#
        );
    }
}
