//! `skiff bench streaming`: a real node (needs root) runs one busybox pod
//! serving a file over HTTP; the benchmark times `kubectl exec POD -- true`
//! round trips and pulls the file through `kubectl port-forward`, and, for
//! scale, straight from the pod's IP in the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Container, ExecAction, Pod, PodSpec, Probe};
use kube::api::{Api, ObjectMeta, PostParams};
use serde::Serialize;

use super::pod_startup::{LABEL, is_root, tear_down, wait_node_ready, wait_readyz};
use super::server::{Server, client};
use super::stats::quantile;

const POD: &str = "bench-streaming";

#[derive(clap::Args)]
pub struct StreamingBenchArgs {
    /// The kubectl to drive.
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
    /// `kubectl exec -- true` round trips to time.
    #[arg(long, default_value_t = 20)]
    execs: usize,
    /// Size of the file pulled through port-forward, in MiB.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StreamingFigures {
    kubectl: String,
    execs: usize,
    exec_p50_ms: f64,
    exec_p99_ms: f64,
    mib: usize,
    /// Best of three pulls through `kubectl port-forward`.
    port_forward_mib_s: f64,
    /// Best of three pulls from the pod's IP (no API server, no kubelet).
    direct_mib_s: f64,
}

fn pod(mib: usize) -> Pod {
    let script = format!(
        "mkdir -p /www && head -c {} /dev/zero > /www/big && touch /www/ready && exec httpd -f -p 8080 -h /www",
        mib << 20
    );
    Pod {
        metadata: ObjectMeta {
            name: Some(POD.into()),
            labels: Some([(LABEL.to_owned(), "streaming".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "web".into(),
                image: Some("skiff.local/busybox".into()),
                command: Some(vec!["sh".into(), "-c".into(), script]),
                readiness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(vec!["test".into(), "-e".into(), "/www/ready".into()]),
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits for the pod to be Ready; returns its IP.
async fn wait_ready(api: &Api<Pod>) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(p) = api.get(POD).await
            && let Some(status) = p.status
            && status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            && let Some(ip) = status.pod_ip
        {
            return Ok(ip);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pod was not Ready within 120s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kubectl(args: &StreamingBenchArgs, server: &Server) -> Command {
    let mut c = Command::new(&args.kubectl);
    c.arg("--kubeconfig").arg(&server.kubeconfig);
    c
}

/// One `GET /big` over plain HTTP/1.0; MiB/s from connect to the last byte.
fn pull(addr: &str, mib: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut s =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(s, "GET /big HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        total > mib << 20,
        "got {total} bytes, expected {} and headers",
        mib << 20
    );
    Ok(mib as f64 / secs)
}

fn best_of_three(addr: &str, mib: usize) -> anyhow::Result<f64> {
    let mut best = 0f64;
    for _ in 0..3 {
        best = best.max(pull(addr, mib)?);
    }
    Ok(best)
}

fn measure_execs(args: &StreamingBenchArgs, server: &Server) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(args.execs);
    // One warm-up (kubectl's discovery cache).
    for i in 0..=args.execs {
        let started = Instant::now();
        let out = kubectl(args, server)
            .args(["exec", POD, "--", "true"])
            .output()
            .context("running kubectl")?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl exec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i > 0 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((quantile(&mut samples, 0.5), quantile(&mut samples, 0.99)))
}

fn measure_port_forward(args: &StreamingBenchArgs, server: &Server) -> anyhow::Result<f64> {
    let local = skiff_testkit::free_port();
    let mut child = kubectl(args, server)
        .args([
            "port-forward",
            &format!("pod/{POD}"),
            &format!("{local}:8080"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kubectl port-forward")?;
    let mut first = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout);
        lines.read_line(&mut first)?;
        // kubectl prints a line per connection: keep reading, or it dies
        // of a broken pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    }
    let result = if first.starts_with("Forwarding from") {
        best_of_three(&format!("127.0.0.1:{local}"), args.mib)
    } else {
        Err(anyhow::anyhow!(
            "kubectl port-forward did not start: {first:?}"
        ))
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn measure(server: &Server, args: &StreamingBenchArgs) -> anyhow::Result<StreamingFigures> {
    let client = client(&server.kubeconfig).await?;
    wait_readyz(&client).await?;
    wait_node_ready(&client).await?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &pod(args.mib))
        .await
        .context("creating the pod")?;
    let ip = wait_ready(&api).await?;
    let (exec_p50_ms, exec_p99_ms) = measure_execs(args, server)?;
    let port_forward_mib_s = measure_port_forward(args, server)?;
    let direct_mib_s = best_of_three(&format!("{ip}:8080"), args.mib)?;
    let version = kubectl(args, server)
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| args.kubectl.clone());
    Ok(StreamingFigures {
        kubectl: version,
        execs: args.execs,
        exec_p50_ms,
        exec_p99_ms,
        mib: args.mib,
        port_forward_mib_s,
        direct_mib_s,
    })
}

pub async fn run(args: StreamingBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_root(),
        "the streaming benchmark runs a real node: it needs root (and containerd, runc, the CNI plugins)"
    );
    anyhow::ensure!(
        args.execs > 0 && args.mib > 0,
        "--execs and --mib must be positive"
    );
    let mut server = Server::start_node(&[])?;
    let figures = tokio::select! {
        figures = measure(&server, &args) => figures,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let figures =
        figures.map_err(|e| e.context(format!("server log (tail):\n{}", server.log_tail(30))));
    let cleaned = tear_down(&mut server).await;
    let f = figures?;
    cleaned?;
    if args.json {
        println!("{}", serde_json::to_string(&f)?);
    } else {
        println!("kubectl {}", f.kubectl);
        println!(
            "exec -- true: p50 {:.0} ms, p99 {:.0} ms ({} runs)",
            f.exec_p50_ms, f.exec_p99_ms, f.execs
        );
        println!(
            "port-forward: {:.0} MiB/s ({} MiB, best of 3); straight to the pod IP: {:.0} MiB/s",
            f.port_forward_mib_s, f.mib, f.direct_mib_s
        );
    }
    Ok(())
}
