//! The client side toward a CRI runtime's streaming server: the URLs that
//! containerd returns for `Exec`, `Attach` and `PortForward`.
//!
//! The kubelet terminates whatever protocol kubectl chose (SPDY, WebSocket
//! v4/v5, SPDY tunnelled in WebSocket) and speaks one protocol to the
//! runtime: SPDY/3.1 with `v4.channel.k8s.io` (exec/attach) or
//! `portforward.k8s.io`, which every CRI streaming server implements. This
//! keeps kubectl 1.30+'s WebSocket v5 working against runtimes that never
//! learnt it (containerd 1.6).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, UPGRADE};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::remotecommand::{ExitStatus, STREAM_TYPE_HEADER};
use crate::spdy::{Headers, Role, Session, SessionConfig, SpdyStream};
use crate::upgrade::{PORT_FORWARD, STREAM_PROTOCOL_HEADER, V4};

/// How long dialing the runtime and its 101 answer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the runtime's streaming server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("unsupported streaming URL {0:?} (only http:// is supported)")]
    Url(String),
    #[error("dialing the runtime's streaming server at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("dialing the runtime's streaming server: timed out")]
    Timeout,
    #[error("upgrading to SPDY at the runtime: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the upgrade request: {0}")]
    Request(#[from] http::Error),
    #[error("the runtime refused the stream ({status}): {body}")]
    Refused {
        status: http::StatusCode,
        body: String,
    },
    #[error("opening a stream at the runtime: {0}")]
    Stream(#[from] crate::spdy::SessionError),
}

/// Dials `url` (`http://host:port/path`) and upgrades to SPDY/3.1 with the
/// subprotocol `protocol`, as client-go's SPDY round tripper does.
pub async fn connect(url: &str, protocol: &str) -> Result<Session, RuntimeError> {
    let uri: http::Uri = url.parse().map_err(|_| RuntimeError::Url(url.to_owned()))?;
    if uri.scheme_str() != Some("http") {
        return Err(RuntimeError::Url(url.to_owned()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| RuntimeError::Url(url.to_owned()))?
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let dial = async {
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|source| RuntimeError::Connect {
                addr: authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Empty<Bytes>,
        >(TokioIo::new(tcp))
        .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "runtime streaming connection ended");
            }
        });
        let request = http::Request::post(path)
            .header(HOST, &authority)
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "SPDY/3.1")
            .header(STREAM_PROTOCOL_HEADER, protocol)
            .body(http_body_util::Empty::<Bytes>::new())?;
        let mut response = sender.send_request(request).await?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            use http_body_util::BodyExt;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            return Err(RuntimeError::Refused { status, body });
        }
        let upgraded = hyper::upgrade::on(&mut response).await?;
        let config = SessionConfig {
            always_send_window_updates: false,
            ..SessionConfig::default()
        };
        Ok(Session::new(TokioIo::new(upgraded), Role::Client, config))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| RuntimeError::Timeout)?
}

/// Which streams an exec/attach asks for (stderr is dropped with a tty, as
/// the CRI requires).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// An exec/attach session at the runtime, as client-go's v4 executor
/// opens it.
pub struct RuntimeCommand {
    pub stdin: Option<SpdyStream>,
    pub stdout: Option<SpdyStream>,
    pub stderr: Option<SpdyStream>,
    pub resize: Option<SpdyStream>,
    error: SpdyStream,
    session: Session,
}

fn typed(stream_type: &str) -> Headers {
    Headers::new().with(STREAM_TYPE_HEADER, stream_type)
}

