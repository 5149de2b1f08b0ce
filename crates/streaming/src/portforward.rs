//! port-forward: every forwarded connection is a (data, error) pair for one
//! port.
//!
//! * SPDY (and SPDY tunnelled in WebSocket, kubectl 1.31+): the client
//!   opens an `error` stream then a `data` stream per connection, with the
//!   headers `port` and `requestID`; the pair is matched by request id.
//! * WebSocket channels (`v4.channel.k8s.io`, what kube-rs and other
//!   clients use): the ports come from the `ports` query parameter, port i
//!   owns channels 2i (data) and 2i+1 (error), and each channel opens with
//!   the port as two little-endian bytes. One connection per port.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::StreamError;
use crate::remotecommand::query_pairs;
use crate::spdy::frame::rst;
use crate::spdy::{Session, SpdyStream};
use crate::upgrade::{Transport, Upgrade};
use crate::websocket::{self, ChannelMessage, ChannelReader, ChannelWriter, Outgoing, WsTunnel};

/// SPDY stream headers of port-forward.
pub const STREAM_TYPE_HEADER: &str = "streamtype";
pub const PORT_HEADER: &str = "port";
pub const REQUEST_ID_HEADER: &str = "requestid";

/// Anything that is a bidirectional byte stream.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// The data of one forwarded connection: read what the client sends to the
/// port, write what the port answers; `shutdown` half-closes.
pub struct DataStream(Box<dyn ByteStream>);

impl AsyncRead for DataStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for DataStream {
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

/// The error side of a forwarded connection: kubectl prints what arrives
/// here ("error forwarding port ...").
pub struct ErrorWriter(Box<dyn AsyncWrite + Send + Unpin>);

impl ErrorWriter {
    /// Sends an error message and closes the error stream.
    pub async fn send(mut self, message: &str) -> io::Result<()> {
        self.0.write_all(message.as_bytes()).await?;
        self.0.shutdown().await
    }

