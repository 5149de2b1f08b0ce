//! The message table: for each upstream message, field number → JSON name,
//! type and the Go-side facts that decide how upstream's JSON encoder renders
//! it (pointer or not, `omitempty` or not, `json:",inline"`).
//!
//! The table lives in `schema/*.txt`, one file per API group, transcribed
//! from upstream's `types.go` / `generated.proto`. It is parsed once, on
//! first use. Line format (`#` starts a comment):
//!
//! ```text
//! kind <apiVersion> <Kind> <Message>      # a top-level kind decodes as <Message>
//! message <Name>                          # names are global across groups
//! <number> <jsonName> <type> [flags]      # a field of the message above
//! ```
//!
//! `<type>` is `string`, `bool`, `int32`, `int64`, `double`, `bytes`, one of
//! the well-known `Quantity`, `IntOrString`, `Time`, `MicroTime`, `Duration`,
//! `RawExtension`, `FieldsV1`, `ExtraValue`, or a message name; `[T]` is a repeated field
//! and `{T}` a `map<string, T>`. Flags: `*` the Go field is a pointer (a
//! present zero value is kept; absent means omitted), `!` the JSON tag lacks
//! `omitempty` (zero values and nil lists are still written), `inline` the
//! message's fields are merged into the parent object.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Scalar protobuf field kinds used by Kubernetes messages (no proto enums:
/// upstream encodes its enums as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    /// Go `[]byte`: base64 in JSON.
    Bytes,
}

/// Upstream types with a custom JSON form, see [`crate::wellknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Quantity,
    IntOrString,
    Time,
    MicroTime,
    Duration,
    /// `runtime.RawExtension` and `metav1.FieldsV1`: bytes holding JSON.
    RawJson,
    /// `ExtraValue` (a Go `[]string` wrapped as `repeated string items = 1`):
    /// a JSON array of strings.
    StringList,
}

/// What one value of a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar(Scalar),
    Special(Special),
    /// Index into [`Schema::messages`].
    Message(usize),
}

/// Single value, repeated, or `map<string, V>` (repeated entries, key 1, value 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    Single,
    Repeated,
    Map,
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub json: String,
    pub ty: ValueType,
    pub card: Cardinality,
    /// Go pointer: presence is meaningful (`replicas: 0` stays).
    pub pointer: bool,
    /// No `omitempty`: the zero value (or `null`) is still written.
    pub always: bool,
    /// `json:",inline"`: the message's fields go into the parent object.
    pub inline: bool,
}

/// One message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub name: String,
    /// Sorted by field number.
    pub fields: Vec<Field>,
}

impl Message {
    /// The field with this number, if the schema knows it.
    pub fn field(&self, number: u32) -> Option<(usize, &Field)> {
        let i = self
            .fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()?;
        Some((i, &self.fields[i]))
    }
}

/// The parsed table.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub messages: Vec<Message>,
    /// (apiVersion, kind) → message index.
    pub kinds: HashMap<(String, String), usize>,
}

const SOURCES: &[(&str, &str)] = &[
    ("meta.txt", include_str!("../schema/meta.txt")),
    ("core.txt", include_str!("../schema/core.txt")),
    ("apps.txt", include_str!("../schema/apps.txt")),
    ("batch.txt", include_str!("../schema/batch.txt")),
    ("networking.txt", include_str!("../schema/networking.txt")),
    ("policy.txt", include_str!("../schema/policy.txt")),
    ("rbac.txt", include_str!("../schema/rbac.txt")),
    ("auth.txt", include_str!("../schema/auth.txt")),
    ("misc.txt", include_str!("../schema/misc.txt")),
];

/// The table, parsed on first use. An error means the embedded table itself
/// is broken (a test guards against that).
pub fn schema() -> Result<&'static Schema, &'static str> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| parse(SOURCES))
        .as_ref()
        .map_err(String::as_str)
}

struct RawField {
    field: Field,
    type_name: String,
    line: String,
}

