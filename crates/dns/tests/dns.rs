//! The DNS server against an in-process API server and a fake upstream
//! resolver on loopback: Services, hand-made EndpointSlices and
//! ExternalNames become records, queried over UDP and TCP; other names are
//! forwarded (and cached); changes show up while it runs; `/metrics`
//! counts the queries.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use skiff_apiserver::testing::start;
use skiff_dns::{Config, DnsServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

async fn ask(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let mut request = Message::new();
    let id = rand_id();
    request
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    let bytes = request.to_vec().unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), async {
        if tcp {
            let mut s = TcpStream::connect(server).await.unwrap();
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            s.write_all(&framed).await.unwrap();
            let len = s.read_u16().await.unwrap();
            let mut buf = vec![0; usize::from(len)];
            s.read_exact(&mut buf).await.unwrap();
            Message::from_vec(&buf).unwrap()
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.connect(server).await.unwrap();
            s.send(&bytes).await.unwrap();
            let mut buf = vec![0; 4096];
            let n = s.recv(&mut buf).await.unwrap();
            Message::from_vec(&buf[..n]).unwrap()
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no answer for {name} {qtype}"));
    assert_eq!(response.id(), id);
    response
}

fn rand_id() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) as u16
}

/// The answer section's data, sorted, as text.
fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
    v.sort();
    v
}

/// A fake upstream: `*.example.test.` A 192.0.2.7 (TTL 60), NXDOMAIN for
/// everything else; counts the queries it gets.
async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            seen.fetch_add(1, Ordering::Relaxed);
            let query = request.queries()[0].clone();
            let mut response = Message::new();
            response
                .set_id(request.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_recursion_available(true)
                .add_query(query.clone());
            let ours = Name::from_str("example.test.")
                .unwrap()
                .zone_of(query.name());
            if ours && query.query_type() == RecordType::A {
                response.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            } else if !ours {
                // with an SOA, so that the negative answer is cached 30 s
                // (capped), not the 5 s default
                response.set_response_code(ResponseCode::NXDomain);
                let soa = SOA::new(Name::root(), Name::root(), 1, 1, 1, 1, 60);
                response.add_name_server(Record::from_rdata(Name::root(), 60, RData::SOA(soa)));
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
        }
    });
    (addr, count)
}

async fn create_service(api: &Api<Service>, spec: serde_json::Value) -> Service {
    api.create(
        &PostParams::default(),
        &serde_json::from_value(spec).unwrap(),
    )
    .await
    .unwrap()
}

