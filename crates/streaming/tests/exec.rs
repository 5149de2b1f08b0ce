//! exec/attach end to end: the tests play kubectl (SPDY streams or
//! WebSocket channels) against `remotecommand::accept` over in-memory
//! pipes, and once through a real hyper HTTP/1.1 upgrade.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use skiff_streaming::remotecommand::{self, ExecOptions, ExitStatus, RemoteCommand, TerminalSize};
use skiff_streaming::spdy::{Headers, Session, SpdyStream};
use skiff_streaming::upgrade::{self, Operation, RemoteCommandVersion, Upgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const EXIT_3: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    h
}

fn spdy_upgrade(protocols: &[&str]) -> Upgrade {
    let mut pairs = vec![("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
    for p in protocols {
        pairs.push(("x-stream-protocol-version", p));
    }
    upgrade::negotiate(Operation::RemoteCommand, &headers(&pairs)).expect("negotiate")
}

fn ws_upgrade(protocols: &str) -> Upgrade {
    upgrade::negotiate(
        Operation::RemoteCommand,
        &headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", protocols),
        ]),
    )
    .expect("negotiate")
}

/// The streams kubectl's SPDY executor opens (error first, as client-go).
struct SpdyClient {
    session: Session,
    error: SpdyStream,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
}

async fn open(session: &Session, ty: &str) -> SpdyStream {
    session
        .open_stream(Headers::new().with("streamType", ty), false)
        .await
        .expect("open stream")
}

async fn spdy_client(io: tokio::io::DuplexStream, opts: &ExecOptions, resize: bool) -> SpdyClient {
    let session = Session::client(io);
    let mut error = open(&session, "error").await;
    // client-go closes its side of the error stream at once.
    error.shutdown().await.expect("fin");
    let stdin = if opts.stdin {
        Some(open(&session, "stdin").await)
    } else {
        None
    };
    let stdout = if opts.stdout {
        Some(open(&session, "stdout").await)
    } else {
        None
    };
    let stderr = if opts.stderr && !opts.tty {
        Some(open(&session, "stderr").await)
    } else {
        None
    };
    let resize = if resize {
        Some(open(&session, "resize").await)
    } else {
        None
    };
    SpdyClient {
        session,
        error,
        stdin,
        stdout,
        stderr,
        resize,
    }
}

async fn read_all(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut v = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut v))
        .await
        .expect("read in time")
        .expect("read");
    String::from_utf8(v).expect("utf8")
}

/// A pretend process: stdin to stdout (upper-cased), a line on stderr,
/// then the exit status.
async fn run_process(mut cmd: RemoteCommand, exit: ExitStatus) {
    let mut input = String::new();
    if let Some(mut stdin) = cmd.stdin.take() {
        stdin.read_to_string(&mut input).await.expect("stdin");
    }
    if let Some(mut out) = cmd.stdout.take() {
        out.write_all(input.to_uppercase().as_bytes())
            .await
            .expect("stdout");
        out.shutdown().await.expect("close stdout");
    }
    if let Some(mut err) = cmd.stderr.take() {
        err.write_all(b"oops\n").await.expect("stderr");
        err.shutdown().await.expect("close stderr");
    }
    cmd.completion.finish(exit).await.expect("finish");
}

fn opts(query: &str) -> ExecOptions {
    ExecOptions::from_query(query)
}

#[test]
fn exec_options_from_query() {
    let o = opts(
        "command=sh&command=-c&command=echo%20hi+there&container=c1&stdin=true&stdout=1&stderr=true&tty=false",
    );
    assert_eq!(o.command, ["sh", "-c", "echo hi there"]);
    assert_eq!(o.container.as_deref(), Some("c1"));
    assert!(o.stdin && o.stdout && o.stderr && !o.tty);
    // A terminal merges stderr into stdout.
    let o = opts("stdin=1&stdout=1&stderr=1&tty=1");
    assert!(o.tty && !o.stderr);
}

