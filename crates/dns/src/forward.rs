//! Forwarding of everything outside the cluster domain to the upstream
//! resolvers, with a small TTL cache so that repeated lookups of popular
//! external names (the bulk of a cluster's traffic) stay local.
//!
//! Queries go over UDP (retried over TCP when the answer is truncated) to
//! each upstream in turn until one answers; SERVFAIL moves on to the next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// How long a negative answer without an SOA is cached.
const NEGATIVE_TTL: u32 = 5;

/// At most this many cached answers; past it expired ones are dropped,
/// and if that is not enough, all.
const CACHE_CAPACITY: usize = 10_000;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    #[error("upstream {0} timed out")]
    Timeout(SocketAddr),
    #[error("upstream {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("upstream {0} sent a malformed answer: {1}")]
    Malformed(SocketAddr, hickory_proto::ProtoError),
    #[error("encoding the query: {0}")]
    Encode(hickory_proto::ProtoError),
    #[error("upstream {0} answered {1}")]
    Failed(SocketAddr, ResponseCode),
}

/// An upstream answer, as relayed to the client.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
}

struct Cached {
    answer: Forwarded,
    stored: Instant,
    expires: Instant,
}

/// Upstream resolvers plus the answer cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    max_ttl: u32,
    cache: Mutex<HashMap<(String, RecordType), Cached>>,
}

/// What the cache did for a query (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

