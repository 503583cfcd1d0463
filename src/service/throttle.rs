//! Throttling of guesses: sign-in passwords, the current password of a
//! password change, the setup code and invitation codes. After 10 attempts
//! for one subject from one address within 15 minutes, further attempts from
//! there are refused without checking anything until the window has passed.
//!
//! An attempt is counted *before* the slow check runs (a slot is reserved
//! atomically), so guesses sent in parallel can not all slip past the count:
//! at most the limit is ever checked. A success clears the count.
//!
//! Keyed by address *and* subject, so nobody can lock a member out from
//! elsewhere. Behind a reverse proxy, set `TOLLGATE_TRUSTED_PROXY`, or every
//! client shares the proxy's address (and its count). Kept in memory: each
//! instance counts on its own.
//!
//! Memory is bounded: a key is a 16-byte digest of (kind, address,
//! normalised subject), whatever was typed; each key keeps at most `limit`
//! times; and the table holds at most `capacity` keys. When it is full,
//! keys whose window has passed go first, then the eighth of the keys with
//! the oldest latest attempt.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

pub const MAX_FAILURES: usize = 10;
pub const WINDOW_SECONDS: i64 = 15 * 60;
const MAX_KEYS: usize = 100_000;

/// What is being guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SignIn,
    CurrentPassword,
    SetupCode,
    InvitationCode,
    /// Unauthenticated leaked-token reports (counted per address only).
    LeakReport,
}

impl Kind {
    fn label(self) -> &'static [u8] {
        match self {
            Kind::SignIn => b"sign-in",
            Kind::CurrentPassword => b"current-password",
            Kind::SetupCode => b"setup-code",
            Kind::InvitationCode => b"invitation-code",
            Kind::LeakReport => b"leak-report",
        }
    }
}

/// A bounded, normalised throttle key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 16]);

impl Key {
    /// The key of `subject` (an email, a user id; trimmed and lower-cased)
    /// guessed from `ip`.
    pub fn new(kind: Kind, ip: &str, subject: &str) -> Self {
        let mut digest = Sha256::new();
        digest.update(kind.label());
        digest.update([0]);
        digest.update(ip.as_bytes());
        digest.update([0]);
        digest.update(subject.trim().to_lowercase().as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.finalize()[..16]);
        Self(key)
    }
}

pub struct Throttle {
    limit: usize,
    window: i64,
    capacity: usize,
    attempts: Mutex<HashMap<Key, Vec<i64>>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(MAX_FAILURES, WINDOW_SECONDS, MAX_KEYS)
    }
}

impl Throttle {
    pub fn new(limit: usize, window: i64, capacity: usize) -> Self {
        Self {
            limit,
            window,
            capacity: capacity.max(1),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt now. `Err(seconds)` when the limit is reached: the
    /// attempt must not be checked, and may be retried after that long.
    pub fn attempt(&self, key: Key, now: i64) -> Result<(), i64> {
        // A poisoned lock means a panic while counting: refuse rather than
        // let guesses through uncounted.
        let Ok(mut attempts) = self.attempts.lock() else {
            return Err(self.window);
        };
        if !attempts.contains_key(&key) && attempts.len() >= self.capacity {
            self.evict(&mut attempts, now);
        }
        let times = attempts.entry(key).or_default();
        times.retain(|t| now - t < self.window);
        if times.len() >= self.limit {
            let first = times.iter().min().copied().unwrap_or(now);
            return Err((first + self.window - now).max(1));
        }
        times.push(now);
        Ok(())
    }

    /// The attempt succeeded: the count starts again.
    pub fn clear(&self, key: Key) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.remove(&key);
        }
    }

    /// Gives back the attempt counted last (it turned out not to be a guess).
    pub fn refund(&self, key: Key) {
        if let Ok(mut attempts) = self.attempts.lock()
            && let Some(times) = attempts.get_mut(&key)
        {
            times.pop();
            if times.is_empty() {
                attempts.remove(&key);
            }
        }
    }

