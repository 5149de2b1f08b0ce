//! `format`: the string formats upstream checks on custom objects.
//!
//! Upstream strips formats it does not know from CRD schemas and validates
//! the rest with kube-openapi's `strfmt` registry; a string that fails is
//! reported as "must be of type <format>". We check the formats that carry
//! real meaning for Kubernetes objects; other names (including `int32`,
//! `int64`, `password`, which upstream does not check either) pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `s` is a valid instance of `format`; unknown formats accept all.
pub fn matches(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => is_date_time(s),
        "date" => is_date(s),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some(b'3')),
        "uuid4" => is_uuid(s, Some(b'4')),
        "uuid5" => is_uuid(s, Some(b'5')),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "byte" => is_base64(s),
        "hostname" => is_hostname(s),
        _ => true,
    }
}

fn digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `YYYY-MM-DD` with a plausible month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (y, m, d) = (&b[0..4], &b[5..7], &b[8..10]);
    digits(y) && digits(m) && digits(d) && (1..=12).contains(&num(m)) && (1..=31).contains(&num(d))
}

/// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_char_boundary(10) || !is_date(&s[..10]) {
        return false;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    let t = &b[11..];
    if t.len() < 9 || t[2] != b':' || t[5] != b':' {
        return false;
    }
    if !(digits(&t[0..2]) && digits(&t[3..5]) && digits(&t[6..8])) {
        return false;
    }
    if num(&t[0..2]) > 23 || num(&t[3..5]) > 59 || num(&t[6..8]) > 60 {
        return false;
    }
    let mut rest = &t[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}

fn is_uuid(s: &str, version: Option<u8>) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return false;
        }
    }
    version.is_none_or(|v| b[14] == v)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    digits(bits.as_bytes()) && bits.len() <= 3 && bits.parse::<u32>().is_ok_and(|n| n <= max)
}

fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let body = b.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
    if b.len() - body > 2 {
        return false;
    }
    b[..body]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times() {
        assert!(matches("date-time", "2024-01-02T03:04:05Z"));
        assert!(matches("date-time", "2024-01-02T03:04:05.123+01:00"));
        assert!(!matches("date-time", "2024-01-02"));
        assert!(!matches("date-time", "yesterday"));
        assert!(!matches("date-time", "2024-13-02T03:04:05Z"));
        assert!(matches("date", "2024-01-02"));
        assert!(!matches("date", "2024-1-2"));
    }

    #[test]
    fn others() {
        assert!(matches("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(!matches("uuid", "123"));
        assert!(matches("ipv4", "10.0.0.1"));
        assert!(!matches("ipv4", "10.0.0.256"));
        assert!(matches("cidr", "10.0.0.0/8"));
        assert!(!matches("cidr", "10.0.0.0/33"));
        assert!(matches("byte", "aGVsbG8="));
        assert!(!matches("byte", "aGVsbG8"));
        assert!(matches("int32", "anything"));
        assert!(matches("hostname", "example.com"));
        assert!(!matches("hostname", "-bad"));
    }
}
