//! Upstream's Priority admission: a new pod's `priorityClassName` (or the
//! `globalDefault` class when it names none) becomes its `spec.priority`
//! and `spec.preemptionPolicy`, which the scheduler orders and preempts
//! by; a class that does not exist is refused. Also the rule that only
//! one PriorityClass may be the global default, and the two system
//! classes every cluster has.

use serde_json::{Value, json};

use super::forbidden::forbidden;
use super::{Query, Registry, Target};
use crate::status::ApiError;

/// The classes upstream creates at start: (name, value, description).
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// A system class as stored.
pub fn system_class(name: &str, value: i64, description: &str) -> Value {
    json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": description,
        "globalDefault": false,
        "preemptionPolicy": "PreemptLowerPriority",
    })
}

fn is_default(class: &Value) -> bool {
    class.get("globalDefault").and_then(Value::as_bool) == Some(true)
}

/// The priority and preemption policy a pod gets from `class` (`None`: no
/// class, priority 0).
fn computed(class: Option<&Value>) -> (i64, String) {
    let value = class
        .and_then(|c| c.get("value"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let policy = class
        .and_then(|c| c.get("preemptionPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("PreemptLowerPriority")
        .to_owned();
    (value, policy)
}

/// Sets a pod's priority from its class, or says why it cannot. A pod
/// naming no class takes the default class (if any), which replaces the
/// priority 0 defaulting gave it.
pub fn resolve(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let (value, policy) = computed(class);
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !named && let Some(c) = class.and_then(|c| c.pointer("/metadata/name")) {
        // The default class: defaulting's priority 0 gives way to it.
        spec.insert("priorityClassName".into(), c.clone());
        if spec.get("priority").and_then(Value::as_i64) == Some(0) {
            spec.remove("priority");
        }
        if spec.get("preemptionPolicy").and_then(Value::as_str) == Some("PreemptLowerPriority") {
            spec.remove("preemptionPolicy");
        }
    }
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
        ));
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && given != policy
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        ));
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

impl Registry {
    async fn priority_classes(&self) -> Result<Vec<Value>, ApiError> {
        let Some(r) = self
            .resources
            .find("scheduling.k8s.io", "v1", "priorityclasses")
        else {
            return Ok(Vec::new());
        };
        let all = Target {
            r: &r,
            namespace: None,
            name: None,
        };
        Ok(self.list_page(&all, &Query::new()).await?.items)
    }

    /// Priority on a new pod, and the one-default rule on a new
    /// PriorityClass.
    pub(super) async fn admit_priority(
        &self,
        t: &Target<'_>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let name = t.name.as_deref().unwrap_or_default();
        if t.r.group == "scheduling.k8s.io" && t.r.kind == "PriorityClass" {
            if !is_default(obj) {
                return Ok(());
            }
            let classes = self.priority_classes().await?;
            if let Some(other) = classes.iter().find(|c| is_default(c)) {
                let other = other
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(forbidden(
                    &t.r.plural,
                    &t.r.group,
                    name,
                    &format!(
                        "PriorityClass {other} is already marked as default. Only one default can exist"
                    ),
                ));
            }
            return Ok(());
        }
        if !(t.r.group.is_empty() && t.r.kind == "Pod") {
            return Ok(());
        }
        let class_name = obj
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let classes = self.priority_classes().await?;
        let class = if class_name.is_empty() {
            // The lowest-valued default, as upstream, if several exist.
            classes
                .iter()
                .filter(|c| is_default(c))
                .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
        } else {
            let found = classes.iter().find(|c| {
                c.pointer("/metadata/name").and_then(Value::as_str) == Some(class_name.as_str())
            });
            if found.is_none() {
                return Err(forbidden(
                    "pods",
                    "",
                    name,
                    &format!("no PriorityClass with name {class_name} was found"),
                ));
            }
            found
        };
        resolve(obj, class).map_err(|reason| forbidden("pods", "", name, &reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_set_priority_and_refuse_conflicts() {
        let high =
            json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"});
        let mut pod = json!({"spec": {"priorityClassName": "high"}});
        assert_eq!(resolve(&mut pod, Some(&high)), Ok(()));
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
        let mut wrong = json!({"spec": {"priorityClassName": "high", "priority": 5}});
        assert_eq!(
            resolve(&mut wrong, Some(&high)),
            Err("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name".into())
        );
        // A default class replaces defaulting's priority 0.
        let default = json!({"metadata": {"name": "d"}, "value": 7, "globalDefault": true});
        let mut plain =
            json!({"spec": {"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}});
        assert_eq!(resolve(&mut plain, Some(&default)), Ok(()));
        assert_eq!(plain["spec"]["priority"], 7);
        assert_eq!(plain["spec"]["priorityClassName"], "d");
    }
}
