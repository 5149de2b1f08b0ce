//! Cluster-level and policy kinds: pod disruption budgets, leases,
//! certificate signing requests, priority and runtime classes, API
//! priority-and-fairness objects, API services.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::{age, human_duration};
use crate::value::{
    arr_at, as_int, at, bool_at, int_at, name, non_empty, opt_int, opt_str, str_at,
};

pub(crate) const POD_DISRUPTION_BUDGET: Printer = Printer::new(
    &[
        NAME,
        Column::string("Min Available", "Pods that must stay available."),
        Column::string("Max Unavailable", "Pods that may be unavailable."),
        Column::integer(
            "Allowed Disruptions",
            "Pods that may be disrupted right now.",
        ),
        AGE,
    ],
    pod_disruption_budget,
);

/// An `IntOrString` as text, `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(n) => as_int(n).map_or_else(|| "N/A".to_owned(), |i| i.to_string()),
        None => "N/A".to_owned(),
    }
}

fn pod_disruption_budget(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        int_or_string(at(obj, &["spec", "minAvailable"])).into(),
        int_or_string(at(obj, &["spec", "maxUnavailable"])).into(),
        int_at(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const LEASE: Printer = Printer::new(
    &[
        NAME,
        Column::string("Holder", "Identity of the current lease holder."),
        AGE,
    ],
    lease,
);

fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const CSR: Printer = Printer::new(
    &[
        NAME,
        AGE,
        Column::string("SignerName", "The signer asked to sign the certificate."),
        Column::string("Requestor", "The user who created the request."),
        Column::string(
            "RequestedDuration",
            "Requested validity of the certificate.",
        ),
        Column::string(
            "Condition",
            "Approval state, and whether a certificate was issued.",
        ),
    ],
    csr,
);

fn csr_condition(obj: &Value) -> String {
    let has = |kind: &str| {
        arr_at(obj, &["status", "conditions"])
            .iter()
            .any(|c| str_at(c, &["type"]) == kind)
    };
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if non_empty(obj, &["status", "certificate"]).is_some() {
        status.push_str(",Issued");
    }
    status
}

fn csr(obj: &Value, now: Timestamp) -> Vec<Value> {
    let duration = match opt_int(obj, &["spec", "expirationSeconds"]) {
        Some(s) => human_duration(SignedDuration::from_secs(s)),
        None => "<none>".to_owned(),
    };
    vec![
        name(obj).into(),
        age(obj, now).into(),
        non_empty(obj, &["spec", "signerName"])
            .unwrap_or("<none>")
            .into(),
        str_at(obj, &["spec", "username"]).into(),
        duration.into(),
        csr_condition(obj).into(),
    ]
}

pub(crate) const PRIORITY_CLASS: Printer = Printer::new(
    &[
        NAME,
        Column::integer("Value", "Priority of pods using the class."),
        Column::boolean(
            "Global-Default",
            "Whether pods without a class get this one.",
        ),
        AGE,
        Column::string(
            "PreemptionPolicy",
            "Whether pods of the class may preempt others.",
        ),
    ],
    priority_class,
);

fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        int_at(obj, &["value"]).into(),
        bool_at(obj, &["globalDefault"]).into(),
        age(obj, now).into(),
        str_at(obj, &["preemptionPolicy"]).into(),
    ]
}

pub(crate) const RUNTIME_CLASS: Printer = Printer::new(
    &[
        NAME,
        Column::string("Handler", "The CRI handler that runs pods of this class."),
        AGE,
    ],
    runtime_class,
);

fn runtime_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["handler"]).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const FLOW_SCHEMA: Printer = Printer::new(
    &[
        NAME,
        Column::string(
            "PriorityLevel",
            "Priority level matching requests are assigned to.",
        ),
        Column::string("MatchingPrecedence", "Lower values are matched first."),
        Column::string("DistinguisherMethod", "How requests are split into flows."),
        AGE,
        Column::string("MissingPL", "Whether the priority level does not exist."),
    ],
    flow_schema,
);

