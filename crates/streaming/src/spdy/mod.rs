//! SPDY/3.1, as Kubernetes uses it for exec/attach/port-forward: frames and
//! header compression ([`frame`]), the preset dictionary ([`dictionary`])
//! and a session with streams and flow control ([`session`]).

pub mod dictionary;
pub mod frame;
pub mod session;

pub use frame::{Frame, FrameError, Headers, SpdyCodec};
pub use session::{Role, Session, SessionCloser, SessionConfig, SessionError, SpdyStream};
