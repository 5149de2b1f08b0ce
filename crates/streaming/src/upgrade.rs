//! Negotiating the upgraded connection of an exec/attach/port-forward
//! request: SPDY/3.1 (`Upgrade: SPDY/3.1` + `X-Stream-Protocol-Version`) or
//! WebSocket (`Upgrade: websocket` + `Sec-WebSocket-Protocol`), and the
//! `101 Switching Protocols` response.
//!
//! The caller keeps the HTTP side: it takes `hyper::upgrade::on(&mut req)`
//! before answering with [`Upgrade::response`], then hands the upgraded
//! connection ([`upgraded`]) to [`crate::remotecommand::accept`] or
//! [`crate::portforward::accept`].

use http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue, UPGRADE};
use http::{Response, StatusCode};

/// `X-Stream-Protocol-Version`: the SPDY subprotocol, one value per line.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// remotecommand protocol names.
pub const V1: &str = "channel.k8s.io";
pub const V2: &str = "v2.channel.k8s.io";
pub const V3: &str = "v3.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const V5: &str = "v5.channel.k8s.io";
/// WebSocket channel framing with base64 text messages.
pub const BASE64_V1: &str = "base64.channel.k8s.io";
pub const BASE64_V4: &str = "v4.base64.channel.k8s.io";
/// The SPDY port-forward protocol.
pub const PORT_FORWARD: &str = "portforward.k8s.io";
/// SPDY tunnelled in WebSocket binary messages (kubectl 1.31+ port-forward).
pub const SPDY_TUNNEL_PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// What the request asks to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// exec and attach.
    RemoteCommand,
    PortForward,
}

/// The transport of the upgraded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Spdy,
    /// WebSocket with channel framing (first byte of a message = channel).
    WebSocket,
    /// WebSocket whose binary messages carry a SPDY/3.1 byte stream.
    WebSocketSpdyTunnel,
}

/// The remotecommand protocol generation (what the error channel carries,
/// whether resize and CLOSE exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RemoteCommandVersion {
    /// `channel.k8s.io` (or no protocol): errors as plain text.
    V1,
    /// `v2.channel.k8s.io`: an error stream always exists.
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries a `metav1.Status`.
    V4,
    /// `v5.channel.k8s.io` (WebSocket): adds CLOSE (channel 255).
    V5,
}

/// The chosen transport and subprotocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub operation: Operation,
    pub transport: Transport,
    /// The negotiated subprotocol; empty when the client named none.
    pub protocol: String,
    websocket_accept: Option<String>,
}

/// The request cannot be upgraded; answer with `status` and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpgradeError {
    pub status: StatusCode,
    pub message: String,
}

/// Subprotocols we accept over SPDY, in upstream's order (the kubelet's
/// SPDY server stops at v4: v5 is for WebSocket; kubectl 1.28+ offers v5
/// first and v4 next, and gets v4, as from upstream).
pub fn spdy_protocols(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::RemoteCommand => &[V4, V3, V2, V1],
        Operation::PortForward => &[PORT_FORWARD],
    }
}

/// Subprotocols we accept over WebSocket.
pub fn websocket_protocols(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::RemoteCommand => &[V5, V4, BASE64_V4, V1, BASE64_V1],
        Operation::PortForward => &[SPDY_TUNNEL_PORT_FORWARD, V4, BASE64_V4, PORT_FORWARD],
    }
}

