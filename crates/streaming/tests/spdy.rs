//! SPDY/3.1 framing, header compression, sessions and flow control.

use bytes::{Bytes, BytesMut};
use skiff_streaming::spdy::frame::{FLAG_FIN, Setting, rst, settings};
use skiff_streaming::spdy::session::{DEFAULT_WINDOW, Role, SessionConfig};
use skiff_streaming::spdy::{Frame, Headers, Session, SpdyCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// Three SYN_STREAMs as a Go client sends them for `kubectl exec` and
/// `kubectl port-forward`, compressed by an independent zlib (CPython's,
/// level 9, SPDY/3 dictionary, SYNC_FLUSH after each block) on one shared
/// compression context.
const GOLDEN_SYN_STREAMS: &[u8] = &[
    0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29,
    0x4a, 0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xc2, 0x2a, 0x05, 0x4c, 0xcc, 0x29, 0xf9, 0xa5, 0x25, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x02, 0xa5, 0x55, 0x48, 0xb1, 0x5d, 0x04, 0xce, 0x21, 0x16, 0x06, 0x16, 0x06,
    0x40, 0x9a, 0xb3, 0x08, 0x12, 0xcd, 0x99, 0xa0, 0xe4, 0xcf, 0x68, 0x80, 0xa1, 0x1b, 0x54, 0x46,
    0x25, 0x02, 0x00, 0x00, 0x00, 0xff, 0xff,
];

fn decode_all(codec: &mut SpdyCodec, bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = codec.decode(&mut buf).expect("decode") {
        frames.push(f);
    }
    assert!(buf.is_empty(), "trailing bytes");
    frames
}

#[test]
fn golden_syn_streams_decode() {
    let frames = decode_all(&mut SpdyCodec::new(), GOLDEN_SYN_STREAMS);
    assert_eq!(frames.len(), 3);
    let expect = [
        (1, Headers::new().with("streamtype", "error")),
        (3, Headers::new().with("streamtype", "stdout")),
        (
            5,
            Headers::new()
                .with("port", "8080")
                .with("requestid", "0")
                .with("streamtype", "data"),
        ),
    ];
    for (f, (id, h)) in frames.iter().zip(expect) {
        match f {
            Frame::SynStream {
                stream_id,
                associated_to,
                flags,
                headers,
                ..
            } => {
                assert_eq!(*stream_id, id);
                assert_eq!(*associated_to, 0);
                assert_eq!(*flags, 0);
                assert_eq!(headers, &h);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Header names are case-insensitive for lookups (Go canonicalizes them
    // as "Streamtype", "Requestid").
    if let Frame::SynStream { headers, .. } = &frames[2] {
        assert_eq!(headers.get("streamType"), Some("data"));
        assert_eq!(headers.get("requestID"), Some("0"));
        assert_eq!(headers.get("Port"), Some("8080"));
    }
}

#[test]
fn golden_prefix_is_not_a_frame_yet() {
    let mut codec = SpdyCodec::new();
    let mut buf = BytesMut::from(&GOLDEN_SYN_STREAMS[..20]);
    assert!(codec.decode(&mut buf).expect("decode").is_none());
    buf.extend_from_slice(&GOLDEN_SYN_STREAMS[20..]);
    assert!(codec.decode(&mut buf).expect("decode").is_some());
}

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 7,
            associated_to: 0,
            priority: 3,
            slot: 0,
            flags: FLAG_FIN,
            headers: Headers::new()
                .with("streamType", "stdin")
                .with("x-multi", "a")
                .with("x-multi", "b"),
        },
        Frame::SynReply {
            stream_id: 7,
            flags: 0,
            headers: Headers::new(),
        },
        Frame::Headers {
            stream_id: 7,
            flags: FLAG_FIN,
            headers: Headers::new().with("a", "b"),
        },
        Frame::RstStream {
            stream_id: 9,
            status: rst::CANCEL,
        },
        Frame::Settings {
            flags: 0,
            entries: vec![
                Setting {
                    flags: 1,
                    id: settings::INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                },
                Setting {
                    flags: 0,
                    id: settings::MAX_CONCURRENT_STREAMS,
                    value: 100,
                },
            ],
        },
        Frame::Ping { id: 2 },
        Frame::GoAway {
            last_good_stream_id: 7,
            status: 0,
        },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 65536,
        },
        Frame::Data {
            stream_id: 7,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 9,
            flags: 0,
            data: Bytes::new(),
        },
        Frame::Unknown {
            frame_type: 10,
            flags: 0,
            payload: Bytes::from_static(b"\0\0"),
        },
    ]
}

#[test]
fn every_frame_round_trips_on_shared_contexts() {
    let mut tx = SpdyCodec::new();
    let mut rx = SpdyCodec::new();
    let mut wire = BytesMut::new();
    // Twice: the second round's header blocks use the warmed-up contexts.
    for _ in 0..2 {
        for f in all_frames() {
            tx.encode(f, &mut wire).expect("encode");
        }
    }
    let decoded = decode_all(&mut rx, &wire);
    let mut expected = all_frames();
    expected.extend(all_frames());
    // Names go lowercase on the wire.
    for f in &mut expected {
        if let Frame::SynStream { headers, .. } = f {
            headers.0[0].0 = "streamtype".into();
        }
    }
    assert_eq!(decoded, expected);
}

#[test]
fn fixed_layouts() {
    let mut c = SpdyCodec::new();
    let mut b = BytesMut::new();
    c.encode(Frame::Ping { id: 0x01020304 }, &mut b)
        .expect("encode");
    assert_eq!(&b[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 1, 2, 3, 4]);
    b.clear();
    c.encode(
        Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"ab"),
        },
        &mut b,
    )
    .expect("encode");
    assert_eq!(&b[..], &[0, 0, 0, 5, 1, 0, 0, 2, b'a', b'b']);
    b.clear();
    c.encode(
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 0x8000,
        },
        &mut b,
    )
    .expect("encode");
    assert_eq!(
        &b[..],
        &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0x80, 0]
    );
    b.clear();
    c.encode(
        Frame::RstStream {
            stream_id: 3,
            status: 5,
        },
        &mut b,
    )
    .expect("encode");
    assert_eq!(&b[..], &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]);
}

