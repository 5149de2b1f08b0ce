//! exec and attach: the container's stdin, stdout, stderr and terminal
//! resizes over SPDY streams or WebSocket channels, and the exit status on
//! the error stream.
//!
//! ```ignore
//! let up = upgrade::negotiate(Operation::RemoteCommand, req.headers())?;
//! let on_upgrade = hyper::upgrade::on(&mut req);
//! // answer with up.response(), then:
//! let io = upgrade::upgraded(on_upgrade).await?;
//! let mut cmd = remotecommand::accept(&up, io, &ExecOptions::from_query(query)).await?;
//! // copy cmd.stdin into the process, its output into cmd.stdout/stderr,
//! // apply cmd.resize events; then:
//! cmd.completion.finish(ExitStatus::Code(3)).await;
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::StreamError;
use crate::spdy::frame::rst;
use crate::spdy::{Session, SpdyStream};
use crate::upgrade::{RemoteCommandVersion, Transport, Upgrade};
use crate::websocket::{self, ChannelMessage, ChannelReader, ChannelWriter, Outgoing};

/// How long the client has to open its SPDY streams (upstream's
/// DefaultStreamCreationTimeout).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The `streamType` header of SPDY streams.
pub const STREAM_TYPE_HEADER: &str = "streamtype";

/// The exec/attach query: `stdin`, `stdout`, `stderr`, `tty` (`1` or
/// `true`), `command` (repeated), `container`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub command: Vec<String>,
    pub container: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `name=value` pairs of a query string, decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn truthy(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

impl ExecOptions {
    /// Parses the query of an exec/attach request.
    pub fn from_query(query: &str) -> ExecOptions {
        let mut o = ExecOptions::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "stdin" | "input" => o.stdin = truthy(&v),
                "stdout" | "output" => o.stdout = truthy(&v),
                "stderr" => o.stderr = truthy(&v),
                "tty" => o.tty = truthy(&v),
                "command" => o.command.push(v),
                "container" => o.container = Some(v),
                _ => {}
            }
        }
        // With a terminal, stderr is merged into stdout (upstream drops it).
        if o.tty {
            o.stderr = false;
        }
        o
    }
}

/// A terminal size as kubectl sends it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// Exited with this code (0 is Success).
    Code(i32),
    /// Could not run (kubectl prints the message, exits 1).
    Error(String),
}

#[derive(Serialize)]
struct StatusCause<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    message: String,
}

#[derive(Serialize)]
struct StatusDetails<'a> {
    causes: Vec<StatusCause<'a>>,
}

#[derive(Serialize)]
struct Metadata {}

/// `metav1.Status` as upstream's kubelet writes it on the error stream
/// (no kind/apiVersion).
#[derive(Serialize)]
struct Status<'a> {
    metadata: Metadata,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

fn status_of<'a>(exit: &'a ExitStatus, command: &[String]) -> Status<'a> {
    match exit {
        ExitStatus::Success | ExitStatus::Code(0) => Status {
            metadata: Metadata {},
            status: "Success",
            message: None,
            reason: None,
            details: None,
            code: None,
        },
        ExitStatus::Code(code) => Status {
            metadata: Metadata {},
            status: "Failure",
            message: Some(format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            )),
            reason: Some("NonZeroExitCode"),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: Some("ExitCode"),
                    message: code.to_string(),
                }],
            }),
            code: None,
        },
        ExitStatus::Error(e) => Status {
            metadata: Metadata {},
            status: "Failure",
            message: Some(format!("Internal error occurred: {e}")),
            reason: Some("InternalError"),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: None,
                    message: e.clone(),
                }],
            }),
            code: Some(500),
        },
    }
}

/// The v4+ error-stream payload: `metav1.Status` JSON. `command` only
/// shapes the message (kubectl reads the code from `details.causes`).
pub fn status_json(exit: &ExitStatus, command: &[String]) -> Vec<u8> {
    serde_json::to_vec(&status_of(exit, command)).unwrap_or_default()
}

/// What the error stream carries for `version`: v4+ always a Status;
/// older protocols nothing on success, else the message as text.
pub fn error_stream_payload(
    version: RemoteCommandVersion,
    exit: &ExitStatus,
    command: &[String],
) -> Option<Vec<u8>> {
    if version >= RemoteCommandVersion::V4 {
        return Some(status_json(exit, command));
    }
    status_of(exit, command).message.map(String::into_bytes)
}

/// The client's stdin: EOF when the client closes it (SPDY FIN, v5 CLOSE,
/// or the end of the connection).
pub struct Stdin(Box<dyn AsyncRead + Send + Unpin>);

impl AsyncRead for Stdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// stdout or stderr towards the client.
pub struct Output(Box<dyn AsyncWrite + Send + Unpin>);

