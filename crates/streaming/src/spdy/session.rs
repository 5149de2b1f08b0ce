//! A SPDY/3.1 session over any byte stream.
//!
//! Two tasks drive a session: a reader that decodes frames and dispatches
//! them (streams opened by the peer, data, window updates, pings, resets,
//! GOAWAY) and a writer that encodes frames in the order they are queued
//! (control frames first). [`SpdyStream`] is one stream: `AsyncRead` for
//! what the peer sends, `AsyncWrite` for what we send, `shutdown` sends FIN
//! (half-close).
//!
//! Flow control: every stream starts with a 64 KiB window each way, and the
//! session has one more (SPDY/3.1). We always account for what we receive
//! and send WINDOW_UPDATE as the application consumes data. We honour the
//! peer's windows once it shows it takes part in flow control (a SETTINGS
//! INITIAL_WINDOW_SIZE or any WINDOW_UPDATE): Go's spdystream, which
//! kubectl and client-go use, neither sends nor reads WINDOW_UPDATE, so
//! waiting on its windows would stall every stream after 64 KiB.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::frame::{
    FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, FrameError, Headers, Setting, SpdyCodec, goaway, rst,
    settings,
};

/// The initial flow-control window of a stream and of the session.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// The largest data frame we send.
pub const MAX_DATA_CHUNK: usize = 32 * 1024;

/// Which end of the connection we are: the client opens odd stream ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Tunables of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How many received bytes one stream buffers before the reader stops
    /// reading the connection (backpressure for peers that ignore flow
    /// control).
    pub max_buffered_per_stream: usize,
    /// How many bytes of data frames may wait in the write queue before
    /// writers wait.
    pub max_queued_bytes: usize,
    /// Send SETTINGS INITIAL_WINDOW_SIZE first (announces that we take
    /// part in flow control).
    pub send_settings: bool,
    /// Send WINDOW_UPDATEs even to a peer that never showed it does flow
    /// control (SPDY/3.1's default). Off toward CRI streaming servers: Go's
    /// spdystream ignores them, and one arriving after it stopped reading
    /// turns its close into a TCP reset, which drops the last output still
    /// in our receive buffer.
    pub always_send_window_updates: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_buffered_per_stream: 1 << 20,
            max_queued_bytes: 256 * 1024,
            send_settings: false,
            always_send_window_updates: true,
        }
    }
}

/// Errors of a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("SPDY session closed")]
    Closed,
    #[error("stream refused or reset by peer (status {0})")]
    Reset(u32),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Frame(#[from] FrameError),
}

enum WriterMsg {
    Frame(Frame),
    /// Write GOAWAY after everything queued before, flush, shut the
    /// connection down.
    Close,
}

#[derive(Default)]
struct StreamState {
    recv: VecDeque<Bytes>,
    recv_len: usize,
    recv_fin: bool,
    /// Bytes consumed by the application not yet given back by WINDOW_UPDATE.
    recv_unacked: u32,
    reset: Option<u32>,
    read_waker: Option<Waker>,
    send_window: i64,
    local_fin: bool,
    write_waker: Option<Waker>,
    reply: Option<oneshot::Sender<Result<Headers, SessionError>>>,
    /// Headers of later HEADERS frames.
    extra_headers: Headers,
    dropped: bool,
}

impl StreamState {
    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

struct State {
    streams: HashMap<u32, StreamState>,
    next_stream_id: u32,
    last_peer_stream_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    enforce_send_window: bool,
    initial_send_window: i64,
    session_send_window: i64,
    session_recv_unacked: u32,
    queued_bytes: usize,
    queue_waiters: Vec<Waker>,
    /// Writers waiting for the session window.
    window_waiters: Vec<Waker>,
    goaway_received: bool,
    closing: bool,
    closed: bool,
}

struct Shared {
    role: Role,
    config: SessionConfig,
    state: Mutex<State>,
    ctrl_tx: mpsc::UnboundedSender<Frame>,
    data_tx: mpsc::UnboundedSender<WriterMsg>,
    /// Signalled when a stream's receive buffer shrinks.
    space: Notify,
    /// Signalled when the connection is gone.
    done: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send_ctrl(&self, f: Frame) {
        let _ = self.ctrl_tx.send(f);
    }

    fn close(&self) {
        let mut st = self.lock();
        if !st.closing {
            st.closing = true;
            let _ = self.data_tx.send(WriterMsg::Close);
        }
    }

