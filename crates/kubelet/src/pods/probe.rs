//! Container probes (exec, httpGet, tcpSocket, grpc) and their thresholds,
//! as upstream's prober.

use std::time::Duration;

use k8s_cri::v1::ExecSyncRequest;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::cri::Cri;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// One probe's running state for one container instance.
pub struct State {
    pub kind: Kind,
    pub success: bool,
    successes: i32,
    failures: i32,
    next_run: Instant,
}

impl State {
    /// Before the first run: liveness and startup count as passing (so
    /// nothing is restarted early), readiness as failing.
    pub fn new(kind: Kind, probe: &Probe, started: Instant) -> State {
        State {
            kind,
            success: kind == Kind::Liveness,
            successes: 0,
            failures: 0,
            next_run: started
                + Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64),
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_run
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> i32 {
        self.failures
    }

    pub fn next_run(&self) -> Instant {
        self.next_run
    }

    /// Records a result; returns true when the probe's verdict changed.
    pub fn record(&mut self, probe: &Probe, ok: bool, now: Instant) -> bool {
        self.next_run = now + Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
        if ok {
            self.successes += 1;
            self.failures = 0;
            if !self.success && self.successes >= success_threshold {
                self.success = true;
                return true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.success && self.failures >= failure_threshold {
                self.success = false;
                return true;
            }
            // Readiness starts as failing: the first failures change nothing.
        }
        false
    }
}

/// Runs one probe against a container; `Err` carries the failure output.
pub async fn run(
    cri: &Cri,
    probe: &Probe,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let mut cri = cri.clone();
        let resp = cri
            .runtime
            .exec_sync(ExecSyncRequest {
                container_id: container_id.to_owned(),
                cmd: exec.command.clone().unwrap_or_default(),
                timeout: timeout.as_secs() as i64,
            })
            .await
            .map_err(|e| format!("exec failed: {}", e.message()))?
            .into_inner();
        if resp.exit_code == 0 {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&resp.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&resp.stderr));
        return Err(if output.trim().is_empty() {
            format!(
                "command {:?} exited with {}",
                exec.command.clone().unwrap_or_default(),
                resp.exit_code
            )
        } else {
            output
        });
    }
    if let Some(http) = &probe.http_get {
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_owned());
        let port = resolve_port(&http.port, container)?;
        let path = http.path.clone().unwrap_or_else(|| "/".to_owned());
        let scheme = http.scheme.as_deref().unwrap_or("HTTP");
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return http_get(&host, port, &path, &headers, scheme == "HTTPS", timeout).await;
    }
    if let Some(socket) = &probe.tcp_socket {
        let host = socket
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_owned());
        let port = resolve_port(&socket.port, container)?;
        return tcp(&host, port, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
        let service = grpc.service.clone().unwrap_or_default();
        return grpc_health(pod_ip, port, &service, timeout).await;
    }
    Err("probe has no handler".to_owned())
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} not found in container")),
    }
}

fn addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr(host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {}: {e}", addr(host, port))),
        Err(_) => Err(format!("dial tcp {}: i/o timeout", addr(host, port))),
    }
}

/// The standard gRPC health check (`grpc.health.v1.Health/Check`):
/// SERVING is success, as upstream's gRPC probe.
async fn grpc_health(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let target = addr(host, port);
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
            .map_err(|e| format!("invalid target {target}: {e}"))?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| {
                format!(
                    "failed to connect service {target:?} within {}s: {e}",
                    timeout.as_secs()
                )
            })?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|e| format!("health rpc did not complete: {}", e.message()))?
            .into_inner();
        if response.status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(format!(
                "service unhealthy (responded with {:?})",
                ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown)
            ))
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
    }
}

/// A plain or TLS connection.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// A minimal HTTP/1.1 GET: 200–399 is success, as upstream.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    https: bool,
    timeout: Duration,
) -> Result<(), String> {
    let target = addr(host, port);
    let url = format!("{}://{target}{path}", if https { "https" } else { "http" });
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(&target)
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp {target}: {e}"))?;
        let mut stream: Box<dyn Stream> = if https {
            let tls = super::insecure_tls::connector()?
                .connect(super::insecure_tls::server_name(host)?, tcp)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut buf = vec![0u8; 1024];
        let mut read = 0;
        while read < 12 {
            let n = stream
                .read(&mut buf[read..])
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let head = String::from_utf8_lossy(&buf[..read]);
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn thresholds_flip_the_verdict() {
        let p = probe(
            serde_json::json!({"failureThreshold": 2, "successThreshold": 2, "periodSeconds": 1}),
        );
        let t = Instant::now();
        let mut readiness = State::new(Kind::Readiness, &p, t);
        assert!(!readiness.success);
        assert!(!readiness.record(&p, true, t));
        assert!(readiness.record(&p, true, t));
        assert!(readiness.success);
        assert!(!readiness.record(&p, false, t));
        assert!(readiness.record(&p, false, t));
        assert!(!readiness.success);
        let mut liveness = State::new(Kind::Liveness, &p, t);
        assert!(liveness.success);
        assert!(!liveness.record(&p, false, t));
        assert!(liveness.record(&p, false, t));
    }

    #[test]
    fn initial_delay_postpones_the_first_run() {
        let p = probe(serde_json::json!({"initialDelaySeconds": 5}));
        let t = Instant::now();
        let s = State::new(Kind::Liveness, &p, t);
        assert!(!s.due(t));
        assert!(s.due(t + Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn grpc_probe_asks_the_health_service() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("ok", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("down", tonic_health::ServingStatus::NotServing)
            .await;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let t = Duration::from_secs(3);
        assert_eq!(grpc_health("127.0.0.1", port, "ok", t).await, Ok(()));
        let down = grpc_health("127.0.0.1", port, "down", t).await;
        assert!(down.is_err_and(|e| e.contains("NotServing")), "down");
        let closed = grpc_health("127.0.0.1", 1, "", t).await;
        assert!(closed.is_err());
    }

    #[tokio::test]
    async fn https_probe_accepts_a_self_signed_certificate() {
        let certified = match rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]) {
            Ok(c) => c,
            Err(e) => panic!("certificate: {e}"),
        };
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_no_client_auth())
        .and_then(|b| b.with_single_cert(vec![certified.cert.der().clone()], key));
        let acceptor = match config {
            Ok(c) => tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(c)),
            Err(e) => panic!("server config: {e}"),
        };
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await
                && let Ok(mut tls) = acceptor.accept(tcp).await
            {
                let mut buf = [0u8; 512];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let t = Duration::from_secs(3);
        assert_eq!(
            http_get("127.0.0.1", port, "/healthz", &[], true, t).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_code() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            for code in [200, 500] {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                }
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(
            http_get("127.0.0.1", port, "/", &[], false, t).await,
            Ok(())
        );
        assert_eq!(
            http_get("127.0.0.1", port, "/", &[], false, t).await,
            Err("HTTP probe failed with statuscode: 500".to_owned())
        );
    }
}
