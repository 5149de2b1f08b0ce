//! Tables for kinds without a dedicated printer, as upstream builds them:
//!
//! * built-in kinds (roles, cluster roles, limit ranges, CRDs, ...) use the
//!   API server's default table convertor: `NAME` and `CREATED AT` (an
//!   RFC 3339 UTC timestamp, `type: date`);
//! * custom resources without `additionalPrinterColumns` get `NAME` and
//!   `AGE` (`type: date`, printed as a human duration).

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE_DATE, CREATED_AT, NAME};
use crate::duration::age;
use crate::value::{name, time_at};

/// API groups served by the Kubernetes API server itself.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

pub(crate) fn is_built_in_group(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

pub(crate) const BUILT_IN: Printer = Printer::new(&[NAME, CREATED_AT], created_at);
pub(crate) const CUSTOM_RESOURCE: Printer = Printer::new(&[NAME, AGE_DATE], name_age);

/// Go's zero time as `time.RFC3339` formats it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn created_at(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = time_at(obj, &["metadata", "creationTimestamp"]).map_or_else(
        || ZERO_TIME.to_owned(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    vec![name(obj).into(), created.into()]
}

fn name_age(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj).into(), age(obj, now).into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_at_is_utc_seconds() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let role =
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-31T20:15:07+02:00"}});
        assert_eq!(
            created_at(&role, now),
            vec![json!("r"), json!("2024-05-31T18:15:07Z")]
        );
        assert_eq!(created_at(&json!({}), now)[1], json!(ZERO_TIME));
        let cr = json!({"metadata": {"name": "x", "creationTimestamp": "2024-06-01T11:59:50Z"}});
        assert_eq!(name_age(&cr, now), vec![json!("x"), json!("10s")]);
    }
}