    /// The connection is gone: fail everything that waits.
    fn terminate(&self) {
        let mut st = self.lock();
        st.closed = true;
        for s in st.streams.values_mut() {
            if let Some(r) = s.reply.take() {
                let _ = r.send(Err(SessionError::Closed));
            }
            s.wake();
        }
        st.pings.clear();
        let mut waiters: Vec<Waker> = std::mem::take(&mut st.queue_waiters);
        waiters.append(&mut st.window_waiters);
        drop(st);
        for w in waiters {
            w.wake();
        }
        self.space.notify_waiters();
        self.done.notify_waiters();
    }
}

/// A SPDY/3.1 session. Dropping it closes the connection gracefully
/// (GOAWAY after the queued frames); streams still open then end.
pub struct Session {
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<SpdyStream>,
}

impl Session {
    /// A server-side session: accepts the client's streams (odd ids) and
    /// answers each SYN_STREAM with a SYN_REPLY at once.
    pub fn server<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::new(io, Role::Server, SessionConfig::default())
    }

    /// A client-side session (opens odd stream ids).
    pub fn client<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::new(io, Role::Client, SessionConfig::default())
    }

    pub fn new<T>(io: T, role: Role, config: SessionConfig) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let send_settings = config.send_settings;
        let shared = Arc::new(Shared {
            role,
            config,
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_stream_id: if role == Role::Client { 1 } else { 2 },
                last_peer_stream_id: 0,
                next_ping_id: if role == Role::Client { 1 } else { 2 },
                pings: HashMap::new(),
                enforce_send_window: false,
                initial_send_window: DEFAULT_WINDOW as i64,
                session_send_window: DEFAULT_WINDOW as i64,
                session_recv_unacked: 0,
                queued_bytes: 0,
                queue_waiters: Vec::new(),
                window_waiters: Vec::new(),
                goaway_received: false,
                closing: false,
                closed: false,
            }),
            ctrl_tx,
            data_tx,
            space: Notify::new(),
            done: Notify::new(),
        });
        if send_settings {
            shared.send_ctrl(Frame::Settings {
                flags: 0,
                entries: vec![Setting {
                    flags: 0,
                    id: settings::INITIAL_WINDOW_SIZE,
                    value: DEFAULT_WINDOW,
                }],
            });
        }
        let (r, w) = tokio::io::split(io);
        tokio::spawn(writer(
            FramedWrite::new(w, SpdyCodec::new()),
            ctrl_rx,
            data_rx,
            Arc::downgrade(&shared),
        ));
        tokio::spawn(reader(
            FramedRead::new(r, SpdyCodec::new()),
            shared.clone(),
            incoming_tx,
        ));
        Session { shared, incoming }
    }

    /// The next stream the peer opened, with its headers; `None` once the
    /// connection is closed or the peer sent GOAWAY.
    pub async fn accept(&mut self) -> Option<SpdyStream> {
        self.incoming.recv().await
    }

    /// Opens a stream (client side, or server push) and waits for the
    /// peer's SYN_REPLY. `fin` opens it half-closed (we send nothing).
    pub async fn open_stream(
        &self,
        headers: Headers,
        fin: bool,
    ) -> Result<SpdyStream, SessionError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = self.shared.lock();
            if st.closed || st.closing || st.goaway_received {
                return Err(SessionError::Closed);
            }
            let id = st.next_stream_id;
            st.next_stream_id += 2;
            let window = st.initial_send_window;
            st.streams.insert(
                id,
                StreamState {
                    send_window: window,
                    local_fin: fin,
                    reply: Some(tx),
                    ..Default::default()
                },
            );
            let _ = self.shared.data_tx.send(WriterMsg::Frame(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: if fin { FLAG_FIN } else { 0 },
                headers: headers.clone(),
            }));
            id
        };
        let reply = rx.await.map_err(|_| SessionError::Closed)??;
        let _ = reply;
        Ok(SpdyStream {
            id,
            headers,
            shared: self.shared.clone(),
        })
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> Result<Duration, SessionError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(SessionError::Closed);
            }
            let id = st.next_ping_id;
            st.next_ping_id = st.next_ping_id.wrapping_add(2) & 0x7fff_ffff;
            st.pings.insert(id, tx);
            self.shared.send_ctrl(Frame::Ping { id });
        }
        let start = Instant::now();
        rx.await.map_err(|_| SessionError::Closed)?;
        Ok(start.elapsed())
    }

    /// Sends GOAWAY after everything queued so far, then closes the
    /// connection. Streams see EOF.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Resolves when the connection is gone (peer closed it, an error, or
    /// [`Session::close`] finished).
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.done.notified();
            if self.shared.lock().closed {
                return;
            }
            notified.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Whether the peer has shown it takes part in flow control (so our
    /// writes wait for its windows).
    pub fn peer_flow_control(&self) -> bool {
        self.shared.lock().enforce_send_window
    }

    /// A handle that can close the session without owning it.
    pub fn closer(&self) -> SessionCloser {
        SessionCloser {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Closes a session (see [`Session::close`]).
#[derive(Clone)]
pub struct SessionCloser {
    shared: Arc<Shared>,
}

impl SessionCloser {
    pub fn close(&self) {
        self.shared.close();
    }
}

/// One SPDY stream: read what the peer sends, write what we send;
/// `shutdown()` sends FIN. Dropping it sends FIN if not sent yet.
pub struct SpdyStream {
    id: u32,
    headers: Headers,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SpdyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl SpdyStream {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the SYN_STREAM that opened the stream.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// A header of the SYN_STREAM (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Headers that arrived later in HEADERS frames.
    pub fn extra_headers(&self) -> Headers {
        let st = self.shared.lock();
        st.streams
            .get(&self.id)
            .map(|s| s.extra_headers.clone())
            .unwrap_or_default()
    }

    /// Aborts the stream with RST_STREAM.
    pub fn reset(&self, status: u32) {
        let mut st = self.shared.lock();
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.reset = Some(status);
            s.local_fin = true;
            s.recv.clear();
            s.wake();
        }
        self.shared.send_ctrl(Frame::RstStream {
            stream_id: self.id,
            status,
        });
    }

    /// Whether the peer half-closed its side (FIN) and all data was read.
    pub fn is_remote_closed(&self) -> bool {
        let st = self.shared.lock();
        st.streams
            .get(&self.id)
            .is_none_or(|s| s.recv_fin && s.recv.is_empty())
    }

    fn fin(&self) {
        let mut st = self.shared.lock();
        let closed = st.closed;
        if let Some(s) = st.streams.get_mut(&self.id)
            && !s.local_fin
        {
            s.local_fin = true;
            if s.reset.is_none() && !closed {
                let _ = self.shared.data_tx.send(WriterMsg::Frame(Frame::Data {
                    stream_id: self.id,
                    flags: FLAG_FIN,
                    data: Bytes::new(),
                }));
            }
        }
    }
}

impl Drop for SpdyStream {
    fn drop(&mut self) {
        self.fin();
        let mut st = self.shared.lock();
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.dropped = true;
            if s.recv_fin || s.reset.is_some() {
                st.streams.remove(&self.id);
            }
        }
        drop(st);
        // A reader blocked on this stream's full buffer must go on.
        self.shared.space.notify_waiters();
    }
}

impl AsyncRead for SpdyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shared = &this.shared;
        let mut st = shared.lock();
        let closed = st.closed;
        // See `SessionConfig::always_send_window_updates`.
        let flow_control = shared.config.always_send_window_updates
            || st.enforce_send_window
            || shared.config.send_settings;
        let Some(s) = st.streams.get_mut(&this.id) else {
            return Poll::Ready(Ok(()));
        };
        if let Some(chunk) = s.recv.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk.split_to(n));
            if chunk.is_empty() {
                s.recv.pop_front();
            }
            s.recv_len -= n;
            if flow_control {
                s.recv_unacked += n as u32;
            }
            let mut updates = Vec::new();
            if flow_control && s.recv_unacked >= DEFAULT_WINDOW / 2 && !s.recv_fin {
                updates.push(Frame::WindowUpdate {
                    stream_id: this.id,
                    delta: s.recv_unacked,
                });
                s.recv_unacked = 0;
            }
            if flow_control {
                st.session_recv_unacked += n as u32;
            }
            if flow_control && st.session_recv_unacked >= DEFAULT_WINDOW / 2 {
                updates.push(Frame::WindowUpdate {
                    stream_id: 0,
                    delta: st.session_recv_unacked,
                });
                st.session_recv_unacked = 0;
            }
            drop(st);
            for f in updates {
                shared.send_ctrl(f);
            }
            shared.space.notify_waiters();
            return Poll::Ready(Ok(()));
        }
        if let Some(status) = s.reset {
            if status == rst::CANCEL {
                return Poll::Ready(Ok(()));
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("SPDY stream {} reset (status {status})", this.id),
            )));
        }
        if s.recv_fin || closed {
            return Poll::Ready(Ok(()));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for SpdyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &this.shared;
        let mut st = shared.lock();
        let broken = |what: &str| {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                what.to_owned(),
            )))
        };
        if st.closed || st.closing {
            return broken("SPDY session closed");
        }
        if st.queued_bytes >= shared.config.max_queued_bytes {
            st.queue_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        let enforce = st.enforce_send_window;
        let session_window = st.session_send_window;
        let Some(s) = st.streams.get_mut(&this.id) else {
            return broken("SPDY stream closed");
        };
        if s.reset.is_some() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("SPDY stream {} reset", this.id),
            )));
        }
        if s.local_fin {
            return broken("write after FIN on SPDY stream");
        }
        let mut n = buf.len().min(MAX_DATA_CHUNK);
        if enforce {
            if s.send_window <= 0 {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if session_window <= 0 {
                st.window_waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(s.send_window as usize).min(session_window as usize);
        }
        s.send_window -= n as i64;
        st.session_send_window -= n as i64;
        st.queued_bytes += n;
        let _ = shared.data_tx.send(WriterMsg::Frame(Frame::Data {
            stream_id: this.id,
            flags: 0,
            data: Bytes::copy_from_slice(&buf[..n]),
        }));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fin();
        Poll::Ready(Ok(()))
    }
}

