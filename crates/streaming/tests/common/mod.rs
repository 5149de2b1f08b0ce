//! A pretend CRI streaming server (what containerd's Exec/PortForward URLs
//! point at): HTTP/1.1 on loopback, upgraded to SPDY/3.1 and handed to the
//! test's handler.

use std::future::Future;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use skiff_streaming::upgrade::{self, Operation, Upgrade};

pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Serves `op` upgrades on 127.0.0.1:<free port>; returns the URL.
pub async fn runtime_server<F, Fut>(op: Operation, handler: F) -> String
where
    F: Fn(Upgrade, Upgraded, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        assert_eq!(req.method(), http::Method::POST);
                        let up = match upgrade::negotiate(op, req.headers()) {
                            Ok(up) => up,
                            Err(e) => {
                                let mut r = http::Response::new(Empty::<Bytes>::new());
                                *r.status_mut() = e.status;
                                return Ok::<_, std::convert::Infallible>(r);
                            }
                        };
                        let query = req.uri().query().unwrap_or("").to_owned();
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        let response = up.response();
                        tokio::spawn(async move {
                            let io = upgrade::upgraded(on_upgrade).await.expect("upgraded");
                            handler(up, io, query).await;
                        });
                        Ok(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    format!("http://{addr}/stream/token123")
}
