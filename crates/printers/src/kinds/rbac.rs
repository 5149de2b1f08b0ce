//! RBAC bindings: the bound role and, wide, the subjects. Roles and
//! cluster roles have no printer upstream and use the default table.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::value::{arr_at, name, str_at};

const COLUMNS: &[Column] = &[
    NAME,
    Column::string("Role", "The role granted, as Kind/name."),
    AGE,
    Column::string("Users", "Users the role is granted to.").wide(),
    Column::string("Groups", "Groups the role is granted to.").wide(),
    Column::string(
        "ServiceAccounts",
        "Service accounts the role is granted to.",
    )
    .wide(),
];

pub(crate) const ROLE_BINDING: Printer = Printer::new(COLUMNS, cells);
pub(crate) const CLUSTER_ROLE_BINDING: Printer = Printer::new(COLUMNS, cells);

fn cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in arr_at(obj, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{subject_name}",
                str_at(subject, &["namespace"])
            )),
            _ => {}
        }
    }
    vec![
        name(obj).into(),
        format!(
            "{}/{}",
            str_at(obj, &["roleRef", "kind"]),
            str_at(obj, &["roleRef", "name"])
        )
        .into(),
        age(obj, now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binding_subjects() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let rb = json!({"metadata": {"name": "admins"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "Group", "name": "system:masters"},
                {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]});
        assert_eq!(
            cells(&rb, now),
            vec![
                json!("admins"),
                json!("ClusterRole/cluster-admin"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("system:masters"),
                json!("kube-system/default")
            ]
        );
    }
}
