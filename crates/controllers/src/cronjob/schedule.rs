//! Cron schedules as upstream's CronJob controller reads them
//! (robfig/cron v3 `ParseStandard`): five fields (minute, hour,
//! day-of-month, month, day-of-week) with `*`, `?`, ranges, steps, lists and
//! month/day names, the descriptors `@yearly`…`@hourly` and `@every`, and
//! robfig's `Next` — including its day-of-month/day-of-week rule (either
//! matches unless one of them is `*`) and its handling of DST, evaluated in
//! an IANA time zone.

use std::time::Duration;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Set on a field written as `*` or `?` (robfig's starBit): the
/// day-of-month/day-of-week OR rule does not apply to it.
const STAR: u64 = 1 << 63;

/// Why a schedule does not parse (robfig's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Bit sets per field (bit n: value n matches).
    Spec {
        second: u64,
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every <duration>`: a fixed delay (at least one second).
    Every(Duration),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

fn bits(min: u32, max: u32, step: u32) -> u64 {
    if step == 1 {
        return (!(u64::MAX << (max + 1))) & (u64::MAX << min);
    }
    (min..=max)
        .step_by(step as usize)
        .fold(0, |b, i| b | 1 << i)
}

fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

impl Schedule {
    /// Parses a standard (5-field or descriptor) schedule.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ParseError("empty spec string".into()));
        }
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            return Err(ParseError(
                "TZ and CRON_TZ are not supported, use spec.timeZone".into(),
            ));
        }
        if let Some(d) = spec.strip_prefix('@') {
            return descriptor(d, spec);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ParseError(format!(
                "expected exactly 5 fields, found {}: {:?}",
                fields.len(),
                fields
            )));
        }
        Ok(Schedule::Spec {
            second: 1,
            minute: field(fields[0], &MINUTES)?,
            hour: field(fields[1], &HOURS)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTHS)?,
            dow: field(fields[4], &DOW)?,
        })
    }

    /// The first activation strictly after `after`, evaluated in `tz`;
    /// `None` when there is none within five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(d) => {
                // robfig: t + delay - t's sub-second part.
                let secs = i64::try_from(d.as_secs()).ok()?;
                Timestamp::from_second(after.as_second().checked_add(secs)?).ok()
            }
            Schedule::Spec {
                second,
                minute,
                hour,
                dom,
                month,
                dow,
            } => next_spec([*second, *minute, *hour, *dom, *month, *dow], after, tz),
        }
    }
}

fn descriptor(d: &str, spec: &str) -> Result<Schedule, ParseError> {
    let (s, m, h) = (1, 1, 1);
    let spec_of = |hour: u64, dom: u64, month: u64, dow: u64| Schedule::Spec {
        second: s,
        minute: m,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match d {
        "yearly" | "annually" => spec_of(h, 1 << 1, 1 << 1, all(&DOW)),
        "monthly" => spec_of(h, 1 << 1, all(&MONTHS), all(&DOW)),
        "weekly" => spec_of(h, all(&DOM), all(&MONTHS), 1),
        "daily" | "midnight" => spec_of(h, all(&DOM), all(&MONTHS), all(&DOW)),
        "hourly" => spec_of(all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => match d.strip_prefix("every ") {
            Some(dur) => {
                let parsed = go_duration(dur.trim())
                    .ok_or_else(|| ParseError(format!("failed to parse duration {spec}: {dur}")))?;
                // Shorter delays are rounded up to one second; sub-second
                // parts are dropped.
                Schedule::Every(Duration::from_secs(parsed.as_secs().max(1)))
            }
            None => return Err(ParseError(format!("unrecognized descriptor: {spec}"))),
        },
    })
}

/// A Go duration string (`1h30m`, `90s`, `1.5h`, `500ms`).
fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn field(text: &str, b: &Bounds) -> Result<u64, ParseError> {
    text.split(',')
        .try_fold(0u64, |acc, part| Ok(acc | range(part, b)?))
}

fn number(text: &str, b: &Bounds) -> Result<u32, ParseError> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.min + u32::try_from(i).unwrap_or(0));
    }
    text.parse::<u32>()
        .map_err(|_| ParseError(format!("failed to parse int from {text}")))
}

fn range(expr: &str, b: &Bounds) -> Result<u64, ParseError> {
    let parts: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = parts[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut extra);
    if low_high[0] == "*" || low_high[0] == "?" {
        start = b.min;
        end = b.max;
        extra = STAR;
    } else {
        start = number(low_high[0], b)?;
        end = match low_high.len() {
            1 => start,
            2 => number(low_high[1], b)?,
            _ => return Err(ParseError(format!("too many hyphens: {expr}"))),
        };
        extra = 0;
    }
    let step = match parts.len() {
        1 => 1,
        2 => {
            let step = parts[1]
                .parse::<u32>()
                .map_err(|_| ParseError(format!("failed to parse int from {}", parts[1])))?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(ParseError(format!("too many slashes: {expr}"))),
    };
    if start < b.min {
        return Err(ParseError(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        )));
    }
    if end > b.max {
        return Err(ParseError(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        )));
    }
    if start > end {
        return Err(ParseError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(ParseError(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(bits(start, end, step) | extra)
}

fn has(set: u64, v: i64) -> bool {
    (0..63).contains(&v) && set & (1 << v) != 0
}

/// robfig's dayMatches: both must match if either field is `*`, else one.
fn day_matches(dom: u64, dow: u64, t: &Zoned) -> bool {
    let dom_match = has(dom, i64::from(t.day()));
    let dow_match = has(dow, i64::from(t.weekday().to_sunday_zero_offset()));
    if dom & STAR != 0 || dow & STAR != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

fn at(tz: &TimeZone, y: i16, m: i8, d: i8, h: i8) -> Option<Zoned> {
    civil::date(y, m, d)
        .at(h, 0, 0, 0)
        .to_zoned(tz.clone())
        .ok()
}

fn truncate(t: &Zoned, unit: i64, tz: &TimeZone) -> Option<Zoned> {
    let s = t.timestamp().as_second();
    Some(
        Timestamp::from_second(s - s.rem_euclid(unit))
            .ok()?
            .to_zoned(tz.clone()),
    )
}

/// robfig's SpecSchedule.Next, step by step: calendar steps for months and
/// days, absolute steps for hours, minutes and seconds (so a DST gap skips
/// the hours it removes and a repeated hour runs twice).
fn next_spec(f: [u64; 6], after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let [second, minute, hour, dom, month, dow] = f;
    let mut t = Timestamp::from_second(after.as_second().checked_add(1)?)
        .ok()?
        .to_zoned(tz.clone());
    let mut added = false;
    let year_limit = t.year() + 5;
    'wrap: loop {
        if t.year() > year_limit {
            return None;
        }
        while !has(month, i64::from(t.month())) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), 1, 0)?;
            }
            t = t.checked_add(1.month()).ok()?;
            if t.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(dom, dow, &t) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), t.day(), 0)?;
            }
            t = t.checked_add(1.day()).ok()?;
            // Midnight may not exist (DST): back to the day's start.
            if t.hour() != 0 {
                let h = i64::from(t.hour());
                let shift = if h > 12 { 24 - h } else { -h };
                t = t.checked_add(shift.hours()).ok()?;
            }
            if t.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(hour, i64::from(t.hour())) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), t.day(), t.hour())?;
            }
            t = t.checked_add(1.hour()).ok()?;
            if t.hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(minute, i64::from(t.minute())) {
            if !added {
                added = true;
                t = truncate(&t, 60, tz)?;
            }
            t = t.checked_add(1.minute()).ok()?;
            if t.minute() == 0 {
                continue 'wrap;
            }
        }
        while !has(second, i64::from(t.second())) {
            if !added {
                added = true;
                t = truncate(&t, 1, tz)?;
            }
            t = t.checked_add(1.second()).ok()?;
            if t.second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t.timestamp());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next_in(spec: &str, after: &str, zone: &str) -> Option<String> {
        let tz = TimeZone::get(zone).unwrap();
        Schedule::parse(spec)
            .unwrap()
            .next(ts(after), &tz)
            .map(|t| t.to_zoned(tz).to_string())
    }

    fn next(spec: &str, after: &str) -> String {
        next_in(spec, after, "UTC").unwrap()
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        assert_eq!(
            next("*/1 * * * *", "2024-01-01T00:00:00Z"),
            "2024-01-01T00:01:00+00:00[UTC]"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:16:30Z"),
            "2024-01-01T00:30:00+00:00[UTC]"
        );
        assert_eq!(
            next("5/20 * * * *", "2024-01-01T00:26:00Z"),
            "2024-01-01T00:45:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-01-01T13:00:00Z"),
            "2024-01-01T17:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 * JAN,jul MON-wed", "2024-02-01T00:00:00Z"),
            "2024-07-01T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("30 6 ? * sun", "2024-03-04T00:00:00Z"),
            "2024-03-10T06:30:00+00:00[UTC]"
        );
        // Seconds of the start time are skipped to the next minute.
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30.5Z"),
            "2024-01-01T00:01:00+00:00[UTC]"
        );
        // Year wrap.
        assert_eq!(
            next("0 0 1 1 *", "2024-06-01T00:00:00Z"),
            "2025-01-01T00:00:00+00:00[UTC]"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: either matches (the 13th, or any Friday).
        assert_eq!(
            next("0 0 13 * 5", "2024-09-01T00:00:00Z"),
            "2024-09-06T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 13 * 5", "2024-09-07T00:00:00Z"),
            "2024-09-13T00:00:00+00:00[UTC]"
        );
        // One is `*`: both must match (Fridays only).
        assert_eq!(
            next("0 0 * * 5", "2024-09-07T00:00:00Z"),
            "2024-09-13T00:00:00+00:00[UTC]"
        );
        // `*/1` counts as a star, `*/2` does not.
        assert_eq!(
            next("0 0 1 * */2", "2024-09-02T00:00:00Z"),
            "2024-09-03T00:00:00+00:00[UTC]"
        );
    }

    #[test]
    fn descriptors() {
        let after = "2024-05-15T10:20:30Z";
        assert_eq!(next("@yearly", after), "2025-01-01T00:00:00+00:00[UTC]");
        assert_eq!(next("@annually", after), "2025-01-01T00:00:00+00:00[UTC]");
        assert_eq!(next("@monthly", after), "2024-06-01T00:00:00+00:00[UTC]");
        // 2024-05-15 is a Wednesday.
        assert_eq!(next("@weekly", after), "2024-05-19T00:00:00+00:00[UTC]");
        assert_eq!(next("@daily", after), "2024-05-16T00:00:00+00:00[UTC]");
        assert_eq!(next("@midnight", after), "2024-05-16T00:00:00+00:00[UTC]");
        assert_eq!(next("@hourly", after), "2024-05-15T11:00:00+00:00[UTC]");
        assert_eq!(
            next("@every 1h30m", after),
            "2024-05-15T11:50:30+00:00[UTC]"
        );
    }

    #[test]
    fn time_zones_and_dst() {
        // New York springs forward on 2024-03-10 at 02:00: 02:30 does not
        // exist that day and is skipped (robfig).
        assert_eq!(
            next_in("30 2 * * *", "2024-03-09T12:00:00Z", "America/New_York").unwrap(),
            "2024-03-11T02:30:00-04:00[America/New_York]"
        );
        // Midnight in the zone, not in UTC.
        assert_eq!(
            next_in("0 0 * * *", "2024-03-09T12:00:00Z", "America/New_York").unwrap(),
            "2024-03-10T00:00:00-05:00[America/New_York]"
        );
        // Hourly across the gap: 01:00 EST, then 03:00 EDT.
        assert_eq!(
            next_in("0 * * * *", "2024-03-10T06:30:00Z", "America/New_York").unwrap(),
            "2024-03-10T03:00:00-04:00[America/New_York]"
        );
        // Falls back on 2024-11-03: 01:30 happens twice, robfig runs both.
        let first = next_in("30 1 * * *", "2024-11-03T04:00:00Z", "America/New_York").unwrap();
        assert_eq!(first, "2024-11-03T01:30:00-04:00[America/New_York]");
        assert_eq!(
            next_in("30 1 * * *", "2024-11-03T05:30:00Z", "America/New_York").unwrap(),
            "2024-11-03T01:30:00-05:00[America/New_York]"
        );
    }

    #[test]
    fn impossible_dates_have_no_next() {
        assert_eq!(next_in("0 0 30 2 *", "2024-01-01T00:00:00Z", "UTC"), None);
    }

    #[test]
    fn errors() {
        let err = |s: &str| Schedule::parse(s).unwrap_err().to_string();
        assert_eq!(err(""), "empty spec string");
        assert!(err("* * * *").starts_with("expected exactly 5 fields, found 4"));
        assert!(err("* * * * * *").starts_with("expected exactly 5 fields, found 6"));
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            err("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            err("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            err("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(err("x * * * *"), "failed to parse int from x");
        assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert!(err("TZ=UTC * * * * *").contains("spec.timeZone"));
    }
}
