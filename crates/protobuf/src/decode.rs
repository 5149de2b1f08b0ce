//! Schema-driven decoding of one message into the JSON object upstream's
//! encoder would write for the same Go struct.
//!
//! Upstream's Go marshaller writes every non-pointer scalar, even when zero,
//! and pointer fields only when set; its JSON encoder then drops zero values
//! of `omitempty` non-pointer fields, keeps set pointers, and always writes
//! non-pointer structs. The rules in [`render`] reproduce that from the
//! flags of [`crate::schema::Field`].

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::ProtobufError;
use crate::schema::{Cardinality, Field, Message, Scalar, Schema, Special, ValueType};
use crate::wellknown;
use crate::wire::{Reader, WireValue};

/// Deepest message nesting accepted; real objects stay far below (a Pod
/// template inside a CronJob is about 15 levels).
pub const MAX_DEPTH: usize = 48;

/// What has been read for one field so far.
enum Slot {
    Absent,
    Single(Value),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

/// Decodes the message `index` of `schema` from `buf` into a JSON object.
pub fn message(
    schema: &Schema,
    index: usize,
    buf: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let msg = schema
        .messages
        .get(index)
        .ok_or(ProtobufError::Schema("message index out of range"))?;
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            message: msg.name.clone(),
        });
    }
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Absent).collect();
    let mut reader = Reader::new(buf);
    while let Some((number, wire)) = reader.next_field().map_err(|source| ProtobufError::Wire {
        message: msg.name.clone(),
        source,
    })? {
        // Unknown fields are skipped, as upstream's generated code does.
        let Some((i, field)) = msg.field(number) else {
            continue;
        };
        let ctx = Ctx {
            schema,
            msg,
            field,
            depth,
        };
        let slot = &mut slots[i];
        match field.card {
            Cardinality::Single => *slot = Slot::Single(ctx.value(field.ty, wire)?),
            Cardinality::Repeated => {
                if !matches!(slot, Slot::List(_)) {
                    *slot = Slot::List(Vec::new());
                }
                if let Slot::List(list) = slot {
                    ctx.repeated(wire, list)?;
                }
            }
            Cardinality::Map => {
                if !matches!(slot, Slot::Map(_)) {
                    *slot = Slot::Map(Map::new());
                }
                if let Slot::Map(map) = slot {
                    let (key, value) = ctx.map_entry(wire)?;
                    map.insert(key, value);
                }
            }
        }
    }

    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        let ctx = Ctx {
            schema,
            msg,
            field,
            depth,
        };
        match ctx.render(slot)? {
            None => {}
            Some(Value::Object(inner)) if field.inline => out.extend(inner),
            Some(value) => {
                out.insert(field.json.clone(), value);
            }
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    schema: &'a Schema,
    msg: &'a Message,
    field: &'a Field,
    depth: usize,
}

