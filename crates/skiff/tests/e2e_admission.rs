#![allow(clippy::unwrap_used)]
//! Admission as kubectl users meet it: a ResourceQuota of 2 pods admits
//! exactly 2 of 10 concurrent `kubectl create`s (the rest fail with
//! upstream's "exceeded quota" message), a pod violating `restricted` is
//! refused in a namespace that enforces it, with the violations listed,
//! and `warn` makes kubectl print `Warning: would violate PodSecurity ...`.

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, KUBECTLS};

const PLAIN_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\nspec:\n  containers: [{name: c, image: skiff.local/busybox}]\n";

fn pod(name: &str) -> String {
    PLAIN_POD.replace("NAME", name)
}

#[test]
fn quota_pod_security_and_warnings_through_kubectl() {
    let c = common::cluster();
    let admin = Ctl::new(&c, 33);

    // --- ResourceQuota: 2 of 10 concurrent creates.
    admin.create_namespace("quota");
    admin.create(
        "quota",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: two-pods}\nspec:\n  hard: {pods: \"2\"}\n",
    );
    // As upstream, wait for the quota controller's first count.
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin.jsonpath(
        &["resourcequota", "two-pods", "-n", "quota"],
        "{.status.used.pods}",
    ) != "0"
    {
        assert!(Instant::now() < deadline, "the quota was never counted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let admin = &admin;
                s.spawn(move || {
                    admin.output_with_input(
                        &["create", "--validate=false", "-n", "quota", "-f", "-"],
                        &pod(&format!("p{i}")),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = outputs.iter().filter(|o| o.status.success()).count();
    let refusals: Vec<String> = outputs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(created, 2, "{refusals:#?}");
    for stderr in &refusals {
        assert!(
            stderr.contains("Error from server (Forbidden)")
                && stderr.contains(
                    "is forbidden: exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2"
                ),
            "{stderr}"
        );
    }
    let names = admin.jsonpath(&["pods", "-n", "quota"], "{.items[*].metadata.name}");
    assert_eq!(names.split_whitespace().count(), 2, "{names}");

    // --- PodSecurity: enforce refuses, warn warns.
    admin.ok_with_input(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: locked\n  labels: {pod-security.kubernetes.io/enforce: restricted}\n",
    );
    admin.ok_with_input(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: watched\n  labels: {pod-security.kubernetes.io/warn: restricted}\n",
    );
    for minor in KUBECTLS {
        let k = Ctl::new(&c, minor);
        let stderr = k.fails_with_input(
            &["create", "--validate=false", "-n", "locked", "-f", "-"],
            &pod(&format!("loose-{minor}")),
        );
        assert!(
            stderr.contains(&format!(
                "pods \"loose-{minor}\" is forbidden: violates PodSecurity \"restricted:latest\": \
                 allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
                 unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
                 runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
                 seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            )),
            "{stderr}"
        );
        let out = k.output_with_input(
            &["create", "--validate=false", "-n", "watched", "-f", "-"],
            &pod(&format!("warned-{minor}")),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(
                "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"
            ),
            "{stderr}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("pod/warned-{minor} created"))
        );
    }
}