/// Polls until `check` holds for the answer, or fails after 20 s.
async fn eventually(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    what: &str,
    check: impl Fn(&Message) -> bool,
) {
    for _ in 0..200 {
        if check(&ask(server, name, qtype, false).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {name} {qtype}: {what}");
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_cluster_and_forwards_the_rest() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let api_server = start(dir.path()).await;
    let client = api_server.client.clone();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    let web = create_service(
        &services,
        json!({"metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
    )
    .await;
    let web_ip = web.spec.unwrap().cluster_ip.unwrap();
    create_service(
        &services,
        json!({"metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "selector": {"app": "db"},
                        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
    )
    .await;
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "db-x1", "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.42.0.11"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.12"], "hostname": "db-1", "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.13"], "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.14"], "hostname": "db-3", "conditions": {"ready": false}},
                ],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    create_service(
        &services,
        json!({"metadata": {"name": "ext"},
               "spec": {"type": "ExternalName", "externalName": "www.example.test"}}),
    )
    .await;

    let (upstream, upstream_queries) = fake_upstream().await;
    let mut config = Config::new(client.clone());
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.upstreams = vec![upstream];
    config.forward_timeout = Duration::from_secs(10);
    config.metrics_address = Some("127.0.0.1:0".parse().unwrap());
    let server = DnsServer::bind(config).await.unwrap();
    let dns = server.local_addrs()[0];
    let metrics = server.metrics_addr().unwrap();
    assert_ne!(dns.port(), 0);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));

    for tcp in [false, true] {
        // ClusterIP A, authoritative, TTL 5
        let m = ask(dns, "web.default.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        assert_eq!(data(&m), [web_ip.as_str()]);
        assert_eq!(m.answers()[0].ttl(), 5);

        // headless: ready endpoints only
        let m = ask(dns, "db.default.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(data(&m), ["10.42.0.11", "10.42.0.12", "10.42.0.13"]);
        let m = ask(
            dns,
            "db-1.db.default.svc.cluster.local.",
            RecordType::A,
            tcp,
        )
        .await;
        assert_eq!(data(&m), ["10.42.0.12"]);
        let m = ask(
            dns,
            "db-3.db.default.svc.cluster.local.",
            RecordType::A,
            tcp,
        )
        .await;
        assert_eq!(m.response_code(), ResponseCode::NXDomain);

        // SRV
        let m = ask(
            dns,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            tcp,
        )
        .await;
        assert_eq!(data(&m), ["0 100 80 web.default.svc.cluster.local."]);
        let m = ask(
            dns,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
            tcp,
        )
        .await;
        assert_eq!(
            data(&m),
            [
                "0 33 5432 10-42-0-13.db.default.svc.cluster.local.",
                "0 33 5432 db-0.db.default.svc.cluster.local.",
                "0 33 5432 db-1.db.default.svc.cluster.local.",
            ]
        );
        assert_eq!(m.additionals().len(), 3, "addresses of the targets");

        // ExternalName: the CNAME, chased upstream for A
        let m = ask(dns, "ext.default.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(data(&m), ["192.0.2.7", "www.example.test."]);
        assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);

        // PTR for a ClusterIP and a headless endpoint
        let octets: Vec<&str> = web_ip.split('.').rev().collect();
        let reverse = format!("{}.in-addr.arpa.", octets.join("."));
        let m = ask(dns, &reverse, RecordType::PTR, tcp).await;
        assert_eq!(data(&m), ["web.default.svc.cluster.local."]);
        let m = ask(dns, "11.0.42.10.in-addr.arpa.", RecordType::PTR, tcp).await;
        assert_eq!(data(&m), ["db-0.db.default.svc.cluster.local."]);

        // dns-version, pods
        let m = ask(dns, "dns-version.cluster.local.", RecordType::TXT, tcp).await;
        assert_eq!(data(&m), ["1.1.0"]);
        let m = ask(
            dns,
            "10-42-3-4.default.pod.cluster.local.",
            RecordType::A,
            tcp,
        )
        .await;
        assert_eq!(data(&m), ["10.42.3.4"]);

        // NXDOMAIN vs NODATA, both with the zone's SOA
        let m = ask(dns, "nope.default.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
        let m = ask(dns, "web.default.svc.cluster.local.", RecordType::AAAA, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
        let m = ask(dns, "default.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());

        // forwarded, not authoritative
        let m = ask(dns, "api.example.test.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(!m.authoritative());
        assert_eq!(data(&m), ["192.0.2.7"]);
        let m = ask(dns, "missing.invalid.", RecordType::A, tcp).await;
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
    }
    // the second round of forwarded names came from the cache
    let asked = upstream_queries.load(Ordering::Relaxed);
    assert_eq!(
        asked, 3,
        "www.example.test, api.example.test, missing.invalid once each"
    );

    // a Service created after start-up appears, and goes when deleted
    let late = create_service(
        &services,
        json!({"metadata": {"name": "late"}, "spec": {"ports": [{"port": 81}]}}),
    )
    .await;
    let late_ip = late.spec.unwrap().cluster_ip.unwrap();
    eventually(
        dns,
        "late.default.svc.cluster.local.",
        RecordType::A,
        "appears",
        |m| data(m) == [late_ip.as_str()],
    )
    .await;
    services
        .delete("late", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        dns,
        "late.default.svc.cluster.local.",
        RecordType::A,
        "goes",
        |m| m.response_code() == ResponseCode::NXDomain,
    )
    .await;

    let text = http_get(metrics, "/metrics").await;
    assert!(
        text.contains("skiff_dns_responses_total{type=\"A\",rcode=\"NOERROR\"}"),
        "{text}"
    );
    assert!(
        text.contains("skiff_dns_responses_total{type=\"SRV\",rcode=\"NOERROR\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("skiff_dns_request_duration_seconds_count"),
        "{text}"
    );
    assert!(
        text.contains("skiff_dns_answers_total{source=\"cache\"} 2\n"),
        "{text}"
    );
    http_get(metrics, "/health").await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
