//! Go's `time.ParseDuration` format ("15s", "1m30s", "1.5h", "300ms"),
//! which upstream's configuration files use for `metav1.Duration` fields,
//! so a file written for kube-scheduler reads the same here.

use std::time::Duration;

/// Parses a Go duration. Negative durations are refused: nothing in the
/// scheduler's configuration can use one.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if let Some(negative) = rest.strip_prefix('-') {
        if !negative.is_empty() && negative.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(format!("invalid duration {text:?}: must not be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            other => return Err(format!("invalid duration {text:?}: unknown unit {other:?}")),
        };
        total += value * nanos_per;
        rest = next;
    }
    // Go's limit: an int64 of nanoseconds.
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats like Go's `Duration.String` for the common whole-second and
/// millisecond cases (used in error messages).
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d.subsec_nanos() == 0 {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        return match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m{s}s"),
            _ => format!("{h}h{m}m{s}s"),
        };
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_secs_f64() * 1e3);
    }
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, Result<Duration, ()>)] = &[
            ("15s", Ok(Duration::from_secs(15))),
            ("1m30s", Ok(Duration::from_secs(90))),
            ("1h", Ok(Duration::from_secs(3600))),
            ("1.5h", Ok(Duration::from_secs(5400))),
            ("300ms", Ok(Duration::from_millis(300))),
            ("2us", Ok(Duration::from_micros(2))),
            ("2µs", Ok(Duration::from_micros(2))),
            ("10ns", Ok(Duration::from_nanos(10))),
            ("0", Ok(Duration::ZERO)),
            ("+5s", Ok(Duration::from_secs(5))),
            ("-0", Ok(Duration::ZERO)),
            ("", Err(())),
            ("15", Err(())),
            ("s", Err(())),
            ("-1s", Err(())),
            ("1d", Err(())),
            ("1..5s", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).map_err(|_| ()), *want, "{text:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3601)), "1h0m1s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
