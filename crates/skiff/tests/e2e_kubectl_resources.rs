#![allow(clippy::unwrap_used)]
//! Everyday object work with kubectl 1.27 and 1.33: `create -f` of a
//! multi-document YAML, `get` in every output format, `get all`, `get -A`,
//! `describe`, and `delete --cascade`.

mod common;

#[test]
fn create_get_and_describe_a_multi_document_app() {
    let c = common::cluster();
    common::suite::create_get_describe(&c);
}

#[test]
fn delete_with_every_cascade_mode() {
    let c = common::cluster();
    common::suite::delete_with_cascade(&c);
}
