#![allow(clippy::unwrap_used)]
//! Admission webhooks against a real HTTPS webhook server in this test: a
//! mutating webhook's JSONPatch and warning reach the stored object and
//! the client, a validating webhook's denial (of a create or a delete)
//! is the client's error in upstream's words, and an unreachable webhook fails the write unless
//! its failurePolicy is Ignore.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Answer {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

async fn send(client: &kube::Client, method: &str, path: &str, body: Value) -> Answer {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    Answer {
        code,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    }
}

/// The webhook: `/mutate` labels objects `mutated=yes` and warns;
/// `/validate` refuses names starting with `bad`.
fn answer(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let label = |key: &str| {
        let patch =
            json!([{"op": "add", "path": format!("/metadata/labels/{key}"), "value": "yes"}]);
        json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": STANDARD.encode(patch.to_string())})
    };
    let labels = &request["object"]["metadata"]["labels"];
    let response = if path == "/first" {
        // Notes whether the second webhook had run before it.
        label(if labels.get("second").is_some() {
            "first-saw-second"
        } else {
            "first"
        })
    } else if path == "/second" {
        label("second")
    } else if path == "/mutate" {
        let patch = json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]);
        json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": STANDARD.encode(patch.to_string()),
            "warnings": ["mutated by the test webhook"]})
    } else if request["operation"] == "DELETE"
        && request["oldObject"]["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("good"))
    {
        json!({"uid": uid, "allowed": false, "status": {"message": "good objects stay"}})
    } else if request["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("bad"))
    {
        json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "message": "names starting with bad are refused"}})
    } else {
        json!({"uid": uid, "allowed": true})
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Reads one HTTP/1.1 request: its path and JSON body.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<(String, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, serde_json::from_slice(&buf[head_end..]).ok()?))
}

/// Starts the webhook server; returns its port and its CA bundle
/// (base64 PEM, as `caBundle` takes it).
async fn webhook_server() -> (u16, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()];
    let private = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some((path, review)) = read_request(&mut tls).await else {
                    return;
                };
                let body = answer(&path, &review).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, STANDARD.encode(cert.pem()))
}

fn configuration(kind: &str, name: &str, hook: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name}, "webhooks": [hook]})
}

fn hook(name: &str, url: &str, ca: &str, resource: &str, failure: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": [resource], "scope": "Namespaced"}],
        "failurePolicy": failure,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
    })
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "web"}}, "data": {"a": "b"}})
}

