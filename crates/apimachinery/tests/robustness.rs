//! Property tests: arbitrary JSON thrown at defaulting, validation and the
//! selector parsers must never panic, and realistic objects must validate
//! cleanly once defaulted.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use skiff_apimachinery::selectors::{FieldSelector, LabelSelector};
use skiff_apimachinery::{defaults, validation};

const KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "Service"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "ReplicationController"),
    ("", "PersistentVolumeClaim"),
    ("", "Endpoints"),
    ("", "PodTemplate"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("example.com", "Widget"),
];

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "v", "mountPath": "/v"}],
            "livenessProbe": {"httpGet": {"port": 80}}, "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "v"}], "tolerations": [{"key": "k", "operator": "Exists"}]}})
}

fn job_template() -> Value {
    let mut t = template();
    t["spec"]["restartPolicy"] = json!("Never");
    t
}

/// A valid, undefaulted example object of each kind.
fn sample(group: &str, kind: &str) -> Value {
    let meta = json!({"name": "web", "namespace": "default", "labels": {"app": "web"}});
    let sel = json!({"matchLabels": {"app": "web"}});
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    let mut obj = match kind {
        "Pod" => json!({"metadata": meta, "spec": template()["spec"]}),
        "Service" => {
            json!({"metadata": meta, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        }
        "ConfigMap" => json!({"metadata": meta, "data": {"a.conf": "x"}}),
        "Secret" => json!({"metadata": meta, "data": {"p": "eA=="}, "stringData": {"q": "y"}}),
        "Namespace" | "Node" => json!({"metadata": {"name": "web"}}),
        "ReplicationController" => {
            json!({"metadata": meta, "spec": {"selector": {"app": "web"}, "template": template()}})
        }
        "PersistentVolumeClaim" => json!({"metadata": meta, "spec": {}}),
        "Endpoints" => json!({"metadata": meta, "subsets": [{"ports": [{"port": 80}]}]}),
        "PodTemplate" => json!({"metadata": meta, "template": template()}),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            json!({"metadata": meta, "spec": {"selector": sel, "template": template()}})
        }
        "Job" => json!({"metadata": meta, "spec": {"template": job_template()}}),
        "CronJob" => json!({"metadata": meta, "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": job_template()}}}}),
        _ => json!({"metadata": meta, "spec": {"x": 1}}),
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind.into()));
    }
    obj
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9./:%=!, -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Always"),
            Just("None"),
            Just("ExternalName"),
            Just("NodePort"),
            Just("In"),
            Just("Exists"),
            Just("RollingUpdate"),
            Just("Recreate"),
            Just("Indexed"),
            Just("25%"),
            Just("kubernetes.io/tls"),
            Just("-"),
            Just(""),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z]{1,6}",
                    prop_oneof![
                        Just("metadata"),
                        Just("spec"),
                        Just("name"),
                        Just("containers"),
                        Just("image"),
                        Just("ports"),
                        Just("selector"),
                        Just("template"),
                        Just("labels"),
                        Just("type"),
                        Just("data"),
                        Just("port"),
                        Just("matchLabels"),
                        Just("matchExpressions"),
                        Just("values"),
                        Just("rollingUpdate"),
                        Just("strategy"),
                        Just("clusterIP"),
                    ]
                    .prop_map(String::from),
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every JSON pointer inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The sample with the value at one of its paths replaced.
fn mutated(group: &str, kind: &str, pick: usize, replacement: Value) -> Value {
    let mut obj = sample(group, kind);
    defaults::apply(group, kind, &mut obj);
    let mut ptrs = Vec::new();
    pointers(&obj, String::new(), &mut ptrs);
    let ptr = &ptrs[pick % ptrs.len()];
    if ptr.is_empty() {
        return replacement;
    }
    if let Some(slot) = obj.pointer_mut(ptr) {
        *slot = replacement;
    }
    obj
}

fn exercise(group: &str, kind: &str, obj: &Value, old: &Value) {
    let mut defaulted = obj.clone();
    defaults::apply(group, kind, &mut defaulted);
    let errs = validation::validate_create(group, kind, &defaulted);
    for e in &errs {
        let _ = (e.to_string(), e.reason(), e.body());
    }
    let _ = skiff_apimachinery::invalid_message(group, kind, "x", &errs);
    let _ = validation::validate_update(group, kind, &defaulted, old);
    let _ = validation::validate_update(group, kind, old, &defaulted);
    let _ = LabelSelector::from_json(obj);
    for fs in [
        "metadata.name=web",
        "spec.nodeName!=a,status.phase=Running",
        "status.replicas=1",
    ] {
        if let Ok(s) = FieldSelector::parse(fs) {
            let _ = s.matches(group, kind, obj);
        }
    }
}

#[test]
fn samples_are_valid_once_defaulted() {
    for (group, kind) in KINDS {
        let mut obj = sample(group, kind);
        defaults::apply(group, kind, &mut obj);
        let errs = validation::validate_create(group, kind, &obj);
        assert!(errs.is_empty(), "{kind}: {errs:?}");
        let errs = validation::validate_update(group, kind, &obj, &obj);
        assert!(errs.is_empty(), "{kind} update: {errs:?}");
        // defaulting is idempotent
        let mut again = obj.clone();
        defaults::apply(group, kind, &mut again);
        assert_eq!(again, obj, "{kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(k in 0..KINDS.len(), v in arb_json()) {
        let (group, kind) = KINDS[k];
        exercise(group, kind, &v, &sample(group, kind));
    }

    #[test]
    fn mutated_objects_never_panic(k in 0..KINDS.len(), pick in any::<usize>(), v in arb_json()) {
        let (group, kind) = KINDS[k];
        let obj = mutated(group, kind, pick, v);
        let mut old = sample(group, kind);
        defaults::apply(group, kind, &mut old);
        exercise(group, kind, &obj, &old);
    }

    #[test]
    fn selector_strings_never_panic(s in "[a-z0-9=!(),<> .\\\\/_-]{0,30}", t in any::<String>()) {
        let _ = LabelSelector::parse(&s).map(|x| x.to_string());
        let _ = LabelSelector::parse(&t);
        let _ = FieldSelector::parse(&s).map(|x| x.to_string());
        let _ = FieldSelector::parse(&t);
    }

    #[test]
    fn label_selector_display_round_trips(s in "[a-c]{1,2}(=|!=| in \\(x,y\\)| notin \\(z\\)|)") {
        if let Ok(sel) = LabelSelector::parse(&s) {
            let again = LabelSelector::parse(&sel.to_string());
            prop_assert_eq!(again, Ok(sel));
        }
    }
}
