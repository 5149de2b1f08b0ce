//! End-to-end flows as `kubectl apply --server-side` (and plain kubectl
//! writes) drive them against the API server.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::testing::deployment_shapes;
use crate::*;

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T11:00:00Z";
const T2: &str = "2024-05-01T12:00:00Z";

fn deploy(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn with_labels(labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels}})
}

struct Cluster {
    shapes: skiff_apimachinery::shape::Shapes,
    root: skiff_apimachinery::shape::ShapeId,
    object: Option<Value>,
}

impl Cluster {
    fn new() -> Cluster {
        let (shapes, root) = deployment_shapes();
        Cluster {
            shapes,
            root,
            object: None,
        }
    }

    fn managed(&self) -> Vec<ManagedFieldsEntry> {
        self.object
            .as_ref()
            .map(|o| managed_fields_of(o).unwrap())
            .unwrap_or_default()
    }

    fn apply(
        &mut self,
        manager: &str,
        config: Value,
        force: bool,
        now: &str,
    ) -> Result<Applied, ApplyError> {
        let out = apply(
            self.object.as_ref(),
            &config,
            manager,
            force,
            &self.managed(),
            &self.shapes,
            self.root,
            "apps/v1",
            now,
        )?;
        self.object = Some(out.object.clone());
        Ok(out)
    }

    fn update(&mut self, manager: &str, new: Value, now: &str, subresource: Option<&str>) {
        let managed = managed_fields_for_update(self.object.as_ref(), &new, subresource.is_some());
        let entries = update(
            self.object.as_ref(),
            &new,
            manager,
            &managed,
            &self.shapes,
            self.root,
            "apps/v1",
            now,
            subresource,
        );
        let mut new = new;
        set_managed_fields(&mut new, &entries);
        self.object = Some(new);
    }

    fn obj(&self) -> &Value {
        self.object.as_ref().unwrap()
    }

    fn entry(&self, manager: &str) -> Option<ManagedFieldsEntry> {
        self.managed().into_iter().find(|e| e.manager == manager)
    }

    fn fields(&self, manager: &str) -> String {
        self.entry(manager)
            .map(|e| e.fields.to_fields_json())
            .unwrap_or_default()
    }
}

#[test]
fn create_via_apply_records_the_applier() {
    let mut c = Cluster::new();
    let cfg = deploy(
        json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}),
    );
    let out = c.apply("kubectl", cfg, false, T0).unwrap();
    assert!(out.changed);
    assert_eq!(out.object["spec"]["replicas"], 2);
    let e = c.entry("kubectl").unwrap();
    assert_eq!(e.operation, Operation::Apply);
    assert_eq!(e.api_version, "apps/v1");
    assert_eq!(e.time.as_deref(), Some(T0));
    assert_eq!(
        e.fields.to_fields_json(),
        r#"{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );
    assert_eq!(
        out.object["metadata"]["managedFields"][0]["fieldsV1"],
        serde_json::from_str::<Value>(&e.fields.to_fields_json()).unwrap()
    );
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let mut c = Cluster::new();
    let cfg = deploy(json!({"replicas": 2}));
    c.apply("kubectl", cfg.clone(), false, T0).unwrap();
    let before = c.obj().clone();
    let out = c.apply("kubectl", cfg, false, T1).unwrap();
    assert!(!out.changed);
    assert_eq!(&out.object, &before, "timestamp kept, nothing moved");
}

