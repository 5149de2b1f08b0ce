//! Random bytes never panic the decoder, and deep nesting is refused.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Msg, envelope};
use proptest::prelude::*;
use skiff_protobuf::{ProtobufError, decode};

proptest! {
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&body);
    }

    #[test]
    fn random_payloads_of_known_kinds_never_panic(
        kind in prop::sample::select(vec![
            ("v1", "Pod"), ("apps/v1", "Deployment"), ("batch/v1", "CronJob"),
            ("v1", "Secret"), ("networking.k8s.io/v1", "Ingress"), ("v1", "Node"),
            ("certificates.k8s.io/v1", "CertificateSigningRequest"), ("v1", "Event"),
        ]),
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut body = envelope(kind.0, kind.1, Msg::new());
        // replace the (empty) raw with random bytes
        body.truncate(body.len() - 2);
        body.extend(Msg::new().bytes(2, &raw).0);
        let _ = decode(&body);
    }
}

#[test]
fn nesting_limit_is_enforced() {
    // The real table has no recursive message; a self-referencing one must
    // stop at the depth limit instead of overflowing the stack.
    let schema =
        skiff_protobuf::schema::parse(&[("t", "message A\n1 a A *\nkind v1 A A")]).unwrap();
    let mut inner = Msg::new();
    for _ in 0..200 {
        inner = Msg::new().msg(1, inner);
    }
    let result = skiff_protobuf::decode::message(&schema, 0, &inner.0, 0);
    assert!(matches!(result, Err(ProtobufError::TooDeep { .. })));
}
