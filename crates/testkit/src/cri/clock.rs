//! The fake runtime's wall clock: tokio's (pausable) `Instant` mapped onto an
//! epoch, so timestamps stay consistent with scripted exits under
//! `tokio::time::pause()`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// 2025-01-01T00:00:00Z, the default epoch: the same timestamps on every run.
const FIXED_EPOCH_SECS: u64 = 1_735_689_600;

/// Wall-clock time as the fake runtime reports it (`created_at`,
/// `started_at`, `finished_at`, log lines): `epoch + (tokio now - origin)`.
///
/// Under `tokio::time::pause()` the clock moves only when tokio's time does,
/// so a container scripted to exit after 2 s reports
/// `finished_at - started_at == 2 s` exactly.
#[derive(Clone, Copy, Debug)]
pub struct FakeClock {
    epoch_ns: i64,
    origin: Instant,
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock::fixed()
    }
}

impl FakeClock {
    /// Starts at `epoch` now and follows tokio's clock.
    pub fn starting_at(epoch: SystemTime) -> FakeClock {
        let since = epoch.duration_since(UNIX_EPOCH).unwrap_or_default();
        FakeClock {
            epoch_ns: i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
            origin: Instant::now(),
        }
    }

    /// Starts at 2025-01-01T00:00:00Z (the default): deterministic output.
    pub fn fixed() -> FakeClock {
        FakeClock::starting_at(UNIX_EPOCH + Duration::from_secs(FIXED_EPOCH_SECS))
    }

    /// Starts at the real current time (hollow nodes, clusters where pod ages
    /// should look right).
    pub fn wall() -> FakeClock {
        FakeClock::starting_at(SystemTime::now())
    }

    /// Nanoseconds since the Unix epoch at tokio's `Instant::now()`.
    pub fn now_ns(&self) -> i64 {
        self.at_ns(Instant::now())
    }

    /// Nanoseconds since the Unix epoch at `instant`.
    pub fn at_ns(&self, instant: Instant) -> i64 {
        let elapsed = instant.saturating_duration_since(self.origin);
        self.epoch_ns
            .saturating_add(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
    }

    /// `now_ns` as a `SystemTime`.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(self.now_ns()).unwrap_or(0))
    }
}

/// RFC 3339 with nanoseconds as Go's `time.RFC3339Nano` prints it (trailing
/// zeros of the fraction dropped), the timestamp format of CRI log lines.
pub(crate) fn rfc3339_nano(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(ts) => ts.to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(
            rfc3339_nano(1_475_713_029_669_794_202),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            rfc3339_nano(1_475_713_029_000_000_000),
            "2016-10-06T00:17:09Z"
        );
        assert_eq!(
            rfc3339_nano(1_475_713_029_500_000_000),
            "2016-10-06T00:17:09.5Z"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = FakeClock::fixed();
        let t0 = clock.now_ns();
        assert_eq!(t0, 1_735_689_600_000_000_000);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(clock.now_ns() - t0, 2_000_000_000);
    }
}
