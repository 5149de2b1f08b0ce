//! Upstream's container restart back-off (`flowcontrol.Backoff`): 10 s,
//! doubling to 5 min; an entry untouched for twice the maximum (a
//! container that ran 10 min) starts over.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

struct Entry {
    delay: Duration,
    last_update: Instant,
}

#[derive(Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// Whether `key` must still wait after an event (an exit) at `since`;
    /// `Some(remaining)` when it must.
    pub fn remaining(&self, key: &str, since: Instant, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if now.duration_since(entry.last_update) > MAX * 2 {
            return None;
        }
        let waited = now.duration_since(since);
        (waited < entry.delay).then(|| entry.delay - waited)
    }

    /// Records a restart: the next one waits longer.
    pub fn next(&mut self, key: &str, now: Instant) {
        match self.entries.get_mut(key) {
            Some(entry) if now.duration_since(entry.last_update) <= MAX * 2 => {
                entry.delay = (entry.delay * 2).min(MAX);
                entry.last_update = now;
            }
            _ => {
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        delay: INITIAL,
                        last_update: now,
                    },
                );
            }
        }
    }

    /// The current delay of `key`, for messages.
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(INITIAL, |e| e.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_delays_double_to_the_cap() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.remaining("c", t0, t0), None);
        b.next("c", t0);
        assert_eq!(b.remaining("c", t0, t0), Some(INITIAL));
        assert_eq!(b.remaining("c", t0, t0 + INITIAL), None);
        let mut expected = INITIAL;
        for _ in 0..10 {
            b.next("c", t0);
            expected = (expected * 2).min(MAX);
            assert_eq!(b.delay("c"), expected);
        }
        assert_eq!(b.delay("c"), MAX);
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        b.next("c", t0);
        b.next("c", t0);
        assert_eq!(b.delay("c"), INITIAL * 2);
        let later = t0 + MAX * 2 + Duration::from_secs(1);
        assert_eq!(b.remaining("c", later, later), None);
        b.next("c", later);
        assert_eq!(b.delay("c"), INITIAL);
    }
}
