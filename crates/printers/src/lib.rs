//! Server-side printing: the columns `kubectl get` shows for each kind.
//!
//! kubectl (1.27–1.33) asks list, get and watch requests for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
//! `meta.k8s.io/v1` `Table` the server returns: the server decides the
//! columns and formats every cell. This crate builds those Tables from API
//! objects (`serde_json::Value`, as stored), mirroring upstream 1.33's
//! printers (`pkg/printers/internalversion`) cell for cell, so that
//! `kubectl get`, `get -o wide` and `get -w` look the same against skiff as
//! against Kubernetes. It is a pure library: no I/O, and the current time is
//! an argument so output is deterministic.
//!
//! Start reading at [`table`] (`table.rs`), which assembles a Table from a
//! printer found by `kinds::lookup` (`kinds/mod.rs`); each module under
//! `kinds/` holds the printers of one API area (`pod.rs` has the
//! trickiest logic). `duration.rs` formats ages; `value.rs` has the
//! forgiving JSON accessors that keep every printer panic-free on
//! malformed objects.
//!
//! Kinds without a dedicated printer get upstream's defaults: built-in
//! kinds `NAME`/`CREATED AT`, custom resources `NAME`/`AGE`.
//!
//! Column descriptions are our own wording (kubectl never shows them);
//! names, types, formats and priorities match upstream.

mod column;
mod duration;
mod format;
mod kinds;
mod table;
mod value;

use jiff::Timestamp;
use serde_json::Value;

pub use duration::human_duration;
pub use table::{IncludeObject, TableMeta, UnknownIncludeObject, partial_object_metadata, table};

/// The `columnDefinitions` for a kind (`group` is `""` for the core group),
/// wide (priority 1) columns included.
pub fn columns(group: &str, kind: &str) -> Vec<Value> {
    kinds::lookup(group, kind)
        .columns
        .iter()
        .map(|c| c.to_json())
        .collect()
}

/// The cells of one object's row, one per column of [`columns`], as
/// upstream prints them (the server always prints wide; kubectl hides
/// priority 1 columns). Never panics, whatever the object holds.
pub fn row(group: &str, kind: &str, object: &Value, now: Timestamp) -> Vec<Value> {
    (kinds::lookup(group, kind).cells)(object, now)
}

/// Every (group, kind) with a dedicated printer, for registries and tests.
pub fn printed_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    kinds::PRINTED.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header(group: &str, kind: &str) -> Vec<(String, i64)> {
        columns(group, kind)
            .iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_uppercase();
                (name, c["priority"].as_i64().unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn pod_and_node_headers_match_upstream() {
        let pod: Vec<_> = header("", "Pod");
        let names: Vec<&str> = pod.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ]
        );
        assert!(pod[..5].iter().all(|(_, p)| *p == 0));
        assert!(pod[5..].iter().all(|(_, p)| *p == 1));
        let node: Vec<_> = header("", "Node").into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            node,
            [
                "NAME",
                "STATUS",
                "ROLES",
                "AGE",
                "VERSION",
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ]
        );
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "x"}});
        for (group, kind) in printed_kinds().chain([("", "LimitRange"), ("example.com", "Widget")])
        {
            let cells = row(group, kind, &obj, now);
            let expected = columns(group, kind).len();
            // IPAddress: upstream declares 2 columns but prints an AGE cell too.
            let extra = usize::from(kind == "IPAddress");
            assert_eq!(cells.len(), expected + extra, "{group}/{kind}");
            assert_eq!(
                cells[columns(group, kind)
                    .iter()
                    .position(|c| c["format"] == "name")
                    .unwrap()],
                json!("x")
            );
        }
    }

    #[test]
    fn defaults_for_kinds_without_printers() {
        let names = |g, k| -> Vec<String> { header(g, k).into_iter().map(|(n, _)| n).collect() };
        assert_eq!(
            names("rbac.authorization.k8s.io", "ClusterRole"),
            ["NAME", "CREATED AT"]
        );
        assert_eq!(names("", "LimitRange"), ["NAME", "CREATED AT"]);
        assert_eq!(names("stable.example.com", "CronTab"), ["NAME", "AGE"]);
    }
}