impl AsyncWrite for Output {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Terminal size changes from the client (tty sessions).
pub struct ResizeEvents(mpsc::Receiver<TerminalSize>);

impl ResizeEvents {
    pub async fn next(&mut self) -> Option<TerminalSize> {
        self.0.recv().await
    }
}

impl futures::Stream for ResizeEvents {
    type Item = TerminalSize;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TerminalSize>> {
        self.0.poll_recv(cx)
    }
}

/// Parses a byte stream of concatenated JSON terminal sizes.
#[derive(Default)]
pub struct ResizeParser {
    buf: Vec<u8>,
}

impl ResizeParser {
    /// Feeds bytes, returns the sizes completed by them.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<TerminalSize>, serde_json::Error> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut it =
                serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
            loop {
                match it.next() {
                    Some(Ok(size)) => {
                        out.push(size);
                        consumed = it.byte_offset();
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(e),
                    None => {
                        consumed = it.byte_offset();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }
}

enum CompletionInner {
    Spdy {
        error: Option<SpdyStream>,
        session: Session,
    },
    WebSocket {
        tx: mpsc::Sender<Outgoing>,
        writer: JoinHandle<()>,
        base64: bool,
    },
}

/// Ends the session with the command's exit status.
pub struct Completion {
    inner: CompletionInner,
    version: RemoteCommandVersion,
    command: Vec<String>,
}

impl Completion {
    /// Writes the exit status on the error stream (a `metav1.Status` for
    /// v4+, which kubectl turns into its exit code), then closes the
    /// connection after everything written before.
    pub async fn finish(self, exit: ExitStatus) -> io::Result<()> {
        let payload = error_stream_payload(self.version, &exit, &self.command);
        match self.inner {
            CompletionInner::Spdy { error, session } => {
                let mut result = Ok(());
                if let Some(mut e) = error {
                    if let Some(p) = payload {
                        result = e.write_all(&p).await;
                    }
                    let _ = e.shutdown().await;
                }
                session.close();
                let _ = tokio::time::timeout(Duration::from_secs(10), session.closed()).await;
                result
            }
            CompletionInner::WebSocket { tx, writer, base64 } => {
                let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed");
                let mut result = Ok(());
                if let Some(p) = payload {
                    result = tx
                        .send(Outgoing::Message(websocket::encode(
                            websocket::ERROR,
                            &p,
                            base64,
                        )))
                        .await
                        .map_err(|_| closed());
                }
                let _ = tx.send(Outgoing::Close).await;
                drop(tx);
                let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
                result
            }
        }
    }
}

/// An accepted exec/attach session. Take the parts out; keep
/// `completion` to report the exit status.
pub struct RemoteCommand {
    pub version: RemoteCommandVersion,
    pub tty: bool,
    pub stdin: Option<Stdin>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    /// Present for tty sessions (v3+ over SPDY, always over WebSocket).
    pub resize: Option<ResizeEvents>,
    pub completion: Completion,
}

/// Accepts the streams of an exec/attach over an upgraded connection
/// (after the 101 response of `upgrade`).
pub async fn accept<S>(
    upgrade: &Upgrade,
    io: S,
    opts: &ExecOptions,
) -> Result<RemoteCommand, StreamError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match upgrade.transport {
        Transport::Spdy => {
            accept_spdy(
                io,
                upgrade.remote_command_version(),
                opts,
                STREAM_CREATION_TIMEOUT,
            )
            .await
        }
        Transport::WebSocket => {
            Ok(
                accept_websocket(io, upgrade.remote_command_version(), upgrade.base64(), opts)
                    .await,
            )
        }
        Transport::WebSocketSpdyTunnel => Err(StreamError::Protocol(
            "SPDY tunnelling over WebSocket is for port-forward".into(),
        )),
    }
}

/// The SPDY side: waits for the client's streams (error, then stdin,
/// stdout, stderr, resize as the options ask).
pub async fn accept_spdy<S>(
    io: S,
    version: RemoteCommandVersion,
    opts: &ExecOptions,
    timeout: Duration,
) -> Result<RemoteCommand, StreamError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = Session::server(io);
    let want_resize = opts.tty && version >= RemoteCommandVersion::V3;
    let want_stderr = opts.stderr && !opts.tty;
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let complete = |e: &Option<SpdyStream>,
                    i: &Option<SpdyStream>,
                    o: &Option<SpdyStream>,
                    r: &Option<SpdyStream>,
                    z: &Option<SpdyStream>| {
        e.is_some()
            && (i.is_some() || !opts.stdin)
            && (o.is_some() || !opts.stdout)
            && (r.is_some() || !want_stderr)
            && (z.is_some() || !want_resize)
    };
    let deadline = tokio::time::Instant::now() + timeout;
    while !complete(&error, &stdin, &stdout, &stderr, &resize) {
        let stream = match tokio::time::timeout_at(deadline, session.accept()).await {
            Err(_) => return Err(StreamError::Timeout),
            Ok(None) => return Err(StreamError::Closed),
            Ok(Some(s)) => s,
        };
        let slot = match stream.header(STREAM_TYPE_HEADER).unwrap_or("") {
            "error" => &mut error,
            "stdin" => &mut stdin,
            "stdout" => &mut stdout,
            "stderr" => &mut stderr,
            "resize" => &mut resize,
            other => {
                tracing::debug!(stream_type = other, "unexpected exec stream");
                stream.reset(rst::REFUSED_STREAM);
                continue;
            }
        };
        if slot.is_some() {
            stream.reset(rst::PROTOCOL_ERROR);
            continue;
        }
        *slot = Some(stream);
    }
    let resize = resize.map(|mut s| {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut parser = ResizeParser::default();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                match parser.push(&buf[..n]) {
                    Ok(sizes) => {
                        for size in sizes {
                            if tx.send(size).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "bad resize message");
                        break;
                    }
                }
            }
        });
        ResizeEvents(rx)
    });
    Ok(RemoteCommand {
        version,
        tty: opts.tty,
        stdin: stdin.map(|s| Stdin(Box::new(s))),
        stdout: stdout.map(|s| Output(Box::new(s))),
        stderr: stderr.map(|s| Output(Box::new(s))),
        resize,
        completion: Completion {
            inner: CompletionInner::Spdy { error, session },
            version,
            command: opts.command.clone(),
        },
    })
}

