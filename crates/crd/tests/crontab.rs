//! The CronTab CRD from the upstream documentation, end to end: accept the
//! definition, compute its status, then prune, default and validate
//! several custom objects the way the API server does on a write.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use skiff_crd::jsonpath::find_first;
use skiff_crd::{
    Structural, crd_status, default_definition, has_status_subresource, printer_columns,
    scale_paths, schema_for, served_versions, storage_version, validate_definition,
};

const CRON: &str = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$";

fn crontab_crd() -> Value {
    let mut crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                            "cronSpec": {"type": "string", "pattern": CRON},
                            "image": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}
                        }},
                        "status": {"type": "object", "properties": {
                            "replicas": {"type": "integer"},
                            "labelSelector": {"type": "string"}
                        }}
                    }
                }},
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                              "labelSelectorPath": ".status.labelSelector"}
                },
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ]
            }]
        }
    });
    default_definition(&mut crd);
    crd
}

fn messages(errs: &[skiff_apimachinery::FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn definition_is_accepted_and_established() {
    let crd = crontab_crd();
    assert_eq!(crd["spec"]["names"]["singular"], json!("crontab"));
    assert_eq!(crd["spec"]["names"]["listKind"], json!("CronTabList"));
    assert_eq!(
        messages(&validate_definition(&crd, None)),
        Vec::<String>::new()
    );

    let status = crd_status(&crd, &[], "2024-01-01T00:00:00Z");
    assert_eq!(status["conditions"][1]["type"], json!("Established"));
    assert_eq!(status["conditions"][1]["status"], json!("True"));
    assert_eq!(status["storedVersions"], json!(["v1"]));

    let mut stored = crd.clone();
    stored["status"] = status;
    // the stored CRD with its status still validates
    assert!(validate_definition(&stored, None).is_empty());

    assert_eq!(storage_version(&crd), Some("v1"));
    assert_eq!(served_versions(&crd), vec!["v1"]);
    assert!(has_status_subresource(&crd, "v1"));
    let scale = scale_paths(&crd, "v1").unwrap();
    assert_eq!(
        scale.label_selector.as_deref(),
        Some(".status.labelSelector")
    );
    assert_eq!(printer_columns(&crd, "v1").len(), 3);
}

#[test]
fn broken_definitions_are_rejected_with_upstream_messages() {
    let mut crd = crontab_crd();
    crd["metadata"]["name"] = json!("crontab.stable.example.com");
    crd["spec"]["group"] = json!("stable.example.com");
    crd["spec"]["scope"] = json!("Global");
    let m = messages(&validate_definition(&crd, None));
    assert_eq!(
        m,
        vec![
            "metadata.name: Invalid value: \"crontab.stable.example.com\": must be spec.names.plural+\".\"+spec.group",
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
        ]
    );

    let mut crd = crontab_crd();
    crd["metadata"]["name"] = json!("crontabs.example");
    crd["spec"]["group"] = json!("example");
    let m = messages(&validate_definition(&crd, None));
    assert_eq!(
        m,
        vec!["spec.group: Invalid value: \"example\": should be a domain with at least one dot"]
    );

    let mut crd = crontab_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    crd["spec"]["versions"].as_array_mut().unwrap().push(v2);
    let m = messages(&validate_definition(&crd, None));
    assert_eq!(m.len(), 1);
    assert!(m[0].starts_with("spec.versions: Invalid value: "));
    assert!(m[0].ends_with("must have exactly one version marked as storage version"));

    let mut crd = crontab_crd();
    crd["spec"]["versions"][0]["schema"] = json!({});
    assert_eq!(
        messages(&validate_definition(&crd, None)),
        vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
    );

    let mut crd = crontab_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"] =
        json!({"description": "no type"});
    assert_eq!(
        messages(&validate_definition(&crd, None)),
        vec![
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type: Required value: must not be empty for specified object fields"
        ]
    );

    let mut crd = crontab_crd();
    crd["spec"]["versions"][0]["name"] = json!("V1");
    crd["spec"]["names"]["plural"] = json!("crontabs");
    let m = messages(&validate_definition(&crd, None));
    assert!(m[0].starts_with("spec.versions[0].name: Invalid value: \"V1\": a DNS-1035 label"));
}

#[test]
fn immutable_fields_on_update() {
    let old = crontab_crd();
    let mut old_est = old.clone();
    old_est["status"] = crd_status(&old, &[], "T0");
    let mut new = old_est.clone();
    new["spec"]["group"] = json!("other.example.com");
    new["metadata"]["name"] = json!("crontabs.other.example.com");
    new["spec"]["scope"] = json!("Cluster");
    let m = messages(&validate_definition(&new, Some(&old_est)));
    assert_eq!(
        m,
        vec![
            "spec.scope: Invalid value: \"Cluster\": field is immutable",
            "spec.group: Invalid value: \"other.example.com\": field is immutable",
        ]
    );
    // scope may change while the CRD is not yet established
    let mut new = old.clone();
    new["spec"]["scope"] = json!("Cluster");
    assert!(validate_definition(&new, Some(&old)).is_empty());
}

fn write_path(schema: &Structural, obj: &mut Value) -> (Vec<String>, Vec<String>) {
    let unknown = schema.prune(obj);
    schema.default(obj);
    (unknown, messages(&schema.validate(obj)))
}

#[test]
fn custom_objects_are_pruned_defaulted_and_validated() {
    let crd = crontab_crd();
    let schema = Structural::from_schema(schema_for(&crd, "v1").unwrap()).unwrap();

    let mut ok = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "my-new-cron-object", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"cronSpec": "* * * * */5", "image": "my-awesome-cron-image"}});
    let (unknown, errs) = write_path(&schema, &mut ok);
    assert!(
        unknown.is_empty() && errs.is_empty(),
        "{unknown:?} {errs:?}"
    );
    assert_eq!(ok["spec"]["replicas"], json!(1));
    assert_eq!(find_first(&ok, ".spec.replicas").unwrap(), Some(&json!(1)));
    assert_eq!(
        find_first(&ok, ".metadata.creationTimestamp").unwrap(),
        Some(&json!("2024-01-01T00:00:00Z"))
    );

    let mut extra = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "x"}, "spec": {"cronSpec": "* * * * */5", "someRandomField": 42}, "junk": {}});
    let (unknown, errs) = write_path(&schema, &mut extra);
    assert_eq!(unknown, vec!["junk", "spec.someRandomField"]);
    assert!(errs.is_empty());

    let mut bad = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
        "spec": {"cronSpec": "* * * *", "image": "i", "replicas": 15}});
    let (_, errs) = write_path(&schema, &mut bad);
    assert_eq!(
        errs,
        vec![
            format!("spec.cronSpec: Invalid value: \"* * * *\": spec.cronSpec in body should match '{CRON}'"),
            "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10".to_string(),
        ]
    );

    let mut wrong_type = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
        "spec": {"replicas": "3"}});
    let (_, errs) = write_path(&schema, &mut wrong_type);
    assert_eq!(
        errs,
        vec![
            "spec.cronSpec: Required value".to_string(),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"".to_string(),
        ]
    );

    // a null replicas is defaulted (not nullable, has a default)
    let mut null_replicas = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
        "spec": {"cronSpec": "0 0 * * *", "replicas": null}});
    let (_, errs) = write_path(&schema, &mut null_replicas);
    assert!(errs.is_empty());
    assert_eq!(null_replicas["spec"]["replicas"], json!(1));
}