/// Parses table sources (name, text) into a [`Schema`].
pub fn parse(sources: &[(&str, &str)]) -> Result<Schema, String> {
    let mut messages: Vec<(String, Vec<RawField>)> = Vec::new();
    let mut kinds: Vec<(String, String, String, String)> = Vec::new();
    for (file, text) in sources {
        for (n, raw_line) in text.lines().enumerate() {
            let line = raw_line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = format!("{file}:{}", n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["kind", api_version, kind, message] => kinds.push((
                    api_version.to_string(),
                    kind.to_string(),
                    message.to_string(),
                    at,
                )),
                ["message", name] => messages.push((name.to_string(), Vec::new())),
                [number, json, ty, flags @ ..] => {
                    let Some((_, fields)) = messages.last_mut() else {
                        return Err(format!("{at}: field outside a message"));
                    };
                    let number: u32 = number
                        .parse()
                        .ok()
                        .filter(|n| (1..(1 << 29)).contains(n))
                        .ok_or_else(|| format!("{at}: bad field number"))?;
                    let (card, inner) = if let Some(t) = ty.strip_prefix('[') {
                        (Cardinality::Repeated, t.strip_suffix(']'))
                    } else if let Some(t) = ty.strip_prefix('{') {
                        (Cardinality::Map, t.strip_suffix('}'))
                    } else {
                        (Cardinality::Single, Some(*ty))
                    };
                    let inner = inner.ok_or_else(|| format!("{at}: bad type {ty}"))?;
                    let mut field = Field {
                        number,
                        json: json.to_string(),
                        ty: ValueType::Scalar(Scalar::String),
                        card,
                        pointer: false,
                        always: false,
                        inline: false,
                    };
                    for flag in flags {
                        match *flag {
                            "*" => field.pointer = true,
                            "!" => field.always = true,
                            "inline" => field.inline = true,
                            other => return Err(format!("{at}: unknown flag {other}")),
                        }
                    }
                    fields.push(RawField {
                        field,
                        type_name: inner.to_string(),
                        line: at,
                    });
                }
                _ => return Err(format!("{at}: cannot parse {line:?}")),
            }
        }
    }

    let mut index = HashMap::new();
    for (i, (name, _)) in messages.iter().enumerate() {
        if index.insert(name.clone(), i).is_some() {
            return Err(format!("message {name} defined twice"));
        }
    }
    let mut schema = Schema::default();
    for (name, raw_fields) in messages {
        let mut fields = Vec::with_capacity(raw_fields.len());
        for RawField {
            mut field,
            type_name,
            line,
        } in raw_fields
        {
            field.ty = match type_name.as_str() {
                "string" => ValueType::Scalar(Scalar::String),
                "bool" => ValueType::Scalar(Scalar::Bool),
                "int32" => ValueType::Scalar(Scalar::Int32),
                "int64" => ValueType::Scalar(Scalar::Int64),
                "double" => ValueType::Scalar(Scalar::Double),
                "bytes" => ValueType::Scalar(Scalar::Bytes),
                "Quantity" => ValueType::Special(Special::Quantity),
                "IntOrString" => ValueType::Special(Special::IntOrString),
                "Time" => ValueType::Special(Special::Time),
                "MicroTime" => ValueType::Special(Special::MicroTime),
                "Duration" => ValueType::Special(Special::Duration),
                "RawExtension" | "FieldsV1" => ValueType::Special(Special::RawJson),
                "ExtraValue" => ValueType::Special(Special::StringList),
                other => ValueType::Message(
                    *index
                        .get(other)
                        .ok_or_else(|| format!("{line}: unknown type {other}"))?,
                ),
            };
            if field.inline
                && (field.card != Cardinality::Single || !matches!(field.ty, ValueType::Message(_)))
            {
                return Err(format!("{line}: only single messages can be inline"));
            }
            fields.push(field);
        }
        fields.sort_by_key(|f| f.number);
        if let Some(w) = fields.windows(2).find(|w| w[0].number == w[1].number) {
            return Err(format!("{name}: field number {} used twice", w[0].number));
        }
        schema.messages.push(Message { name, fields });
    }
    for (api_version, kind, message, at) in kinds {
        let i = *index
            .get(&message)
            .ok_or_else(|| format!("{at}: unknown message {message}"))?;
        if schema.kinds.insert((api_version, kind), i).is_some() {
            return Err(format!("{at}: kind listed twice"));
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses() {
        let s = schema().expect("schema parses");
        assert!(
            s.kinds
                .contains_key(&("v1".to_owned(), "ConfigMap".to_owned()))
        );
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(parse(&[("t", "message A\n1 a B")]).is_err());
        assert!(parse(&[("t", "message A\n1 a string\n1 b string")]).is_err());
        assert!(parse(&[("t", "message A\n0 a string")]).is_err());
        assert!(parse(&[("t", "message A\n1 a string ?")]).is_err());
        assert!(parse(&[("t", "1 a string")]).is_err());
        assert!(parse(&[("t", "kind v1 X Y")]).is_err());
        assert!(parse(&[("t", "message A\n1 a [string] inline")]).is_err());
        let s = parse(&[("t", "message A # c\n2 b {A} *\n1 a [int32] !\nkind v1 A A")]);
        let s = s.expect("parses");
        assert_eq!(s.messages[0].fields[0].json, "a");
        assert_eq!(s.messages[0].fields[1].card, Cardinality::Map);
        assert!(s.messages[0].fields[1].pointer);
    }
}