/// The WebSocket side: channel framing over the upgraded connection.
pub async fn accept_websocket<S>(
    io: S,
    version: RemoteCommandVersion,
    base64: bool,
    opts: &ExecOptions,
) -> RemoteCommand
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = websocket::server(io).await;
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(32);
    let writer = tokio::spawn(async move {
        // Until Completion::finish asks to close (or every writer is gone).
        while let Some(Outgoing::Message(m)) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let v5 = version >= RemoteCommandVersion::V5;
    let (stdin_tx, stdin_rx) = if opts.stdin {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (resize_tx, resize_rx) = if opts.tty {
        let (tx, rx) = mpsc::channel(16);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    tokio::spawn(async move {
        let mut stdin_tx = stdin_tx;
        let mut parser = ResizeParser::default();
        while let Some(msg) = incoming.next().await {
            let msg = match msg {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(m) => m,
            };
            match websocket::decode(&msg, base64, v5) {
                Ok(Some(ChannelMessage::Data { channel, data })) => match channel {
                    websocket::STDIN => {
                        if let Some(tx) = &stdin_tx
                            && tx.send(data).await.is_err()
                        {
                            stdin_tx = None;
                        }
                    }
                    websocket::RESIZE => {
                        let Some(tx) = &resize_tx else { continue };
                        match parser.push(&data) {
                            Ok(sizes) => {
                                for s in sizes {
                                    let _ = tx.send(s).await;
                                }
                            }
                            Err(e) => tracing::debug!(error = %e, "bad resize message"),
                        }
                    }
                    _ => {}
                },
                Ok(Some(ChannelMessage::Close { channel })) => {
                    if channel == websocket::STDIN {
                        stdin_tx = None;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "bad websocket message");
                    break;
                }
            }
        }
    });
    let want_stderr = opts.stderr && !opts.tty;
    // Upstream announces the connection with an empty message on the
    // lowest writable channel.
    let first = if opts.stdout {
        websocket::STDOUT
    } else if want_stderr {
        websocket::STDERR
    } else {
        websocket::ERROR
    };
    let _ = out_tx
        .send(Outgoing::Message(websocket::encode(first, &[], base64)))
        .await;
    RemoteCommand {
        version,
        tty: opts.tty,
        stdin: stdin_rx.map(|rx| Stdin(Box::new(ChannelReader::new(rx)))),
        stdout: opts.stdout.then(|| {
            Output(Box::new(ChannelWriter::new(
                websocket::STDOUT,
                base64,
                out_tx.clone(),
            )))
        }),
        stderr: want_stderr.then(|| {
            Output(Box::new(ChannelWriter::new(
                websocket::STDERR,
                base64,
                out_tx.clone(),
            )))
        }),
        resize: resize_rx.map(ResizeEvents),
        completion: Completion {
            inner: CompletionInner::WebSocket {
                tx: out_tx,
                writer,
                base64,
            },
            version,
            command: opts.command.clone(),
        },
    }
}
