//! An API server in this process (`skiff_apiserver::testing`).
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub use skiff_apiserver::testing::{Running, start};
use tokio_util::sync::CancellationToken;

/// What the root CA publisher publishes in these tests.
pub const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n";

/// The controller manager (leader election on, quick resync) against
/// `client` until the returned token is cancelled.
pub fn start_controllers(client: kube::Client) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = skiff_controllers::Config::new(client);
    config.garbage_collector.resync = std::time::Duration::from_secs(1);
    config.garbage_collector.rediscover = std::time::Duration::from_secs(2);
    config.root_ca = Some(TEST_CA.to_owned());
    let token = CancellationToken::new();
    let task = tokio::spawn({
        let token = token.clone();
        async move {
            skiff_controllers::run(config, token).await.unwrap();
        }
    });
    (token, task)
}

/// Polls `check` every 50 ms for up to 15 s; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