/// Retries `attempt` until `done` holds for its answer (configurations
/// reach the webhook dispatcher through the watch cache).
async fn eventually(
    mut attempt: impl AsyncFnMut(u32) -> Answer,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    for i in 0..100 {
        let a = attempt(i).await;
        if done(&a) {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the webhooks never took effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_mutate_deny_and_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (port, ca) = webhook_server().await;
    let base = format!("https://127.0.0.1:{port}");
    let admission = "/apis/admissionregistration.k8s.io/v1";
    let mutating = configuration(
        "MutatingWebhookConfiguration",
        "label",
        hook(
            "label.skiff.test",
            &format!("{base}/mutate"),
            &ca,
            "configmaps",
            "Fail",
        ),
    );
    let a = send(
        &client,
        "POST",
        &format!("{admission}/mutatingwebhookconfigurations"),
        mutating,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let validating = configuration(
        "ValidatingWebhookConfiguration",
        "deny",
        hook(
            "deny.skiff.test",
            &format!("{base}/validate"),
            &ca,
            "configmaps",
            "Fail",
        ),
    );
    let a = send(
        &client,
        "POST",
        &format!("{admission}/validatingwebhookconfigurations"),
        validating,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);

    let path = "/api/v1/namespaces/default/configmaps";
    let a = eventually(
        async |i| send(&client, "POST", path, configmap(&format!("good-{i}"))).await,
        |a| a.code == 201 && a.body["metadata"]["labels"]["mutated"] == "yes",
    )
    .await;
    assert_eq!(
        a.warnings,
        vec!["299 - \"mutated by the test webhook\"".to_owned()]
    );
    // Deletes are reviewed with the object as it was.
    let good = a.body["metadata"]["name"].as_str().unwrap().to_owned();
    let a = send(&client, "DELETE", &format!("{path}/{good}"), json!({})).await;
    assert_eq!(a.code, 403, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "admission webhook \"deny.skiff.test\" denied the request: good objects stay"
    );
    let current = send(&client, "GET", &format!("{path}/{good}"), json!(null)).await;
    assert_eq!(current.code, 200);
    // An update is reviewed too, and its warnings reach the client.
    let mut changed = current.body.clone();
    changed["data"]["a"] = json!("c");
    let a = send(&client, "PUT", &format!("{path}/{good}"), changed).await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(
        a.warnings,
        vec!["299 - \"mutated by the test webhook\"".to_owned()]
    );
    let a = eventually(
        async |i| send(&client, "POST", path, configmap(&format!("bad-{i}"))).await,
        |a| a.code == 403,
    )
    .await;
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("admission webhook \"deny.skiff.test\" denied the request: names starting with bad are refused"),
        "{}",
        a.body
    );

    // Unreachable: Fail refuses, Ignore lets through.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let broken = configuration(
        "ValidatingWebhookConfiguration",
        "broken",
        hook(
            "broken.skiff.test",
            &format!("https://127.0.0.1:{closed}/"),
            &ca,
            "secrets",
            "Fail",
        ),
    );
    let a = send(
        &client,
        "POST",
        &format!("{admission}/validatingwebhookconfigurations"),
        broken,
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let secret =
        |name: String| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
    let a = eventually(
        async |i| {
            send(
                &client,
                "POST",
                "/api/v1/namespaces/default/secrets",
                secret(format!("s-{i}")),
            )
            .await
        },
        |a| a.code == 500,
    )
    .await;
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Internal error occurred: failed calling webhook \"broken.skiff.test\": failed to call webhook: Post"),
        "{}",
        a.body
    );
    let ignore = json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]);
    let request = http::Request::patch(format!(
        "{admission}/validatingwebhookconfigurations/broken"
    ))
    .header("content-type", "application/json-patch+json")
    .body(serde_json::to_vec(&ignore).unwrap())
    .unwrap();
    let _: Value = client.request(request).await.unwrap();
    eventually(
        async |i| {
            send(
                &client,
                "POST",
                "/api/v1/namespaces/default/secrets",
                secret(format!("t-{i}")),
            )
            .await
        },
        |a| a.code == 201,
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_reinvoked_if_needed_and_dry_runs_need_no_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (port, ca) = webhook_server().await;
    let base = format!("https://127.0.0.1:{port}");
    let admission = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
    let mut first = hook(
        "first.skiff.test",
        &format!("{base}/first"),
        &ca,
        "configmaps",
        "Fail",
    );
    first["reinvocationPolicy"] = json!("IfNeeded");
    let mut second = hook(
        "second.skiff.test",
        &format!("{base}/second"),
        &ca,
        "configmaps",
        "Fail",
    );
    second["sideEffects"] = json!("Some");
    for (name, h) in [("a-first", first), ("b-second", second)] {
        let a = send(
            &client,
            "POST",
            admission,
            configuration("MutatingWebhookConfiguration", name, h),
        )
        .await;
        assert_eq!(a.code, 201, "{}", a.body);
    }
    let path = "/api/v1/namespaces/default/configmaps";
    let a = eventually(
        async |i| send(&client, "POST", path, configmap(&format!("cm-{i}"))).await,
        |a| a.code == 201 && a.body["metadata"]["labels"]["second"] == "yes",
    )
    .await;
    let labels = &a.body["metadata"]["labels"];
    assert_eq!(labels["first"], "yes");
    assert_eq!(
        labels["first-saw-second"], "yes",
        "the first webhook ran again: {labels}"
    );
    // The second webhook has side effects: a dry run is refused.
    let a = send(
        &client,
        "POST",
        &format!("{path}?dryRun=All"),
        configmap("dry"),
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admission webhook \"second.skiff.test\" does not support dry run"),
        "{}",
        a.body
    );
}
