#![allow(clippy::unwrap_used)]
//! CustomResourceDefinitions as users meet them, with kubectl 1.27 and
//! 1.33: apply a CRD, wait for Established, apply a custom object, see it
//! with the CRD's printer columns and short name, explain its schema, be
//! told about an invalid object, use the status subresource, and delete the
//! definition together with its objects.

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, KUBECTLS};

const CRD_NAME: &str = "crontabs.stable.example.com";

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: The desired schedule, image and replica count of a CronTab.
            properties:
              cronSpec:
                type: string
                description: The cron expression for when to run.
              image:
                type: string
                description: The image to run.
              replicas:
                type: integer
                description: How many copies to run.
          status:
            type: object
            properties:
              replicas:
                type: integer
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Spec
      type: string
      description: The cron spec defining the interval a CronJob is run
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      description: The number of jobs launched by the CronJob
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#;

fn crontab(name: &str, replicas: &str) -> String {
    format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: {name}\nspec:\n  cronSpec: \"* * * * */5\"\n  image: my-awesome-cron-image\n  replicas: {replicas}\n"
    )
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn custom_resources_end_to_end() {
    let c = common::cluster();
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let ns = format!("crd-{minor}");
        k.create_namespace(&ns);
        let dir = tempfile::tempdir().unwrap();
        let crd_file = write(dir.path(), "crd.yaml", CRD);
        let obj = format!("cron-{minor}");
        let obj_file = write(dir.path(), "ct.yaml", &crontab(&obj, "3"));
        let bad_file = write(dir.path(), "bad.yaml", &crontab("bad", "\"three\""));

        // The definition.
        let out = k.ok(&["apply", "-f", &crd_file]);
        assert_eq!(
            out.trim(),
            format!("customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} created"),
            "kubectl 1.{minor} apply -f crd.yaml"
        );
        let out = k.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/{CRD_NAME}"),
        ]);
        assert_eq!(
            out.trim(),
            format!("customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} condition met"),
            "kubectl 1.{minor} wait"
        );
        // A recreated definition starts empty: the objects of the
        // previous round were deleted with it.
        let leftovers = k.ok(&["get", "crontabs", "-A", "-o", "name"]);
        assert!(
            leftovers.trim().is_empty(),
            "kubectl 1.{minor}: objects survived their definition:\n{leftovers}"
        );

        // An object.
        let out = k.ok(&["apply", "-n", &ns, "-f", &obj_file]);
        assert_eq!(
            out.trim(),
            format!("crontab.stable.example.com/{obj} created"),
            "kubectl 1.{minor} apply -f ct.yaml"
        );
        let out = k.ok(&["apply", "-n", &ns, "-f", &obj_file]);
        assert_eq!(
            out.trim(),
            format!("crontab.stable.example.com/{obj} unchanged"),
            "kubectl 1.{minor} apply -f ct.yaml (again)"
        );

        // The printer columns.
        let table = k.ok(&["get", "-n", &ns, "crontabs"]);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows.first().map(|r| r.join(" ")).unwrap_or_default(),
            "NAME SPEC REPLICAS AGE",
            "kubectl 1.{minor} get crontabs:\n{table}"
        );
        assert_eq!(rows.len(), 2, "kubectl 1.{minor} get crontabs:\n{table}");
        assert_eq!(
            rows[1][..7],
            [obj.as_str(), "*", "*", "*", "*", "*/5", "3"],
            "kubectl 1.{minor} get crontabs:\n{table}"
        );
        let wide = k.ok(&["get", "-n", &ns, "crontabs", "-o", "wide"]);
        assert!(
            wide.starts_with("NAME "),
            "kubectl 1.{minor} get crontabs -o wide:\n{wide}"
        );

        // The short name and the singular.
        let short = k.ok(&["get", "-n", &ns, "ct", "-o", "name"]);
        assert_eq!(
            short.trim(),
            format!("crontab.stable.example.com/{obj}"),
            "kubectl 1.{minor} get ct"
        );
        let yaml = k.ok(&["get", "-n", &ns, "crontab", &obj, "-o", "yaml"]);
        for needle in [
            "apiVersion: stable.example.com/v1",
            "kind: CronTab",
            &format!("name: {obj}"),
            &format!("namespace: {ns}"),
            "cronSpec: '* * * * */5'",
            "image: my-awesome-cron-image",
            "replicas: 3",
            "uid:",
            "resourceVersion:",
            "creationTimestamp:",
        ] {
            assert!(
                yaml.contains(needle),
                "kubectl 1.{minor} get crontab -o yaml lacks {needle:?}:\n{yaml}"
            );
        }

        // explain from the CRD's schema.
        let explain = k.ok(&["explain", "crontab.spec"]);
        for needle in [
            "KIND:",
            "CronTab",
            "FIELD:",
            "The desired schedule, image and replica count of a CronTab.",
            "cronSpec",
            "The cron expression for when to run.",
            "replicas",
            "image",
        ] {
            assert!(
                explain.contains(needle),
                "kubectl 1.{minor} explain crontab.spec lacks {needle:?}:\n{explain}"
            );
        }

        // An invalid object names the field.
        let err = k.fails(&["apply", "-n", &ns, "-f", &bad_file]);
        assert!(
            err.contains("spec.replicas"),
            "kubectl 1.{minor}: the error should name spec.replicas:\n{err}"
        );
        k.fails(&["get", "-n", &ns, "crontab", "bad"]);

        // The status subresource: status is written through it only.
        let out = k.ok(&[
            "patch",
            "-n",
            &ns,
            "crontab",
            &obj,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":2}}"#,
        ]);
        assert!(
            out.contains(&format!("crontab.stable.example.com/{obj} patched")),
            "kubectl 1.{minor} patch --subresource=status: {out}"
        );
        let status = k.jsonpath(&["-n", &ns, "crontab", &obj], "{.status.replicas}");
        assert_eq!(status, "2", "kubectl 1.{minor}: status subresource");
        let out = k.ok(&[
            "patch",
            "-n",
            &ns,
            "crontab",
            &obj,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":4},"status":{"replicas":9}}"#,
        ]);
        assert!(out.contains("patched"), "{out}");
        let got = k.get_json(&["-n", &ns, "crontab", &obj]);
        assert_eq!(got["spec"]["replicas"], 4, "{got:#}");
        assert_eq!(
            got["status"]["replicas"], 2,
            "kubectl 1.{minor}: the main resource must ignore status: {got:#}"
        );

        // Deleting the definition deletes its objects and the resource.
        let out = k.ok(&["delete", "crd", CRD_NAME, "--timeout=60s"]);
        assert_eq!(
            out.trim(),
            format!("customresourcedefinition.apiextensions.k8s.io \"{CRD_NAME}\" deleted"),
            "kubectl 1.{minor} delete crd"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let last = loop {
            // A fresh discovery cache each time.
            let fresh = Ctl::new(&c, minor);
            let out = fresh.output(&["get", "-n", &ns, "crontabs"]);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success()
                && stderr.contains("the server doesn't have a resource type \"crontabs\"")
            {
                break None;
            }
            if Instant::now() > deadline {
                break Some(format!(
                    "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        if let Some(last) = last {
            panic!(
                "kubectl 1.{minor} get crontabs still works after the CRD was deleted:\n{last}\n--- server log ---\n{}",
                c.logs()
            );
        }
        k.fails(&["get", "crd", CRD_NAME]);
    }
}
