//! WebSocket as Kubernetes streams over it.
//!
//! * Channel framing (`channel.k8s.io` family): every message starts with
//!   its channel id (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize for
//!   remotecommand; 2·i data and 2·i+1 error of the i-th port for
//!   port-forward). The `base64.` variants send text messages: the channel
//!   as an ASCII digit, then the payload in base64. `v5.channel.k8s.io`
//!   adds CLOSE: channel 255 followed by the id of the stream to close.
//! * [`WsTunnel`]: a byte stream in binary messages, for SPDY inside
//!   WebSocket (`SPDY/3.1+portforward.k8s.io`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Channel ids of remotecommand.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// The v5 CLOSE message's channel.
pub const CLOSE: u8 = 255;

/// Encodes one channel message.
pub fn encode(channel: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        s.push((b'0' + channel) as char);
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut b = Vec::with_capacity(1 + data.len());
        b.push(channel);
        b.extend_from_slice(data);
        Message::binary(b)
    }
}

/// A decoded channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    Data {
        channel: u8,
        data: Bytes,
    },
    /// v5 CLOSE of a stream.
    Close {
        channel: u8,
    },
}

/// Decodes one channel message; `None` for control messages and empty
/// ones (upstream ignores those). CLOSE is only recognised when `v5`.
pub fn decode(msg: &Message, base64: bool, v5: bool) -> Result<Option<ChannelMessage>, io::Error> {
    let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let (channel, data) = match msg {
        Message::Binary(b) => {
            if b.is_empty() {
                return Ok(None);
            }
            (b[0], b.slice(1..))
        }
        Message::Text(t) => {
            let t = t.as_str().as_bytes();
            if t.is_empty() {
                return Ok(None);
            }
            if !base64 {
                return Err(invalid("text message on a binary channel protocol"));
            }
            if v5 && t[0] == CLOSE {
                (t[0], Bytes::copy_from_slice(&t[1..]))
            } else {
                let ch = t[0].wrapping_sub(b'0');
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&t[1..])
                    .map_err(|_| invalid("bad base64 in channel message"))?;
                (ch, Bytes::from(data))
            }
        }
        _ => return Ok(None),
    };
    if v5 && channel == CLOSE {
        let Some(&target) = data.first() else {
            return Err(invalid("CLOSE without a stream id"));
        };
        return Ok(Some(ChannelMessage::Close { channel: target }));
    }
    Ok(Some(ChannelMessage::Data { channel, data }))
}

/// Completes the WebSocket server side on an upgraded connection (the 101
/// response was already sent by the HTTP layer).
pub async fn server<S>(io: S) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// A byte stream carried in WebSocket binary messages, each write one
/// message (what client-go's `TunnelingConnection` does).
pub struct WsTunnel<S> {
    ws: WebSocketStream<S>,
    read_buf: Bytes,
    eof: bool,
}

impl<S> WsTunnel<S> {
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsTunnel {
            ws,
            read_buf: Bytes::new(),
            eof: false,
        }
    }
}

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        other => io::Error::other(other),
    }
}

impl<S> AsyncRead for WsTunnel<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.read_buf.is_empty() {
                let n = self.read_buf.len().min(buf.remaining());
                buf.put_slice(&self.read_buf[..n]);
                self.read_buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => {
                    self.eof = true;
                }
                Some(Ok(Message::Binary(b))) => self.read_buf = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message in a binary tunnel",
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let e = ws_err(e);
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        self.eof = true;
                    } else {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
    }
}

impl<S> AsyncWrite for WsTunnel<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_err)?;
        Pin::new(&mut self.ws)
            .start_send(Message::binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_err)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_err)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                let e = ws_err(e);
                if e.kind() == io::ErrorKind::BrokenPipe {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Ready(Err(e))
                }
            }
        }
    }
}

/// Reads a channel's incoming data as a byte stream (fed by the demux task
/// of a WebSocket connection).
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    buf: BytesMut,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            buf: BytesMut::new(),
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(buf.remaining());
                buf.put_slice(&self.buf.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.buf.extend_from_slice(&b),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// What a channel writer queues for the connection's writer task.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message(Message),
    /// Send a normal-closure Close frame and stop.
    Close,
}

/// Writes to one outgoing channel: each write is one message.
pub struct ChannelWriter {
    channel: u8,
    base64: bool,
    tx: tokio_util::sync::PollSender<Outgoing>,
}

impl ChannelWriter {
    pub(crate) fn new(channel: u8, base64: bool, tx: tokio::sync::mpsc::Sender<Outgoing>) -> Self {
        ChannelWriter {
            channel,
            base64,
            tx: tokio_util::sync::PollSender::new(tx),
        }
    }
}

/// The largest payload of one channel message we send.
const MAX_MESSAGE: usize = 32 * 1024;

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.tx.poll_reserve(cx))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed"))?;
        let n = buf.len().min(MAX_MESSAGE);
        let msg = encode(self.channel, &buf[..n], self.base64);
        self.tx
            .send_item(Outgoing::Message(msg))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed"))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_round_trip() {
        for b64 in [false, true] {
            let m = encode(STDERR, b"\x00\xffhi", b64);
            assert_eq!(
                decode(&m, b64, false).expect("decode"),
                Some(ChannelMessage::Data {
                    channel: STDERR,
                    data: Bytes::from_static(b"\x00\xffhi")
                })
            );
        }
        assert_eq!(encode(STDOUT, b"", false), Message::binary(vec![1u8]));
        assert_eq!(encode(ERROR, b"ok", true), Message::text("3b2s="));
    }

    #[test]
    fn v5_close_only_in_v5() {
        let m = Message::binary(vec![CLOSE, STDIN]);
        assert_eq!(
            decode(&m, false, true).expect("decode"),
            Some(ChannelMessage::Close { channel: STDIN })
        );
        assert_eq!(
            decode(&m, false, false).expect("decode"),
            Some(ChannelMessage::Data {
                channel: CLOSE,
                data: Bytes::from_static(&[STDIN])
            })
        );
        assert!(decode(&Message::binary(vec![CLOSE]), false, true).is_err());
    }

    #[test]
    fn empty_and_control_messages_are_skipped() {
        assert_eq!(
            decode(&Message::binary(Vec::<u8>::new()), false, true).expect("decode"),
            None
        );
        assert_eq!(
            decode(&Message::Ping(Bytes::new()), false, true).expect("decode"),
            None
        );
        assert!(decode(&Message::text("1abc"), false, false).is_err());
    }
}
