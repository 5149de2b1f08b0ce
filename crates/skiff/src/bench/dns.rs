//! `skiff bench dns`: the cluster DNS server (skiff-dns) answering from
//! an index of many Services, measured over UDP from this process:
//! queries/s, latency percentiles, and the CPU time of the DNS server's own
//! thread, so that the figure reads as queries per second per core.
//!
//! The API server is a child process (`skiff server --disable-agent
//! --disable-dns`); the DNS server runs here on a current-thread runtime
//! in its own OS thread (its CPU time is that thread's), and the load
//! generator on the main runtime: a few UDP sockets, each keeping its
//! share of the in-flight queries outstanding, with queries encoded once
//! and only their IDs rewritten.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::server::{Server, client};
use super::stats::{cpu_seconds, quantile, spread};

/// The Services are spread over this many namespaces.
const NAMESPACES: usize = 10;
/// Concurrent creates while filling the cluster.
const CREATE_CLIENTS: usize = 64;
/// A query unanswered this long counts as a timeout (its slot sends anew).
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a worker looks for timed-out queries.
const TICK: Duration = Duration::from_millis(100);
/// Load before the measured seconds (not counted).
const WARMUP: Duration = Duration::from_secs(1);
/// `/proc/<pid>/stat` counts CPU time in clock ticks (`USER_HZ`, 100 on
/// Linux).
/// Query types.
const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

#[derive(clap::Args)]
pub struct DnsBenchArgs {
    /// Services created (ClusterIP, one named port), across 10 namespaces.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Seconds of measured load (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Queries in flight at any time, over all sockets.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// UDP sockets (one task each) the in-flight queries are spread over.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Mixed queries: 80% A, 10% SRV of the named port, 10% NXDOMAIN
    /// (default: A queries only).
    #[arg(long)]
    mix: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DnsFigures {
    services: usize,
    creates_per_second: f64,
    /// From the DNS server's bind until the last Service answers.
    index_ready_ms: f64,
    concurrency: usize,
    sockets: usize,
    mix: bool,
    seconds: f64,
    /// Queries answered as expected.
    queries: u64,
    queries_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// Wrong answers and socket errors.
    errors: u64,
    timeouts: u64,
    /// CPU time of the DNS server's thread during the measured seconds.
    dns_cpu_seconds: f64,
    /// CPU time of the rest of this process (the load generator).
    generator_cpu_seconds: f64,
    /// Queries per CPU-second of the DNS server: queries/s on one core.
    queries_per_dns_cpu_second: f64,
    /// `/proc/loadavg` (1, 5, 15 minutes) before and after the load.
    load_average_before: String,
    load_average_after: String,
}

fn service_name(i: usize) -> (String, String) {
    (format!("dns-bench-{}", i % NAMESPACES), format!("svc-{i}"))
}

async fn create_services(client: &kube::Client, count: usize) -> anyhow::Result<f64> {
    for n in 0..NAMESPACES {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("dns-bench-{n}")),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
    }
    spread(client, CREATE_CLIENTS, count, |client, i| async move {
        let (ns, name) = service_name(i);
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        Api::<Service>::namespaced(client, &ns)
            .create(&PostParams::default(), &service)
            .await?;
        Ok(())
    })
    .await
}

/// A query in wire format with ID 0 (recursion desired, one question,
/// class IN).
fn encode_query(name: &str, qtype: u16) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(name.len() + 18);
    bytes.extend_from_slice(&[0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len()).context("label too long")?;
        anyhow::ensure!(len < 64, "label too long: {label}");
        bytes.push(len);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes.extend_from_slice(&qtype.to_be_bytes());
    bytes.extend_from_slice(&1u16.to_be_bytes());
    Ok(bytes)
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// NOERROR with at least one answer.
    Answer,
    NxDomain,
}

/// Every query the generator may send, encoded once.
struct Queries {
    a: Vec<Vec<u8>>,
    srv: Vec<Vec<u8>>,
    nx: Vec<Vec<u8>>,
    mix: bool,
}