#[test]
fn wrong_version_is_an_error() {
    let mut buf = BytesMut::from(&[0x80u8, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert!(SpdyCodec::new().decode(&mut buf).is_err());
}

#[test]
fn garbage_header_block_is_an_error() {
    let mut buf = BytesMut::from(&[0x80u8, 3, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4][..]);
    assert!(SpdyCodec::new().decode(&mut buf).is_err());
}

fn pair(client_config: SessionConfig) -> (Session, Session) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = Session::server(a);
    let client = Session::new(b, Role::Client, client_config);
    (server, client)
}

#[tokio::test]
async fn streams_headers_data_and_half_close() {
    let (mut server, client) = pair(SessionConfig::default());
    let mut c = client
        .open_stream(Headers::new().with("streamtype", "stdin"), false)
        .await
        .expect("open");
    assert_eq!(c.id(), 1);
    let mut s = server.accept().await.expect("accept");
    assert_eq!(s.header("streamType"), Some("stdin"));
    c.write_all(b"hello ").await.expect("write");
    c.write_all(b"world").await.expect("write");
    c.shutdown().await.expect("fin");
    let mut got = String::new();
    s.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, "hello world");
    // Half-closed: the server can still answer.
    s.write_all(b"reply").await.expect("write");
    s.shutdown().await.expect("fin");
    let mut got = String::new();
    c.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, "reply");
    // A second stream gets the next odd id.
    let c2 = client
        .open_stream(Headers::new().with("streamtype", "stdout"), true)
        .await
        .expect("open");
    assert_eq!(c2.id(), 3);
    let s2 = server.accept().await.expect("accept");
    assert_eq!(s2.header("streamtype"), Some("stdout"));
    assert!(client.ping().await.is_ok());
    assert!(server.ping().await.is_ok());
}