#[test]
fn status_payloads_match_upstream() {
    let cmd = ["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
    let json = |e| String::from_utf8(remotecommand::status_json(&e, &cmd)).expect("utf8");
    assert_eq!(json(ExitStatus::Success), SUCCESS);
    assert_eq!(json(ExitStatus::Code(0)), SUCCESS);
    assert_eq!(json(ExitStatus::Code(3)), EXIT_3);
    assert_eq!(
        json(ExitStatus::Error("no such container".into())),
        r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: no such container","reason":"InternalError","details":{"causes":[{"message":"no such container"}]},"code":500}"#
    );
    // Before v4 the error stream carries text, and nothing on success.
    assert_eq!(
        remotecommand::error_stream_payload(RemoteCommandVersion::V3, &ExitStatus::Success, &cmd),
        None
    );
    assert_eq!(
        remotecommand::error_stream_payload(RemoteCommandVersion::V2, &ExitStatus::Code(3), &cmd),
        Some(
            b"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3".to_vec()
        )
    );
}

#[test]
fn resize_parser_handles_split_and_concatenated_messages() {
    let mut p = remotecommand::ResizeParser::default();
    assert_eq!(p.push(br#"{"Width":80,"#).expect("push"), vec![]);
    assert_eq!(
        p.push(br#""Height":24}{"Width":100,"Height":30}  {"Wid"#)
            .expect("push"),
        vec![
            TerminalSize {
                width: 80,
                height: 24
            },
            TerminalSize {
                width: 100,
                height: 30
            }
        ]
    );
    assert_eq!(
        p.push(br#"th":1,"Height":2}"#).expect("push"),
        vec![TerminalSize {
            width: 1,
            height: 2
        }]
    );
    assert!(p.push(b"]").is_err());
}

#[tokio::test]
async fn spdy_v4_exec_with_stdin_stdout_stderr_and_exit_code() {
    // kubectl 1.28+ offers v5 first; the SPDY server answers v4 as upstream.
    let up = spdy_upgrade(&[
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
    ]);
    assert_eq!(up.protocol, "v4.channel.k8s.io");
    assert_eq!(
        up.response_headers()["x-stream-protocol-version"],
        "v4.channel.k8s.io"
    );
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("command=sh&command=-c&command=exit%203&stdin=true&stdout=true&stderr=true");
    let server = tokio::spawn({
        let o = o.clone();
        async move {
            let cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
            assert_eq!(cmd.version, RemoteCommandVersion::V4);
            assert!(cmd.resize.is_none());
            run_process(cmd, ExitStatus::Code(3)).await;
        }
    });
    let mut c = spdy_client(b, &o, false).await;
    let mut stdin = c.stdin.take().expect("stdin");
    stdin.write_all(b"hello ").await.expect("write");
    stdin.write_all(b"world").await.expect("write");
    stdin.shutdown().await.expect("fin");
    assert_eq!(
        read_all(c.stdout.as_mut().expect("stdout")).await,
        "HELLO WORLD"
    );
    assert_eq!(read_all(c.stderr.as_mut().expect("stderr")).await, "oops\n");
    assert_eq!(read_all(&mut c.error).await, EXIT_3);
    server.await.expect("server");
    tokio::time::timeout(Duration::from_secs(5), c.session.closed())
        .await
        .expect("server closes the connection");
}

#[tokio::test]
async fn spdy_large_output_in_windows() {
    let up = spdy_upgrade(&["v4.channel.k8s.io"]);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("stdout=1");
    let server = tokio::spawn(async move {
        let mut cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
        let mut out = cmd.stdout.take().expect("stdout");
        out.write_all(&vec![b'x'; 600_000]).await.expect("write");
        drop(out);
        cmd.completion
            .finish(ExitStatus::Success)
            .await
            .expect("finish");
    });
    let mut c = spdy_client(b, &opts("stdout=1"), false).await;
    assert_eq!(
        read_all(c.stdout.as_mut().expect("stdout")).await.len(),
        600_000
    );
    assert_eq!(read_all(&mut c.error).await, SUCCESS);
    server.await.expect("server");
}

#[tokio::test]
async fn spdy_v2_error_stream_is_text_and_empty_on_success() {
    for (exit, expect) in [
        (ExitStatus::Success, String::new()),
        (
            ExitStatus::Code(7),
            "command terminated with non-zero exit code: error executing command [false], exit code 7".to_owned(),
        ),
    ] {
        let up = spdy_upgrade(&["v2.channel.k8s.io"]);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let o = opts("command=false&stdout=1");
        let server = tokio::spawn({
            let o = o.clone();
            async move {
                let cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
                assert_eq!(cmd.version, RemoteCommandVersion::V2);
                run_process(cmd, exit).await;
            }
        });
        let mut c = spdy_client(b, &o, false).await;
        assert_eq!(read_all(&mut c.error).await, expect);
        server.await.expect("server");
    }
}

#[tokio::test]
async fn spdy_tty_resize_events() {
    let up = spdy_upgrade(&["v4.channel.k8s.io"]);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("stdin=1&stdout=1&stderr=1&tty=1");
    let server = tokio::spawn({
        let o = o.clone();
        async move {
            let mut cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
            assert!(cmd.tty && cmd.stderr.is_none());
            let mut resize = cmd.resize.take().expect("resize");
            let mut sizes = Vec::new();
            while let Some(s) = resize.next().await {
                sizes.push(s);
                if sizes.len() == 2 {
                    break;
                }
            }
            run_process(cmd, ExitStatus::Success).await;
            sizes
        }
    });
    let mut c = spdy_client(b, &o, true).await;
    let resize = c.resize.as_mut().expect("resize");
    resize
        .write_all(br#"{"Width":80,"Height":24}{"Width":"#)
        .await
        .expect("write");
    resize
        .write_all(br#"120,"Height":40}"#)
        .await
        .expect("write");
    let mut stdin = c.stdin.take().expect("stdin");
    stdin.write_all(b"ls\r").await.expect("stdin");
    stdin.shutdown().await.expect("fin");
    assert_eq!(read_all(c.stdout.as_mut().expect("stdout")).await, "LS\r");
    assert_eq!(read_all(&mut c.error).await, SUCCESS);
    assert_eq!(
        server.await.expect("server"),
        vec![
            TerminalSize {
                width: 80,
                height: 24
            },
            TerminalSize {
                width: 120,
                height: 40
            }
        ]
    );
}

#[tokio::test]
async fn spdy_missing_streams_time_out() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("stdin=1&stdout=1");
    let server = tokio::spawn(async move {
        remotecommand::accept_spdy(a, RemoteCommandVersion::V4, &o, Duration::from_millis(200))
            .await
            .err()
    });
    // Only the error stream: stdin and stdout never come.
    let session = Session::client(b);
    let _error = open(&session, "error").await;
    assert!(matches!(
        server.await.expect("join"),
        Some(skiff_streaming::StreamError::Timeout)
    ));
}

async fn ws_client(io: tokio::io::DuplexStream) -> WebSocketStream<tokio::io::DuplexStream> {
    WebSocketStream::from_raw_socket(io, Role::Client, None).await
}

/// Collects (channel, payload) of binary messages until the server closes.
async fn ws_collect(
    ws: &mut WebSocketStream<tokio::io::DuplexStream>,
) -> (Vec<(u8, Vec<u8>)>, bool) {
    let mut got = Vec::new();
    let mut closed = false;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("message in time")
    {
        match m.expect("message") {
            Message::Binary(b) => got.push((b[0], b[1..].to_vec())),
            Message::Text(t) => {
                use base64::Engine as _;
                let t = t.as_str().as_bytes();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&t[1..])
                    .expect("base64");
                got.push((t[0] - b'0', data));
            }
            Message::Close(f) => {
                closed = f.is_some_and(|f| u16::from(f.code) == 1000);
                break;
            }
            _ => {}
        }
    }
    (got, closed)
}

fn channel(got: &[(u8, Vec<u8>)], ch: u8) -> String {
    got.iter()
        .filter(|(c, _)| *c == ch)
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect()
}

#[tokio::test]
async fn websocket_v5_exec_with_stdin_close() {
    let up = ws_upgrade("v5.channel.k8s.io, v4.channel.k8s.io");
    assert_eq!(up.protocol, "v5.channel.k8s.io");
    let h = up.response_headers();
    assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
    assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("command=sh&command=-c&command=exit%203&stdin=true&stdout=true&stderr=true");
    let server = tokio::spawn({
        let o = o.clone();
        async move {
            let cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
            assert_eq!(cmd.version, RemoteCommandVersion::V5);
            run_process(cmd, ExitStatus::Code(3)).await;
        }
    });
    let mut ws = ws_client(b).await;
    ws.send(Message::binary(Bytes::from_static(b"\x00hello ")))
        .await
        .expect("send");
    ws.send(Message::binary(Bytes::from_static(b"\x00v5")))
        .await
        .expect("send");
    // v5 CLOSE of stdin: the process sees EOF while the connection stays.
    ws.send(Message::binary(Bytes::from_static(&[255, 0])))
        .await
        .expect("send");
    let (got, closed) = ws_collect(&mut ws).await;
    assert_eq!(got[0], (1, vec![]), "announces itself on stdout");
    assert_eq!(channel(&got, 1), "HELLO V5");
    assert_eq!(channel(&got, 2), "oops\n");
    assert_eq!(channel(&got, 3), EXIT_3);
    assert!(closed, "normal closure after the status");
    server.await.expect("server");
}

#[tokio::test]
async fn websocket_v4_exec_without_stdin_and_resize() {
    let up = ws_upgrade("v4.channel.k8s.io");
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("stdout=1&tty=1");
    let server = tokio::spawn({
        let o = o.clone();
        async move {
            let mut cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
            assert_eq!(cmd.version, RemoteCommandVersion::V4);
            let size = cmd.resize.as_mut().expect("resize").next().await;
            let mut out = cmd.stdout.take().expect("stdout");
            out.write_all(format!("{size:?}").as_bytes())
                .await
                .expect("write");
            drop(out);
            cmd.completion
                .finish(ExitStatus::Success)
                .await
                .expect("finish");
        }
    });
    let mut ws = ws_client(b).await;
    ws.send(Message::binary(
        Bytes::from_static(br#"{"Width":132,"Height":43}"#).to_vec(),
    ))
    .await
    .expect("send");
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":132,"Height":43}"#);
    ws.send(Message::binary(resize)).await.expect("send");
    let (got, closed) = ws_collect(&mut ws).await;
    assert_eq!(
        channel(&got, 1),
        "Some(TerminalSize { width: 132, height: 43 })"
    );
    assert_eq!(channel(&got, 3), SUCCESS);
    assert!(closed);
    server.await.expect("server");
}

#[tokio::test]
async fn websocket_v4_ignores_close_messages_and_base64_works() {
    use base64::Engine as _;
    let up = ws_upgrade("v4.base64.channel.k8s.io");
    assert!(up.base64());
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("stdin=1&stdout=1");
    let server = tokio::spawn({
        let o = o.clone();
        async move {
            let mut cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
            let mut stdin = cmd.stdin.take().expect("stdin");
            let mut buf = [0u8; 5];
            stdin.read_exact(&mut buf).await.expect("read");
            let mut out = cmd.stdout.take().expect("stdout");
            out.write_all(&buf).await.expect("write");
            drop(out);
            cmd.completion
                .finish(ExitStatus::Code(1))
                .await
                .expect("finish");
        }
    });
    let mut ws = ws_client(b).await;
    let b64 = |ch: char, d: &[u8]| {
        Message::text(format!(
            "{ch}{}",
            base64::engine::general_purpose::STANDARD.encode(d)
        ))
    };
    ws.send(b64('0', b"ab")).await.expect("send");
    ws.send(b64('0', b"cde")).await.expect("send");
    let (got, closed) = ws_collect(&mut ws).await;
    assert_eq!(got[0], (1, vec![]));
    assert_eq!(channel(&got, 1), "abcde");
    assert!(channel(&got, 3).contains(r#""causes":[{"reason":"ExitCode","message":"1"}]"#));
    assert!(closed);
    server.await.expect("server");
}

#[test]
fn negotiation() {
    // No common protocol: 403 with upstream's message.
    let err = upgrade::negotiate(
        Operation::RemoteCommand,
        &headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v9.channel.k8s.io"),
        ]),
    )
    .expect_err("no protocol");
    assert_eq!(err.status, http::StatusCode::FORBIDDEN);
    assert!(err.message.contains("unable to negotiate protocol"));
    // Not an upgrade at all.
    let err = upgrade::negotiate(Operation::RemoteCommand, &HeaderMap::new()).expect_err("plain");
    assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    // No subprotocol named: legacy v1.
    let up = spdy_upgrade(&[]);
    assert_eq!(up.remote_command_version(), RemoteCommandVersion::V1);
    assert!(
        !up.response_headers()
            .contains_key("x-stream-protocol-version")
    );
    // Older clients.
    assert_eq!(
        spdy_upgrade(&["v3.channel.k8s.io", "v2.channel.k8s.io"]).protocol,
        "v3.channel.k8s.io"
    );
    // WebSocket: the client's order decides.
    assert_eq!(
        ws_upgrade("v4.channel.k8s.io,v5.channel.k8s.io").protocol,
        "v4.channel.k8s.io"
    );
    assert_eq!(
        ws_upgrade("channel.k8s.io").remote_command_version(),
        RemoteCommandVersion::V1
    );
    let r: http::Response<()> = ws_upgrade("v5.channel.k8s.io").response();
    assert_eq!(r.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(r.headers()["upgrade"], "websocket");
    assert_eq!(r.headers()["connection"], "Upgrade");
}

/// The whole way: an HTTP/1.1 POST with `Upgrade: SPDY/3.1` to a hyper
/// server that negotiates, answers 101 and hands the upgraded connection
/// to `remotecommand::accept`.
#[tokio::test]
async fn http_upgrade_through_hyper() {
    use http_body_util::Empty;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let svc = service_fn(|mut req: http::Request<hyper::body::Incoming>| async move {
            let up = match upgrade::negotiate(Operation::RemoteCommand, req.headers()) {
                Ok(up) => up,
                Err(e) => {
                    let mut r = http::Response::new(Empty::<Bytes>::new());
                    *r.status_mut() = e.status;
                    return Ok::<_, std::convert::Infallible>(r);
                }
            };
            let opts = ExecOptions::from_query(req.uri().query().unwrap_or(""));
            let on_upgrade = hyper::upgrade::on(&mut req);
            let response = up.response();
            tokio::spawn(async move {
                let io = upgrade::upgraded(on_upgrade).await.expect("upgraded");
                let cmd = remotecommand::accept(&up, io, &opts).await.expect("accept");
                run_process(cmd, ExitStatus::Code(42)).await;
            });
            Ok(response)
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), svc)
            .with_upgrades()
            .await
            .expect("serve");
    });
    client_io
        .write_all(
            b"POST /api/v1/namespaces/default/pods/p/exec?command=false&stdin=true&stdout=true&stderr=true HTTP/1.1\r\n\
              Host: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
              X-Stream-Protocol-Version: v5.channel.k8s.io\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .await
        .expect("request");
    // Read the response head byte by byte (SPDY frames follow it).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        client_io.read_exact(&mut b).await.expect("response");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).expect("utf8").to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    let o = opts("stdin=true&stdout=true&stderr=true");
    let mut c = spdy_client(client_io, &o, false).await;
    let mut stdin = c.stdin.take().expect("stdin");
    stdin.write_all(b"through hyper").await.expect("write");
    stdin.shutdown().await.expect("fin");
    assert_eq!(
        read_all(c.stdout.as_mut().expect("stdout")).await,
        "THROUGH HYPER"
    );
    assert_eq!(read_all(c.stderr.as_mut().expect("stderr")).await, "oops\n");
    let status: serde_json::Value =
        serde_json::from_str(&read_all(&mut c.error).await).expect("json");
    assert_eq!(status["details"]["causes"][0]["message"], "42");
}

/// The kubelet's path: kubectl's WebSocket v5 session relayed to a runtime
/// that speaks only SPDY v4 (containerd), exit code and all.
#[tokio::test]
async fn relay_websocket_v5_to_spdy_runtime() {
    use skiff_streaming::relay;
    use skiff_streaming::runtime::{RuntimeCommand, Streams};

    let url = common::runtime_server(Operation::RemoteCommand, |up, io, query| async move {
        assert_eq!(up.protocol, "v4.channel.k8s.io");
        // The runtime knows the streams from its own request (the CRI
        // ExecRequest), not from the URL.
        assert_eq!(query, "");
        let o = opts("stdin=true&stdout=true&stderr=true");
        let cmd = remotecommand::accept(&up, io, &o).await.expect("accept");
        run_process(cmd, ExitStatus::Code(3)).await;
    })
    .await;
    let up = ws_upgrade("v5.channel.k8s.io, v4.channel.k8s.io");
    let (a, b) = tokio::io::duplex(64 * 1024);
    let o = opts("command=sh&command=-c&command=exit%203&stdin=true&stdout=true&stderr=true");
    let kubelet = tokio::spawn(async move {
        let cmd = remotecommand::accept(&up, a, &o).await.expect("accept");
        let streams = Streams {
            stdin: o.stdin,
            stdout: o.stdout,
            stderr: o.stderr,
            tty: o.tty,
        };
        let runtime = RuntimeCommand::connect(&url, streams)
            .await
            .expect("runtime");
        relay::remote_command(cmd, runtime).await;
    });
    let mut ws = ws_client(b).await;
    ws.send(Message::binary(Bytes::from_static(b"\x00relayed")))
        .await
        .expect("send");
    ws.send(Message::binary(Bytes::from_static(&[255, 0])))
        .await
        .expect("send");
    let (got, closed) = ws_collect(&mut ws).await;
    assert_eq!(channel(&got, 1), "RELAYED");
    assert_eq!(channel(&got, 2), "oops\n");
    assert_eq!(channel(&got, 3), EXIT_3);
    assert!(closed);
    kubelet.await.expect("kubelet");
}

/// A runtime that refuses the upgrade: a clear error, not a hang.
#[tokio::test]
async fn runtime_refusal_is_an_error() {
    use skiff_streaming::runtime::{RuntimeCommand, RuntimeError, Streams};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\n\r\nunknown session")
            .await;
    });
    let err = RuntimeCommand::connect(&format!("http://{addr}/exec/x"), Streams::default())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, RuntimeError::Refused { status, body } if status.as_u16() == 404 && body == "unknown session"),
        "{err}"
    );
    assert!(matches!(
        RuntimeCommand::connect("https://127.0.0.1:1/x", Streams::default()).await,
        Err(RuntimeError::Url(_))
    ));
}