impl Queries {
    fn new(services: usize, mix: bool) -> anyhow::Result<Queries> {
        let mut queries = Queries {
            a: Vec::with_capacity(services),
            srv: Vec::new(),
            nx: Vec::new(),
            mix,
        };
        for i in 0..services {
            let (ns, name) = service_name(i);
            let fqdn = format!("{name}.{ns}.svc.cluster.local");
            queries.a.push(encode_query(&fqdn, TYPE_A)?);
            if mix {
                queries
                    .srv
                    .push(encode_query(&format!("_http._tcp.{fqdn}"), TYPE_SRV)?);
                queries.nx.push(encode_query(
                    &format!("missing-{name}.{ns}.svc.cluster.local"),
                    TYPE_A,
                )?);
            }
        }
        Ok(queries)
    }

    /// A random query: its bytes and the expected answer.
    fn pick(&self, rng: &mut u64) -> (&[u8], Expect) {
        let r = next_random(rng);
        let i = (r >> 8) as usize % self.a.len();
        if self.mix {
            match r % 10 {
                0 => return (&self.srv[i], Expect::Answer),
                1 => return (&self.nx[i], Expect::NxDomain),
                _ => {}
            }
        }
        (&self.a[i], Expect::Answer)
    }
}

/// xorshift64: cheap, and good enough to pick names.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Whether a response matches what was asked: QR set, and NOERROR with
/// answers or NXDOMAIN.
fn response_ok(response: &[u8], expect: Expect) -> bool {
    if response.len() < 12 || response[2] & 0x80 == 0 {
        return false;
    }
    let rcode = response[3] & 0x0f;
    let answers = u16::from_be_bytes([response[6], response[7]]);
    match expect {
        Expect::Answer => rcode == 0 && answers > 0,
        Expect::NxDomain => rcode == 3,
    }
}

#[derive(Default)]
struct Tally {
    answered: u64,
    errors: u64,
    timeouts: u64,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.answered += other.answered;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.latencies_ms.extend(other.latencies_ms);
    }
}

/// A query in flight: its ID, what it expects, when it was sent.
type Slot = Option<(u16, Expect, Instant)>;

/// One socket keeping `slots` queries in flight until `until`, then
/// waiting (at most [`QUERY_TIMEOUT`]) for the last answers.
async fn worker(
    server: SocketAddr,
    queries: Arc<Queries>,
    slots: usize,
    seed: u64,
    until: Instant,
) -> anyhow::Result<Tally> {
    anyhow::ensure!(
        (1..=256).contains(&slots),
        "1 to 256 queries in flight per socket"
    );
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(server).await?;
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut inflight: Vec<Slot> = vec![None; slots];
    let mut generation = vec![0u8; slots];
    let mut send_buf = Vec::with_capacity(512);
    let mut recv_buf = vec![0u8; 4096];
    let mut tally = Tally::default();

    // Sends a fresh query in `slot` (the ID is the slot in the low byte, a
    // per-slot generation in the high byte, so that late answers to a
    // timed-out query are told apart).
    macro_rules! send {
        ($slot:expr) => {{
            let slot: usize = $slot;
            generation[slot] = generation[slot].wrapping_add(1);
            let id = u16::from_be_bytes([generation[slot], slot as u8]);
            let (bytes, expect) = queries.pick(&mut rng);
            send_buf.clear();
            send_buf.extend_from_slice(bytes);
            send_buf[..2].copy_from_slice(&id.to_be_bytes());
            inflight[slot] = Some((id, expect, Instant::now()));
            if socket.send(&send_buf).await.is_err() {
                tally.errors += 1;
                inflight[slot] = None;
            }
        }};
    }

    for slot in 0..slots {
        send!(slot);
    }
    let mut tick = std::pin::pin!(tokio::time::sleep(TICK));
    let hard_stop = until + QUERY_TIMEOUT;
    loop {
        let now = Instant::now();
        let sending = now < until;
        if !sending && (inflight.iter().all(Option::is_none) || now >= hard_stop) {
            tally.timeouts += inflight.iter().filter(|s| s.is_some()).count() as u64;
            break;
        }
        tokio::select! {
            received = socket.recv(&mut recv_buf) => {
                let Ok(n) = received else {
                    tally.errors += 1;
                    continue;
                };
                let response = &recv_buf[..n];
                if n < 2 {
                    tally.errors += 1;
                    continue;
                }
                let id = u16::from_be_bytes([response[0], response[1]]);
                let slot = usize::from(response[1]);
                let Some(Some((want, expect, sent))) = inflight.get(slot).copied() else {
                    continue;
                };
                if want != id {
                    continue; // a late answer to a timed-out query
                }
                inflight[slot] = None;
                if response_ok(response, expect) {
                    tally.answered += 1;
                    tally.latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    tally.errors += 1;
                }
                if sending {
                    send!(slot);
                }
            }
            () = &mut tick => {
                let now = Instant::now();
                for slot in 0..slots {
                    match inflight[slot] {
                        Some((_, _, sent)) if now.duration_since(sent) >= QUERY_TIMEOUT => {
                            tally.timeouts += 1;
                            inflight[slot] = None;
                        }
                        Some(_) => continue,
                        None => {}
                    }
                    if now < until {
                        send!(slot);
                    }
                }
                tick.as_mut().reset((now + TICK).into());
            }
        }
    }
    Ok(tally)
}

