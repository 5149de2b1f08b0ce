//! Upstream types whose JSON form is not "an object of their proto fields":
//! `metav1.Time`/`MicroTime` (RFC 3339 strings), `metav1.Duration` (Go
//! duration strings), `intstr.IntOrString` (number or string),
//! `resource.Quantity` (string), `runtime.RawExtension` and `metav1.FieldsV1`
//! (embedded JSON). Each function takes the payload of the embedded message
//! and returns the JSON value upstream's encoder would write.

use serde_json::Value;

use crate::wire::{Reader, WireValue};

/// Why a well-known type's payload cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WellKnownError {
    /// Malformed wire data inside the well-known message.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// A field carried a wire type its proto declaration does not allow.
    #[error("field {field} has wire type {wire}")]
    WireType { field: u32, wire: &'static str },
    /// A timestamp outside what RFC 3339 can express (Go refuses these too).
    #[error("timestamp {seconds}s {nanos}ns is out of range")]
    TimeOutOfRange { seconds: i64, nanos: i64 },
    /// `IntOrString.type` other than 0 (int) or 1 (string).
    #[error("IntOrString type {0} is neither 0 (int) nor 1 (string)")]
    IntOrStringType(i64),
    /// Embedded raw JSON (RawExtension, FieldsV1) that does not parse.
    #[error("embedded JSON does not parse: {0}")]
    Json(String),
}

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z) since the Unix epoch.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

fn varint(field: u32, value: WireValue<'_>) -> Result<u64, WellKnownError> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(WellKnownError::WireType {
            field,
            wire: other.wire_name(),
        }),
    }
}

fn bytes(field: u32, value: WireValue<'_>) -> Result<&[u8], WellKnownError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(WellKnownError::WireType {
            field,
            wire: other.wire_name(),
        }),
    }
}

/// `metav1.Time` / `MicroTime` proto (`seconds = 1`, `nanos = 2`).
/// An empty payload is Go's zero time, which JSON renders as `null`.
pub fn time(payload: &[u8], micro: bool) -> Result<Value, WellKnownError> {
    if payload.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => seconds = varint(field, value)? as i64,
            2 => nanos = i64::from(varint(field, value)? as i32),
            _ => {}
        }
    }
    if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let out_of_range = || WellKnownError::TimeOutOfRange { seconds, nanos };
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let ts = jiff::Timestamp::from_nanosecond(total).map_err(|_| out_of_range())?;
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    if dt.year() < 0 {
        // Go's RFC 3339 formatting rejects years before 0000.
        return Err(out_of_range());
    }
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    Ok(Value::String(if micro {
        format!("{base}.{:06}Z", dt.subsec_nanosecond() / 1000)
    } else {
        format!("{base}Z")
    }))
}

