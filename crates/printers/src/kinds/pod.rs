//! Pods: `READY`, the aggregate `STATUS` (init progress, waiting and
//! terminated reasons, `Terminating`), `RESTARTS` with the time of the last
//! restart, and the wide `IP`/`NODE`/`NOMINATED NODE`/`READINESS GATES`.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::{age, since};
use crate::value::{arr_at, at, bool_at, int_at, is_deleting, name, non_empty, str_at, time_at};

pub(crate) const PRINTER: Printer = Printer {
    columns: COLUMNS,
    cells,
    conditions,
};

const COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Ready",
        "Ready containers out of all containers of the pod.",
    ),
    Column::string(
        "Status",
        "Summary of the pod's phase and its containers' states.",
    ),
    Column::string(
        "Restarts",
        "Container restarts in the pod, and how long ago the last one happened.",
    ),
    AGE,
    Column::string("IP", "The pod's primary IP address.").wide(),
    Column::string("Node", "The node the pod is bound to.").wide(),
    Column::string(
        "Nominated Node",
        "The node nominated for this pod by preemption.",
    )
    .wide(),
    Column::string(
        "Readiness Gates",
        "Readiness gates of the pod that are satisfied.",
    )
    .wide(),
];

/// Pod reason set when its node is unreachable (`NodeLost`).
const NODE_UNREACHABLE_REASON: &str = "NodeLost";

fn conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match str_at(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

/// Latest of two optional timestamps.
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn last_termination(status: &Value) -> Option<Timestamp> {
    time_at(status, &["lastState", "terminated", "finishedAt"])
}

fn has_condition(pod: &Value, kind: &str) -> Option<bool> {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .map(|c| str_at(c, &["status"]) == "True")
}

fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec_init = arr_at(pod, &["spec", "initContainers"]);
    let restartable = |name: &str| {
        spec_init
            .iter()
            .any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == "Always")
    };
    let sidecars = spec_init
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let total = arr_at(pod, &["spec", "containers"]).len() + sidecars;
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = non_empty(pod, &["status", "reason"])
        .unwrap_or(phase)
        .to_owned();
    let gated = arr_at(pod, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    });
    if gated {
        reason = "SchedulingGated".to_owned();
    }

    let mut initializing = false;
    for (i, st) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(st, &["restartCount"]);
        restarts = restarts.saturating_add(count);
        last_restart = later(last_restart, last_termination(st));
        let is_sidecar = restartable(str_at(st, &["name"]));
        if is_sidecar {
            sidecar_restarts = sidecar_restarts.saturating_add(count);
            last_sidecar_restart = later(last_sidecar_restart, last_termination(st));
        }
        let terminated = at(st, &["state", "terminated"]);
        let waiting_reason = non_empty(st, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && bool_at(st, &["started"]) {
            if bool_at(st, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match non_empty(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                None => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
            }
        } else if let Some(r) = waiting_reason.filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", spec_init.len())
        };
        initializing = true;
        break;
    }

    if !initializing || has_condition(pod, "Initialized") == Some(true) {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for st in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(int_at(st, &["restartCount"]));
            last_restart = later(last_restart, last_termination(st));
            let terminated = at(st, &["state", "terminated"]);
            if let Some(r) = non_empty(st, &["state", "waiting", "reason"]) {
                reason = r.to_owned();
            } else if let Some(t) = terminated {
                reason = match non_empty(t, &["reason"]) {
                    Some(r) => r.to_owned(),
                    None if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    None => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                };
            } else if bool_at(st, &["ready"]) && at(st, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") == Some(true) {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    if is_deleting(pod) {
        if str_at(pod, &["status", "reason"]) == NODE_UNREACHABLE_REASON {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let ip = non_empty(pod, &["status", "podIP"])
        .or_else(|| {
            arr_at(pod, &["status", "podIPs"])
                .first()
                .and_then(|p| non_empty(p, &["ip"]))
        })
        .unwrap_or("<none>");
    let node = non_empty(pod, &["spec", "nodeName"]).unwrap_or("<none>");
    let nominated = non_empty(pod, &["status", "nominatedNodeName"]).unwrap_or("<none>");

    vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now).into(),
        ip.into(),
        node.into(),
        nominated.into(),
        readiness_gates(pod).into(),
    ]
}