impl Forwarder {
    /// Asks `upstreams` in order, waiting `timeout` for each; answers are
    /// cached for their TTL, at most `max_ttl` seconds.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, max_ttl: u32) -> Forwarder {
        Forwarder {
            upstreams,
            timeout,
            max_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves `query` upstream, or from the cache.
    pub async fn resolve(&self, query: &Query) -> Result<(Forwarded, CacheOutcome), ForwardError> {
        let key = (
            query.name().to_ascii().to_ascii_lowercase(),
            query.query_type(),
        );
        if let Some(hit) = self.cached(&key) {
            return Ok((hit, CacheOutcome::Hit));
        }
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let mut last = None;
        for upstream in &self.upstreams {
            match self.ask(*upstream, query).await {
                Ok(answer) => {
                    self.store(key, &answer);
                    return Ok((answer, CacheOutcome::Miss));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "forwarding failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ForwardError::NoUpstreams))
    }

    fn cached(&self, key: &(String, RecordType)) -> Option<Forwarded> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(key)?;
        let now = Instant::now();
        if now >= entry.expires {
            return None;
        }
        let elapsed = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let mut answer = entry.answer.clone();
        for r in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authority)
            .chain(&mut answer.additionals)
        {
            r.set_ttl(r.ttl().saturating_sub(elapsed).max(1));
        }
        Some(answer)
    }

    fn store(&self, key: (String, RecordType), answer: &Forwarded) {
        let Some(ttl) = cache_ttl(answer).map(|t| t.min(self.max_ttl)) else {
            return;
        };
        if ttl == 0 {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        let mut answer = answer.clone();
        for r in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authority)
            .chain(&mut answer.additionals)
        {
            r.set_ttl(r.ttl().min(self.max_ttl));
        }
        cache.insert(
            key,
            Cached {
                answer,
                stored: now,
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }

    async fn ask(&self, upstream: SocketAddr, query: &Query) -> Result<Forwarded, ForwardError> {
        let id: u16 = rand::random();
        let mut request = Message::new();
        request
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        request.set_edns(edns);
        let bytes = request.to_vec().map_err(ForwardError::Encode)?;
        let response = tokio::time::timeout(self.timeout, async {
            let response = self.ask_udp(upstream, id, &bytes).await?;
            if response.truncated() {
                self.ask_tcp(upstream, &bytes).await
            } else {
                Ok(response)
            }
        })
        .await
        .map_err(|_| ForwardError::Timeout(upstream))??;
        let rcode = response.response_code();
        if rcode == ResponseCode::ServFail || rcode == ResponseCode::Refused {
            return Err(ForwardError::Failed(upstream, rcode));
        }
        let mut response = response;
        Ok(Forwarded {
            rcode,
            answers: response.take_answers(),
            authority: response.take_name_servers(),
            additionals: response.take_additionals(),
        })
    }

    async fn ask_udp(
        &self,
        upstream: SocketAddr,
        id: u16,
        bytes: &[u8],
    ) -> Result<Message, ForwardError> {
        let io = |e| ForwardError::Io(upstream, e);
        let local: SocketAddr = if upstream.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(upstream).await.map_err(io)?;
        socket.send(bytes).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await.map_err(io)?;
            // Stray datagrams (wrong id) are ignored, as a stub resolver does.
            if let Ok(message) = Message::from_vec(&buf[..n])
                && message.id() == id
                && message.message_type() == MessageType::Response
            {
                return Ok(message);
            }
        }
    }

    async fn ask_tcp(&self, upstream: SocketAddr, bytes: &[u8]) -> Result<Message, ForwardError> {
        let io = |e| ForwardError::Io(upstream, e);
        let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await.map_err(io)?;
        let len = stream.read_u16().await.map_err(io)?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.map_err(io)?;
        Message::from_vec(&buf).map_err(|e| ForwardError::Malformed(upstream, e))
    }
}

/// How long an answer may be cached: the least TTL of its answers, or
/// for a negative answer the SOA's (RFC 2308); `None` when it must not be.
fn cache_ttl(answer: &Forwarded) -> Option<u32> {
    match answer.rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => return None,
    }
    if let Some(min) = answer.answers.iter().map(Record::ttl).min() {
        return Some(min);
    }
    let soa = answer.authority.iter().find_map(|r| match r.data() {
        RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
        _ => None,
    });
    Some(soa.unwrap_or(NEGATIVE_TTL))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::Ipv4Addr;
    use std::str::FromStr as _;

    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn a(ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_str("x.example.").unwrap(),
            ttl,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        )
    }

    #[test]
    fn cache_ttls() {
        let mut f = Forwarded {
            rcode: ResponseCode::NoError,
            answers: vec![a(300), a(20)],
            authority: vec![],
            additionals: vec![],
        };
        assert_eq!(cache_ttl(&f), Some(20));
        f.answers.clear();
        assert_eq!(cache_ttl(&f), Some(NEGATIVE_TTL));
        let soa = SOA::new(Name::root(), Name::root(), 1, 1, 1, 1, 60);
        f.authority = vec![Record::from_rdata(Name::root(), 900, RData::SOA(soa))];
        f.rcode = ResponseCode::NXDomain;
        assert_eq!(cache_ttl(&f), Some(60));
        f.rcode = ResponseCode::ServFail;
        assert_eq!(cache_ttl(&f), None);
    }

    #[test]
    fn cache_hits_age_ttls() {
        let fwd = Forwarder::new(vec![], Duration::from_secs(1), 30);
        let q = Query::query(Name::from_str("X.example.").unwrap(), RecordType::A);
        let key = (q.name().to_ascii().to_ascii_lowercase(), RecordType::A);
        fwd.store(
            key.clone(),
            &Forwarded {
                rcode: ResponseCode::NoError,
                answers: vec![a(300)],
                authority: vec![],
                additionals: vec![],
            },
        );
        let hit = fwd.cached(&key).unwrap();
        assert!(hit.answers[0].ttl() <= 30, "capped at max_ttl");
        assert!(fwd.cached(&("other.".to_owned(), RecordType::A)).is_none());
    }

    /// A fake upstream on loopback: `rcode` and, for NOERROR, `x.example.`
    /// A 127.0.0.1 (TTL 60); over UDP the answer is only the truncated
    /// header when `truncate`, over TCP always whole.
    async fn fake(rcode: ResponseCode, truncate: bool) -> SocketAddr {
        // UDP and TCP on one port: another test may hold the TCP side of
        // a free UDP port, so try again on another.
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let answer = move |request: &Message, truncated: bool| {
            let mut m = Message::new();
            m.set_id(request.id())
                .set_message_type(MessageType::Response)
                .set_response_code(rcode)
                .add_queries(request.queries().to_vec());
            if truncated {
                m.set_truncated(true);
            } else if rcode == ResponseCode::NoError {
                m.add_answer(a(60));
            }
            m.to_vec().unwrap()
        };
        tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let request = Message::from_vec(&buf[..n]).unwrap();
                let _ = udp.send_to(&answer(&request, truncate), from).await;
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let len = s.read_u16().await.unwrap();
                let mut buf = vec![0; usize::from(len)];
                s.read_exact(&mut buf).await.unwrap();
                let out = answer(&Message::from_vec(&buf).unwrap(), false);
                s.write_all(&(out.len() as u16).to_be_bytes())
                    .await
                    .unwrap();
                s.write_all(&out).await.unwrap();
            }
        });
        addr
    }

    fn query() -> Query {
        Query::query(Name::from_str("x.example.").unwrap(), RecordType::A)
    }

    #[tokio::test]
    async fn truncated_answers_are_asked_again_over_tcp() {
        let upstream = fake(ResponseCode::NoError, true).await;
        let fwd = Forwarder::new(vec![upstream], Duration::from_secs(5), 30);
        let (answer, outcome) = fwd.resolve(&query()).await.unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
        assert_eq!(answer.answers.len(), 1);
        let (_, outcome) = fwd.resolve(&query()).await.unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }

    #[tokio::test]
    async fn failing_and_silent_upstreams_are_skipped() {
        let failing = fake(ResponseCode::ServFail, false).await;
        // bound but never answering
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let good = fake(ResponseCode::NoError, false).await;
        let fwd = Forwarder::new(
            vec![failing, silent.local_addr().unwrap(), good],
            Duration::from_millis(300),
            30,
        );
        let (answer, _) = fwd.resolve(&query()).await.unwrap();
        assert_eq!(answer.rcode, ResponseCode::NoError);
        assert_eq!(answer.answers.len(), 1);
        let fwd = Forwarder::new(vec![failing], Duration::from_millis(300), 30);
        assert!(matches!(
            fwd.resolve(&query()).await,
            Err(ForwardError::Failed(_, ResponseCode::ServFail))
        ));
        let fwd = Forwarder::new(vec![], Duration::from_millis(300), 30);
        assert!(matches!(
            fwd.resolve(&query()).await,
            Err(ForwardError::NoUpstreams)
        ));
    }
}