fn flow_schema(obj: &Value, now: Timestamp) -> Vec<Value> {
    let dangling = arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Dangling")
        .map_or("?", |c| str_at(c, &["status"]));
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "priorityLevelConfiguration", "name"]).into(),
        int_at(obj, &["spec", "matchingPrecedence"]).into(),
        opt_str(obj, &["spec", "distinguisherMethod", "type"])
            .unwrap_or(if at(obj, &["spec", "distinguisherMethod"]).is_some() {
                ""
            } else {
                "<none>"
            })
            .into(),
        age(obj, now).into(),
        dangling.into(),
    ]
}

pub(crate) const PRIORITY_LEVEL: Printer = Printer::new(
    &[
        NAME,
        Column::string("Type", "Limited or Exempt."),
        Column::string(
            "NominalConcurrencyShares",
            "Share of the server's concurrency.",
        ),
        Column::string("Queues", "Number of queues."),
        Column::string("HandSize", "Queues each flow is shuffle-sharded over."),
        Column::string("QueueLengthLimit", "Requests each queue may hold."),
        AGE,
    ],
    priority_level,
);

fn priority_level(obj: &Value, now: Timestamp) -> Vec<Value> {
    let limited = at(obj, &["spec", "limited"]);
    let queuing = limited.and_then(|l| at(l, &["limitResponse", "queuing"]));
    let none = || Value::from("<none>");
    let shares = limited.map_or_else(none, |l| int_at(l, &["nominalConcurrencyShares"]).into());
    let queue = |field: &str| queuing.map_or_else(none, |q| int_at(q, &[field]).into());
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "type"]).into(),
        shares,
        queue("queues"),
        queue("handSize"),
        queue("queueLengthLimit"),
        age(obj, now).into(),
    ]
}

pub(crate) const API_SERVICE: Printer = Printer::new(
    &[
        NAME,
        Column::string("Service", "The service serving this API, or Local."),
        Column::string(
            "Available",
            "Whether the API is available, with the reason if not.",
        ),
        AGE,
    ],
    api_service,
);

fn api_service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match at(obj, &["spec", "service"]) {
        Some(s) => format!("{}/{}", str_at(s, &["namespace"]), str_at(s, &["name"])),
        None => "Local".to_owned(),
    };
    let available = arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Available")
        .map_or_else(
            || "Unknown".to_owned(),
            |c| {
                let status = str_at(c, &["status"]);
                match non_empty(c, &["reason"]) {
                    Some(reason) if status != "True" => format!("{status} ({reason})"),
                    _ => status.to_owned(),
                }
            },
        );
    vec![
        name(obj).into(),
        service.into(),
        available.into(),
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
    fn pdb_int_or_string() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            pod_disruption_budget(&pdb, now())[..4],
            [json!("web"), json!("2"), json!("N/A"), json!(1)]
        );
        let pct = json!({"spec": {"maxUnavailable": "25%"}});
        assert_eq!(pod_disruption_budget(&pct, now())[2], json!("25%"));
    }

    #[test]
    fn csr_states() {
        let csr_obj = json!({"metadata": {"name": "node-csr-x"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "username": "system:bootstrap:abc", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
        let r = csr(&csr_obj, now());
        assert_eq!(
            r[2..],
            [
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:bootstrap:abc"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(csr(&pending, now())[5], json!("Pending"));
    }

    #[test]
    fn api_service_availability() {
        let local = json!({"metadata": {"name": "v1."}, "status": {"conditions": [
            {"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            api_service(&local, now())[1..3],
            [json!("Local"), json!("True")]
        );
        let broken = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False",
                "reason": "MissingEndpoints"}]}});
        assert_eq!(
            api_service(&broken, now())[1..3],
            [
                json!("kube-system/metrics-server"),
                json!("False (MissingEndpoints)")
            ]
        );
    }

    #[test]
    fn priority_level_exempt() {
        let exempt = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt"}});
        assert_eq!(
            priority_level(&exempt, now())[1..6],
            [
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }
}
