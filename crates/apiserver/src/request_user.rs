//! Who is asking, for the registry's admission steps that depend on it
//! (a CSR records its requester; NodeRestriction limits kubelets) — the
//! counterpart of upstream's user in the request context, without
//! threading it through every registry call.

use std::future::Future;

use crate::tls::UserInfo;

tokio::task_local! {
    static USER: UserInfo;
}

/// Runs `f` as a request of `user`.
pub async fn scope<F: Future>(user: UserInfo, f: F) -> F::Output {
    USER.scope(user, f).await
}

/// The user of the request being served; `None` for the server's own
/// writes (bootstrap, controllers inside the API server).
pub fn current() -> Option<UserInfo> {
    USER.try_with(Clone::clone).ok()
}
