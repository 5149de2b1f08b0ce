#![allow(clippy::unwrap_used)]
//! Authentication and RBAC as users meet them through the real kubectl:
//! static bearer tokens, 401 without credentials or with a forged token,
//! a `view` user who can list but not delete (403 in upstream's words) nor
//! exec, `auth whoami`, `auth can-i` (also `--list`), and impersonation
//! that needs the `impersonate` verb.

mod common;

use std::path::{Path, PathBuf};

use common::{Ctl, KUBECTLS};
use skiff_testkit::Kubectl;

const TOKENS: &str = "\
viewer-token,viewer,1001
nobody-token,nobody,1002,\"team-a,team-b\"
";

/// A kubeconfig for the cluster with a bearer token (or no credentials).
fn token_kubeconfig(dir: &Path, admin: &Path, name: &str, token: Option<&str>) -> PathBuf {
    let admin = std::fs::read_to_string(admin).unwrap();
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap()
            .trim()
            .to_owned()
    };
    let server = field("server:");
    let ca = field("certificate-authority-data:");
    let user = match token {
        Some(t) => format!("    token: {t}\n"),
        None => "    {}\n".to_owned(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    );
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(k: &Kubectl, args: &[&str]) -> (bool, String, String) {
    let out = k.run(args).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tokens_rbac_reviews_and_impersonation() {
    let files = tempfile::tempdir().unwrap();
    let tokens = files.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS).unwrap();
    let c = common::cluster_with(&["--token-auth-file", &tokens.display().to_string()]);
    let admin = Ctl::new(&c, 33);
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--user=viewer",
    ]);
    admin.ok_with_input(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm1, namespace: default}\ndata: {a: b}\n",
    );
    // A pod (never scheduled here: no node) to try exec on.
    admin.ok_with_input(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: default}\nspec:\n  containers: [{name: c, image: skiff.local/busybox}]\n",
    );
    let viewer_cfg = token_kubeconfig(files.path(), &c.kubeconfig, "viewer", Some("viewer-token"));
    let forged_cfg = token_kubeconfig(files.path(), &c.kubeconfig, "forged", Some("forged"));
    let anon_cfg = token_kubeconfig(files.path(), &c.kubeconfig, "anon", None);
    let nobody_cfg = token_kubeconfig(files.path(), &c.kubeconfig, "nobody", Some("nobody-token"));

    for minor in KUBECTLS {
        let viewer = Kubectl::new(1, minor, &viewer_cfg).unwrap();
        let forged = Kubectl::new(1, minor, &forged_cfg).unwrap();
        let nobody = Kubectl::new(1, minor, &nobody_cfg).unwrap();

        // The view role lists and reads, but cannot delete or read Secrets.
        let (ok, out, err) = run(&viewer, &["get", "configmaps"]);
        assert!(ok && out.contains("cm1"), "1.{minor}: {out}{err}");
        let (ok, _, err) = run(&viewer, &["delete", "configmap", "cm1"]);
        assert!(!ok);
        assert!(
            err.contains(
                r#"configmaps "cm1" is forbidden: User "viewer" cannot delete resource "configmaps" in API group "" in the namespace "default""#
            ),
            "1.{minor}: {err}"
        );
        let (ok, _, err) = run(&viewer, &["get", "secrets"]);
        assert!(!ok && err.contains("forbidden"), "1.{minor}: {err}");
        // exec needs create on pods/exec, which view does not grant.
        let (ok, _, err) = run(&viewer, &["exec", "p1", "--", "true"]);
        assert!(!ok, "1.{minor}");
        assert!(
            err.contains(r#"User "viewer" cannot"#) && err.contains(r#"resource "pods/exec""#),
            "1.{minor}: {err}"
        );
        // A user with no bindings only gets the public discovery paths.
        let (ok, _, err) = run(&nobody, &["get", "configmaps"]);
        assert!(
            !ok && err.contains(r#"User "nobody" cannot list resource "configmaps""#),
            "1.{minor}: {err}"
        );

        // A forged token: 401.
        let (ok, _, err) = run(&forged, &["get", "configmaps"]);
        assert!(!ok, "1.{minor}");
        assert!(
            err.contains("Unauthorized") || err.contains("must be logged in"),
            "1.{minor}: {err}"
        );

        // Who am I, and what may I do.
        let (ok, out, err) = run(&viewer, &["auth", "whoami", "-o", "json"]);
        assert!(ok, "1.{minor}: {err}");
        let who: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(who["status"]["userInfo"]["username"], "viewer");
        assert_eq!(who["status"]["userInfo"]["uid"], "1001");
        let (ok, out, _) = run(&viewer, &["auth", "can-i", "list", "pods"]);
        assert!(ok && out.trim() == "yes", "1.{minor}: {out}");
        let (ok, out, _) = run(&viewer, &["auth", "can-i", "delete", "pods"]);
        assert!(!ok && out.trim() == "no", "1.{minor}: {out}");
        let (ok, out, err) = run(&viewer, &["auth", "can-i", "--list"]);
        assert!(ok, "1.{minor}: {err}");
        let pods_line = out
            .lines()
            .find(|l| l.starts_with("pods ") || l.starts_with("pods\t"))
            .unwrap_or_else(|| panic!("1.{minor}: no pods line in\n{out}"));
        assert!(
            pods_line.contains("get") && pods_line.contains("list"),
            "{pods_line}"
        );
        assert!(!pods_line.contains("delete"), "{pods_line}");

        // Impersonation: the admin may, the viewer may not.
        let ctl = Ctl::new(&c, minor);
        ctl.ok(&["get", "configmaps", "--as", "viewer"]);
        let err = ctl.fails(&["delete", "configmap", "cm1", "--as", "viewer"]);
        assert!(
            err.contains(r#"User "viewer" cannot delete"#),
            "1.{minor}: {err}"
        );
        let out = ctl.output(&["auth", "can-i", "delete", "pods", "--as", "viewer"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "1.{minor}"
        );
        let (ok, _, err) = run(&viewer, &["get", "configmaps", "--as", "someone-else"]);
        assert!(!ok, "1.{minor}");
        assert!(
            err.contains(r#"User "viewer" cannot impersonate resource "users" in API group """#),
            "1.{minor}: {err}"
        );
    }
    // No credentials at all: 401 (through kube-rs: kubectl would prompt
    // for a password on a credential-less kubeconfig).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&anon_cfg).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "default");
        api.list(&Default::default()).await.map(|_| ())
    });
    match status {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("anonymous list: {other:?}"),
    }
    // The admin keeps every right.
    admin.ok(&["delete", "configmap", "cm1"]);
}

/// `kubectl create token` (both kubectls), then the token as a bearer
/// credential: the service account's identity and its RoleBinding's
/// rights; the token with another signature is refused (401).
#[test]
fn service_account_tokens() {
    let files = tempfile::tempdir().unwrap();
    let c = common::cluster();
    let admin = Ctl::new(&c, 33);
    admin.ok(&[
        "create",
        "rolebinding",
        "sa-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
        "-n",
        "default",
    ]);
    for minor in KUBECTLS {
        let ctl = Ctl::new(&c, minor);
        // The service account controller creates `default` soon after
        // the start.
        let mut token = String::new();
        for _ in 0..100 {
            let out = ctl.output(&["create", "token", "default", "--duration=20m"]);
            if out.status.success() {
                token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(token.split('.').count(), 3, "1.{minor}: {token}");
        let cfg = token_kubeconfig(files.path(), &c.kubeconfig, "sa", Some(&token));
        let sa = Kubectl::new(1, minor, &cfg).unwrap();
        let (ok, _, err) = run(&sa, &["get", "pods"]);
        assert!(ok, "1.{minor}: {err}");
        let (ok, out, err) = run(&sa, &["auth", "whoami", "-o", "json"]);
        assert!(ok, "1.{minor}: {err}");
        let who: serde_json::Value = serde_json::from_str(&out).unwrap();
        let user = &who["status"]["userInfo"];
        assert_eq!(user["username"], "system:serviceaccount:default:default");
        assert!(
            user["groups"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("system:serviceaccounts:default")),
            "1.{minor}: {out}"
        );
        let (ok, _, err) = run(&sa, &["delete", "rolebinding", "sa-view"]);
        assert!(!ok && err.contains("forbidden"), "1.{minor}: {err}");
        // Same header and claims, another signature.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", "A".repeat(86));
        let cfg = token_kubeconfig(files.path(), &c.kubeconfig, "forged-sa", Some(&forged));
        let forged = Kubectl::new(1, minor, &cfg).unwrap();
        let (ok, _, err) = run(&forged, &["get", "pods"]);
        assert!(!ok, "1.{minor}");
        // kubectl reports the 401 of its discovery request in
        // client-go's words (as against kube-apiserver), or the Status.
        let expected = [
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)",
            "error: You must be logged in to the server (Unauthorized)",
        ];
        assert!(expected.iter().any(|e| err.contains(e)), "1.{minor}: {err}");
    }
}
