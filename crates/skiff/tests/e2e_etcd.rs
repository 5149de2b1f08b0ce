#![allow(clippy::unwrap_used)]
//! The core acceptance suite again, with skiff's store on a real etcd
//! (`--datastore-endpoint http://127.0.0.1:PORT`).

mod common;

#[test]
fn etcd_create_get_and_describe_a_multi_document_app() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::create_get_describe(&c);
}

#[test]
fn etcd_delete_with_every_cascade_mode() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::delete_with_cascade(&c);
}

#[test]
fn etcd_get_watch_sees_added_modified_deleted_in_order() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::watch_sees_changes_in_order(&c);
}

#[test]
fn etcd_watch_from_an_old_resource_version_replays() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::watch_replays_from_resource_version(&c);
}

#[test]
fn etcd_label_annotate_scale_replace_wait_and_graceful_delete() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::everyday_verbs(&c);
}

#[test]
fn etcd_concurrent_kubectl_replace_with_one_resource_version() {
    let (_etcd, c) = common::etcd_cluster();
    common::suite::concurrent_replace_conflicts(&c);
}
