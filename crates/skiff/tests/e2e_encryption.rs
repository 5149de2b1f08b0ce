#![allow(clippy::unwrap_used)]
//! Secrets encrypted at rest with `--encryption-provider-config`
//! (upstream's EncryptionConfiguration): the database never holds the
//! plaintext while kubectl reads it back transparently, and keys rotate by
//! listing a new first key, restarting and rewriting the Secrets.

mod common;

use std::path::Path;

use common::Ctl;

const PLAINTEXT: &str = "correct-horse-battery-staple";
const CONFIGMAP_TEXT: &str = "visible-configmap-value";

fn config(first: &str) -> String {
    let aescbc = "- aescbc:\n      keys:\n      - name: old\n        secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    let aesgcm = "- aesgcm:\n      keys:\n      - name: new\n        secret: ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n";
    let (a, b) = if first == "aescbc" {
        (aescbc, aesgcm)
    } else {
        (aesgcm, aescbc)
    };
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  {a}  {b}  - identity: {{}}\n"
    )
}

/// Every byte of the SQLite database and its write-ahead log.
fn raw_store(data_dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for file in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(data_dir.join("db").join(file)) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("encryption.yaml");
    std::fs::write(&path, config("aescbc")).unwrap();
    let mut c =
        common::cluster_with(&["--encryption-provider-config", &path.display().to_string()]);
    {
        let k = Ctl::new(&c, 33);
        k.ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            &format!("--from-literal=password={PLAINTEXT}"),
        ]);
        k.ok(&[
            "create",
            "configmap",
            "c1",
            &format!("--from-literal=v={CONFIGMAP_TEXT}"),
        ]);
        let read = k.jsonpath(&["secret", "s1"], "{.data.password}");
        assert_eq!(read, base64_of(PLAINTEXT));
    }
    let raw = raw_store(&c.data_dir());
    // The scan sees stored values (the ConfigMap is not encrypted)...
    assert!(
        contains(&raw, CONFIGMAP_TEXT),
        "the raw store scan found nothing"
    );
    // ...but not the Secret's, neither as text nor as its base64.
    assert!(!contains(&raw, PLAINTEXT));
    assert!(!contains(&raw, &base64_of(PLAINTEXT)));
    assert!(contains(&raw, "k8s:enc:aescbc:v1:old:"));

    // Rotation: the new key first; old data still reads; rewriting moves it.
    std::fs::write(&path, config("aesgcm")).unwrap();
    c.restart().unwrap();
    let k = Ctl::new(&c, 33);
    assert_eq!(
        k.jsonpath(&["secret", "s1"], "{.data.password}"),
        base64_of(PLAINTEXT)
    );
    let all = k.ok(&["get", "secrets", "-o", "json"]);
    k.ok_with_input(&["replace", "-f", "-"], &all);
    assert!(contains(
        &raw_store(&c.data_dir()),
        "k8s:enc:aesgcm:v1:new:"
    ));
    assert_eq!(
        k.jsonpath(&["secret", "s1"], "{.data.password}"),
        base64_of(PLAINTEXT)
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
