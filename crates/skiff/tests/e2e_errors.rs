#![allow(clippy::unwrap_used)]
//! Error shapes: every failure is a metav1.Status with upstream's code and
//! reason, and kubectl 1.27 and 1.33 show it as upstream's would.

mod common;

use common::{Ctl, KUBECTLS};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn write_temp(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn kubectl_shows_not_found_already_exists_invalid_bad_request_and_too_large() {
    let c = common::cluster();
    let files = tempfile::tempdir().unwrap();
    let dup = write_temp(
        &files,
        "dup.json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"}}"#,
    );
    let invalid = write_temp(
        &files,
        "invalid.json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
    );
    let malformed = write_temp(&files, "malformed.json", br#"{"apiVersion":"v1","kind":"#);
    let big_value = "x".repeat(3 * 1024 * 1024 + 1);
    let big = write_temp(
        &files,
        "big.json",
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{big_value}"}}}}"#)
            .as_bytes(),
    );
    let collection = "/api/v1/namespaces/default/configmaps";
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        // 404
        let err = k.fails(&["get", "configmap", "nope"]);
        assert_eq!(
            err.trim(),
            "Error from server (NotFound): configmaps \"nope\" not found",
            "kubectl 1.{minor}"
        );
        let err = k.fails(&["get", "--raw", &format!("{collection}/nope")]);
        assert!(err.contains("Error from server (NotFound)"), "{err}");
        // 409 AlreadyExists
        if minor == KUBECTLS[0] {
            k.ok(&["create", "--raw", collection, "-f", &dup]);
        }
        let err = k.fails(&["create", "--raw", collection, "-f", &dup]);
        assert_eq!(
            err.trim(),
            "Error from server (AlreadyExists): configmaps \"dup\" already exists",
            "kubectl 1.{minor}"
        );
        let err = k.fails_with_input(
            &["create", "--validate=false", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  namespace: default\n",
        );
        assert!(
            err.contains("Error from server (AlreadyExists)")
                && err.contains("configmaps \"dup\" already exists"),
            "{err}"
        );
        // 422 Invalid
        let err = k.fails(&["create", "--raw", collection, "-f", &invalid]);
        assert!(
            err.starts_with("The ConfigMap \"Bad_Name\" is invalid: metadata.name: "),
            "kubectl 1.{minor}: {err}"
        );
        assert!(err.contains("Invalid value: \"Bad_Name\""), "{err}");
        // 400 malformed JSON
        let err = k.fails(&["create", "--raw", collection, "-f", &malformed]);
        assert!(
            err.starts_with("Error from server (BadRequest): "),
            "kubectl 1.{minor}: {err}"
        );
        // 413 over 3 MiB
        let err = k.fails(&["create", "--raw", collection, "-f", &big]);
        assert!(
            err.starts_with("Error from server (RequestEntityTooLarge): "),
            "kubectl 1.{minor}: {err}"
        );
        // Nothing of the rejected bodies was stored; the server still serves.
        let names = k.ok(&[
            "get",
            "configmaps",
            "--field-selector",
            "metadata.name!=kube-root-ca.crt",
            "-o",
            "name",
        ]);
        assert_eq!(names.trim(), "configmap/dup", "kubectl 1.{minor}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_statuses_with_upstream_codes_reasons_and_details() {
    let c = common::cluster();
    let client = common::kube_client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // 404 NotFound with details naming the object.
    let status = common::api_error(cms.get("nope").await.unwrap_err());
    assert_eq!(status.code, 404, "{status:?}");
    assert_eq!(status.reason, "NotFound", "{status:?}");
    assert_eq!(status.message, "configmaps \"nope\" not found");
    let details = status.details.clone().expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("nope", "configmaps")
    );

    // 409 AlreadyExists.
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "one"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let status = common::api_error(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(status.code, 409, "{status:?}");
    assert_eq!(status.reason, "AlreadyExists", "{status:?}");
    assert_eq!(status.message, "configmaps \"one\" already exists");

    // 422 Invalid with causes carrying field paths.
    let bad: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "Bad_Name"}
    }))
    .unwrap();
    let status = common::api_error(cms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    assert!(
        status
            .message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: "),
        "{status:?}"
    );
    let details = status.details.clone().expect("details");
    assert_eq!(details.kind, "ConfigMap", "{status:?}");
    assert_eq!(details.name, "Bad_Name", "{status:?}");
    let fields = cause_fields(&details);
    assert!(
        fields.contains(&("metadata.name", "FieldValueInvalid")),
        "{status:?}"
    );
    let bad_label: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bad-label", "labels": {"ok": "not a valid value!"}}
    }))
    .unwrap();
    let status = common::api_error(
        cms.create(&PostParams::default(), &bad_label)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    let details = status.details.clone().expect("details");
    assert!(
        details
            .causes
            .iter()
            .any(|cause| cause.field.starts_with("metadata.labels")),
        "{status:?}"
    );

    // A Deployment missing required fields: one cause per field.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": []}}
        }
    }))
    .unwrap();
    let status = common::api_error(
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    let details = status.details.clone().expect("details");
    assert_eq!(details.group, "apps", "{status:?}");
    let fields = cause_fields(&details);
    assert!(
        fields.contains(&("spec.template.spec.containers", "FieldValueRequired")),
        "{status:?}"
    );
    assert!(
        fields.contains(&("spec.template.metadata.labels", "FieldValueInvalid")),
        "{status:?}"
    );
    // Nothing invalid was stored.
    let names: Vec<String> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["one"]);
}

/// (field, reason) of every cause of a 422.
fn cause_fields(details: &kube::core::response::StatusDetails) -> Vec<(&str, &str)> {
    details
        .causes
        .iter()
        .map(|cause| (cause.field.as_str(), cause.reason.as_str()))
        .collect()
}