fn readiness_gates(pod: &Value) -> String {
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let satisfied = gates
        .iter()
        .filter(|g| has_condition(pod, str_at(g, &["conditionType"])) == Some(true))
        .count();
    format!("{satisfied}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2024-06-01T11:00:00Z"},
            "spec": spec,
            "status": status,
        })
    }

    fn row(p: &Value) -> Vec<Value> {
        cells(p, now())
    }

    #[test]
    fn running_pod_wide() {
        let p = pod(
            json!({"containers": [{"name": "app"}], "nodeName": "node-1"}),
            json!({
                "phase": "Running",
                "podIP": "10.244.0.5",
                "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": "2024-06-01T11:00:05Z"}}
                }]
            }),
        );
        assert_eq!(
            row(&p),
            vec![
                json!("web-0"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("60m"),
                json!("10.244.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn crash_loop_with_restarts() {
        let p = pod(
            json!({"containers": [{"name": "app"}]}),
            json!({
                "phase": "Running",
                "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2024-06-01T11:55:00Z"}}
                }]
            }),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("0/1"));
        assert_eq!(r[2], json!("CrashLoopBackOff"));
        assert_eq!(r[3], json!("5 (5m ago)"));
    }

    #[test]
    fn container_creating() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"}),
            json!({
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}},
                    {"name": "b", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                ]
            }),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("0/2"));
        assert_eq!(r[2], json!("ContainerCreating"));
        assert_eq!(r[5], json!("<none>"));
    }

    #[test]
    fn pending_unscheduled() {
        let p = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Pending"}),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("0/1"));
        assert_eq!(r[2], json!("Pending"));
        assert_eq!(r[6], json!("<none>"));
    }

    #[test]
    fn completed_job_pod() {
        let p = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({
                "phase": "Succeeded",
                "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
            }),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("0/1"));
        assert_eq!(r[2], json!("Completed"));
        assert_eq!(
            conditions(&p),
            vec![
                json!({"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."})
            ]
        );
    }

    #[test]
    fn terminating() {
        let mut p = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true,
                "state": {"running": {}}}]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2024-06-01T11:59:00Z");
        assert_eq!(row(&p)[2], json!("Terminating"));
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(row(&p)[2], json!("Unknown"));
    }

    #[test]
    fn init_containers() {
        let spec = json!({
            "initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "a"}]
        });
        let running_first = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"running": {}}},
                {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}),
        );
        assert_eq!(row(&running_first)[2], json!("Init:0/2"));

        let second = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i2", "state": {"running": {}}}
            ]}),
        );
        assert_eq!(row(&second)[2], json!("Init:1/2"));

        let failed = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}),
        );
        let r = row(&failed);
        assert_eq!(r[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(r[3], json!("3"));

        let exit = pod(
            spec,
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 2}}}
            ]}),
        );
        assert_eq!(row(&exit)[2], json!("Init:ExitCode:2"));
    }

    #[test]
    fn sidecar_counts_as_container() {
        let p = pod(
            json!({
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "a"}]
            }),
            json!({
                "phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true,
                    "restartCount": 1, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1,
                        "finishedAt": "2024-06-01T11:58:00Z"}}}],
                "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]
            }),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("2/2"));
        assert_eq!(r[2], json!("Running"));
        assert_eq!(r[3], json!("1 (2m ago)"));
    }

    #[test]
    fn completed_container_with_running_sibling() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({
                "phase": "Running",
                "containerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "ready": true, "state": {"running": {}}}
                ]
            }),
        );
        assert_eq!(row(&p)[2], json!("NotReady"));
    }

    #[test]
    fn gates_and_scheduling_gated() {
        let p = pod(
            json!({"containers": [], "readinessGates": [
                {"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]}),
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                {"type": "example.com/a", "status": "True"}
            ]}),
        );
        let r = row(&p);
        assert_eq!(r[2], json!("SchedulingGated"));
        assert_eq!(r[8], json!("1/2"));
    }
}
