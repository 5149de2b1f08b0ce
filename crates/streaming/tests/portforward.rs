//! port-forward end to end: SPDY (kubectl 1.27–1.30), SPDY tunnelled in
//! WebSocket binary messages (kubectl 1.31+) and WebSocket channels
//! (`v4.channel.k8s.io`, kube-rs).

mod common;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use skiff_streaming::portforward::{self, PortForward};
use skiff_streaming::spdy::{Headers, Session, SpdyStream};
use skiff_streaming::upgrade::{self, Operation, Transport, Upgrade};
use skiff_streaming::websocket::WsTunnel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

fn negotiate(pairs: &[(&str, &str)]) -> Upgrade {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    upgrade::negotiate(Operation::PortForward, &h).expect("negotiate")
}

fn spdy_upgrade() -> Upgrade {
    negotiate(&[
        ("connection", "Upgrade"),
        ("upgrade", "SPDY/3.1"),
        ("x-stream-protocol-version", "portforward.k8s.io"),
    ])
}

fn ws_upgrade(protocol: &str) -> Upgrade {
    negotiate(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", protocol),
    ])
}

/// Serves every forwarded connection as an echo server that prefixes the
/// port; port 9999 answers on the error stream instead.
async fn echo_server(mut pf: PortForward) -> usize {
    let mut n = 0;
    let mut tasks = Vec::new();
    while let Some(conn) = pf.accept().await {
        n += 1;
        tasks.push(tokio::spawn(async move {
            if conn.port == 9999 {
                conn.error
                    .send("error forwarding port 9999 to pod p: connection refused")
                    .await
                    .expect("error");
                return;
            }
            let mut data = conn.data;
            let mut buf = Vec::new();
            data.read_to_end(&mut buf).await.expect("read");
            let mut reply = format!("{}:", conn.port).into_bytes();
            reply.extend_from_slice(&buf);
            data.write_all(&reply).await.expect("write");
            data.shutdown().await.expect("fin");
            conn.error.close().await.expect("close error");
        }));
    }
    for t in tasks {
        t.await.expect("conn task");
    }
    n
}

/// What kubectl does per forwarded connection: an error stream, then a
/// data stream, both with port and request id.
async fn forward(
    session: &Session,
    port: u16,
    request_id: Option<&str>,
) -> (SpdyStream, SpdyStream) {
    let h = |ty: &str| {
        let mut h = Headers::new()
            .with("streamType", ty)
            .with("port", &port.to_string());
        if let Some(id) = request_id {
            h = h.with("requestID", id);
        }
        h
    };
    let mut error = session
        .open_stream(h("error"), false)
        .await
        .expect("error stream");
    error.shutdown().await.expect("fin");
    let data = session
        .open_stream(h("data"), false)
        .await
        .expect("data stream");
    (error, data)
}

async fn read_all(s: &mut SpdyStream) -> String {
    let mut v = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut v))
        .await
        .expect("in time")
        .expect("read");
    String::from_utf8(v).expect("utf8")
}

async fn exercise(client: Session) {
    // Two connections at once, streams opened interleaved.
    let h = |ty: &str, port: &str, id: &str| {
        Headers::new()
            .with("streamtype", ty)
            .with("port", port)
            .with("requestid", id)
    };
    let e1 = client
        .open_stream(h("error", "8080", "0"), false)
        .await
        .expect("open");
    let e2 = client
        .open_stream(h("error", "5432", "1"), false)
        .await
        .expect("open");
    let mut d2 = client
        .open_stream(h("data", "5432", "1"), false)
        .await
        .expect("open");
    let mut d1 = client
        .open_stream(h("data", "8080", "0"), false)
        .await
        .expect("open");
    d1.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    d1.shutdown().await.expect("fin");
    d2.write_all(&vec![b'q'; 200_000]).await.expect("write");
    d2.shutdown().await.expect("fin");
    assert_eq!(read_all(&mut d1).await, "8080:GET / HTTP/1.0\r\n\r\n");
    let r2 = read_all(&mut d2).await;
    assert_eq!(r2.len(), "5432:".len() + 200_000);
    assert!(r2.starts_with("5432:qqq"));
    drop((e1, e2));
    // A refused port: the message comes on the error stream.
    let (mut err, _data) = forward(&client, 9999, Some("2")).await;
    assert_eq!(
        read_all(&mut err).await,
        "error forwarding port 9999 to pod p: connection refused"
    );
    // An old client without request ids: paired by stream ids.
    let (_e, mut d) = forward(&client, 80, None).await;
    d.write_all(b"legacy").await.expect("write");
    d.shutdown().await.expect("fin");
    assert_eq!(read_all(&mut d).await, "80:legacy");
    client.close();
}

