//! Decoding of Kubernetes protobuf request bodies.
//!
//! kubectl 1.33's typed clients send `application/vnd.kubernetes.protobuf`
//! bodies with no JSON fallback, while skiff's API server works on JSON.
//! [`decode`] turns such a body into the `serde_json::Value` that an
//! upstream client would have sent as JSON for the same object, so the
//! server can treat both alike. [`is_protobuf`] tells which bodies to route
//! here.
//!
//! Where to start reading: [`envelope`] unwraps the `k8s\0` + `runtime.Unknown`
//! envelope; [`schema`] holds the message table (field numbers and Go JSON
//! rules, transcribed into `schema/*.txt`); [`decode`](mod@decode) walks a
//! message with the table, using [`wire`] for the raw format and
//! [`wellknown`] for types with a custom JSON form (Time, IntOrString,
//! Quantity, ...).

pub mod decode;
pub mod envelope;
pub mod schema;
pub mod wellknown;
pub mod wire;

use serde_json::Value;

/// Why a protobuf body cannot be turned into JSON. [`ProtobufError::UnknownKind`]
/// means "we cannot read this type" (HTTP 415); the others mean a malformed body (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` prefix every Kubernetes protobuf body has.
    #[error("protobuf body does not start with the Kubernetes magic prefix k8s\\0")]
    MissingMagic,
    /// No schema for this type: the server should answer 415 Unsupported Media Type.
    #[error("no protobuf schema for kind {kind:?} in {api_version:?}; send JSON instead")]
    UnknownKind { api_version: String, kind: String },
    /// `runtime.Unknown.contentEncoding` set (upstream never sets it for requests).
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// Malformed wire data inside a message.
    #[error("malformed protobuf in {message}: {source}")]
    Wire {
        message: String,
        source: wire::WireError,
    },
    /// A field arrived with a wire type its declaration does not allow.
    #[error("field {message}.{field} has unexpected wire type {found}")]
    WireType {
        message: String,
        field: String,
        found: &'static str,
    },
    /// A well-known type (Time, IntOrString, ...) whose payload cannot be rendered.
    #[error("field {message}.{field}: {source}")]
    WellKnown {
        message: String,
        field: String,
        source: wellknown::WellKnownError,
    },
    /// NaN or infinity, which JSON cannot carry.
    #[error("field {message}.{field} is not a finite number")]
    NonFiniteDouble { message: String, field: String },
    /// Nesting beyond [`decode::MAX_DEPTH`].
    #[error("message {message} is nested too deeply")]
    TooDeep { message: String },
    /// The embedded raw object claims to be JSON but is not.
    #[error("embedded JSON object does not parse: {0}")]
    EmbeddedJson(String),
    /// The compiled-in schema table is broken (a bug, caught by tests).
    #[error("protobuf schema table: {0}")]
    Schema(&'static str),
}

/// Media type of the Kubernetes protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// True for `application/vnd.kubernetes.protobuf`, with or without
/// parameters, so the server knows to call [`decode`] instead of parsing JSON.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes a Kubernetes protobuf body (magic `k8s\0` + `runtime.Unknown`)
/// into the JSON object upstream's encoder would render, with `apiVersion`
/// and `kind` taken from the envelope's TypeMeta.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let env = envelope::parse(body)?;
    if !env.content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(env.content_encoding));
    }
    let mut object = if env.content_type.starts_with("application/json") {
        // runtime.Unknown may wrap a JSON object; take it as it is.
        match serde_json::from_slice(env.raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ProtobufError::EmbeddedJson("not an object".to_owned())),
            Err(e) => return Err(ProtobufError::EmbeddedJson(e.to_string())),
        }
    } else {
        let schema = schema::schema().map_err(|_| ProtobufError::Schema("does not parse"))?;
        let index = schema
            .kinds
            .get(&(env.api_version.clone(), env.kind.clone()))
            .or_else(|| schema.kinds.get(&("*".to_owned(), env.kind.clone())))
            .copied()
            .ok_or_else(|| ProtobufError::UnknownKind {
                api_version: env.api_version.clone(),
                kind: env.kind.clone(),
            })?;
        decode::message(schema, index, env.raw, 0)?
    };
    object.insert("apiVersion".to_owned(), Value::String(env.api_version));
    object.insert("kind".to_owned(), Value::String(env.kind));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_media_type() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "Application/VND.Kubernetes.Protobuf ; charset=utf-8"
        ));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf;stream=watch"
        ));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
        assert!(!is_protobuf(""));
    }

    #[test]
    fn rejects_bodies_without_magic_or_schema() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::MissingMagic));
        // typeMeta {apiVersion "v9", kind "Nope"}
        let body = b"k8s\0\x0a\x0a\x0a\x02v9\x12\x04Nope";
        assert_eq!(
            decode(body),
            Err(ProtobufError::UnknownKind {
                api_version: "v9".into(),
                kind: "Nope".into()
            })
        );
    }
}