#[test]
fn managers_own_different_fields_side_by_side() {
    let mut c = Cluster::new();
    c.apply("a", deploy(json!({"replicas": 2})), false, T0)
        .unwrap();
    c.apply("b", with_labels(json!({"team": "x"})), false, T1)
        .unwrap();
    assert_eq!(c.obj()["spec"]["replicas"], 2);
    assert_eq!(c.obj()["metadata"]["labels"]["team"], "x");
    assert_eq!(c.fields("a"), r#"{"f:spec":{"f:replicas":{}}}"#);
    assert_eq!(
        c.fields("b"),
        r#"{"f:metadata":{"f:labels":{"f:team":{}}}}"#
    );
}

#[test]
fn conflicting_change_is_refused_then_forced() {
    let mut c = Cluster::new();
    c.apply(
        "a",
        deploy(json!({"replicas": 2, "paused": false})),
        false,
        T0,
    )
    .unwrap();
    let before = c.obj().clone();
    let err = c
        .apply("b", deploy(json!({"replicas": 3})), false, T1)
        .unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
    );
    assert_eq!(conflicts[0].manager, "a");
    assert_eq!(conflicts[0].operation, Operation::Apply);
    assert_eq!(
        conflict_causes(conflicts),
        vec![
            json!({"type": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".spec.replicas"})
        ]
    );
    assert_eq!(c.obj(), &before);

    let err = c
        .apply(
            "b",
            deploy(json!({"replicas": 3, "paused": true})),
            false,
            T1,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas"
    );

    c.apply("b", deploy(json!({"replicas": 3})), true, T1)
        .unwrap();
    assert_eq!(c.obj()["spec"]["replicas"], 3);
    assert_eq!(c.fields("a"), r#"{"f:spec":{"f:paused":{}}}"#);
    assert_eq!(c.fields("b"), r#"{"f:spec":{"f:replicas":{}}}"#);
    assert_eq!(c.entry("a").unwrap().time.as_deref(), Some(T0));
}

#[test]
fn applying_the_same_value_shares_ownership() {
    let mut c = Cluster::new();
    c.apply("a", deploy(json!({"replicas": 2})), false, T0)
        .unwrap();
    c.apply("b", deploy(json!({"replicas": 2})), false, T1)
        .unwrap();
    assert_eq!(c.fields("a"), c.fields("b"));
    // a drops it: b still owns it, so it stays.
    c.apply("a", deploy(json!({"paused": true})), false, T2)
        .unwrap();
    assert_eq!(c.obj()["spec"]["replicas"], 2);
    assert_eq!(c.fields("a"), r#"{"f:spec":{"f:paused":{}}}"#);
    // b drops it too: now it goes. (A config of only identity fields
    // owns nothing: `spec: {}` would own `spec` itself.)
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    c.apply("b", bare, false, T2).unwrap();
    assert!(c.obj()["spec"].get("replicas").is_none(), "{}", c.obj());
    assert!(c.entry("b").is_none(), "an empty entry is dropped");
}

#[test]
fn dropped_fields_are_removed_unless_owned_elsewhere() {
    let mut c = Cluster::new();
    c.apply("a", with_labels(json!({"x": "1", "y": "2"})), false, T0)
        .unwrap();
    c.apply("a", with_labels(json!({"x": "1"})), false, T1)
        .unwrap();
    assert_eq!(c.obj()["metadata"]["labels"], json!({"x": "1"}));
    assert_eq!(c.entry("a").unwrap().time.as_deref(), Some(T1));
    // An Update manager's field survives the applier dropping it.
    let mut edited = c.obj().clone();
    edited["metadata"]["labels"]["z"] = json!("3");
    c.update("kubectl-edit", edited, T1, None);
    c.apply("a", with_labels(json!({"z": "3"})), false, T2)
        .unwrap();
    c.apply("a", with_labels(json!({"w": "4"})), false, T2)
        .unwrap();
    assert_eq!(c.obj()["metadata"]["labels"], json!({"z": "3", "w": "4"}));
    assert_eq!(
        c.obj()["metadata"]["name"],
        "web",
        "identity is never pruned"
    );
}

#[test]
fn client_side_update_after_apply_takes_the_field() {
    let mut c = Cluster::new();
    c.apply(
        "kubectl",
        deploy(json!({"replicas": 2, "paused": false})),
        false,
        T0,
    )
    .unwrap();
    let mut scaled = c.obj().clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["metadata"]["resourceVersion"] = json!("7");
    c.update("kubectl-client-side-apply", scaled, T1, None);
    let e = c.entry("kubectl-client-side-apply").unwrap();
    assert_eq!(e.operation, Operation::Update);
    assert_eq!(e.time.as_deref(), Some(T1));
    assert_eq!(e.fields.to_fields_json(), r#"{"f:spec":{"f:replicas":{}}}"#);
    assert_eq!(c.fields("kubectl"), r#"{"f:spec":{"f:paused":{}}}"#);
    let err = c
        .apply(
            "kubectl",
            deploy(json!({"replicas": 2, "paused": false})),
            false,
            T2,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    // Re-applying the value the writer set is no conflict: shared.
    c.apply(
        "kubectl",
        deploy(json!({"replicas": 5, "paused": false})),
        false,
        T2,
    )
    .unwrap();
    assert_eq!(
        c.fields("kubectl"),
        r#"{"f:spec":{"f:paused":{},"f:replicas":{}}}"#
    );
}

#[test]
fn updates_that_change_nothing_keep_the_timestamp() {
    let mut c = Cluster::new();
    c.update("writer", deploy(json!({"replicas": 1})), T0, None);
    let same = c.obj().clone();
    c.update("writer", same.clone(), T1, None);
    assert_eq!(c.entry("writer").unwrap().time.as_deref(), Some(T0));
    // A different writer changing nothing gets no entry.
    c.update("other", same, T1, None);
    assert!(c.entry("other").is_none());
}

#[test]
fn create_by_update_owns_every_set_field() {
    let mut c = Cluster::new();
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "uid": "u", "resourceVersion": "1"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    c.update("kubectl-create", obj, T0, None);
    // New granular nodes are owned themselves (".") as upstream records
    // them for objects without a typed zero value; identity metadata is not.
    assert_eq!(
        c.fields("kubectl-create"),
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:replicas":{},"f:template":{".":{},"f:spec":{".":{},"f:containers":{".":{},"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );
}

#[test]
fn status_writes_are_their_own_entry() {
    let mut c = Cluster::new();
    c.apply("kubectl", deploy(json!({"replicas": 1})), false, T0)
        .unwrap();
    let mut with_status = c.obj().clone();
    with_status["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    c.update("kube-controller-manager", with_status, T1, Some("status"));
    let e = c.entry("kube-controller-manager").unwrap();
    assert_eq!(e.subresource.as_deref(), Some("status"));
    assert_eq!(
        e.fields.to_fields_json(),
        r#"{"f:status":{".":{},"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:status":{},"f:type":{}}},"f:replicas":{}}}"#
    );
    assert_eq!(c.fields("kubectl"), r#"{"f:spec":{"f:replicas":{}}}"#);
}

#[test]
fn containers_merge_by_name() {
    let mut c = Cluster::new();
    let tmpl =
        |containers: Value| deploy(json!({"template": {"spec": {"containers": containers}}}));
    c.apply(
        "a",
        tmpl(json!([{"name": "web", "image": "nginx"}])),
        false,
        T0,
    )
    .unwrap();
    c.apply(
        "b",
        tmpl(json!([{"name": "sidecar", "image": "busybox"}])),
        false,
        T1,
    )
    .unwrap();
    let names: Vec<&str> = c.obj()["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "sidecar"]);
    let err = c
        .apply(
            "b",
            tmpl(json!([{"name": "web", "image": "httpd"}])),
            false,
            T1,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="web"].image"#
    );
    // b drops its sidecar: the item goes, web stays.
    c.apply("b", tmpl(json!([])), false, T2).unwrap();
    assert_eq!(
        c.obj()["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx"}])
    );
}

#[test]
fn finalizers_are_a_set() {
    let mut c = Cluster::new();
    let fin = |f: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": f}});
    c.apply("a", fin(json!(["a.io/x"])), false, T0).unwrap();
    c.apply("b", fin(json!(["b.io/y"])), false, T1).unwrap();
    assert_eq!(
        c.obj()["metadata"]["finalizers"],
        json!(["a.io/x", "b.io/y"])
    );
    assert_eq!(
        c.fields("b"),
        r#"{"f:metadata":{"f:finalizers":{"v:\"b.io/y\"":{}}}}"#
    );
    c.apply("a", fin(json!([])), false, T2).unwrap();
    assert_eq!(c.obj()["metadata"]["finalizers"], json!(["b.io/y"]));
}

#[test]
fn atomic_fields_are_owned_whole() {
    let mut c = Cluster::new();
    let sel = |labels: Value| deploy(json!({"selector": {"matchLabels": labels}}));
    c.apply("a", sel(json!({"app": "web"})), false, T0).unwrap();
    assert_eq!(c.fields("a"), r#"{"f:spec":{"f:selector":{}}}"#);
    let err = c
        .apply("b", sel(json!({"app": "web", "tier": "x"})), false, T1)
        .unwrap_err();
    assert!(err.to_string().ends_with(": .spec.selector"), "{err}");
}

#[test]
fn invalid_configurations_are_refused() {
    let mut c = Cluster::new();
    let mut cfg = deploy(json!({}));
    cfg["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        c.apply("a", cfg, false, T0).unwrap_err(),
        ApplyError::ManagedFieldsInConfig
    );
    assert_eq!(
        c.apply("a", json!([1]), false, T0).unwrap_err(),
        ApplyError::NotAnObject
    );
    let dup = deploy(json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}));
    assert!(matches!(
        c.apply("a", dup, false, T0),
        Err(ApplyError::Invalid(_))
    ));
}

#[test]
fn malformed_stored_managed_fields_never_break_writes() {
    let mut c = Cluster::new();
    c.object = Some(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "managedFields": [{"manager": 7}, "junk"]}, "spec": {"replicas": 1}}));
    let mut new = c.obj().clone();
    new["spec"]["replicas"] = json!(2);
    c.update("writer", new, T0, None);
    assert_eq!(c.managed().len(), 1);
    assert_eq!(c.fields("writer"), r#"{"f:spec":{"f:replicas":{}}}"#);
}

fn config_strategy() -> impl Strategy<Value = Value> {
    let labels = prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c"]),
        "[a-c]{1,2}",
        0..3,
    );
    let replicas = prop::option::of(0i64..4);
    let containers = prop::collection::btree_map(
        prop::sample::select(vec!["web", "side", "init"]),
        (
            prop::option::of("[xy]{1,2}"),
            prop::option::of(prop::collection::vec(80u16..83, 0..3)),
        ),
        0..3,
    );
    let finalizers =
        prop::collection::btree_set(prop::sample::select(vec!["f/1", "f/2", "f/3"]), 0..3);
    (labels, replicas, containers, finalizers).prop_map(
        |(labels, replicas, containers, finalizers)| {
            let mut cfg =
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
            if !labels.is_empty() {
                cfg["metadata"]["labels"] = json!(labels);
            }
            if !finalizers.is_empty() {
                cfg["metadata"]["finalizers"] = json!(finalizers);
            }
            let mut spec = serde_json::Map::new();
            if let Some(r) = replicas {
                spec.insert("replicas".into(), json!(r));
            }
            if !containers.is_empty() {
                let list: Vec<Value> = containers
                    .into_iter()
                    .map(|(name, (image, ports))| {
                        let mut c = json!({"name": name});
                        if let Some(i) = image {
                            c["image"] = json!(i);
                        }
                        if let Some(ports) = ports {
                            let mut ports: Vec<u16> = ports;
                            ports.sort();
                            ports.dedup();
                            c["ports"] = json!(
                                ports
                                    .iter()
                                    .map(|p| json!({"containerPort": p}))
                                    .collect::<Vec<_>>()
                            );
                        }
                        c
                    })
                    .collect();
                spec.insert("template".into(), json!({"spec": {"containers": list}}));
            }
            if !spec.is_empty() {
                cfg["spec"] = Value::Object(spec);
            }
            cfg
        },
    )
}

proptest! {
    #[test]
    fn applying_twice_is_a_noop(first in config_strategy(), second in config_strategy(), force in any::<bool>()) {
        let mut c = Cluster::new();
        c.apply("other", first, false, T0).unwrap();
        let applied = c.apply("me", second.clone(), force, T1);
        prop_assume!(applied.is_ok());
        let after_first = c.obj().clone();
        let again = c.apply("me", second.clone(), false, T2).unwrap();
        prop_assert!(!again.changed);
        prop_assert_eq!(&again.object, &after_first);
        let result_fields = fields_of(&again.object, &c.shapes, c.root);
        let config_fields = try_fields_of(&second, &c.shapes, c.root).unwrap();
        prop_assert!(config_fields.difference(&result_fields).is_empty(),
            "missing {}", config_fields.difference(&result_fields).to_fields_json());
        // What is stored decodes back to what was returned.
        prop_assert_eq!(managed_fields_of(&again.object).unwrap(), again.managed);
    }
}
