//! Who a request runs as, for the admission steps that need it (RBAC
//! escalation checks, webhooks' `userInfo`). It travels with the request
//! as a task-local set by `http.rs` ([`as_user`]), so the registry's
//! signatures stay as they are; writes the server makes itself
//! (bootstrap, its own controllers) run outside any request.

use std::cell::RefCell;
use std::future::Future;

use skiff_rbac::UserInfo;

tokio::task_local! {
    static REQUESTER: UserInfo;
    /// Admission warnings raised where no response is at hand (updates
    /// inside the retry loop), for the response to carry.
    static WARNINGS: RefCell<Vec<String>>;
}

/// Runs a request's registry work as `user`.
pub async fn as_user<F: Future>(user: UserInfo, work: F) -> F::Output {
    REQUESTER
        .scope(user, WARNINGS.scope(RefCell::new(Vec::new()), work))
        .await
}

/// Keeps `warnings` for the response of the request being served (each
/// once, however often an update is retried).
pub fn warn(warnings: Vec<String>) {
    let _ = WARNINGS.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        for w in warnings {
            if !kept.contains(&w) {
                kept.push(w);
            }
        }
    });
}

/// The warnings kept by [`warn`], handed over once.
pub fn take_warnings() -> Vec<String> {
    WARNINGS
        .try_with(|kept| std::mem::take(&mut *kept.borrow_mut()))
        .unwrap_or_default()
}

/// The user of the request being served, if any.
pub fn current() -> Option<UserInfo> {
    REQUESTER.try_with(Clone::clone).ok()
}
