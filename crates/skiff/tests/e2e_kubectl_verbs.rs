#![allow(clippy::unwrap_used)]
//! label, annotate, scale, replace, wait and delete --grace-period with
//! kubectl 1.27 and 1.33.

mod common;

#[test]
fn label_annotate_scale_replace_wait_and_graceful_delete() {
    let c = common::cluster();
    common::suite::everyday_verbs(&c);
}
