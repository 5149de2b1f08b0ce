//! Upstream's `x-kubernetes-*` schema extensions that k8s-openapi's schemars
//! output lacks: strategic-merge metadata (`x-kubernetes-patch-merge-key`,
//! `x-kubernetes-patch-strategy`) and list/map topology
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, `x-kubernetes-unions`).
//!
//! `kubectl apply` computes its three-way strategic merge from the merge
//! keys, so they must be where upstream has them. The table
//! (`extensions.tsv`) is generated from upstream's v1.33 definitions by
//! `tools/extract_extensions.py`; each line is
//! `definition \t field path \t extension \t JSON value`, the field path
//! being dot-separated property names (empty for the definition itself).

use serde_json::{Map, Value};

const TABLE: &str = include_str!("extensions.tsv");

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extension {
    pub definition: &'static str,
    pub field_path: &'static str,
    pub name: &'static str,
    pub value: Value,
}

/// Every row of the embedded table. Malformed rows (not expected; the
/// table is generated) are skipped rather than failing the server.
pub(crate) fn table() -> Vec<Extension> {
    TABLE
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let definition = cols.next()?;
            let field_path = cols.next()?;
            let name = cols.next()?;
            let value = serde_json::from_str(cols.next()?).ok()?;
            Some(Extension {
                definition,
                field_path,
                name,
                value,
            })
        })
        .collect()
}

/// Adds every extension of the table whose definition and field exist in
/// `definitions`; returns how many were applied.
pub(crate) fn apply(definitions: &mut Map<String, Value>) -> usize {
    let mut applied = 0;
    for ext in table() {
        let Some(Value::Object(obj)) = definitions
            .get_mut(ext.definition)
            .and_then(|schema| field_mut(schema, ext.field_path))
        else {
            continue;
        };
        obj.insert(ext.name.to_owned(), ext.value);
        applied += 1;
    }
    applied
}

/// The schema of the property at a dot-separated path (`spec.containers`),
/// or `schema` itself for an empty path.
fn field_mut<'a>(schema: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    if path.is_empty() {
        return Some(schema);
    }
    let (field, rest) = path.split_once('.').unwrap_or((path, ""));
    let next = schema.get_mut("properties")?.get_mut(field)?;
    field_mut(next, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_completely() {
        let rows = table();
        assert_eq!(rows.len(), TABLE.lines().count());
        let merge_keys = rows
            .iter()
            .filter(|r| r.name == "x-kubernetes-patch-merge-key")
            .count();
        assert_eq!(merge_keys, 61);
        assert!(
            rows.iter()
                .any(|r| r.definition == "io.k8s.api.core.v1.PodSpec"
                    && r.field_path == "containers"
                    && r.name == "x-kubernetes-patch-merge-key"
                    && r.value == "name")
        );
    }
}