impl RuntimeCommand {
    /// Opens the streams on an upgraded v4 session: error first (which we
    /// never write, so it is half-closed at once), then stdin, stdout,
    /// stderr and resize as asked.
    pub async fn open(session: Session, streams: Streams) -> Result<Self, RuntimeError> {
        let mut error = session.open_stream(typed("error"), false).await?;
        let _ = error.shutdown().await;
        let open = |wanted: bool, kind: &'static str| {
            let session = &session;
            async move {
                if wanted {
                    session.open_stream(typed(kind), false).await.map(Some)
                } else {
                    Ok(None)
                }
            }
        };
        let stdin = open(streams.stdin, "stdin").await?;
        let stdout = open(streams.stdout, "stdout").await?;
        let stderr = open(streams.stderr && !streams.tty, "stderr").await?;
        let resize = open(streams.tty, "resize").await?;
        Ok(RuntimeCommand {
            stdin,
            stdout,
            stderr,
            resize,
            error,
            session,
        })
    }

    /// Dials `url` and opens the streams.
    pub async fn connect(url: &str, streams: Streams) -> Result<Self, RuntimeError> {
        Self::open(connect(url, V4).await?, streams).await
    }

    /// Waits for the runtime's verdict on the error stream and closes the
    /// session.
    pub async fn exit_status(mut self) -> ExitStatus {
        let mut buf = Vec::new();
        let status = match self.error.read_to_end(&mut buf).await {
            Ok(_) => parse_status(&buf),
            Err(e) => ExitStatus::Error(format!("reading the exit status: {e}")),
        };
        self.session.close();
        status
    }
}

#[derive(Deserialize, Default)]
struct Cause {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    details: Option<Details>,
}

/// Reads a v4 error-stream payload (`metav1.Status`): `Success`, a
/// non-zero exit code, or an error message. Empty means success (the
/// stream was closed without a word).
pub fn parse_status(payload: &[u8]) -> ExitStatus {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim();
    if text.is_empty() {
        return ExitStatus::Success;
    }
    let Ok(status) = serde_json::from_str::<Status>(text) else {
        return ExitStatus::Error(text.to_owned());
    };
    if status.status == "Success" {
        return ExitStatus::Success;
    }
    if status.reason == "NonZeroExitCode"
        && let Some(code) = status
            .details
            .unwrap_or_default()
            .causes
            .iter()
            .find(|c| c.reason == "ExitCode")
            .and_then(|c| c.message.parse::<i32>().ok())
    {
        return ExitStatus::Code(code);
    }
    ExitStatus::Error(status.message)
}

/// A port-forward session at the runtime: one (data, error) stream pair
/// per forwarded connection, as client-go's port forwarder opens them.
pub struct RuntimePortForward {
    session: Session,
}

impl RuntimePortForward {
    pub fn new(session: Session) -> Self {
        RuntimePortForward { session }
    }

    /// Dials `url` with the `portforward.k8s.io` subprotocol.
    pub async fn connect(url: &str) -> Result<Self, RuntimeError> {
        Ok(Self::new(connect(url, PORT_FORWARD).await?))
    }

    /// Opens the streams of one forwarded connection: (data, error). The
    /// error stream is read-only for us, so it is half-closed at once.
    pub async fn open(
        &self,
        port: u16,
        request_id: &str,
    ) -> Result<(SpdyStream, SpdyStream), RuntimeError> {
        let port = port.to_string();
        let headers = |kind: &str| {
            typed(kind)
                .with(crate::portforward::PORT_HEADER, &port)
                .with(crate::portforward::REQUEST_ID_HEADER, request_id)
        };
        let mut error = self.session.open_stream(headers("error"), false).await?;
        let _ = error.shutdown().await;
        let data = self.session.open_stream(headers("data"), false).await?;
        Ok((data, error))
    }

    pub fn close(&self) {
        self.session.close();
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_the_runtime_writes_them() {
        assert_eq!(parse_status(b""), ExitStatus::Success);
        assert_eq!(
            parse_status(br#"{"metadata":{},"status":"Success"}"#),
            ExitStatus::Success
        );
        assert_eq!(
            parse_status(
                br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            ),
            ExitStatus::Code(3)
        );
        assert_eq!(
            parse_status(br#"{"status":"Failure","message":"container not found"}"#),
            ExitStatus::Error("container not found".into())
        );
        assert_eq!(
            parse_status(b"plain text error"),
            ExitStatus::Error("plain text error".into())
        );
    }
}