    fn evict(&self, attempts: &mut HashMap<Key, Vec<i64>>, now: i64) {
        attempts.retain(|_, times| times.iter().any(|t| now - t < self.window));
        if attempts.len() < self.capacity {
            return;
        }
        // Still full of live keys: drop the eighth least recently tried,
        // so that eviction is not paid for on every new key.
        let mut latest: Vec<i64> = attempts
            .values()
            .map(|times| times.iter().max().copied().unwrap_or(i64::MIN))
            .collect();
        let drop = (self.capacity / 8).max(1).min(latest.len());
        let (_, cutoff, _) = latest.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        let mut dropped = 0;
        attempts.retain(|_, times| {
            let newest = times.iter().max().copied().unwrap_or(i64::MIN);
            if newest <= cutoff && dropped < drop {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }

    /// Keys held, for tests of the bound.
    pub fn len(&self) -> usize {
        self.attempts.lock().map_or(0, |a| a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in(ip: &str, email: &str) -> Key {
        Key::new(Kind::SignIn, ip, email)
    }

    #[test]
    fn ten_attempts_lock_that_address_and_email_for_the_window() {
        let throttle = Throttle::default();
        for i in 0..MAX_FAILURES as i64 {
            assert_eq!(
                throttle.attempt(sign_in("1.2.3.4", "Ada@example.com "), 1000 + i),
                Ok(())
            );
        }
        let key = sign_in("1.2.3.4", "ada@example.com");
        assert_eq!(throttle.attempt(key, 1010), Err(WINDOW_SECONDS - 10));
        // Another address, another email or another kind is not affected.
        assert_eq!(
            throttle.attempt(sign_in("5.6.7.8", "ada@example.com"), 1010),
            Ok(())
        );
        assert_eq!(
            throttle.attempt(sign_in("1.2.3.4", "bob@example.com"), 1010),
            Ok(())
        );
        let code = Key::new(Kind::InvitationCode, "1.2.3.4", "ada@example.com");
        assert_eq!(throttle.attempt(code, 1010), Ok(()));
        // The window passes.
        assert_eq!(throttle.attempt(key, 1000 + WINDOW_SECONDS), Ok(()));
        throttle.clear(key);
        assert_eq!(throttle.attempt(key, 1010), Ok(()));
    }

    #[test]
    fn refused_attempts_are_not_counted_and_refunds_give_one_back() {
        let throttle = Throttle::new(2, 60, 10);
        let key = sign_in("1.2.3.4", "a@example.com");
        assert_eq!(throttle.attempt(key, 0), Ok(()));
        assert_eq!(throttle.attempt(key, 1), Ok(()));
        for t in 2..50 {
            assert!(throttle.attempt(key, t).is_err());
        }
        // 60 s after the first attempt one is free again, not 60 s after the last refusal.
        assert_eq!(throttle.attempt(key, 60), Ok(()));
        throttle.refund(key);
        assert_eq!(throttle.attempt(key, 60), Ok(()));
        assert!(throttle.attempt(key, 60).is_err());
    }

    #[test]
    fn keys_are_bounded_however_long_the_subject() {
        let long = "x".repeat(60_000);
        assert_eq!(
            sign_in("1.2.3.4", &format!("{long}@example.com")).0.len(),
            16
        );
    }

    #[test]
    fn the_table_never_holds_more_than_its_capacity() {
        let throttle = Throttle::new(3, 900, 64);
        let victim = sign_in("9.9.9.9", "victim@example.com");
        for t in 0..3 {
            throttle.attempt(victim, t).unwrap();
        }
        assert!(throttle.attempt(victim, 3).is_err());
        for i in 0..10_000 {
            throttle
                .attempt(
                    sign_in("1.2.3.4", &format!("user{i}@example.com")),
                    10 + i / 100,
                )
                .unwrap();
            assert!(throttle.len() <= 64, "{} keys", throttle.len());
        }
        // Every key is still inside its window: the least recently tried
        // were dropped, the victim among them, so its count started over.
        assert_eq!(throttle.attempt(victim, 200), Ok(()));
        // Once their window has passed, old keys make room first: a full
        // table of fresh keys keeps every one of them and its count.
        for i in 0..64 {
            throttle
                .attempt(sign_in("5.6.7.8", &format!("fresh{i}@example.com")), 5_000)
                .unwrap();
        }
        assert_eq!(throttle.len(), 64);
        let first = sign_in("5.6.7.8", "fresh0@example.com");
        assert_eq!(throttle.attempt(first, 5_001), Ok(()));
        assert_eq!(throttle.attempt(first, 5_001), Ok(()));
        assert!(
            throttle.attempt(first, 5_001).is_err(),
            "its count was kept"
        );
    }
}
