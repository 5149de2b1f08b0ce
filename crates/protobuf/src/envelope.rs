//! The Kubernetes protobuf envelope: the 4-byte magic `k8s\0` followed by a
//! `runtime.Unknown` message (`typeMeta = 1 {apiVersion = 1, kind = 2}`,
//! `raw = 2`, `contentEncoding = 3`, `contentType = 4`). The object itself is
//! `raw`, encoded as the message of its kind.

use crate::ProtobufError;
use crate::wire::{Reader, WireValue};

/// Prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The unwrapped envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
    pub content_encoding: String,
    pub content_type: String,
}

fn string(value: WireValue<'_>, field: &'static str) -> Result<String, ProtobufError> {
    match value {
        WireValue::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(ProtobufError::WireType {
            message: "runtime.Unknown".to_owned(),
            field: field.to_owned(),
            found: other.wire_name(),
        }),
    }
}

fn wire_error(source: crate::wire::WireError) -> ProtobufError {
    ProtobufError::Wire {
        message: "runtime.Unknown".to_owned(),
        source,
    }
}

/// Splits a body into its type and raw object bytes.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let mut env = Envelope::default();
    let mut r = Reader::new(rest);
    while let Some((number, value)) = r.next_field().map_err(wire_error)? {
        match number {
            1 => {
                let WireValue::Bytes(type_meta) = value else {
                    return Err(ProtobufError::WireType {
                        message: "runtime.Unknown".to_owned(),
                        field: "typeMeta".to_owned(),
                        found: value.wire_name(),
                    });
                };
                let mut tm = Reader::new(type_meta);
                while let Some((n, v)) = tm.next_field().map_err(wire_error)? {
                    match n {
                        1 => env.api_version = string(v, "apiVersion")?,
                        2 => env.kind = string(v, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => match value {
                WireValue::Bytes(raw) => env.raw = raw,
                other => {
                    return Err(ProtobufError::WireType {
                        message: "runtime.Unknown".to_owned(),
                        field: "raw".to_owned(),
                        found: other.wire_name(),
                    });
                }
            },
            3 => env.content_encoding = string(value, "contentEncoding")?,
            4 => env.content_type = string(value, "contentType")?,
            _ => {}
        }
    }
    Ok(env)
}
