//! End to end: the real kubectl (every installed version, 1.27–1.33)
//! downloads the documents from a tiny HTTP server and validates files
//! with them. Uses every `kubectl.1.NN` next to the `kubectl` on the PATH,
//! else that `kubectl` alone; fails (never skips) without kubectl.

// Test helpers (the server, the runner) panic on failure like the tests do.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use skiff_openapi::{OpenApi, builtin};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// `kubectl.1.27` ... next to the `kubectl` on the PATH, or that `kubectl`
/// alone (with the version it reports). Panics when kubectl is not
/// installed: the test must not pass without having run.
fn kubectl_binaries() -> Vec<(String, PathBuf)> {
    let kubectl = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "kubectl is not installed: this test needs `kubectl` on the PATH \
                 (ideally with kubectl.1.27 ... kubectl.1.33 next to it)"
            )
        });
    let dir = std::fs::canonicalize(&kubectl)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| panic!("cannot resolve {}", kubectl.display()));
    let versioned: Vec<(String, PathBuf)> = (27..=40)
        .map(|minor| (format!("1.{minor}"), dir.join(format!("kubectl.1.{minor}"))))
        .filter(|(_, p)| p.is_file())
        .collect();
    if !versioned.is_empty() {
        return versioned;
    }
    let out = Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", kubectl.display()));
    let version: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{} version -o json: {e}", kubectl.display()));
    let minor: String = version["clientVersion"]["minor"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        !minor.is_empty(),
        "no client version from kubectl: {version}"
    );
    vec![(format!("1.{minor}"), kubectl)]
}

struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

fn discovery(api: &OpenApi, port: u16, path: &str) -> Option<Value> {
    let resources = api.resources();
    if path == "/api" {
        return Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}],
        }));
    }
    if path == "/apis" {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in resources.iter().filter(|r| !r.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => {
                    versions.push(r.version.clone())
                }
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        let groups: Vec<Value> = groups
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
            })
            .collect();
        return Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
    }
    let gv = path.trim_start_matches('/');
    let mut list = Vec::new();
    for r in resources.iter().filter(|r| r.gv_path() == gv) {
        list.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        for sub in &r.subresources {
            list.push(json!({
                "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": if sub.as_str() == "scale" { "Scale" } else { r.kind.as_str() },
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = resources.iter().find(|r| r.gv_path() == gv)?.api_version();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn handle(api: &OpenApi, port: u16, mut stream: TcpStream, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut accept = String::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("accept:") {
            accept = v.trim().to_owned();
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    requests.lock().unwrap().push(format!(
        "{} {target} [{accept}]",
        line.split_whitespace().next().unwrap_or("")
    ));
    let path = target.split('?').next().unwrap_or("/");
    if path == "/openapi/v2" {
        if accept.contains("protobuf") {
            return respond(
                &mut stream,
                "200 OK",
                skiff_openapi::V2_PROTOBUF_CONTENT_TYPE,
                api.v2_protobuf(),
            );
        }
        return respond(&mut stream, "200 OK", "application/json", api.v2_json());
    }
    if path == "/openapi/v3" {
        return respond(&mut stream, "200 OK", "application/json", api.v3_index());
    }
    if let Some(doc) = path
        .strip_prefix("/openapi/v3/")
        .and_then(|gv| api.v3_document(gv))
    {
        return respond(&mut stream, "200 OK", "application/json", doc);
    }
    if let Some(d) = discovery(api, port, path) {
        return respond(
            &mut stream,
            "200 OK",
            "application/json",
            d.to_string().as_bytes(),
        );
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    respond(
        &mut stream,
        "404 Not Found",
        "application/json",
        status.to_string().as_bytes(),
    );
}

fn serve() -> Server {
    let api = Arc::new(builtin().build().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (api, log) = (api.clone(), log.clone());
            std::thread::spawn(move || handle(&api, port, stream, &log));
        }
    });
    Server { port, requests }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run_kubectl(bin: &Path, server: &Server, dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(bin)
        .env("HOME", dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .arg(format!("--server=http://127.0.0.1:{}", server.port))
        .arg(format!("--cache-dir={}", dir.join("cache").display()))
        .args(args)
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl create --dry-run=client --validate=true -f <manifest>`.
fn kubectl(bin: &Path, server: &Server, dir: &Path, manifest: &str) -> Run {
    let file = dir.join("manifest.yaml");
    std::fs::write(&file, manifest).unwrap();
    let file = file.display().to_string();
    run_kubectl(
        bin,
        server,
        dir,
        &[
            "create",
            "--dry-run=client",
            "-o",
            "yaml",
            "--validate=true",
            "-f",
            &file,
        ],
    )
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        ports:\n        - containerPort: 80\n";
const BAD_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nbogus: 1\n";
/// A `List` is always validated on the client (no PATCH path to find
/// `fieldValidation` on), with the v2 schemas.
const BAD_LIST: &str = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm\n  data:\n    a: b\n  bogus: 1\n";
const GOOD_LIST: &str = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm\n  data:\n    a: b\n";

#[test]
fn every_kubectl_validates_with_our_documents() {
    let binaries = kubectl_binaries();
    let server = serve();
    for (version, bin) in &binaries {
        let tmp = std::env::temp_dir().join(format!(
            "skiff-openapi-kubectl-{}-{version}",
            std::process::id()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        server.requests.lock().unwrap().clear();

        let run = kubectl(bin, &server, &tmp, CONFIGMAP);
        assert!(
            run.ok && run.stdout.contains("kind: ConfigMap"),
            "{version}: {}",
            run.stderr
        );
        let requests = server.requests.lock().unwrap().join("\n");
        let minor: u32 = version[2..].parse().unwrap();
        if minor >= 29 {
            assert!(
                requests.contains("GET /openapi/v3/api/v1?hash="),
                "{version}:\n{requests}"
            );
        } else {
            assert!(
                requests.contains("GET /openapi/v2"),
                "{version}:\n{requests}"
            );
        }
        assert!(
            !requests.contains("swagger-2.0.0"),
            "{version} fell back:\n{requests}"
        );

        let run = kubectl(bin, &server, &tmp, DEPLOYMENT);
        assert!(
            run.ok && run.stdout.contains("kind: Deployment"),
            "{version}: {}",
            run.stderr
        );

        // kubectl found `fieldValidation` on the ConfigMap PATCH operation, so
        // it leaves checking unknown fields to the server (none with
        // --dry-run=client): had it not, it would reject this file itself.
        let run = kubectl(bin, &server, &tmp, BAD_CONFIGMAP);
        assert!(run.ok, "{version} validated on the client: {}", run.stderr);

        let run = kubectl(bin, &server, &tmp, GOOD_LIST);
        assert!(run.ok, "{version}: {}", run.stderr);
        let run = kubectl(bin, &server, &tmp, BAD_LIST);
        assert!(
            !run.ok && run.stderr.contains("bogus"),
            "{version}: {}\n{}",
            run.stdout,
            run.stderr
        );

        // explain walks the schemas (v3 where the server has it).
        let run = run_kubectl(
            bin,
            &server,
            &tmp,
            &["explain", "deployments.spec.template.spec.containers.ports"],
        );
        assert!(
            run.ok && run.stdout.contains("containerPort"),
            "{version}: {}",
            run.stderr
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
