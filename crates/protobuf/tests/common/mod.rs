//! A tiny protobuf encoder for building test bodies by hand.
#![allow(dead_code)]

/// A message under construction.
#[derive(Debug, Clone, Default)]
pub struct Msg(pub Vec<u8>);

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    pub fn new() -> Self {
        Msg(Vec::new())
    }
    fn tag(&mut self, field: u32, wire: u8) {
        push_varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
    }
    pub fn varint(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 0);
        push_varint(&mut self.0, v);
        self
    }
    pub fn int(self, field: u32, v: i64) -> Self {
        self.varint(field, v as u64)
    }
    pub fn bool(self, field: u32, v: bool) -> Self {
        self.varint(field, u64::from(v))
    }
    pub fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.tag(field, 2);
        push_varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn string(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    pub fn msg(self, field: u32, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
    pub fn fixed64(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// One `map<string, string>` entry.
    pub fn entry(self, field: u32, key: &str, value: &str) -> Self {
        self.msg(field, Msg::new().string(1, key).string(2, value))
    }
    /// One `map<string, Message>` entry.
    pub fn entry_msg(self, field: u32, key: &str, value: Msg) -> Self {
        self.msg(field, Msg::new().string(1, key).msg(2, value))
    }
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}.
pub fn envelope(api_version: &str, kind: &str, raw: Msg) -> Vec<u8> {
    let type_meta = Msg::new().string(1, api_version).string(2, kind);
    let unknown = Msg::new().msg(1, type_meta).msg(2, raw);
    let mut out = b"k8s\0".to_vec();
    out.extend_from_slice(&unknown.0);
    out
}

/// ObjectMeta as Go's marshaller writes it: every non-pointer scalar, even
/// empty, and an empty creationTimestamp.
pub fn go_meta(name: &str) -> Msg {
    Msg::new()
        .string(1, name)
        .string(2, "")
        .string(3, "")
        .string(4, "")
        .string(5, "")
        .string(6, "")
        .int(7, 0)
        .msg(8, Msg::new())
        .string(15, "")
}

/// Intentionally minimal Quantity.
pub fn quantity(s: &str) -> Msg {
    Msg::new().string(1, s)
}

pub fn int_or_string_int(v: i32) -> Msg {
    Msg::new().int(1, 0).int(2, i64::from(v)).string(3, "")
}

pub fn int_or_string_str(s: &str) -> Msg {
    Msg::new().int(1, 1).int(2, 0).string(3, s)
}