async fn writer<W>(
    mut out: FramedWrite<W, SpdyCodec>,
    mut ctrl_rx: mpsc::UnboundedReceiver<Frame>,
    mut data_rx: mpsc::UnboundedReceiver<WriterMsg>,
    shared: std::sync::Weak<Shared>,
) where
    W: AsyncWrite + Unpin,
{
    let mut closing = false;
    let result: Result<(), FrameError> = async {
        loop {
            let msg = tokio::select! {
                biased;
                Some(f) = ctrl_rx.recv() => WriterMsg::Frame(f),
                m = data_rx.recv() => match m {
                    Some(m) => m,
                    None => return Ok(()),
                },
            };
            let mut batch = vec![msg];
            while batch.len() < 64 {
                match ctrl_rx.try_recv() {
                    Ok(f) => batch.push(WriterMsg::Frame(f)),
                    Err(_) => match data_rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    },
                }
            }
            let mut released = 0;
            for m in batch {
                match m {
                    WriterMsg::Frame(f) => {
                        if let Frame::Data { data, .. } = &f {
                            released += data.len();
                        }
                        out.feed(f).await?;
                    }
                    WriterMsg::Close => {
                        closing = true;
                        let last = shared
                            .upgrade()
                            .map(|s| s.lock().last_peer_stream_id)
                            .unwrap_or(0);
                        out.feed(Frame::GoAway {
                            last_good_stream_id: last,
                            status: goaway::OK,
                        })
                        .await?;
                        break;
                    }
                }
            }
            out.flush().await?;
            if released > 0
                && let Some(s) = shared.upgrade()
            {
                let mut st = s.lock();
                st.queued_bytes = st.queued_bytes.saturating_sub(released);
                for w in st.queue_waiters.drain(..) {
                    w.wake();
                }
            }
            if closing {
                let _ = out.get_mut().shutdown().await;
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "SPDY writer stopped");
    }
    if let Some(s) = shared.upgrade() {
        s.terminate();
    }
}

