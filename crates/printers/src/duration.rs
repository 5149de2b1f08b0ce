//! Human-readable ages, as kubectl shows them in `AGE` columns.
//!
//! Mirrors apimachinery's `duration.HumanDuration`: about two significant
//! figures (`45s`, `2m3s`, `10m`, `3h4m`, `5d`, `2y100d`), with up to one
//! second of clock skew shown as `0s` and anything further in the future
//! as `<invalid>`.

use jiff::{SignedDuration, Timestamp};

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Formats a duration the way `kubectl get` prints ages.
///
/// Durations beyond Go's `time.Duration` range (about 292 years) saturate
/// as they do upstream, so a very old timestamp prints `292y`.
pub fn human_duration(d: SignedDuration) -> String {
    let nanos =
        i64::try_from(d.as_nanos()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX });
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Time elapsed from `then` to `now`, or `<unknown>` when `then` is unset
/// (upstream's `translateTimestampSince`).
pub(crate) fn since(then: Option<Timestamp>, now: Timestamp) -> String {
    match then {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_owned(),
    }
}

/// The `AGE` cell of an object: time since `metadata.creationTimestamp`.
pub(crate) fn age(obj: &serde_json::Value, now: Timestamp) -> String {
    since(
        crate::value::time_at(obj, &["metadata", "creationTimestamp"]),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> String {
        human_duration(SignedDuration::from_secs(s))
    }

    #[test]
    fn matches_upstream_table() {
        let m = 60;
        let h = 60 * m;
        let d = 24 * h;
        let y = 365 * d;
        let cases: &[(i64, &str)] = &[
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (119, "119s"),
            (2 * m, "2m"),
            (2 * m + 3, "2m3s"),
            (9 * m + 59, "9m59s"),
            (10 * m, "10m"),
            (10 * m + 30, "10m"),
            (179 * m, "179m"),
            (3 * h, "3h"),
            (3 * h + 4 * m, "3h4m"),
            (7 * h + 59 * m, "7h59m"),
            (8 * h, "8h"),
            (47 * h + 59 * m, "47h"),
            (2 * d, "2d"),
            (5 * d + 3 * h, "5d3h"),
            (7 * d + 23 * h, "7d23h"),
            (8 * d, "8d"),
            (729 * d, "729d"),
            (2 * y, "2y"),
            (2 * y + 100 * d, "2y100d"),
            (7 * y + 364 * d, "7y364d"),
            (8 * y, "8y"),
            (10 * y + 200 * d, "10y"),
        ];
        for (input, want) in cases {
            assert_eq!(&secs(*input), want, "{input}s");
        }
    }

    #[test]
    fn sub_second_precision_truncates() {
        assert_eq!(human_duration(SignedDuration::from_millis(1999)), "1s");
        assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
        assert_eq!(
            human_duration(SignedDuration::from_millis(-2000)),
            "<invalid>"
        );
    }

    #[test]
    fn saturates_like_go() {
        assert_eq!(human_duration(SignedDuration::MAX), "292y");
        assert_eq!(human_duration(SignedDuration::MIN), "<invalid>");
    }

    #[test]
    fn since_unset_is_unknown() {
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(since(None, now), "<unknown>");
        let then: Timestamp = "2023-12-31T23:55:00Z".parse().unwrap();
        assert_eq!(since(Some(then), now), "5m");
    }
}
