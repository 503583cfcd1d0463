//! "Last used" times, coalesced: at most one write per token per minute,
//! written in batches by a background task. The queue is bounded: past
//! `capacity` distinct tokens waiting, further uses are not recorded until
//! the next flush (the time is advisory, a lost minute harms nobody).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub struct LastUsed {
    pending: Mutex<HashMap<i64, i64>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl LastUsed {
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    /// Records a use of `token_id` at unix second `now`. `seen` is the
    /// minute last recorded for this token (kept with its cached row), so a
    /// busy token takes the lock once a minute, not once a request.
    pub fn record(&self, seen: &AtomicI64, token_id: i64, now: i64) {
        let minute = now - now.rem_euclid(60);
        if seen.fetch_max(minute, Ordering::AcqRel) >= minute {
            return;
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.len() >= self.capacity && !pending.contains_key(&token_id) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            // Not recorded now: let a later use of this token try again.
            seen.fetch_min(minute - 60, Ordering::AcqRel);
            return;
        }
        let slot = pending.entry(token_id).or_insert(minute);
        *slot = (*slot).max(minute);
    }

    /// Everything waiting to be written: (token id, minute).
    pub fn take(&self) -> Vec<(i64, i64)> {
        match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;

    #[test]
    fn one_write_per_token_per_minute() {
        let clock = ManualClock::new(1_800_000_000); // a whole minute
        let used = LastUsed::new(10);
        let seen = AtomicI64::new(0);
        used.record(&seen, 7, clock.unix());
        clock.advance(Duration::from_secs(59));
        used.record(&seen, 7, clock.unix());
        assert_eq!(used.take(), vec![(7, 1_800_000_000)]);
        // Same minute, already written: nothing new.
        used.record(&seen, 7, clock.unix());
        assert_eq!(used.take(), vec![]);
        clock.advance(Duration::from_secs(1));
        used.record(&seen, 7, clock.unix());
        assert_eq!(used.take(), vec![(7, 1_800_000_060)]);
    }

    #[test]
    fn the_queue_is_bounded_and_a_dropped_use_is_recorded_later() {
        let used = LastUsed::new(2);
        let seen: Vec<AtomicI64> = (0..3).map(|_| AtomicI64::new(0)).collect();
        for (id, s) in seen.iter().enumerate() {
            used.record(s, id as i64, 120);
        }
        assert_eq!(used.dropped(), 1);
        let mut written = used.take();
        written.sort();
        assert_eq!(written, vec![(0, 120), (1, 120)]);
        used.record(&seen[2], 2, 130);
        assert_eq!(used.take(), vec![(2, 120)]);
    }
}
