//! CustomResourceDefinitions: what a definition makes the server serve
//! (`served`), and the controller that keeps the resource table, the
//! OpenAPI documents and each definition's status in step with the stored
//! definitions (`controller`).

mod controller;
pub mod printing;
mod served;

pub use controller::{run, sync};
pub use served::CustomInfo;

/// The finalizer that holds a definition until its objects are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
