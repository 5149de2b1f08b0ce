#![allow(clippy::unwrap_used)]
//! Node join as an operator does it: `skiff token create` prints a
//! bootstrap token and the CA pin; a node joining with them gets its own
//! `system:node:<name>` certificate through a CertificateSigningRequest
//! approved and signed by the controller manager; a wrong pin or an
//! unknown token is refused; and a node's credential reaches only what its
//! own pods need (Node authorizer, NodeRestriction).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Ctl;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_kubelet::tls_bootstrap::{JoinError, JoinParams, join};

fn skiff(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .output()
        .unwrap()
}

/// (token, ca hash) from `skiff token create`.
fn create_token(kubeconfig: &Path) -> (String, String) {
    let out = skiff(&[
        "token",
        "create",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "token create failed: {stdout}\n{stderr}"
    );
    let hash = stderr
        .split_whitespace()
        .skip_while(|w| *w != "--ca-cert-hash")
        .nth(1)
        .unwrap_or_else(|| panic!("no --ca-cert-hash in: {stderr}"))
        .to_owned();
    assert!(stderr.contains(&format!("--token {stdout}")), "{stderr}");
    (stdout, hash)
}

fn params(
    c: &skiff_testkit::Cluster,
    token: &str,
    hash: &str,
    node: &str,
    dir: &Path,
) -> JoinParams {
    JoinParams {
        server: format!("https://127.0.0.1:{}", c.port),
        token: token.to_owned(),
        ca_cert_hash: hash.to_owned(),
        node_name: node.to_owned(),
        node_ips: vec![std::net::IpAddr::from([10, 9, 0, 1])],
        dir: dir.join(node),
        discovery_timeout: Duration::from_secs(30),
    }
}

fn code(e: kube::Error) -> u16 {
    common::api_error(e).code
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_with_a_token_and_is_confined_to_its_pods() {
    let c = common::cluster();
    let admin = Ctl::new(&c, 33);
    let files = tempfile::tempdir().unwrap();
    let (token, hash) = create_token(&c.kubeconfig);
    let id = token.split('.').next().unwrap();
    let listed = admin.ok(&[
        "get",
        "secrets",
        "-n",
        "kube-system",
        "--field-selector",
        "type=bootstrap.kubernetes.io/token",
        "-o",
        "name",
    ]);
    assert!(
        listed.contains(&format!("bootstrap-token-{id}")),
        "{listed}"
    );
    let out = skiff(&[
        "token",
        "list",
        "--kubeconfig",
        &c.kubeconfig.display().to_string(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{id}.<secret>")))
        .unwrap_or_else(|| panic!("no row for {id}: {table}"));
    assert!(row.contains("authentication,signing"), "{row}");
    assert!(
        !row.contains("<forever>"),
        "the default token expires: {row}"
    );

    // A pin of another CA: the node refuses to join (before sending the token).
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = join(&params(&c, &token, &wrong, "n0", files.path()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match --ca-cert-hash"),
        "{err}"
    );
    let out = skiff(&[
        "agent",
        "--data-dir",
        &files.path().join("cli").display().to_string(),
        "--server",
        &format!("https://127.0.0.1:{}", c.port),
        "--token",
        &token,
        "--ca-cert-hash",
        &wrong,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not match --ca-cert-hash"), "{stderr}");
    // A token the server does not know: cluster-info is not signed with it.
    let mut unknown = params(&c, "zzzzzz.zzzzzzzzzzzzzzzz", &hash, "n0", files.path());
    unknown.discovery_timeout = Duration::from_secs(2);
    assert!(matches!(join(&unknown).await, Err(JoinError::NotSigned(_))));

    // Two nodes join with the same token.
    let n1 = join(&params(&c, &token, &hash, "n1", files.path()))
        .await
        .unwrap();
    let n2 = join(&params(&c, &token, &hash, "n2", files.path()))
        .await
        .unwrap();
    let csrs = admin.ok(&["get", "csr", "-o", "wide"]);
    assert!(csrs.contains("Approved,Issued"), "{csrs}");
    assert!(csrs.contains(&format!("system:bootstrap:{id}")), "{csrs}");
    assert!(
        csrs.contains("kubernetes.io/kube-apiserver-client-kubelet"),
        "{csrs}"
    );
    assert!(csrs.contains("kubernetes.io/kubelet-serving"), "{csrs}");
    // A second start reuses the certificate: no new request.
    let before = admin.ok(&["get", "csr", "-o", "name"]).lines().count();
    let again = join(&params(&c, &token, &hash, "n1", files.path()))
        .await
        .unwrap();
    assert_eq!(again.client_cert_pem, n1.client_cert_pem);
    assert_eq!(
        admin.ok(&["get", "csr", "-o", "name"]).lines().count(),
        before
    );

    let c1 = n1.client().await.unwrap();
    let c2 = n2.client().await.unwrap();
    // Who they are.
    let whoami = std::fs::write(files.path().join("n1.kubeconfig"), n1.kubeconfig());
    whoami.unwrap();
    let k = skiff_testkit::Kubectl::new(1, 33, &files.path().join("n1.kubeconfig")).unwrap();
    let out = k.run(&["auth", "whoami"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("system:node:n1") && text.contains("system:nodes"),
        "{text}"
    );

    // Each registers its own Node, not another's.
    let node = |name: &str| -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    Api::<Node>::all(c1.clone())
        .create(&PostParams::default(), &node("n1"))
        .await
        .unwrap();
    Api::<Node>::all(c2.clone())
        .create(&PostParams::default(), &node("n2"))
        .await
        .unwrap();
    let e = Api::<Node>::all(c1.clone())
        .create(&PostParams::default(), &node("n3"))
        .await
        .unwrap_err();
    assert_eq!(code(e), 403);
    let label = Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}}));
    Api::<Node>::all(c1.clone())
        .patch("n1", &PatchParams::default(), &label)
        .await
        .unwrap();
    let e = Api::<Node>::all(c1.clone())
        .patch("n2", &PatchParams::default(), &label)
        .await
        .unwrap_err();
    assert_eq!(code(e), 403);
    let taint = Patch::Merge(json!({"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}}));
    let e = Api::<Node>::all(c1.clone())
        .patch("n1", &PatchParams::default(), &taint)
        .await
        .unwrap_err();
    assert_eq!(code(e), 403, "a node may not change its own taints");

    // Secrets: each node reads those of its own pods only.
    admin.ok(&["create", "secret", "generic", "s1", "--from-literal=k=v1"]);
    admin.ok(&["create", "secret", "generic", "s2", "--from-literal=k=v2"]);
    for (pod, node, secret) in [("p1", "n1", "s1"), ("p2", "n2", "s2")] {
        admin.ok_with_input(
            &["create", "--validate=false", "-f", "-"],
            &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: default}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: skiff.local/busybox}}]\n  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]\n"),
        );
    }
    let secrets1: Api<Secret> = Api::namespaced(c1.clone(), "default");
    let s1 = secrets1.get("s1").await.unwrap();
    assert_eq!(s1.data.unwrap()["k"].0, b"v1");
    let e = secrets1.get("s2").await.unwrap_err();
    let status = common::api_error(e);
    assert_eq!(status.code, 403);
    assert!(
        status
            .message
            .contains("no relationship found between node 'n1'"),
        "{}",
        status.message
    );
    let e = secrets1.list(&Default::default()).await.unwrap_err();
    assert_eq!(code(e), 403);

    // Pod status: only of its own pods; deleting another node's pod: no.
    let pods1: Api<Pod> = Api::namespaced(c1.clone(), "default");
    let ready = Patch::Merge(json!({"status": {"phase": "Running"}}));
    pods1
        .patch_status("p1", &PatchParams::default(), &ready)
        .await
        .unwrap();
    let e = pods1
        .patch_status("p2", &PatchParams::default(), &ready)
        .await
        .unwrap_err();
    assert_eq!(code(e), 403);
    let e = pods1.delete("p2", &Default::default()).await.unwrap_err();
    assert_eq!(code(e), 403);
    // A node creates only mirror pods bound to itself.
    let plain: Pod = serde_json::from_value(json!({"metadata": {"name": "sneaky"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})).unwrap();
    let e = pods1
        .create(&PostParams::default(), &plain)
        .await
        .unwrap_err();
    assert_eq!(code(e), 403);
}

/// A CSR in PEM for `user` in `group`, and its key.
fn user_csr(user: &str, group: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, group);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (csr, key.serialize_pem())
}

#[test]
fn kubectl_certificate_approve_and_deny() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let c = common::cluster();
    let files = tempfile::tempdir().unwrap();
    for minor in common::KUBECTLS {
        let admin = Ctl::new(&c, minor);
        let (alice, key) = user_csr("alice", "devs");
        let (bob, _) = user_csr("bob", "devs");
        for (name, csr) in [
            (format!("alice-{minor}"), &alice),
            (format!("bob-{minor}"), &bob),
        ] {
            admin.ok_with_input(
                &["create", "-f", "-"],
                &format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n", b64(csr)),
            );
        }
        let pending = admin.ok(&["get", "csr", &format!("alice-{minor}")]);
        assert!(pending.contains("Pending"), "{pending}");
        // The server recorded who asked, whatever the body said.
        let requester = admin.jsonpath(&["csr", &format!("alice-{minor}")], "{.spec.username}");
        assert_eq!(requester, "skiff-admin");
        admin.ok(&["certificate", "approve", &format!("alice-{minor}")]);
        admin.ok(&["certificate", "deny", &format!("bob-{minor}")]);
        let mut issued = String::new();
        for _ in 0..100 {
            issued = admin.jsonpath(&["csr", &format!("alice-{minor}")], "{.status.certificate}");
            if !issued.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!issued.is_empty(), "alice's certificate was never issued");
        let denied = admin.ok(&["get", "csr", &format!("bob-{minor}")]);
        assert!(denied.contains("Denied"), "{denied}");
        assert!(
            admin
                .jsonpath(&["csr", &format!("bob-{minor}")], "{.status.certificate}")
                .is_empty()
        );
        // Alice signs in with her new certificate.
        let admin_config = std::fs::read_to_string(&c.kubeconfig).unwrap();
        let field = |key: &str| {
            admin_config
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap()
                .trim()
                .to_owned()
        };
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: alice\n  user:\n    client-certificate-data: {issued}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: alice}}\ncurrent-context: c\n",
            field("server:"),
            field("certificate-authority-data:"),
            b64(&key)
        );
        let path = files.path().join(format!("alice-{minor}.kubeconfig"));
        std::fs::write(&path, kubeconfig).unwrap();
        let k = skiff_testkit::Kubectl::new(1, minor, &path).unwrap();
        let out = k
            .run(&[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "alice",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