    /// Closes the error stream without an error.
    pub async fn close(mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// One forwarded connection.
pub struct ForwardedConnection {
    pub port: u16,
    /// The client's request id (SPDY), or the port's index (WebSocket).
    pub request_id: String,
    pub data: DataStream,
    pub error: ErrorWriter,
}

#[derive(Default)]
struct Half {
    port: Option<u16>,
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
}

enum Inner {
    Spdy {
        session: Session,
        pending: HashMap<String, Half>,
    },
    Channels {
        ready: VecDeque<ForwardedConnection>,
        closed: Arc<Notify>,
        done: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// An accepted port-forward session.
pub struct PortForward {
    inner: Inner,
}

/// Accepts a port-forward session on an upgraded connection (after the 101
/// response of `upgrade`). `query` is the request's query string (the
/// WebSocket channel protocol takes its `ports` from it).
pub async fn accept<S>(upgrade: &Upgrade, io: S, query: &str) -> Result<PortForward, StreamError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match upgrade.transport {
        Transport::Spdy => Ok(PortForward::spdy(Session::server(io))),
        Transport::WebSocketSpdyTunnel => {
            let ws = websocket::server(io).await;
            Ok(PortForward::spdy(Session::server(WsTunnel::new(ws))))
        }
        Transport::WebSocket => {
            let mut ports = Vec::new();
            for (k, v) in query_pairs(query) {
                if k == "ports" {
                    for p in v.split(',').filter(|p| !p.is_empty()) {
                        ports.push(
                            p.trim().parse::<u16>().map_err(|_| {
                                StreamError::Protocol(format!("invalid port {p:?}"))
                            })?,
                        );
                    }
                }
            }
            if ports.is_empty() {
                return Err(StreamError::Protocol(
                    "query parameter \"ports\" is required".into(),
                ));
            }
            Ok(accept_channels(io, &ports, upgrade.base64()).await)
        }
    }
}

/// The request id of a stream, with upstream's fallback for old clients
/// that sent none: the error stream's id, or the data stream's id - 2.
fn request_id(s: &SpdyStream, stream_type: &str) -> String {
    if let Some(id) = s.header(REQUEST_ID_HEADER) {
        return id.to_owned();
    }
    match stream_type {
        "data" => s.id().saturating_sub(2).to_string(),
        _ => s.id().to_string(),
    }
}

impl PortForward {
    /// Port-forward over an established SPDY session.
    pub fn spdy(session: Session) -> PortForward {
        PortForward {
            inner: Inner::Spdy {
                session,
                pending: HashMap::new(),
            },
        }
    }

    /// The next forwarded connection; `None` when the client is gone.
    pub async fn accept(&mut self) -> Option<ForwardedConnection> {
        match &mut self.inner {
            Inner::Spdy { session, pending } => loop {
                let s = session.accept().await?;
                let stream_type = s.header(STREAM_TYPE_HEADER).unwrap_or("").to_owned();
                if stream_type != "data" && stream_type != "error" {
                    tracing::debug!(stream_type, "unexpected port-forward stream");
                    s.reset(rst::REFUSED_STREAM);
                    continue;
                }
                let Some(port) = s.header(PORT_HEADER).and_then(|p| p.parse::<u16>().ok()) else {
                    tracing::debug!("port-forward stream without a valid port header");
                    s.reset(rst::REFUSED_STREAM);
                    continue;
                };
                let id = request_id(&s, &stream_type);
                let half = pending.entry(id.clone()).or_default();
                let slot = if stream_type == "data" {
                    &mut half.data
                } else {
                    &mut half.error
                };
                if slot.is_some() || half.port.is_some_and(|p| p != port) {
                    s.reset(rst::PROTOCOL_ERROR);
                    continue;
                }
                *slot = Some(s);
                half.port = Some(port);
                if half.data.is_some() && half.error.is_some() {
                    let Some(Half {
                        data: Some(data),
                        error: Some(error),
                        ..
                    }) = pending.remove(&id)
                    else {
                        continue;
                    };
                    return Some(ForwardedConnection {
                        port,
                        request_id: id,
                        data: DataStream(Box::new(data)),
                        error: ErrorWriter(Box::new(error)),
                    });
                }
            },
            Inner::Channels {
                ready,
                closed,
                done,
            } => {
                if let Some(c) = ready.pop_front() {
                    return Some(c);
                }
                loop {
                    let notified = closed.notified();
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        return None;
                    }
                    notified.await;
                }
            }
        }
    }

    /// Closes the connection (GOAWAY on SPDY).
    pub fn close(&self) {
        if let Inner::Spdy { session, .. } = &self.inner {
            session.close();
        }
    }
}

/// A data channel: reads from the demux, writes channel messages.
struct ChannelDuplex {
    r: ChannelReader,
    w: ChannelWriter,
}

impl AsyncRead for ChannelDuplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.r).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChannelDuplex {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.w).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.w).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.w).poll_shutdown(cx)
    }
}

async fn accept_channels<S>(io: S, ports: &[u16], base64: bool) -> PortForward
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = websocket::server(io).await;
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(32);
    tokio::spawn(async move {
        // Ends when every channel writer is gone: then close the socket.
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
    let mut readers = HashMap::new();
    let mut ready = VecDeque::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        readers.insert(data_ch, tx);
        for ch in [data_ch, error_ch] {
            let _ = out_tx
                .send(Outgoing::Message(websocket::encode(
                    ch,
                    &port.to_le_bytes(),
                    base64,
                )))
                .await;
        }
        ready.push_back(ForwardedConnection {
            port,
            request_id: i.to_string(),
            data: DataStream(Box::new(ChannelDuplex {
                r: ChannelReader::new(rx),
                w: ChannelWriter::new(data_ch, base64, out_tx.clone()),
            })),
            error: ErrorWriter(Box::new(ChannelWriter::new(
                error_ch,
                base64,
                out_tx.clone(),
            ))),
        });
    }
    drop(out_tx);
    let closed = Arc::new(Notify::new());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (closed2, done2) = (closed.clone(), done.clone());
    tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            if let Message::Close(_) = msg {
                break;
            }
            match websocket::decode(&msg, base64, false) {
                Ok(Some(ChannelMessage::Data { channel, data })) => {
                    if let Some(tx) = readers.get(&channel)
                        && tx.send(data).await.is_err()
                    {
                        readers.remove(&channel);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        drop(readers);
        done2.store(true, std::sync::atomic::Ordering::SeqCst);
        closed2.notify_waiters();
    });
    PortForward {
        inner: Inner::Channels {
            ready,
            closed,
            done,
        },
    }
}