use tokio::io::AsyncWriteExt as _;

async fn reader<R>(
    mut input: FramedRead<R, SpdyCodec>,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedSender<SpdyStream>,
) where
    R: AsyncRead + Unpin,
{
    let mut incoming = Some(incoming);
    loop {
        let frame = match input.next().await {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "SPDY read error");
                shared.send_ctrl(Frame::GoAway {
                    last_good_stream_id: shared.lock().last_peer_stream_id,
                    status: goaway::PROTOCOL_ERROR,
                });
                break;
            }
            None => break,
        };
        if let Err(e) = dispatch(&shared, frame, &mut incoming).await {
            tracing::debug!(error = %e, "SPDY session error");
            break;
        }
    }
    drop(incoming);
    shared.terminate();
    shared.close();
}

async fn dispatch(
    shared: &Arc<Shared>,
    frame: Frame,
    incoming: &mut Option<mpsc::UnboundedSender<SpdyStream>>,
) -> Result<(), SessionError> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let peer_parity = if shared.role == Role::Server { 1 } else { 0 };
            let mut st = shared.lock();
            if stream_id == 0 || stream_id % 2 != peer_parity || stream_id <= st.last_peer_stream_id
            {
                drop(st);
                shared.send_ctrl(Frame::RstStream {
                    stream_id,
                    status: rst::PROTOCOL_ERROR,
                });
                return Ok(());
            }
            st.last_peer_stream_id = stream_id;
            if st.closing || incoming.is_none() {
                drop(st);
                shared.send_ctrl(Frame::RstStream {
                    stream_id,
                    status: rst::REFUSED_STREAM,
                });
                return Ok(());
            }
            let window = st.initial_send_window;
            st.streams.insert(
                stream_id,
                StreamState {
                    send_window: window,
                    recv_fin: flags & FLAG_FIN != 0,
                    local_fin: flags & FLAG_UNIDIRECTIONAL != 0,
                    ..Default::default()
                },
            );
            drop(st);
            shared.send_ctrl(Frame::SynReply {
                stream_id,
                flags: 0,
                headers: Headers::new(),
            });
            let stream = SpdyStream {
                id: stream_id,
                headers,
                shared: shared.clone(),
            };
            if let Some(tx) = incoming
                && tx.send(stream).is_err()
            {
                *incoming = None;
            }
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let mut st = shared.lock();
            if let Some(s) = st.streams.get_mut(&stream_id) {
                if flags & FLAG_FIN != 0 {
                    s.recv_fin = true;
                    s.wake();
                }
                if let Some(r) = s.reply.take() {
                    let _ = r.send(Ok(headers));
                }
            }
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let mut st = shared.lock();
            if let Some(s) = st.streams.get_mut(&stream_id) {
                s.extra_headers.0.extend(headers.0);
                if flags & FLAG_FIN != 0 {
                    s.recv_fin = true;
                    s.wake();
                }
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => loop {
            let space = shared.space.notified();
            {
                let mut st = shared.lock();
                let limit = shared.config.max_buffered_per_stream;
                let Some(s) = st.streams.get_mut(&stream_id) else {
                    if st.closed {
                        return Err(SessionError::Closed);
                    }
                    // Data for a stream we never had or already dropped.
                    break;
                };
                if s.reset.is_some() || s.dropped {
                    if s.dropped && flags & FLAG_FIN != 0 {
                        st.streams.remove(&stream_id);
                    }
                    break;
                }
                if s.recv_fin {
                    drop(st);
                    shared.send_ctrl(Frame::RstStream {
                        stream_id,
                        status: rst::STREAM_ALREADY_CLOSED,
                    });
                    break;
                }
                if s.recv_len < limit || data.is_empty() {
                    if !data.is_empty() {
                        s.recv_len += data.len();
                        s.recv.push_back(data);
                    }
                    if flags & FLAG_FIN != 0 {
                        s.recv_fin = true;
                    }
                    if let Some(w) = s.read_waker.take() {
                        w.wake();
                    }
                    break;
                }
            }
            space.await;
        },
        Frame::RstStream { stream_id, status } => {
            let mut st = shared.lock();
            if let Some(s) = st.streams.get_mut(&stream_id) {
                s.reset = Some(status);
                s.local_fin = true;
                if let Some(r) = s.reply.take() {
                    let _ = r.send(Err(SessionError::Reset(status)));
                }
                s.wake();
                if s.dropped {
                    st.streams.remove(&stream_id);
                }
            }
        }
        Frame::Settings { entries, .. } => {
            let mut st = shared.lock();
            for e in entries {
                if e.id == settings::INITIAL_WINDOW_SIZE {
                    let delta = e.value as i64 - st.initial_send_window;
                    st.initial_send_window = e.value as i64;
                    st.enforce_send_window = true;
                    for s in st.streams.values_mut() {
                        s.send_window += delta;
                        s.wake();
                    }
                }
            }
        }
        Frame::Ping { id } => {
            let ours = if shared.role == Role::Client { 1 } else { 0 };
            if id % 2 == ours {
                if let Some(tx) = shared.lock().pings.remove(&id) {
                    let _ = tx.send(());
                }
            } else {
                shared.send_ctrl(Frame::Ping { id });
            }
        }
        Frame::GoAway { .. } => {
            shared.lock().goaway_received = true;
            *incoming = None;
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut st = shared.lock();
            st.enforce_send_window = true;
            if stream_id == 0 {
                st.session_send_window += delta as i64;
                for w in st.window_waiters.drain(..) {
                    w.wake();
                }
            } else if let Some(s) = st.streams.get_mut(&stream_id) {
                s.send_window += delta as i64;
                if let Some(w) = s.write_waker.take() {
                    w.wake();
                }
            }
        }
        Frame::Unknown { .. } => {}
    }
    Ok(())
}
