//! One query in, one response out: the cluster index answers what it
//! owns (authoritatively), everything else goes to the [`Forwarder`].

use std::sync::{Arc, RwLock};
use std::time::Instant;

use hickory_proto::op::{Edns, Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use crate::forward::{CacheOutcome, Forwarder};
use crate::index::{Answer, Index};
use crate::metrics::{Metrics, Source};

/// The index in use; replaced whole when the cluster changes, so a query
/// holds the read lock only to clone the `Arc`.
pub type SharedIndex = Arc<RwLock<Arc<Index>>>;

/// The response to send, before it is encoded.
struct Response {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
    source: Source,
}

impl Response {
    fn rcode(rcode: ResponseCode, source: Source) -> Response {
        Response {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            source,
        }
    }
}

/// The hickory request handler of the cluster DNS.
pub struct Handler {
    pub index: SharedIndex,
    pub forwarder: Arc<Forwarder>,
    pub metrics: Arc<Metrics>,
}

impl Handler {
    fn current(&self) -> Arc<Index> {
        match self.index.read() {
            Ok(index) => index.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn answer(&self, query: &Query) -> Response {
        if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            return Response::rcode(ResponseCode::Refused, Source::Cluster);
        }
        let index = self.current();
        let negative = |rcode| Response {
            authoritative: true,
            authority: vec![index.soa().clone()],
            ..Response::rcode(rcode, Source::Cluster)
        };
        match index.lookup(query.name(), query.query_type()) {
            Answer::Records {
                answers,
                additionals,
            } => Response {
                authoritative: true,
                answers,
                additionals,
                ..Response::rcode(ResponseCode::NoError, Source::Cluster)
            },
            Answer::NoData => negative(ResponseCode::NoError),
            Answer::NxDomain => negative(ResponseCode::NXDomain),
            Answer::ExternalCname { cname, target } => {
                let mut response = Response {
                    authoritative: true,
                    answers: vec![*cname],
                    ..Response::rcode(ResponseCode::NoError, Source::Cluster)
                };
                let chase = Query::query(target, query.query_type());
                if let Ok((upstream, _)) = self.forwarder.resolve(&chase).await {
                    response.answers.extend(upstream.answers);
                    if upstream.rcode == ResponseCode::NXDomain {
                        response.rcode = ResponseCode::NXDomain;
                    }
                }
                response
            }
            Answer::Forward => match self.forwarder.resolve(query).await {
                Ok((upstream, outcome)) => Response {
                    rcode: upstream.rcode,
                    authoritative: false,
                    answers: upstream.answers,
                    authority: upstream.authority,
                    additionals: upstream.additionals,
                    source: match outcome {
                        CacheOutcome::Hit => Source::Cache,
                        CacheOutcome::Miss => Source::Upstream,
                    },
                },
                Err(error) => {
                    tracing::debug!(%error, name = %query.name(), "forwarding failed");
                    self.metrics.forward_failed();
                    Response::rcode(ResponseCode::ServFail, Source::Upstream)
                }
            },
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(req_edns) = request.edns() {
            let mut edns = Edns::new();
            edns.set_max_payload(req_edns.max_payload().max(512));
            edns.set_version(0);
            builder.edns(edns);
        }
        let (response, qtype) = match (request.message_type(), request.op_code()) {
            (MessageType::Query, OpCode::Query) => match request.request_info() {
                Ok(info) => {
                    let query = info.query.original();
                    (self.answer(query).await, query.query_type())
                }
                Err(_) => (
                    Response::rcode(ResponseCode::FormErr, Source::Cluster),
                    RecordType::Unknown(0),
                ),
            },
            _ => (
                Response::rcode(ResponseCode::NotImp, Source::Cluster),
                RecordType::Unknown(0),
            ),
        };
        let mut header = Header::response_from_request(request.header());
        header.set_response_code(response.rcode);
        header.set_authoritative(response.authoritative);
        header.set_recursion_available(true);
        let message = builder.build(
            header,
            response.answers.iter(),
            response.authority.iter(),
            std::iter::empty(),
            response.additionals.iter(),
        );
        let info = match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a DNS response failed");
                let mut header = Header::response_from_request(request.header());
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        };
        self.metrics
            .query(qtype, response.rcode, response.source, started.elapsed());
        info
    }
}
