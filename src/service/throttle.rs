//! Sign-in throttling: after 10 failed sign-ins for one email from one
//! address within 15 minutes, further attempts from there are refused
//! without checking the password until the window has passed. Keyed by
//! address *and* email, so nobody can lock a member out from elsewhere
//! (behind a reverse proxy, set `TOLLGATE_TRUSTED_PROXY` so that the address
//! is the client's, not the proxy's). Kept in memory: each instance counts
//! on its own.

use std::collections::HashMap;
use std::sync::Mutex;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW_SECONDS: i64 = 15 * 60;
const MAX_KEYS: usize = 50_000;

#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<(String, String), Vec<i64>>>,
}

impl SignInThrottle {
    /// Seconds until `ip` may try `email` again, or `None` if it may now.
    pub fn retry_after(&self, ip: &str, email: &str, now: i64) -> Option<i64> {
        let failures = self.failures.lock().ok()?;
        let times = failures.get(&(ip.to_owned(), email.to_lowercase()))?;
        let recent: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| now - t < WINDOW_SECONDS)
            .collect();
        (recent.len() >= MAX_FAILURES).then(|| {
            recent
                .iter()
                .min()
                .map_or(0, |first| first + WINDOW_SECONDS - now)
                .max(1)
        })
    }

    pub fn failed(&self, ip: &str, email: &str, now: i64) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| times.iter().any(|t| now - t < WINDOW_SECONDS));
        }
        let times = failures
            .entry((ip.to_owned(), email.to_lowercase()))
            .or_default();
        times.retain(|t| now - t < WINDOW_SECONDS);
        times.push(now);
    }

    pub fn succeeded(&self, ip: &str, email: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&(ip.to_owned(), email.to_lowercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_that_address_and_email_for_the_window() {
        let throttle = SignInThrottle::default();
        for i in 0..MAX_FAILURES as i64 {
            assert_eq!(
                throttle.retry_after("1.2.3.4", "ada@example.com", 1000 + i),
                None
            );
            throttle.failed("1.2.3.4", "Ada@example.com", 1000 + i);
        }
        assert_eq!(
            throttle.retry_after("1.2.3.4", "ada@example.com", 1010),
            Some(WINDOW_SECONDS - 10)
        );
        // Another address, or another email, is not affected.
        assert_eq!(
            throttle.retry_after("5.6.7.8", "ada@example.com", 1010),
            None
        );
        assert_eq!(
            throttle.retry_after("1.2.3.4", "bob@example.com", 1010),
            None
        );
        // The window passes.
        assert_eq!(
            throttle.retry_after("1.2.3.4", "ada@example.com", 1000 + WINDOW_SECONDS),
            None
        );
        throttle.succeeded("1.2.3.4", "ada@example.com");
        assert_eq!(
            throttle.retry_after("1.2.3.4", "ada@example.com", 1010),
            None
        );
    }
}
