//! Kubernetes resource quantities (`100m`, `1`, `128Mi`, `1Gi`, `2k`,
//! `1e3`) as integers in thousandths of a unit, rounded up as upstream's
//! `MilliValue`.

/// The value of `q` in milli-units (`"100m"` → 100, `"1"` → 1000,
/// `"1Ki"` → 1_024_000); `None` when it is not a quantity.
pub fn parse_milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let (negative, rest) = match q.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, q.strip_prefix('+').unwrap_or(q)),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits: String = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().ok()?;
    // value = mantissa * 10^(exp10 - frac) * 2^exp2
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (s[1..].parse::<i32>().ok()?, 0),
        _ => return None,
    };
    let frac = i32::try_from(frac_part.len()).ok()?;
    let scale = exp10 + 3 - frac; // milli
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let div = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        value = (value + div - 1) / div; // round up, as upstream
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::parse_milli;

    #[test]
    fn quantities() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1Gi"), Some(1024 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("2k"), Some(2_000_000));
        assert_eq!(parse_milli("1M"), Some(1_000_000_000));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("1E3"), Some(1_000_000));
        assert_eq!(parse_milli("1u"), Some(1)); // rounded up
        assert_eq!(parse_milli("250n"), Some(1));
        assert_eq!(parse_milli("0"), Some(0));
        assert_eq!(parse_milli("-1"), Some(-1000));
        assert_eq!(parse_milli("110"), Some(110_000));
        assert_eq!(parse_milli("1.5Gi"), Some(1536 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli(""), None);
        assert_eq!(parse_milli("abc"), None);
        assert_eq!(parse_milli("1X"), None);
        assert_eq!(parse_milli("1.2.3"), None);
    }
}