/// `metav1.Duration` proto (`duration = 1`, nanoseconds) as Go's `Duration.String()`.
pub fn duration(payload: &[u8]) -> Result<Value, WellKnownError> {
    let mut nanos = 0i64;
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        if field == 1 {
            nanos = varint(field, value)? as i64;
        }
    }
    Ok(Value::String(go_duration(nanos)))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    // value `v` in units of 10^-scale, with trailing fractional zeros trimmed
    let fraction = |v: u64, scale: u32| -> String {
        let div = 10u64.pow(scale);
        let (int, frac) = (v / div, v % div);
        if frac == 0 {
            int.to_string()
        } else {
            let digits = format!("{frac:0width$}", width = scale as usize);
            format!("{int}.{}", digits.trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", fraction(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 6));
    }
    let secs = fraction(u % 60_000_000_000, 9);
    let total_minutes = u / 60_000_000_000;
    let (hours, minutes) = (total_minutes / 60, total_minutes % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `intstr.IntOrString` proto (`type = 1`, `intVal = 2`, `strVal = 3`).
pub fn int_or_string(payload: &[u8]) -> Result<Value, WellKnownError> {
    let (mut kind, mut int_val, mut str_val) = (0i64, 0i32, String::new());
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => kind = varint(field, value)? as i64,
            2 => int_val = varint(field, value)? as i32,
            3 => str_val = String::from_utf8_lossy(bytes(field, value)?).into_owned(),
            _ => {}
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        other => Err(WellKnownError::IntOrStringType(other)),
    }
}

/// `resource.Quantity` proto (`string = 1`); Go's zero Quantity prints `"0"`.
pub fn quantity(payload: &[u8]) -> Result<Value, WellKnownError> {
    let mut s = None;
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        if field == 1 {
            s = Some(String::from_utf8_lossy(bytes(field, value)?).into_owned());
        }
    }
    Ok(Value::String(
        s.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0".to_owned()),
    ))
}

/// `runtime.RawExtension` (`raw = 1`) and `metav1.FieldsV1` (`Raw = 1`):
/// the bytes are JSON and are embedded as such; no bytes means `null`.
pub fn raw_json(payload: &[u8]) -> Result<Value, WellKnownError> {
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        if field == 1 {
            raw = bytes(field, value)?;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| WellKnownError::Json(e.to_string()))
}

/// A Go `[]string` wrapped in a message (`repeated string items = 1`), e.g.
/// `ExtraValue` in user info: a JSON array of strings.
pub fn string_list(payload: &[u8]) -> Result<Value, WellKnownError> {
    let mut items = Vec::new();
    let mut r = Reader::new(payload);
    while let Some((field, value)) = r.next_field()? {
        if field == 1 {
            items.push(Value::String(
                String::from_utf8_lossy(bytes(field, value)?).into_owned(),
            ));
        }
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: u64, nanos: u64) -> Vec<u8> {
        let mut out = vec![0x08];
        push_varint(&mut out, seconds);
        out.push(0x10);
        push_varint(&mut out, nanos);
        out
    }

    fn push_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn times() {
        assert_eq!(time(&[], false), Ok(Value::Null));
        assert_eq!(
            time(&ts(1_704_164_705, 0), false),
            Ok("2024-01-02T03:05:05Z".into())
        );
        assert_eq!(
            time(&ts(1_704_164_705, 123_456_789), true),
            Ok("2024-01-02T03:05:05.123456Z".into())
        );
        assert_eq!(
            time(&ts(1_704_164_705, 999_999_999), false),
            Ok("2024-01-02T03:05:05Z".into())
        );
        assert_eq!(
            time(&ts(GO_ZERO_TIME_SECONDS as u64, 0), false),
            Ok(Value::Null)
        );
        assert_eq!(time(&ts(0, 0), false), Ok("1970-01-01T00:00:00Z".into()));
        assert!(time(&ts(i64::MAX as u64, 0), false).is_err());
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(100_000_000), "100ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(-90_000_000_000), "-1m30s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn int_or_string_and_quantity() {
        assert_eq!(int_or_string(&[0x08, 0, 0x10, 5]), Ok(5.into()));
        assert_eq!(
            int_or_string(&[0x08, 1, 0x1a, 3, b'2', b'5', b'%']),
            Ok("25%".into())
        );
        assert_eq!(int_or_string(&[]), Ok(0.into()));
        assert!(int_or_string(&[0x08, 2]).is_err());
        assert_eq!(
            quantity(&[0x0a, 4, b'1', b'0', b'0', b'm']),
            Ok("100m".into())
        );
        assert_eq!(quantity(&[]), Ok("0".into()));
        assert_eq!(raw_json(&[0x0a, 2, b'{', b'}']), Ok(serde_json::json!({})));
        assert!(raw_json(&[0x0a, 1, b'{']).is_err());
        assert_eq!(
            string_list(&[0x0a, 1, b'a', 0x0a, 0]),
            Ok(serde_json::json!(["a", ""]))
        );
    }
}