fn header_tokens(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Vec<&str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    header_tokens(headers, name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// The first protocol of the client's list that the server accepts (the
/// client's preference wins, as upstream's handshake does).
fn pick(client: &[&str], server: &[&str]) -> Option<String> {
    client
        .iter()
        .find(|c| server.contains(c))
        .map(|s| (*s).to_owned())
}

/// Reads an upgrade request and picks transport and subprotocol.
pub fn negotiate(op: Operation, headers: &HeaderMap) -> Result<Upgrade, UpgradeError> {
    let upgrade = header_tokens(headers, UPGRADE);
    let connection_upgrade = has_token(headers, CONNECTION, "upgrade");
    let forbidden = |client: &[&str], server: &[&str]| UpgradeError {
        status: StatusCode::FORBIDDEN,
        message: format!(
            "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}"
        ),
    };
    if !connection_upgrade || upgrade.is_empty() {
        return Err(UpgradeError {
            status: StatusCode::BAD_REQUEST,
            message: "unable to upgrade: missing upgrade headers in request".into(),
        });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let Some(key) = headers.get("sec-websocket-key") else {
            return Err(UpgradeError {
                status: StatusCode::BAD_REQUEST,
                message: "unable to upgrade: missing Sec-WebSocket-Key".into(),
            });
        };
        let client = header_tokens(headers, "sec-websocket-protocol");
        let server = websocket_protocols(op);
        let protocol = if client.is_empty() {
            // No subprotocol: upstream's default channel protocol.
            String::new()
        } else {
            pick(&client, server).ok_or_else(|| forbidden(&client, server))?
        };
        let transport = if protocol == SPDY_TUNNEL_PORT_FORWARD {
            Transport::WebSocketSpdyTunnel
        } else {
            Transport::WebSocket
        };
        return Ok(Upgrade {
            operation: op,
            transport,
            protocol,
            websocket_accept: Some(
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
            ),
        });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let client = header_tokens(headers, STREAM_PROTOCOL_HEADER);
        let server = spdy_protocols(op);
        let protocol = if client.is_empty() {
            String::new()
        } else {
            pick(&client, server).ok_or_else(|| forbidden(&client, server))?
        };
        return Ok(Upgrade {
            operation: op,
            transport: Transport::Spdy,
            protocol,
            websocket_accept: None,
        });
    }
    Err(UpgradeError {
        status: StatusCode::BAD_REQUEST,
        message: format!(
            "unable to upgrade: unsupported protocol {upgrade:?}; expected SPDY/3.1 or websocket"
        ),
    })
}

impl Upgrade {
    /// The remotecommand generation of the negotiated protocol.
    pub fn remote_command_version(&self) -> RemoteCommandVersion {
        match self.protocol.as_str() {
            V5 => RemoteCommandVersion::V5,
            V4 | BASE64_V4 => RemoteCommandVersion::V4,
            V3 => RemoteCommandVersion::V3,
            V2 => RemoteCommandVersion::V2,
            _ => RemoteCommandVersion::V1,
        }
    }

    /// Whether WebSocket channel messages are base64 text.
    pub fn base64(&self) -> bool {
        matches!(self.protocol.as_str(), BASE64_V1 | BASE64_V4)
    }

    /// The headers of the 101 response.
    pub fn response_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        match self.transport {
            Transport::Spdy => {
                h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
                if let Ok(v) = HeaderValue::from_str(&self.protocol)
                    && !self.protocol.is_empty()
                {
                    h.insert(STREAM_PROTOCOL_HEADER, v);
                }
            }
            Transport::WebSocket | Transport::WebSocketSpdyTunnel => {
                h.insert(UPGRADE, HeaderValue::from_static("websocket"));
                if let Some(v) = self
                    .websocket_accept
                    .as_deref()
                    .and_then(|a| HeaderValue::from_str(a).ok())
                {
                    h.insert("sec-websocket-accept", v);
                }
                if let Ok(v) = HeaderValue::from_str(&self.protocol)
                    && !self.protocol.is_empty()
                {
                    h.insert("sec-websocket-protocol", v);
                }
            }
        }
        h
    }

    /// The `101 Switching Protocols` response.
    pub fn response<B: Default>(&self) -> Response<B> {
        let mut r = Response::new(B::default());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *r.headers_mut() = self.response_headers();
        r
    }
}

/// Waits for hyper to hand over the upgraded connection (after the 101
/// response went out) as a tokio byte stream.
pub async fn upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
) -> Result<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>, hyper::Error> {
    Ok(hyper_util::rt::TokioIo::new(on_upgrade.await?))
}
