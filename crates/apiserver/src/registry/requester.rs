//! Who a request runs as, for the admission steps that need it (RBAC
//! escalation checks, webhooks' `userInfo`). It travels with the request
//! as a task-local set by `http.rs` ([`as_user`]), so the registry's
//! signatures stay as they are; writes the server makes itself
//! (bootstrap, its own controllers) run outside any request.

use std::future::Future;

use skiff_rbac::UserInfo;

tokio::task_local! {
    static REQUESTER: UserInfo;
}

/// Runs a request's registry work as `user`.
pub async fn as_user<F: Future>(user: UserInfo, work: F) -> F::Output {
    REQUESTER.scope(user, work).await
}

/// The user of the request being served, if any.
pub fn current() -> Option<UserInfo> {
    REQUESTER.try_with(Clone::clone).ok()
}
