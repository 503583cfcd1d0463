//! Time as the application reads it: unix seconds for what is stored and
//! shown, and a monotonic reading for durations (staleness, waits, batching).
//!
//! Code that decides by time takes a `Clock` so that its tests move a
//! `ManualClock` instead of sleeping.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Unix seconds now, from the system clock: only for code that runs
/// without a `Tollgate` (tools, test fixtures). The application reads
/// `Tollgate::clock` (`Tollgate::now`), so that tests can move its time.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub trait Clock: Send + Sync + 'static {
    /// Unix seconds now.
    fn unix(&self) -> i64;
    /// Time since this clock's origin; never goes backwards.
    fn monotonic(&self) -> Duration;
}

/// The system clock.
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn unix(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests.
pub struct ManualClock {
    unix: AtomicI64,
    monotonic_micros: AtomicU64,
}

impl ManualClock {
    pub fn new(unix: i64) -> Self {
        Self {
            unix: AtomicI64::new(unix),
            monotonic_micros: AtomicU64::new(0),
        }
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        let before = self.monotonic_micros.fetch_add(micros, Ordering::AcqRel);
        // The unix reading follows whole seconds crossed.
        let seconds = (before + micros) / 1_000_000 - before / 1_000_000;
        self.unix
            .fetch_add(i64::try_from(seconds).unwrap_or(i64::MAX), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn unix(&self) -> i64 {
        self.unix.load(Ordering::Acquire)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_micros(self.monotonic_micros.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_millis(600));
        assert_eq!(
            (clock.unix(), clock.monotonic()),
            (1_000, Duration::from_millis(600))
        );
        clock.advance(Duration::from_millis(600));
        assert_eq!(
            (clock.unix(), clock.monotonic()),
            (1_001, Duration::from_millis(1_200))
        );
    }
}