/// Runs the load for `duration`; the merged tally and the wall time.
async fn load(
    server: SocketAddr,
    queries: &Arc<Queries>,
    concurrency: usize,
    sockets: usize,
    duration: Duration,
) -> anyhow::Result<(Tally, Duration)> {
    let sockets = sockets.clamp(1, concurrency.max(1));
    let started = Instant::now();
    let until = started + duration;
    let tasks: Vec<_> = (0..sockets)
        .map(|w| {
            // The in-flight queries split as evenly as they go.
            let slots = concurrency / sockets + usize::from(w < concurrency % sockets);
            tokio::spawn(worker(server, queries.clone(), slots, w as u64 + 1, until))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await??);
    }
    Ok((tally, started.elapsed()))
}

/// Asks for `name` until it answers (the index has it) or `within` passes.
async fn wait_for_name(server: SocketAddr, name: &str, within: Duration) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(server).await?;
    let query = encode_query(name, TYPE_A)?;
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        socket.send(&query).await?;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
            && response_ok(&buf[..n], Expect::Answer)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{name} did not answer within {within:?}")
}

/// The DNS server on its own thread and current-thread runtime.
struct DnsThread {
    addr: SocketAddr,
    /// The thread's kernel ID (`/proc/self/task/<tid>`).
    tid: u32,
    shutdown: CancellationToken,
    handle: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// The calling thread's kernel ID.
fn current_tid() -> anyhow::Result<u32> {
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no thread ID in {}", link.display()))
}

async fn start_dns(kubeconfig: PathBuf) -> anyhow::Result<DnsThread> {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<(SocketAddr, u32)>>();
    let handle = std::thread::Builder::new()
        .name("bench-dns".into())
        .spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                // The client is made here, so its connection (the watches)
                // is served by this thread too.
                let bound = async {
                    let tid = current_tid()?;
                    let client = client(&kubeconfig).await?;
                    let mut config = skiff_dns::Config::new(client);
                    config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
                    config.metrics_address = None;
                    config.upstreams = Vec::new();
                    config.initial_sync_timeout = Duration::from_secs(120);
                    let server = skiff_dns::DnsServer::bind(config).await?;
                    let addr = *server.local_addrs().first().context("no DNS address")?;
                    anyhow::Ok((server, addr, tid))
                }
                .await;
                match bound {
                    Ok((server, addr, tid)) => {
                        let _ = ready_tx.send(Ok((addr, tid)));
                        server.run(token).await?;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                Ok(())
            })
        })
        .context("starting the DNS thread")?;
    let (addr, tid) = ready_rx.await.context("the DNS thread stopped")??;
    Ok(DnsThread {
        addr,
        tid,
        shutdown,
        handle,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub async fn run(args: DnsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.services > 0, "--services must be at least 1");
    anyhow::ensure!(
        args.concurrency > 0 && args.concurrency <= 256 * args.sockets.max(1),
        "--concurrency must be 1 to 256 per socket"
    );
    let server = Server::start(&["--disable-dns"])?;
    let api = client(&server.kubeconfig).await?;
    eprintln!("server up; creating {} Services...", args.services);
    let creates_per_second = create_services(&api, args.services)
        .await
        .with_context(|| format!("creating Services; server log:\n{}", server.log_tail(20)))?;

    eprintln!("starting the DNS server...");
    let bound_at = Instant::now();
    let dns = start_dns(server.kubeconfig.clone()).await?;
    let (ns, name) = service_name(args.services - 1);
    wait_for_name(
        dns.addr,
        &format!("{name}.{ns}.svc.cluster.local"),
        Duration::from_secs(120),
    )
    .await?;
    let index_ready_ms = bound_at.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "index ready in {index_ready_ms:.0} ms; {} s of load ({} in flight over {} sockets)...",
        args.seconds, args.concurrency, args.sockets
    );

    let queries = Arc::new(Queries::new(args.services, args.mix)?);
    load(dns.addr, &queries, args.concurrency, args.sockets, WARMUP).await?;
    let thread_stat = format!("/proc/self/task/{}/stat", dns.tid);
    let load_average_before = load_average();
    let (dns_cpu_start, process_cpu_start) =
        (cpu_seconds(&thread_stat)?, cpu_seconds("/proc/self/stat")?);
    let (mut tally, elapsed) = load(
        dns.addr,
        &queries,
        args.concurrency,
        args.sockets,
        Duration::from_secs(args.seconds),
    )
    .await?;
    let dns_cpu_seconds = cpu_seconds(&thread_stat)? - dns_cpu_start;
    let process_cpu_seconds = cpu_seconds("/proc/self/stat")? - process_cpu_start;
    let load_average_after = load_average();

    dns.shutdown.cancel();
    match tokio::task::spawn_blocking(move || dns.handle.join()).await? {
        Ok(result) => result.context("the DNS server failed")?,
        Err(_) => anyhow::bail!("the DNS thread panicked"),
    }

    let seconds = elapsed.as_secs_f64();
    let queries_per_second = tally.answered as f64 / seconds;
    let figures = DnsFigures {
        services: args.services,
        creates_per_second,
        index_ready_ms,
        concurrency: args.concurrency,
        sockets: args.sockets,
        mix: args.mix,
        seconds,
        queries: tally.answered,
        queries_per_second,
        p50_ms: quantile(&mut tally.latencies_ms, 0.5),
        p99_ms: quantile(&mut tally.latencies_ms, 0.99),
        p999_ms: quantile(&mut tally.latencies_ms, 0.999),
        max_ms: quantile(&mut tally.latencies_ms, 1.0),
        errors: tally.errors,
        timeouts: tally.timeouts,
        dns_cpu_seconds,
        generator_cpu_seconds: (process_cpu_seconds - dns_cpu_seconds).max(0.0),
        queries_per_dns_cpu_second: if dns_cpu_seconds > 0.0 {
            tally.answered as f64 / dns_cpu_seconds
        } else {
            0.0
        },
        load_average_before,
        load_average_after,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print_table(&figures);
    }
    Ok(())
}

