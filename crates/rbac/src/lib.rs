//! Kubernetes RBAC evaluation for skiff's API server.
//!
//! Pure library (no I/O, no async): the API server feeds Roles, ClusterRoles
//! and their bindings into a [`Policy`] from its watch cache and asks it to
//! [`Policy::authorize`] each request. The semantics follow upstream's RBAC
//! authorizer (`plugin/pkg/auth/authorizer/rbac`), rule resolver and
//! escalation checks (`pkg/registry/rbac/validation`), the ClusterRole
//! aggregation controller, and the bootstrap policy.
//!
//! ```
//! use skiff_rbac::{Attributes, Policy, UserInfo, bootstrap_policy, forbidden_status_message};
//!
//! let mut policy = Policy::new();
//! for obj in bootstrap_policy() {
//!     policy.upsert_object(&obj).expect("bootstrap objects are valid");
//! }
//! let bob = UserInfo::new("bob", &["system:authenticated"]);
//! let req = Attributes::resource(bob, "delete", "", "pods").in_namespace("default").named("web");
//! let decision = policy.authorize(&req);
//! assert!(!decision.is_allowed());
//! assert_eq!(
//!     forbidden_status_message(&req, decision.reason()),
//!     r#"pods "web" is forbidden: User "bob" cannot delete resource "pods" in API group "" in the namespace "default""#,
//! );
//! ```

mod aggregate;
mod attributes;
mod bootstrap;
mod error;
mod escalation;
mod grant;
mod messages;
mod objects;
mod policy;
mod quote;
mod rule;
mod selector;
mod user;

pub use aggregate::aggregate;
pub use attributes::Attributes;
pub use bootstrap::{
    AUTOUPDATE_ANNOTATION, BOOTSTRAP_LABEL, bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles, bootstrap_policy,
};
pub use error::PolicyError;
pub use escalation::{
    EscalationError, PRIVILEGED_GROUP, breakdown_rule, compact_rules, covers, escalation_allowed,
};
pub use grant::{bind_attributes, escalate_attributes};
pub use messages::{forbidden_message, forbidden_status_message};
pub use objects::{RoleRef, Subject};
pub use policy::{Decision, NonResourceRule, Policy, RbacKind, ResourceRule, SubjectRules};
pub use rule::PolicyRule;
pub use selector::{LabelSelector, LabelSelectorRequirement};
pub use user::{UserInfo, service_account_username};
