//! End to end: the real kubectl (1.27 to 1.33, when installed) against a
//! tiny HTTP server that serves discovery for core/v1 pods and Tables built
//! by this crate. kubectl prints server-side Tables only when they come
//! from a server, so this is the check that our wire format is accepted
//! and printed as upstream's would be.

// Test harness code: a failed setup step should just fail the test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_printers::{IncludeObject, TableMeta, table};

const NOW: &str = "2024-06-01T12:00:00Z";

fn pods() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "resourceVersion": "11",
                "creationTimestamp": "2024-06-01T11:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                    "state": {"running": {}}}]}
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "crashy", "namespace": "default", "resourceVersion": "12",
                "creationTimestamp": "2024-05-30T12:00:00Z"},
            "spec": {"nodeName": "node-2", "containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.7",
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-06-01T11:55:00Z"}}}]}
        }),
    ]
}

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// The response body and content type for a request path (query included).
fn respond(path: &str) -> (String, &'static str) {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let body = match route {
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [{
            "name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
            "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]}]}),
        "/version" => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0+skiff"}),
        "/api/v1/namespaces/default/pods" if query.contains("watch=true") => {
            // One event per line; only the first carries columns.
            let mut changed = pods()[0].clone();
            changed["metadata"]["resourceVersion"] = json!("13");
            changed["metadata"]["deletionTimestamp"] = json!(NOW);
            let events: Vec<String> = [("MODIFIED", changed, true)]
                .into_iter()
                .chain([("DELETED", pods()[1].clone(), false)])
                .map(|(kind, obj, first)| {
                    let t = table(
                        "",
                        "Pod",
                        std::slice::from_ref(&obj),
                        IncludeObject::Metadata,
                        &TableMeta::for_object(&obj),
                        now(),
                        first,
                    );
                    json!({"type": kind, "object": t}).to_string()
                })
                .collect();
            return (events.join("\n") + "\n", "application/json");
        }
        "/api/v1/namespaces/default/pods" => {
            let meta = TableMeta {
                resource_version: "12".into(),
                ..TableMeta::default()
            };
            table(
                "",
                "Pod",
                &pods(),
                IncludeObject::Metadata,
                &meta,
                now(),
                true,
            )
        }
        _ => return (String::new(), ""),
    };
    (body.to_string(), "application/json")
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        let _ = reader.read_exact(&mut body);
        let (body, content_type) = respond(&path);
        let status = if content_type.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let watch = path.contains("watch=true");
        let header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if watch { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(header.as_bytes()).is_err()
            || stream.write_all(body.as_bytes()).is_err()
        {
            return;
        }
        if watch {
            return;
        }
    }
}

fn start_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn kubectl_dir() -> Option<PathBuf> {
    let which = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(which.stdout).ok()?.trim());
    Some(std::fs::canonicalize(path).ok()?.parent()?.to_path_buf())
}

fn run(kubectl: &PathBuf, port: u16, args: &[&str]) -> String {
    let home = std::env::temp_dir().join(format!(
        "skiff-printers-kubectl-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(kubectl)
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("none"))
        .arg(format!("--server=http://127.0.0.1:{port}"))
        .arg(format!("--cache-dir={}", home.join("cache").display()))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const GET: &str = "\
NAME     READY   STATUS             RESTARTS     AGE
web-0    1/1     Running            0            60m
crashy   0/1     CrashLoopBackOff   5 (5m ago)   2d
";

const WIDE: &str = "\
NAME     READY   STATUS             RESTARTS     AGE   IP           NODE     NOMINATED NODE   READINESS GATES
web-0    1/1     Running            0            60m   10.244.0.5   node-1   <none>           <none>
crashy   0/1     CrashLoopBackOff   5 (5m ago)   2d    10.244.1.7   node-2   <none>           <none>
";

#[test]
fn kubectl_prints_our_tables() {
    // CI installs kubectl; a missing one is a broken environment, not a skip.
    let dir = kubectl_dir().expect("kubectl 1.27-1.33 must be installed for this test");
    let port = start_server();
    for version in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let kubectl = dir.join(format!("kubectl.{version}"));
        if !kubectl.exists() {
            panic!("{} missing", kubectl.display());
        }
        assert_eq!(
            run(&kubectl, port, &["get", "pods"]),
            GET,
            "kubectl {version} get pods"
        );
        assert_eq!(
            run(&kubectl, port, &["get", "pods", "-o", "wide"]),
            WIDE,
            "kubectl {version} -o wide"
        );
        let watched = run(&kubectl, port, &["get", "pods", "-w"]);
        let expected_watch = format!(
            "{GET}web-0    1/1     Terminating        0            60m\ncrashy   0/1     CrashLoopBackOff   5 (5m ago)   2d\n"
        );
        assert_eq!(watched, expected_watch, "kubectl {version} get -w");
    }
}