fn print_table(f: &DnsFigures) {
    let rows = [
        (
            "services",
            format!(
                "{} ({:.0} creates/s; index ready {:.0} ms after bind)",
                f.services, f.creates_per_second, f.index_ready_ms
            ),
        ),
        (
            "load",
            format!(
                "{:.1} s, {} in flight over {} UDP sockets, {}",
                f.seconds,
                f.concurrency,
                f.sockets,
                if f.mix {
                    "80% A / 10% SRV / 10% NXDOMAIN"
                } else {
                    "A queries"
                }
            ),
        ),
        (
            "queries/s",
            format!("{:.0} ({} answered)", f.queries_per_second, f.queries),
        ),
        (
            "latency",
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                f.p50_ms, f.p99_ms, f.p999_ms, f.max_ms
            ),
        ),
        (
            "errors",
            format!("{} wrong or failed, {} timeouts", f.errors, f.timeouts),
        ),
        (
            "DNS server CPU",
            format!(
                "{:.2} s ({:.0}% of one core) -> {:.0} queries per CPU-second",
                f.dns_cpu_seconds,
                100.0 * f.dns_cpu_seconds / f.seconds,
                f.queries_per_dns_cpu_second
            ),
        ),
        (
            "generator CPU",
            format!(
                "{:.2} s ({:.0}% of one core)",
                f.generator_cpu_seconds,
                100.0 * f.generator_cpu_seconds / f.seconds
            ),
        ),
        (
            "load average",
            format!(
                "{} before, {} after",
                f.load_average_before, f.load_average_after
            ),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<16} {value}");
    }
}