#[tokio::test]
async fn spdy_port_forward() {
    let up = spdy_upgrade();
    assert_eq!(up.transport, Transport::Spdy);
    assert_eq!(
        up.response_headers()["x-stream-protocol-version"],
        "portforward.k8s.io"
    );
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let pf = portforward::accept(&up, a, "").await.expect("accept");
        echo_server(pf).await
    });
    exercise(Session::client(b)).await;
    assert_eq!(server.await.expect("server"), 4);
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_port_forward() {
    // kubectl 1.31+ offers the tunnel first.
    let up = ws_upgrade("SPDY/3.1+portforward.k8s.io");
    assert_eq!(up.transport, Transport::WebSocketSpdyTunnel);
    assert_eq!(
        up.response_headers()["sec-websocket-protocol"],
        "SPDY/3.1+portforward.k8s.io"
    );
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let pf = portforward::accept(&up, a, "").await.expect("accept");
        echo_server(pf).await
    });
    let ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    exercise(Session::client(WsTunnel::new(ws))).await;
    assert_eq!(server.await.expect("server"), 4);
}

#[tokio::test]
async fn websocket_channel_port_forward() {
    let up = ws_upgrade("v4.channel.k8s.io");
    assert_eq!(up.transport, Transport::WebSocket);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut pf = portforward::accept(&up, a, "ports=8080,9999")
            .await
            .expect("accept");
        let mut ports = Vec::new();
        while let Some(conn) = pf.accept().await {
            ports.push(conn.port);
            if conn.port == 9999 {
                conn.error.send("connection refused").await.expect("error");
                continue;
            }
            tokio::spawn(async move {
                let mut data = conn.data;
                let mut buf = [0u8; 4];
                data.read_exact(&mut buf).await.expect("read");
                data.write_all(b"8080:").await.expect("write");
                data.write_all(&buf).await.expect("write");
                // Keep the channel writers until the client hangs up.
                let _ = data.read(&mut buf).await;
            });
        }
        ports
    });
    let mut ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    let mut next = async || match tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("in time")
    {
        Some(Ok(Message::Binary(b))) => Some((b[0], b[1..].to_vec())),
        Some(Ok(Message::Close(_))) | None => None,
        other => panic!("unexpected {other:?}"),
    };
    // Every channel opens with its port, little-endian.
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(next().await.expect("port message"));
    }
    assert_eq!(
        first,
        vec![
            (0, 8080u16.to_le_bytes().to_vec()),
            (1, 8080u16.to_le_bytes().to_vec()),
            (2, 9999u16.to_le_bytes().to_vec()),
            (3, 9999u16.to_le_bytes().to_vec()),
        ]
    );
    assert_eq!(next().await, Some((3, b"connection refused".to_vec())));
    ws.send(Message::binary(b"\x00pi".to_vec()))
        .await
        .expect("send");
    ws.send(Message::binary(b"\x00ng".to_vec()))
        .await
        .expect("send");
    let mut echoed = Vec::new();
    while echoed.len() < "8080:ping".len() {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b[0], 0, "data channel of port 8080");
                echoed.extend_from_slice(&b[1..]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, b"8080:ping");
    ws.close(None).await.expect("close");
    assert_eq!(server.await.expect("server"), vec![8080, 9999]);
}

#[test]
fn port_forward_negotiation() {
    // kubectl 1.31+ lists the tunnel; plain channel clients get channels.
    assert_eq!(
        ws_upgrade("SPDY/3.1+portforward.k8s.io, v4.channel.k8s.io").transport,
        Transport::WebSocketSpdyTunnel
    );
    assert_eq!(
        ws_upgrade("v4.channel.k8s.io").protocol,
        "v4.channel.k8s.io"
    );
    let mut h = HeaderMap::new();
    h.insert("connection", "upgrade".parse().expect("v"));
    h.insert("upgrade", "SPDY/3.1".parse().expect("v"));
    h.insert(
        "x-stream-protocol-version",
        "v4.channel.k8s.io".parse().expect("v"),
    );
    let err = upgrade::negotiate(Operation::PortForward, &h).expect_err("exec protocol");
    assert_eq!(err.status, http::StatusCode::FORBIDDEN);
}

/// The kubelet's path: kubectl 1.31+'s SPDY-in-WebSocket session relayed
/// to a runtime that speaks plain SPDY (containerd): concurrent
/// connections, a refused port's message, legacy request ids.
#[tokio::test]
async fn relay_tunnelled_session_to_spdy_runtime() {
    use skiff_streaming::relay;
    use skiff_streaming::runtime::RuntimePortForward;

    let url = common::runtime_server(Operation::PortForward, |up, io, _query| async move {
        assert_eq!(up.protocol, "portforward.k8s.io");
        let pf = portforward::accept(&up, io, "").await.expect("accept");
        echo_server(pf).await;
    })
    .await;
    let up = ws_upgrade("SPDY/3.1+portforward.k8s.io");
    let (a, b) = tokio::io::duplex(64 * 1024);
    let kubelet = tokio::spawn(async move {
        let pf = portforward::accept(&up, a, "").await.expect("accept");
        let runtime = RuntimePortForward::connect(&url).await.expect("runtime");
        relay::port_forward(pf, runtime).await;
    });
    let ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    exercise(Session::client(WsTunnel::new(ws))).await;
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .expect("relay ends with the client")
        .expect("kubelet");
}
