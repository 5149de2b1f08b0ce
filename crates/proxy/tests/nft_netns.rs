//! The generated ruleset in a real kernel (needs root, `nft` and
//! `conntrack`): in a fresh network namespace, a ClusterIP reaches a TCP
//! listener, a Service without endpoints refuses connections, an in-place
//! update keeps the session-affinity state, cleanup removes the table,
//! `loadBalancerSourceRanges` drops other sources and stale UDP conntrack
//! entries are cleared. CI runs as root;
//! elsewhere set `SKIFF_SKIP_ROOT_TESTS=1` to skip explicitly — never
//! silently.
//!
//! Listeners and clients run inside the namespace as this test binary
//! re-executed under `ip netns exec` (the `netns_helper` test, a no-op
//! unless `SKIFF_PROXY_NETNS_HELPER` is set).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_proxy::model::{Endpoint, ServicePort, State};
use skiff_proxy::nft::{Applier, NftApplier};
use skiff_proxy::ruleset;

const HELPER_ENV: &str = "SKIFF_PROXY_NETNS_HELPER";

/// Inside the namespace: `serve:ADDR` answers every connection with a
/// greeting; `connect:ADDR` prints `ok <greeting>` or `err <kind>`.
#[test]
fn netns_helper() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (what, addr) = mode.split_once(':').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    match what {
        "serve" => {
            let listener = TcpListener::bind(addr).unwrap();
            println!("HELPER ready");
            std::io::stdout().flush().unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = writeln!(conn, "hello from {addr}");
            }
        }
        "connect" => {
            let line = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(mut s) => {
                    let mut text = String::new();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = s.read_to_string(&mut text);
                    format!("ok {}", text.trim())
                }
                Err(e) => format!("err {:?}", e.kind()),
            };
            println!("HELPER {line}");
        }
        "udp" => {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            socket.send_to(b"ping", addr).unwrap();
            println!("HELPER sent");
        }
        other => panic!("unknown helper mode {other}"),
    }
}

