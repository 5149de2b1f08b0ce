//! The wire protocols of `kubectl exec`, `attach`, `cp` and `port-forward`,
//! server side.
//!
//! kubectl reaches a container's streams over an upgraded HTTP connection:
//! SPDY/3.1 (every version) or WebSocket (1.30+ for exec, 1.31+ for
//! port-forward, which tunnels SPDY inside WebSocket binary messages). This
//! crate speaks both and gives the caller one API per operation:
//!
//! * [`upgrade`] — read the upgrade request, pick transport and protocol,
//!   build the 101 response.
//! * [`remotecommand`] — exec/attach: stdin, stdout, stderr, terminal
//!   resizes, and [`remotecommand::Completion::finish`] with the exit
//!   status kubectl turns into its own exit code.
//! * [`portforward`] — one (data, error) pair per forwarded connection.
//! * [`spdy`] — SPDY/3.1 framing, header compression and sessions (also the
//!   client side, which the tests use to play kubectl).
//! * [`runtime`] — the client side toward a CRI runtime's streaming URLs
//!   (SPDY/3.1 v4 and portforward), and [`relay`], which joins the two.
//! * [`idle`] — the idle timeout of a session (4 h by default, as upstream).
//! * [`websocket`] — the channel framing (`v4/v5.channel.k8s.io`,
//!   `base64.channel.k8s.io`) and the byte tunnel for SPDY over WebSocket.
//!
//! Start with `tests/exec.rs`: each test plays kubectl against the server
//! side over an in-memory pipe.

pub mod idle;
pub mod portforward;
pub mod relay;
pub mod remotecommand;
pub mod runtime;
pub mod spdy;
pub mod upgrade;
pub mod websocket;

/// Errors of accepting a streaming session.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("timed out waiting for the client's streams")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
