#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn services() -> Vec<Service> {
    vec![
        svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"port": 9999}]},
        })),
        svc(json!({
            "metadata": {"name": "dual", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.21", "clusterIPs": ["10.43.0.21", "fd00:43::21"]},
        })),
        svc(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {"clusterIP": "None",
                     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
        })),
        svc(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        })),
        svc(json!({
            "metadata": {"name": "alias", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local."},
        })),
    ]
}

fn slices() -> Vec<EndpointSlice> {
    vec![
        serde_json::from_value(json!({
            "metadata": {"name": "db-abc", "namespace": "data",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"], "conditions": {}},
                {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
            ],
        }))
        .unwrap(),
    ]
}

fn index() -> Index {
    let services = services();
    let slices = slices();
    Index::build(
        &domain_name("cluster.local").unwrap(),
        1,
        &services,
        &slices,
    )
}

fn rdata(answer: &Answer) -> Vec<String> {
    match answer {
        Answer::Records { answers, .. } => {
            let mut v: Vec<String> = answers.iter().map(|r| r.data().to_string()).collect();
            v.sort();
            v
        }
        other => panic!("expected records, got {other:?}"),
    }
}

fn q(index: &Index, name: &str, t: RecordType) -> Answer {
    index.lookup(&Name::from_ascii(name).unwrap(), t)
}

#[test]
fn cluster_ip_service() {
    let i = index();
    let a = q(&i, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(rdata(&a), ["10.43.0.20"]);
    let Answer::Records { answers, .. } = &a else {
        unreachable!()
    };
    assert_eq!(answers[0].ttl(), TTL);
    // case-insensitive, owner name echoed as asked
    let a = q(&i, "WEB.Default.svc.cluster.local.", RecordType::A);
    let Answer::Records { answers, .. } = &a else {
        panic!("{a:?}")
    };
    assert_eq!(
        answers[0].name().to_string(),
        "WEB.Default.svc.cluster.local."
    );
    assert_eq!(
        q(&i, "web.default.svc.cluster.local.", RecordType::AAAA),
        Answer::NoData
    );
    assert_eq!(
        rdata(&q(&i, "dual.default.svc.cluster.local.", RecordType::AAAA)),
        ["fd00:43::21"]
    );
}

#[test]
fn srv_for_named_ports_only() {
    let i = index();
    let a = q(
        &i,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(rdata(&a), ["0 100 80 web.default.svc.cluster.local."]);
    let Answer::Records { additionals, .. } = &a else {
        unreachable!()
    };
    assert_eq!(additionals.len(), 1);
    assert_eq!(
        q(&i, "_tcp.web.default.svc.cluster.local.", RecordType::SRV),
        Answer::NoData
    );
    assert_eq!(
        q(
            &i,
            "_http._udp.web.default.svc.cluster.local.",
            RecordType::SRV
        ),
        Answer::NxDomain
    );
}

#[test]
fn headless_service() {
    let i = index();
    let a = q(&i, "db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(
        rdata(&a),
        ["10.42.0.5", "10.42.0.6"],
        "not-ready 10.42.0.7 left out"
    );
    assert_eq!(
        rdata(&q(&i, "db-0.db.data.svc.cluster.local.", RecordType::A)),
        ["10.42.0.5"]
    );
    assert_eq!(
        rdata(&q(
            &i,
            "10-42-0-6.db.data.svc.cluster.local.",
            RecordType::A
        )),
        ["10.42.0.6"]
    );
    assert_eq!(
        q(&i, "db-2.db.data.svc.cluster.local.", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        rdata(&q(
            &i,
            "_pg._tcp.db.data.svc.cluster.local.",
            RecordType::SRV
        )),
        [
            "0 50 5432 10-42-0-6.db.data.svc.cluster.local.",
            "0 50 5432 db-0.db.data.svc.cluster.local."
        ]
    );
    assert_eq!(
        rdata(&q(&i, "5.0.42.10.in-addr.arpa.", RecordType::PTR)),
        ["db-0.db.data.svc.cluster.local."]
    );
}

#[test]
fn publish_not_ready_addresses() {
    let mut services = services();
    services[2]
        .spec
        .as_mut()
        .unwrap()
        .publish_not_ready_addresses = Some(true);
    let slices = slices();
    let i = Index::build(
        &domain_name("cluster.local").unwrap(),
        1,
        &services,
        &slices,
    );
    assert_eq!(
        rdata(&q(&i, "db.data.svc.cluster.local.", RecordType::A)),
        ["10.42.0.5", "10.42.0.6", "10.42.0.7"]
    );
}

#[test]
fn external_name_and_internal_alias() {
    let i = index();
    let a = q(&i, "ext.default.svc.cluster.local.", RecordType::A);
    let Answer::ExternalCname { cname, target } = a else {
        panic!("{a:?}")
    };
    assert_eq!(cname.data().to_string(), "example.com.");
    assert_eq!(target.to_string(), "example.com.");
    assert_eq!(
        rdata(&q(&i, "ext.default.svc.cluster.local.", RecordType::CNAME)),
        ["example.com."]
    );
    assert_eq!(
        rdata(&q(&i, "alias.default.svc.cluster.local.", RecordType::A)),
        ["10.43.0.20", "web.default.svc.cluster.local."]
    );
}

#[test]
fn nxdomain_versus_nodata() {
    let i = index();
    for name in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
        "data.svc.cluster.local.",
        "pod.cluster.local.",
        "default.pod.cluster.local.",
    ] {
        assert_eq!(q(&i, name, RecordType::A), Answer::NoData, "{name}");
    }
    for name in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "nope.svc.cluster.local.",
        "x.cluster.local.",
        "web-0.ns.pod.cluster.local.",
    ] {
        assert_eq!(q(&i, name, RecordType::A), Answer::NxDomain, "{name}");
    }
    assert_eq!(
        rdata(&q(&i, "cluster.local.", RecordType::SOA)),
        ["ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"]
    );
}

#[test]
fn pods_and_version_and_ptr() {
    let i = index();
    assert_eq!(
        rdata(&q(
            &i,
            "10-42-1-9.default.pod.cluster.local.",
            RecordType::A
        )),
        ["10.42.1.9"]
    );
    assert_eq!(
        rdata(&q(
            &i,
            "fd00--9.default.pod.cluster.local.",
            RecordType::AAAA
        )),
        ["fd00::9"]
    );
    assert_eq!(
        q(&i, "10-42-1-9.default.pod.cluster.local.", RecordType::AAAA),
        Answer::NoData
    );
    assert_eq!(
        rdata(&q(&i, "dns-version.cluster.local.", RecordType::TXT)),
        ["1.1.0"]
    );
    assert_eq!(
        rdata(&q(&i, "20.0.43.10.in-addr.arpa.", RecordType::PTR)),
        ["web.default.svc.cluster.local."]
    );
    let v6 = names::reverse_name("fd00:43::21".parse().unwrap());
    assert_eq!(
        rdata(&q(&i, &v6, RecordType::PTR)),
        ["dual.default.svc.cluster.local."]
    );
    assert_eq!(
        q(&i, "99.0.43.10.in-addr.arpa.", RecordType::PTR),
        Answer::Forward
    );
    assert_eq!(q(&i, "example.com.", RecordType::A), Answer::Forward);
    assert_eq!(q(&i, "local.", RecordType::A), Answer::Forward);
}

#[test]
fn other_domain() {
    let services = services();
    let i = Index::build(&domain_name("corp.example.").unwrap(), 1, &services, &[]);
    assert_eq!(
        rdata(&q(&i, "web.default.svc.corp.example.", RecordType::A)),
        ["10.43.0.20"]
    );
    assert_eq!(
        q(&i, "web.default.svc.cluster.local.", RecordType::A),
        Answer::Forward
    );
}
