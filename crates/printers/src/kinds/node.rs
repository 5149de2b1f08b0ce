//! Nodes: `STATUS` from the Ready condition and cordoning, `ROLES` from
//! role labels, kubelet version, and the wide addresses and system info.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::format::join;
use crate::value::{arr_at, bool_at, name, non_empty, obj_at, str_at};

pub(crate) const PRINTER: Printer = Printer::new(
    &[
        NAME,
        Column::string(
            "Status",
            "Readiness of the node, and whether it is cordoned.",
        ),
        Column::string(
            "Roles",
            "Roles from the node's node-role.kubernetes.io labels.",
        ),
        AGE,
        Column::string("Version", "Version of the node's kubelet."),
        Column::string("Internal-IP", "The node's first InternalIP address.").wide(),
        Column::string("External-IP", "The node's first ExternalIP address.").wide(),
        Column::string("OS-Image", "Operating system image reported by the node.").wide(),
        Column::string("Kernel-Version", "Kernel version reported by the node.").wide(),
        Column::string("Container-Runtime", "Container runtime name and version.").wide(),
    ],
    cells,
);

const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const LEGACY_ROLE_LABEL: &str = "kubernetes.io/role";

fn status(node: &Value) -> String {
    // The last Ready condition wins, as upstream indexes conditions by type.
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut parts = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

fn roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (key, value) in obj_at(node, &["metadata", "labels"]).into_iter().flatten() {
        let role = match key.strip_prefix(ROLE_LABEL_PREFIX) {
            Some(role) => role,
            None if key == LEGACY_ROLE_LABEL => value.as_str().unwrap_or(""),
            None => continue,
        };
        if !role.is_empty() {
            roles.insert(role);
        }
    }
    if roles.is_empty() {
        "<none>".to_owned()
    } else {
        join(roles, ",")
    }
}

fn address(node: &Value, kind: &str) -> String {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]))
        .unwrap_or("<none>")
        .to_owned()
}

fn cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let info = |field: &str| non_empty(node, &["status", "nodeInfo", field]).unwrap_or("<unknown>");
    vec![
        name(node).into(),
        status(node).into(),
        roles(node).into(),
        age(node, now).into(),
        str_at(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address(node, "InternalIP").into(),
        address(node, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn ready_control_plane() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": "2024-06-01T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "",
                    "kubernetes.io/hostname": "cp-1"}},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1+skiff", "osImage": "Debian GNU/Linux 13 (trixie)",
                    "kernelVersion": "6.12.0-1-amd64", "containerRuntimeVersion": "containerd://2.0.2"}
            }
        });
        assert_eq!(
            cells(&node, now()),
            vec![
                json!("cp-1"),
                json!("Ready"),
                json!("control-plane"),
                json!("9d"),
                json!("v1.33.1+skiff"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 13 (trixie)"),
                json!("6.12.0-1-amd64"),
                json!("containerd://2.0.2")
            ]
        );
    }

    #[test]
    fn cordoned_not_ready_and_unknown() {
        let node = json!({"metadata": {"name": "w", "labels": {"kubernetes.io/role": "worker",
                "node-role.kubernetes.io/infra": "true"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let r = cells(&node, now());
        assert_eq!(r[1], json!("NotReady,SchedulingDisabled"));
        assert_eq!(r[2], json!("infra,worker"));
        assert_eq!(r[7], json!("<unknown>"));
        let bare = json!({"metadata": {"name": "n"}});
        let r = cells(&bare, now());
        assert_eq!(r[1], json!("Unknown"));
        assert_eq!(r[2], json!("<none>"));
        assert_eq!(r[4], json!(""));
    }
}
