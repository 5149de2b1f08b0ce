//! The CRD's `status` as upstream's naming and establishing controllers
//! would leave it: which requested names are accepted (a name another CRD
//! of the same group already holds is refused), the `NamesAccepted` and
//! `Established` conditions, and `storedVersions`.
//!
//! Upstream runs two asynchronous controllers; skiff computes the same
//! outcome synchronously when a CRD is written, so a CRD whose names are
//! free is `Established` at once (reason `InitialNamesAccepted`). Other
//! CRDs' claims are their `status.acceptedNames`, as upstream reads them.

use serde_json::{Map, Value, json};

use crate::versions::storage_version;

/// One CRD condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `NamesAccepted` or `Established`.
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// What the naming controller decides for one CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct NamesOutcome {
    /// `status.acceptedNames`.
    pub accepted_names: Value,
    /// The `NamesAccepted` condition.
    pub names_accepted: Condition,
    /// The `Established` condition.
    pub established: Condition,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings<'a>(v: &'a Value, ptr: &str) -> Vec<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `requested` may be taken: it is what we already hold, or nobody has it.
fn check(requested: &str, accepted: &str, used: &[&str]) -> Result<(), String> {
    if requested == accepted || !used.contains(&requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

fn condition(crd: &Value, ty: &str) -> Option<Condition> {
    crd.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .map(|c| Condition {
            type_: ty.to_string(),
            status: s(c, "/status").to_string(),
            reason: s(c, "/reason").to_string(),
            message: s(c, "/message").to_string(),
        })
}

/// Decides accepted names and conditions for `crd` given every other CRD
/// (`others` may include `crd` itself; it is skipped by name).
pub fn accepted_names(crd: &Value, others: &[Value]) -> NamesOutcome {
    let group = s(crd, "/spec/group");
    let name = s(crd, "/metadata/name");
    let mut resources: Vec<&str> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    for o in others {
        if s(o, "/spec/group") != group || s(o, "/metadata/name") == name {
            continue;
        }
        let an = "/status/acceptedNames";
        resources.push(s(o, &format!("{an}/plural")));
        resources.push(s(o, &format!("{an}/singular")));
        resources.extend(strings(o, &format!("{an}/shortNames")));
        kinds.push(s(o, &format!("{an}/kind")));
        kinds.push(s(o, &format!("{an}/listKind")));
    }
    resources.retain(|x| !x.is_empty());
    kinds.retain(|x| !x.is_empty());

    let req = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let acc = crd
        .pointer("/status/acceptedNames")
        .cloned()
        .unwrap_or(Value::Null);
    let mut new = acc.as_object().cloned().unwrap_or_default();
    let mut failure: Option<(&str, String)> = None;

    for (field, reason, used) in [
        ("plural", "PluralConflict", &resources),
        ("singular", "SingularConflict", &resources),
    ] {
        let ptr = format!("/{field}");
        match check(s(&req, &ptr), s(&acc, &ptr), used) {
            Ok(()) => set(&mut new, field, req.get(field)),
            Err(m) => failure = Some((reason, m)),
        }
    }
    let req_short = strings(&req, "/shortNames");
    let acc_short = strings(&acc, "/shortNames");
    if req_short != acc_short {
        let errs: Vec<String> = req_short
            .iter()
            .filter(|sn| !acc_short.contains(sn))
            .filter_map(|sn| check(sn, "", &resources).err())
            .collect();
        if errs.is_empty() {
            set(&mut new, "shortNames", req.get("shortNames"));
        } else {
            let msg = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!("[{}]", errs.join(", "))
            };
            failure = Some(("ShortNamesConflict", msg));
        }
    }
    for (field, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        let ptr = format!("/{field}");
        match check(s(&req, &ptr), s(&acc, &ptr), &kinds) {
            Ok(()) => set(&mut new, field, req.get(field)),
            Err(m) => failure = Some((reason, m)),
        }
    }
    set(&mut new, "categories", req.get("categories"));

    let names_accepted = match failure {
        None => Condition {
            type_: "NamesAccepted".into(),
            status: "True".into(),
            reason: "NoConflicts".into(),
            message: "no conflicts found".into(),
        },
        Some((reason, message)) => Condition {
            type_: "NamesAccepted".into(),
            status: "False".into(),
            reason: reason.into(),
            message,
        },
    };
    let established = match condition(crd, "Established") {
        Some(c) if c.status == "True" => c,
        _ if names_accepted.status == "True" => Condition {
            type_: "Established".into(),
            status: "True".into(),
            reason: "InitialNamesAccepted".into(),
            message: "the initial names have been accepted".into(),
        },
        _ => Condition {
            type_: "Established".into(),
            status: "False".into(),
            reason: "NotAccepted".into(),
            message: "not all names are accepted".into(),
        },
    };
    NamesOutcome {
        accepted_names: Value::Object(new),
        names_accepted,
        established,
    }
}

/// Sets `key` to `v`, dropping empty values the way Go's `omitempty` does.
fn set(m: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    match v {
        Some(Value::String(x)) if !x.is_empty() => {
            m.insert(key.into(), Value::from(x.as_str()));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            m.insert(key.into(), Value::Array(a.clone()));
        }
        _ => {
            m.remove(key);
        }
    }
}

/// The full `status` for `crd`: its previous status (`crd.status`) with
/// accepted names, the two conditions (other conditions kept), and
/// `storedVersions` grown by the current storage version.
/// `lastTransitionTime` changes to `now` only when a condition's status
/// changes.
pub fn crd_status(crd: &Value, others: &[Value], now: &str) -> Value {
    let outcome = accepted_names(crd, others);
    let prev = crd.get("status").and_then(Value::as_object);
    let mut status = prev.cloned().unwrap_or_default();

    let mut conditions: Vec<Value> = prev
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in [&outcome.names_accepted, &outcome.established] {
        upsert_condition(&mut conditions, c, now);
    }
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("acceptedNames".into(), outcome.accepted_names);

    let mut stored: Vec<Value> = prev
        .and_then(|p| p.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(sv) = storage_version(crd)
        && !stored.iter().any(|x| x.as_str() == Some(sv))
    {
        stored.push(Value::from(sv));
    }
    status.insert("storedVersions".into(), Value::Array(stored));
    Value::Object(status)
}

fn upsert_condition(conditions: &mut Vec<Value>, c: &Condition, now: &str) {
    let existing = conditions
        .iter_mut()
        .find(|x| x.get("type").and_then(Value::as_str) == Some(c.type_.as_str()));
    let fresh = |time: &str| {
        json!({"type": c.type_, "status": c.status, "lastTransitionTime": time,
               "reason": c.reason, "message": c.message})
    };
    match existing {
        Some(x) => {
            let same = x.get("status").and_then(Value::as_str) == Some(c.status.as_str());
            let time = if same {
                x.get("lastTransitionTime")
                    .and_then(Value::as_str)
                    .unwrap_or(now)
                    .to_string()
            } else {
                now.to_string()
            };
            *x = fresh(&time);
        }
        None => conditions.push(fresh(now)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str, short: &[&str]) -> Value {
        json!({"metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "names": {"plural": plural, "singular": name,
                "kind": kind, "listKind": format!("{kind}List"), "shortNames": short},
                "versions": [{"name": "v1", "served": true, "storage": true}]}})
    }

    fn established(mut c: Value, now: &str) -> Value {
        let st = crd_status(&c, &[], now);
        c["status"] = st;
        c
    }

    #[test]
    fn no_conflicts_establishes() {
        let c = crd("crontab", "crontabs", "CronTab", &["ct"]);
        let st = crd_status(&c, &[], "T1");
        assert_eq!(
            st,
            json!({
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "lastTransitionTime": "T1", "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "lastTransitionTime": "T1", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ],
                "acceptedNames": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList", "shortNames": ["ct"]},
                "storedVersions": ["v1"]
            })
        );
    }

    #[test]
    fn conflicts_are_reported() {
        let existing = established(crd("crontab", "crontabs", "CronTab", &["ct"]), "T0");
        let mut other = crd("crontab2", "crontabs2", "CronTab2", &["ct"]);
        other["metadata"]["name"] = json!("crontabs2.example.com");
        let out = accepted_names(&other, std::slice::from_ref(&existing));
        assert_eq!(out.names_accepted.status, "False");
        assert_eq!(out.names_accepted.reason, "ShortNamesConflict");
        assert_eq!(out.names_accepted.message, "\"ct\" is already in use");
        assert_eq!(out.established.reason, "NotAccepted");
        assert!(out.accepted_names.get("shortNames").is_none());
        assert_eq!(out.accepted_names["plural"], json!("crontabs2"));

        let kind_clash = crd("x", "xs", "CronTab", &[]);
        let out = accepted_names(&kind_clash, std::slice::from_ref(&existing));
        // kind and listKind both clash; like upstream the last check wins
        assert_eq!(out.names_accepted.reason, "ListKindConflict");
        assert!(out.accepted_names.get("kind").is_none());
        // a different group never conflicts
        let mut other_group = kind_clash.clone();
        other_group["spec"]["group"] = json!("other.io");
        assert_eq!(
            accepted_names(&other_group, &[existing])
                .names_accepted
                .status,
            "True"
        );
    }

    #[test]
    fn transition_times_and_stored_versions() {
        let mut c = established(crd("crontab", "crontabs", "CronTab", &[]), "T0");
        c["spec"]["versions"] = json!([{"name": "v1", "served": true, "storage": false},
                                        {"name": "v2", "served": true, "storage": true}]);
        let st = crd_status(&c, &[], "T1");
        assert_eq!(st["conditions"][0]["lastTransitionTime"], json!("T0"));
        assert_eq!(st["storedVersions"], json!(["v1", "v2"]));
        // already established stays established even if names later clash
        assert_eq!(st["conditions"][1]["status"], json!("True"));
    }
}
