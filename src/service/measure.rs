//! What the use-cases count for the operators' metrics (password-hash
//! queue, throttle refusals), through the `metrics` facade: the Prometheus
//! exporter renders them, and the services need not know it.

/// An attempt refused by the throttle: `sign_in`, or `current_password`
/// (a password change).
pub fn throttled(kind: &'static str) {
    metrics::counter!("tollgate_sign_in_throttled_total", "kind" => kind).increment(1);
}

/// A password hash waiting for a hashing slot: counted in the queue gauge
/// from `enter` until `served` (or until dropped, when it gave up), and its
/// wait recorded when served.
pub struct HashQueued {
    since: std::time::Instant,
}

impl HashQueued {
    pub fn enter() -> Self {
        metrics::gauge!("tollgate_password_hash_queue_depth").increment(1.0);
        Self {
            since: std::time::Instant::now(),
        }
    }

    pub fn served(self) {
        metrics::histogram!("tollgate_password_hash_wait_seconds")
            .record(self.since.elapsed().as_secs_f64());
    }
}

impl Drop for HashQueued {
    fn drop(&mut self) {
        metrics::gauge!("tollgate_password_hash_queue_depth").decrement(1.0);
    }
}
