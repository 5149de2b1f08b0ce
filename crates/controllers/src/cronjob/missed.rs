//! Which scheduled time a CronJob should run now (upstream's
//! mostRecentScheduleTime and nextScheduleTimeDuration).

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::schedule::Schedule;

/// Upstream adds this to the next schedule time when requeueing, so the
/// sync lands just after it.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// The most recent unmet schedule time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// Where counting started: the last schedule time, else the creation
    /// time (moved up to `now - startingDeadlineSeconds` when asked).
    pub earliest: Timestamp,
    /// The latest schedule time in `(earliest, now]`, if any.
    pub most_recent: Option<Timestamp>,
    /// Roughly how many schedule times were missed (upstream's estimate).
    pub missed: i64,
}

/// Why the schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time difference between two schedules is less than 1 second")]
pub struct InvalidSchedule;

/// The most recent schedule time not yet run at `now`.
pub fn most_recent(
    schedule: &Schedule,
    tz: &TimeZone,
    created: Timestamp,
    last_scheduled: Option<Timestamp>,
    starting_deadline: Option<i64>,
    now: Timestamp,
) -> Result<Unmet, InvalidSchedule> {
    let mut earliest = last_scheduled.unwrap_or(created);
    if let Some(deadline) = starting_deadline {
        let cutoff = Timestamp::from_second(now.as_second().saturating_sub(deadline))
            .unwrap_or(Timestamp::MIN);
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let none = Unmet {
        earliest,
        most_recent: None,
        missed: 0,
    };
    let Some(t1) = schedule.next(earliest, tz) else {
        return Ok(none);
    };
    if now < t1 {
        return Ok(none);
    }
    let Some(t2) = schedule.next(t1, tz) else {
        return Ok(Unmet {
            earliest,
            most_recent: Some(t1),
            missed: 1,
        });
    };
    if now < t2 {
        return Ok(Unmet {
            earliest,
            most_recent: Some(t1),
            missed: 1,
        });
    }
    let between = t2.as_second() - t1.as_second();
    if between < 1 {
        return Err(InvalidSchedule);
    }
    // Upstream's approximation: schedules of the first interval's length
    // between t1 and now, then stepped exactly from one interval before
    // (irregular schedules such as `30 6-16/4 * * 1-5`).
    let missed = (now.as_second() - t1.as_second()) / between + 1;
    let mut from = Timestamp::from_second(t1.as_second() + (missed - 2) * between).unwrap_or(t1);
    let mut recent = None;
    while let Some(t) = schedule.next(from, tz).filter(|t| *t <= now) {
        recent = Some(t);
        from = t;
    }
    Ok(Unmet {
        earliest,
        most_recent: recent,
        missed,
    })
}

/// How long from `now` until just after the next schedule time.
pub fn until_next(
    schedule: &Schedule,
    tz: &TimeZone,
    created: Timestamp,
    last_scheduled: Option<Timestamp>,
    now: Timestamp,
) -> Option<Duration> {
    let from = match most_recent(schedule, tz, created, last_scheduled, None, now) {
        Err(_) => now,
        Ok(Unmet {
            most_recent: Some(t),
            ..
        }) => t,
        // Missed times that could not be placed: look ahead from now.
        Ok(u) if u.missed > 0 => now,
        Ok(u) => u.earliest,
    };
    let next = schedule.next(from, tz)?;
    let ms = next.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)) + NEXT_SCHEDULE_DELTA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn most_recent_unmet_time() {
        let every = Schedule::parse("*/1 * * * *").unwrap();
        let utc = TimeZone::UTC;
        let created = ts("2024-01-01T00:00:30Z");
        let u = most_recent(
            &every,
            &utc,
            created,
            None,
            None,
            ts("2024-01-01T00:00:59Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, None);
        let u = most_recent(
            &every,
            &utc,
            created,
            None,
            None,
            ts("2024-01-01T00:01:10Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, Some(ts("2024-01-01T00:01:00Z")));
        let u = most_recent(
            &every,
            &utc,
            created,
            None,
            None,
            ts("2024-01-01T03:00:10Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, Some(ts("2024-01-01T03:00:00Z")));
        assert_eq!(u.missed, 180);
        // startingDeadlineSeconds bounds how far back to look.
        let u = most_recent(
            &every,
            &utc,
            created,
            None,
            Some(30),
            ts("2024-01-01T03:00:40Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, None);
        // Irregular schedules are stepped exactly.
        let office = Schedule::parse("30 6-16/4 * * 1-5").unwrap();
        // Last run Friday 2024-01-05 14:30; now Monday 08:00.
        let u = most_recent(
            &office,
            &utc,
            created,
            Some(ts("2024-01-05T14:30:00Z")),
            None,
            ts("2024-01-08T08:00:00Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, Some(ts("2024-01-08T06:30:00Z")));
        let monthly = Schedule::parse("0 0 1 * *").unwrap();
        let u = most_recent(
            &monthly,
            &utc,
            created,
            None,
            None,
            ts("2024-05-15T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(u.most_recent, Some(ts("2024-05-01T00:00:00Z")));
        assert_eq!(
            until_next(
                &every,
                &utc,
                created,
                Some(ts("2024-01-01T00:01:00Z")),
                ts("2024-01-01T00:01:10Z")
            ),
            Some(Duration::from_millis(50_100))
        );
    }
}