impl Ctx<'_> {
    fn wire_type_error(&self, found: &WireValue<'_>) -> ProtobufError {
        ProtobufError::WireType {
            message: self.msg.name.clone(),
            field: self.field.json.clone(),
            found: found.wire_name(),
        }
    }

    fn well_known_error(&self, source: wellknown::WellKnownError) -> ProtobufError {
        ProtobufError::WellKnown {
            message: self.msg.name.clone(),
            field: self.field.json.clone(),
            source,
        }
    }

    /// One value of type `ty`.
    fn value(&self, ty: ValueType, wire: WireValue<'_>) -> Result<Value, ProtobufError> {
        match (ty, wire) {
            (ValueType::Scalar(Scalar::String), WireValue::Bytes(b)) => {
                Ok(Value::String(String::from_utf8_lossy(b).into_owned()))
            }
            (ValueType::Scalar(Scalar::Bytes), WireValue::Bytes(b)) => Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(b),
            )),
            (ValueType::Scalar(Scalar::Bool), WireValue::Varint(v)) => Ok(Value::Bool(v != 0)),
            // Go's generated code truncates to the declared width.
            (ValueType::Scalar(Scalar::Int32), WireValue::Varint(v)) => Ok((v as i32).into()),
            (ValueType::Scalar(Scalar::Int64), WireValue::Varint(v)) => Ok((v as i64).into()),
            (ValueType::Scalar(Scalar::Double), WireValue::Fixed64(bits)) => {
                Number::from_f64(f64::from_bits(bits))
                    .map(Value::Number)
                    .ok_or_else(|| ProtobufError::NonFiniteDouble {
                        message: self.msg.name.clone(),
                        field: self.field.json.clone(),
                    })
            }
            (ValueType::Special(special), WireValue::Bytes(b)) => self.special(special, b),
            (ValueType::Message(index), WireValue::Bytes(b)) => Ok(Value::Object(message(
                self.schema,
                index,
                b,
                self.depth + 1,
            )?)),
            (_, other) => Err(self.wire_type_error(&other)),
        }
    }

    fn special(&self, special: Special, payload: &[u8]) -> Result<Value, ProtobufError> {
        let result = match special {
            Special::Quantity => wellknown::quantity(payload),
            Special::IntOrString => wellknown::int_or_string(payload),
            Special::Time => wellknown::time(payload, false),
            Special::MicroTime => wellknown::time(payload, true),
            Special::Duration => wellknown::duration(payload),
            Special::RawJson => wellknown::raw_json(payload),
            Special::StringList => wellknown::string_list(payload),
        };
        result.map_err(|e| self.well_known_error(e))
    }

    /// Appends one occurrence of a repeated field; numeric scalars may come
    /// packed (one length-delimited run of values).
    fn repeated(&self, wire: WireValue<'_>, list: &mut Vec<Value>) -> Result<(), ProtobufError> {
        let packed_kind = match self.field.ty {
            ValueType::Scalar(s @ (Scalar::Bool | Scalar::Int32 | Scalar::Int64)) => {
                Some((s, false))
            }
            ValueType::Scalar(s @ Scalar::Double) => Some((s, true)),
            _ => None,
        };
        match (packed_kind, wire) {
            (Some((scalar, fixed)), WireValue::Bytes(run)) => {
                let mut r = Reader::new(run);
                let wire_error = |source| ProtobufError::Wire {
                    message: self.msg.name.clone(),
                    source,
                };
                while !r.is_empty() {
                    let item = if fixed {
                        WireValue::Fixed64(r.fixed64().map_err(wire_error)?)
                    } else {
                        WireValue::Varint(r.varint().map_err(wire_error)?)
                    };
                    list.push(self.value(ValueType::Scalar(scalar), item)?);
                }
                Ok(())
            }
            (_, wire) => {
                list.push(self.value(self.field.ty, wire)?);
                Ok(())
            }
        }
    }

    /// One `map<string, V>` entry: a message with key = 1 and value = 2.
    fn map_entry(&self, wire: WireValue<'_>) -> Result<(String, Value), ProtobufError> {
        let WireValue::Bytes(entry) = wire else {
            return Err(self.wire_type_error(&wire));
        };
        let (mut key, mut value) = (String::new(), None);
        let mut r = Reader::new(entry);
        while let Some((number, wire)) = r.next_field().map_err(|source| ProtobufError::Wire {
            message: self.msg.name.clone(),
            source,
        })? {
            match number {
                1 => {
                    key = self
                        .value(ValueType::Scalar(Scalar::String), wire)?
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                }
                2 => value = Some(self.value(self.field.ty, wire)?),
                _ => {}
            }
        }
        let value = match value {
            Some(v) => v,
            // Go's generated code starts each entry from the zero value; a
            // missing []byte value is an empty (not nil) slice.
            None => match self.field.ty {
                ValueType::Scalar(Scalar::Bytes) => Value::String(String::new()),
                ty => self.zero(ty)?,
            },
        };
        Ok((key, value))
    }

    /// The JSON of Go's zero value of `ty`.
    fn zero(&self, ty: ValueType) -> Result<Value, ProtobufError> {
        Ok(match ty {
            ValueType::Scalar(Scalar::String) => Value::String(String::new()),
            ValueType::Scalar(Scalar::Bool) => Value::Bool(false),
            ValueType::Scalar(Scalar::Int32 | Scalar::Int64) => Value::from(0),
            ValueType::Scalar(Scalar::Double) => Value::from(0.0),
            ValueType::Scalar(Scalar::Bytes) => Value::Null,
            ValueType::Special(special) => self.special(special, &[])?,
            ValueType::Message(index) => {
                Value::Object(message(self.schema, index, &[], self.depth + 1)?)
            }
        })
    }

    /// What upstream's JSON encoder writes for this field (`None`: nothing).
    fn render(&self, slot: Slot) -> Result<Option<Value>, ProtobufError> {
        let f = self.field;
        let absent = || -> Result<Option<Value>, ProtobufError> {
            if f.pointer {
                return Ok(f.always.then_some(Value::Null));
            }
            match f.ty {
                // non-pointer structs are never omitted by encoding/json
                ValueType::Message(_) | ValueType::Special(_) => self.zero(f.ty).map(Some),
                ValueType::Scalar(_) if f.always => self.zero(f.ty).map(Some),
                ValueType::Scalar(_) => Ok(None),
            }
        };
        match (f.card, slot) {
            (Cardinality::Single, Slot::Single(value)) => {
                let omit = !f.pointer
                    && !f.always
                    && matches!(f.ty, ValueType::Scalar(_))
                    && is_zero(&value);
                Ok((!omit).then_some(value))
            }
            (Cardinality::Single, _) => absent(),
            (Cardinality::Repeated, Slot::List(list)) if !list.is_empty() => {
                Ok(Some(Value::Array(list)))
            }
            (Cardinality::Map, Slot::Map(map)) if !map.is_empty() => Ok(Some(Value::Object(map))),
            // nil slices and maps: `null` without omitempty, else left out
            (_, _) => Ok(f.always.then_some(Value::Null)),
        }
    }
}

/// Go's notion of an empty scalar for `omitempty`.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        _ => false,
    }
}