#[tokio::test]
async fn close_sends_goaway_and_ends_streams() {
    let (mut server, mut client) = pair(SessionConfig::default());
    let mut c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let mut s = server.accept().await.expect("accept");
    s.write_all(b"last words").await.expect("write");
    server.close();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"last words");
    client.closed().await;
    assert!(client.accept().await.is_none());
}

#[tokio::test]
async fn reset_stream_fails_reader() {
    let (mut server, client) = pair(SessionConfig::default());
    let mut c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let s = server.accept().await.expect("accept");
    s.reset(rst::INTERNAL_ERROR);
    let mut buf = [0u8; 4];
    let err = c.read(&mut buf).await.expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

/// Without SETTINGS or WINDOW_UPDATE from the peer (Go's spdystream), we do
/// not wait on its window: 1 MiB goes out although nobody reads yet.
#[tokio::test]
async fn peer_without_flow_control_is_not_throttled() {
    let (mut server, client) = pair(SessionConfig::default());
    let c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let mut s = server.accept().await.expect("accept");
    let data = vec![7u8; 1 << 20];
    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        // The pipe and the client's buffers absorb it; nobody reads `c`.
        let mut off = 0;
        while off < data.len() {
            off += s.write(&data[off..]).await.expect("write");
        }
        off
    });
    // The client session buffers up to 1 MiB per stream.
    assert_eq!(sent.await.expect("not throttled"), data.len());
    assert!(!server.peer_flow_control());
    drop(c);
}

/// A peer that announces flow control (SETTINGS INITIAL_WINDOW_SIZE) gets
/// at most its window until it reads and sends WINDOW_UPDATE.
#[tokio::test]
async fn flow_control_window_blocks_and_window_update_resumes() {
    let (mut server, client) = pair(SessionConfig {
        send_settings: true,
        ..SessionConfig::default()
    });
    let mut c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let mut s = server.accept().await.expect("accept");
    assert!(server.peer_flow_control());
    let total = 3 * DEFAULT_WINDOW as usize;
    let writer = tokio::spawn(async move {
        let data = vec![1u8; total];
        let mut off = 0;
        let mut progress = Vec::new();
        while off < data.len() {
            off += s.write(&data[off..]).await.expect("write");
            progress.push(off);
        }
        s.shutdown().await.expect("fin");
        progress
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "writer must wait for the window");
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.expect("read");
    assert_eq!(got.len(), total);
    let progress = writer.await.expect("join");
    assert_eq!(*progress.last().expect("wrote"), total);
}

#[tokio::test]
async fn client_side_flow_control_against_server_window_updates() {
    // The server sends WINDOW_UPDATE as it reads; a client that enforces
    // windows (after the server's first update) keeps going.
    let (mut server, client) = pair(SessionConfig::default());
    let mut c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let mut s = server.accept().await.expect("accept");
    let total = 4 * DEFAULT_WINDOW as usize;
    let w = tokio::spawn(async move {
        c.write_all(&vec![3u8; total]).await.expect("write");
        c.shutdown().await.expect("fin");
        c
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("read");
    assert_eq!(got.len(), total);
    let _c = w.await.expect("join");
    for _ in 0..100 {
        if client.peer_flow_control() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the server sent no WINDOW_UPDATE");
}

/// Toward a peer that never showed flow control (the CRI streaming
/// servers), a session configured so sends no WINDOW_UPDATE however much
/// it reads: such a peer would answer a late one with a TCP reset.
#[tokio::test]
async fn no_window_updates_to_a_peer_without_flow_control_when_so_configured() {
    let (mut server, client) = pair(SessionConfig {
        always_send_window_updates: false,
        ..SessionConfig::default()
    });
    let mut c = client
        .open_stream(Headers::new(), false)
        .await
        .expect("open");
    let mut s = server.accept().await.expect("accept");
    let total = 4 * DEFAULT_WINDOW as usize;
    let w = tokio::spawn(async move {
        s.write_all(&vec![7u8; total]).await.expect("write");
        s.shutdown().await.expect("fin");
        s
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.expect("read");
    assert_eq!(got.len(), total);
    let _s = w.await.expect("join");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !server.peer_flow_control(),
        "the client sent a WINDOW_UPDATE"
    );
}