fn root_or_skip() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var("SKIFF_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("not root and SKIFF_SKIP_ROOT_TESTS=1: skipping the nftables netns test");
        return false;
    }
    panic!(
        "the nftables netns test needs root and nft (CI runs it as root); \
         set SKIFF_SKIP_ROOT_TESTS=1 to skip it"
    );
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace and the helper processes in it; removed on drop.
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("skiff-proxy-test-{}", std::process::id());
        let _ = sh(&["ip", "netns", "del", &name]);
        must(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        // "Pods" live on one end of a veth pair; the service range routes
        // there so that locally generated packets reach the nat output hook.
        ns.exec(&[
            "ip",
            "link",
            "add",
            "pods",
            "type",
            "veth",
            "peer",
            "name",
            "pods-peer",
        ]);
        ns.exec(&["ip", "link", "set", "pods-peer", "up"]);
        ns.exec(&["ip", "addr", "add", "10.42.0.5/24", "dev", "pods"]);
        ns.exec(&["ip", "addr", "add", "10.42.0.6/24", "dev", "pods"]);
        ns.exec(&["ip", "link", "set", "pods", "up"]);
        ns.exec(&["ip", "route", "add", "10.43.0.0/16", "dev", "pods"]);
        ns
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        must(&all);
    }

    fn exec_output(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    fn helper(&self, mode: &str) -> Command {
        let exe = std::env::current_exe().unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(exe)
            .args(["--exact", "netns_helper", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    }

    fn serve(&mut self, addr: &str) {
        let mut child = self.helper(&format!("serve:{addr}")).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        self.children.push(child);
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("the listener helper exited").unwrap();
            if line.contains("HELPER ready") {
                break;
            }
        }
    }

    fn connect(&self, addr: &str) -> String {
        let out = self.helper(&format!("connect:{addr}")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.find("HELPER ").map(|i| l[i + 7..].to_owned()))
            .unwrap_or_else(|| panic!("no helper answer in {text}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn state(empty_has_endpoint: bool) -> State {
    let mut web = ServicePort::cluster_ip("default", "web", ip("10.43.0.100"), 80);
    web.affinity_timeout = Some(600);
    web.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 8080, Some("n"))];
    let mut empty = ServicePort::cluster_ip("default", "empty", ip("10.43.0.200"), 80);
    if empty_has_endpoint {
        empty.endpoints = vec![Endpoint::ready(ip("10.42.0.6"), 9090, Some("n"))];
    }
    let mut services = vec![web, empty];
    services.sort_by_key(ServicePort::id);
    State {
        node_name: "n".to_owned(),
        node_ips: vec![ip("10.42.0.5")],
        cluster_cidrs: vec!["10.42.0.0/16".to_owned()],
        masquerade_all: false,
        services,
    }
}

#[tokio::test]
async fn cluster_ip_reject_affinity_and_cleanup_in_a_netns() {
    if std::env::var(HELPER_ENV).is_ok() || !root_or_skip() {
        return;
    }
    let mut ns = Netns::new();
    ns.serve("10.42.0.5:8080");
    ns.serve("10.42.0.6:9090");
    let applier = NftApplier::in_netns(&ns.name);

    // First sync: the table is created from scratch.
    applier.apply(&ruleset::build(&state(false))).await.unwrap();
    assert_eq!(ns.connect("10.43.0.100:80"), "ok hello from 10.42.0.5:8080");
    // No endpoints: refused at once by the filter chain's reject (a
    // dropped packet would time out instead).
    assert_eq!(ns.connect("10.43.0.200:80"), "err ConnectionRefused");
    // A port no Service uses on a ClusterIP: rejected too.
    assert_eq!(ns.connect("10.43.0.100:81"), "err ConnectionRefused");

    // The client (10.42.0.5) is remembered for session affinity.
    let affinity = "affinity-default/web/tcp/80__10.42.0.5/8080";
    let listed = ns.exec_output(&["nft", "list", "set", "ip", "skiff-proxy", affinity]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("10.42.0.5"), "{listed}");

    // An in-place update: the empty Service gets an endpoint; the
    // affinity set keeps its element.
    applier.apply(&ruleset::build(&state(true))).await.unwrap();
    assert_eq!(ns.connect("10.43.0.200:80"), "ok hello from 10.42.0.6:9090");
    assert_eq!(ns.connect("10.43.0.100:80"), "ok hello from 10.42.0.5:8080");
    let listed = ns.exec_output(&["nft", "list", "set", "ip", "skiff-proxy", affinity]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("elements = { 10.42.0.5"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    // ... and back: rejected again.
    applier.apply(&ruleset::build(&state(false))).await.unwrap();
    assert_eq!(ns.connect("10.43.0.200:80"), "err ConnectionRefused");

    // Someone deleted the table behind our back: the next sync recreates it.
    ns.exec(&["nft", "delete", "table", "ip", "skiff-proxy"]);
    applier.apply(&ruleset::build(&state(true))).await.unwrap();
    assert_eq!(ns.connect("10.43.0.200:80"), "ok hello from 10.42.0.6:9090");

    // --cleanup removes the table (and is fine to repeat).
    applier.cleanup().await.unwrap();
    applier.cleanup().await.unwrap();
    let listed = ns.exec_output(&["nft", "list", "table", "ip", "skiff-proxy"]);
    assert!(!listed.status.success(), "the table is still there");
    let gone = ns.connect("10.43.0.100:80");
    assert!(gone.starts_with("err "), "{gone}");
}

fn lb_state(ranges: &[&str]) -> State {
    let mut lb = ServicePort::cluster_ip("default", "lb", ip("10.43.0.150"), 80);
    lb.node_port = Some(30080);
    lb.load_balancer_ips = vec![ip("203.0.113.10")];
    lb.source_ranges = ranges
        .iter()
        .map(|r| skiff_proxy::cidr::Cidr::parse(r).unwrap())
        .collect();
    lb.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 8080, Some("n"))];
    State {
        node_name: "n".to_owned(),
        node_ips: vec![ip("10.42.0.5")],
        cluster_cidrs: vec!["10.42.0.0/16".to_owned()],
        masquerade_all: false,
        services: vec![lb],
    }
}

#[tokio::test]
async fn load_balancer_source_ranges_in_a_netns() {
    if std::env::var(HELPER_ENV).is_ok() || !root_or_skip() {
        return;
    }
    let mut ns = Netns::new();
    ns.exec(&["ip", "route", "add", "203.0.113.0/24", "dev", "pods"]);
    ns.serve("10.42.0.5:8080");
    let applier = NftApplier::in_netns(&ns.name);

    // Clients here connect from 10.42.0.5: inside the allowed range.
    applier
        .apply(&ruleset::build(&lb_state(&["10.42.0.0/24"])))
        .await
        .unwrap();
    assert_eq!(
        ns.connect("203.0.113.10:80"),
        "ok hello from 10.42.0.5:8080"
    );
    // Outside every range: dropped (the connection times out).
    applier
        .apply(&ruleset::build(&lb_state(&[
            "198.51.100.0/24",
            "192.0.2.7",
        ])))
        .await
        .unwrap();
    assert_eq!(ns.connect("203.0.113.10:80"), "err TimedOut");
    // The ClusterIP is not filtered.
    assert_eq!(ns.connect("10.43.0.150:80"), "ok hello from 10.42.0.5:8080");
    // No ranges: open again.
    applier
        .apply(&ruleset::build(&lb_state(&[])))
        .await
        .unwrap();
    assert_eq!(
        ns.connect("203.0.113.10:80"),
        "ok hello from 10.42.0.5:8080"
    );
}

fn udp_state(endpoint: &str) -> State {
    let mut dns = ServicePort::cluster_ip("kube-system", "dns", ip("10.43.0.53"), 53);
    dns.protocol = skiff_proxy::model::Protocol::Udp;
    dns.endpoints = vec![Endpoint::ready(ip(endpoint), 5353, Some("n"))];
    State {
        node_name: "n".to_owned(),
        node_ips: vec![ip("10.42.0.5")],
        cluster_cidrs: vec!["10.42.0.0/16".to_owned()],
        masquerade_all: false,
        services: vec![dns],
    }
}

/// The UDP conntrack entries to 10.43.0.53 in the namespace.
fn udp_entries(ns: &Netns) -> String {
    let out = ns.exec_output(&["conntrack", "-L", "-p", "udp", "--orig-dst", "10.43.0.53"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn stale_udp_conntrack_entries_are_cleared_in_a_netns() {
    if std::env::var(HELPER_ENV).is_ok() || !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    let applier = NftApplier::in_netns(&ns.name);
    let before = udp_state("10.42.0.5");
    applier.apply(&ruleset::build(&before)).await.unwrap();
    let sent = ns.helper("udp:10.43.0.53:53").output().unwrap();
    assert!(String::from_utf8_lossy(&sent.stdout).contains("HELPER sent"));
    let entries = udp_entries(&ns);
    // The reply direction names the endpoint it was DNATed to.
    assert!(
        entries.contains("dst=10.43.0.53") && entries.contains("sport=5353"),
        "{entries}"
    );

    // The endpoint moves: the entry DNATed to the old one is stale.
    let after = udp_state("10.42.0.6");
    applier.apply(&ruleset::build(&after)).await.unwrap();
    let flushes = skiff_proxy::conntrack::stale_udp(&before, &after);
    assert!(!flushes.is_empty());
    applier.flush_conntrack(&flushes).await;
    let entries = udp_entries(&ns);
    assert!(!entries.contains("10.43.0.53"), "{entries}");

    // New traffic goes to the new endpoint.
    ns.helper("udp:10.43.0.53:53").output().unwrap();
    let entries = udp_entries(&ns);
    assert!(entries.contains("src=10.42.0.6"), "{entries}");
}
