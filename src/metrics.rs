//! Prometheus metrics, served on their own address (`TOLLGATE_METRICS_BIND`,
//! off by default) and never on the public port.
//!
//! Series are recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus` in the text format. What other parts
//! already count (the token cache, the database pool, the password-hashing
//! queue) is read when Prometheus scrapes, not recorded on the hot path.
//!
//! No label carries a token, an email address or a path: requests are
//! labelled by route pattern (`/api/v1/tokens/{id}`), method and status,
//! and everything else by a fixed set of words.

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::Tollgate;
use crate::service::token_cache::AuthFailure;

/// Latency buckets, in seconds: from a cached token check (tens of µs) to
/// an acknowledgement timeout (3 s) and beyond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide recorder: the `metrics` facade has one per process, so
/// every application built in this process records into it. `None` when it
/// could not be installed (another recorder was there first).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            metrics::gauge!("tollgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "tollgate_http_requests_total",
        "HTTP requests answered, by method, route pattern and status"
    );
    describe_histogram!(
        "tollgate_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route pattern"
    );
    describe_counter!(
        "tollgate_token_verifications_total",
        "API token checks, by outcome (ok, unknown, expired, owner_disabled, not_a_member, owner_read_only, malformed, missing, error)"
    );
    describe_counter!(
        "tollgate_sign_in_throttled_total",
        "Attempts refused without checking the password, after too many failures, by kind (sign_in, current_password)"
    );
    describe_counter!(
        "tollgate_token_cache_hits_total",
        "Token checks answered from this instance's cache"
    );
    describe_counter!(
        "tollgate_token_cache_misses_total",
        "Token checks that read the database while the cache was usable"
    );
    describe_counter!(
        "tollgate_token_cache_invalidations_total",
        "Times this instance emptied its token cache"
    );
    describe_counter!(
        "tollgate_token_cache_evictions_total",
        "Entries evicted from this instance's token cache, by cause: change (a change concerned them) or size (the size bound pushed them out)"
    );
    describe_counter!(
        "tollgate_token_cache_version_checks_total",
        "SQLite: token checks that read the change log because something had been committed since the last look"
    );
    describe_counter!(
        "tollgate_token_cache_fail_closed_total",
        "Token checks that bypassed the cache because this instance could not prove it current"
    );
    describe_counter!(
        "tollgate_peer_acknowledgements_total",
        "Acknowledgements other instances sent for this instance's token changes"
    );
    describe_counter!(
        "tollgate_peer_ack_timeouts_total",
        "Token changes answered with some instance's acknowledgement missing"
    );
    describe_gauge!(
        "tollgate_password_hash_queue_depth",
        "Password hashes waiting for a hashing slot"
    );
    describe_histogram!(
        "tollgate_password_hash_wait_seconds",
        Unit::Seconds,
        "Time a password hash waited for a hashing slot"
    );
    describe_gauge!(
        "tollgate_db_pool_connections",
        "Database pool connections, by state (idle, in_use)"
    );
    describe_gauge!(
        "tollgate_db_pool_max_connections",
        "Most connections the database pool opens"
    );
}

/// Whether metrics are being recorded (a metrics address was configured).
fn enabled() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// The request log's part: one count and one duration per answer.
pub fn request_answered(method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
    if !enabled() {
        return;
    }
    // Unknown methods are folded so that a client can not mint label values.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method.to_owned(),
        _ => "other".to_owned(),
    };
    // The pattern, never the path: paths carry invitation and setup codes.
    let route = route.unwrap_or("unmatched").to_owned();
    metrics::counter!(
        "tollgate_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "tollgate_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(elapsed.as_secs_f64());
}

/// The outcome of checking an API token, as a label value.
pub fn token_verified(outcome: Result<(), AuthFailure>) {
    let outcome = match outcome {
        Ok(()) => "ok",
        Err(AuthFailure::Unknown) => "unknown",
        Err(AuthFailure::Expired) => "expired",
        Err(AuthFailure::OwnerDisabled) => "owner_disabled",
        Err(AuthFailure::NotAMember) => "not_a_member",
        Err(AuthFailure::OwnerReadOnly) => "owner_read_only",
    };
    token_check(outcome);
}

/// A token check that ended before the database: `missing`, `malformed`
/// (the header or the token's checksum), or `error` (the database failed).
pub fn token_check(outcome: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("tollgate_token_verifications_total", "outcome" => outcome).increment(1);
}

/// Sets the series read from the application's state, just before a scrape.
fn collect(app: &Tollgate) {
    let cache = app.tokens.stats();
    for (name, value) in [
        ("tollgate_token_cache_hits_total", cache.hits),
        ("tollgate_token_cache_misses_total", cache.misses),
        (
            "tollgate_token_cache_invalidations_total",
            cache.invalidations,
        ),
        ("tollgate_token_cache_fail_closed_total", cache.fail_closed),
        (
            "tollgate_token_cache_version_checks_total",
            cache.version_checks,
        ),
        ("tollgate_peer_acknowledgements_total", cache.acks),
        ("tollgate_peer_ack_timeouts_total", cache.ack_timeouts),
    ] {
        metrics::counter!(name).absolute(value);
    }
    for (cause, value) in [
        ("change", cache.evicted_by_change),
        ("size", cache.evicted_by_size),
    ] {
        metrics::counter!("tollgate_token_cache_evictions_total", "cause" => cause).absolute(value);
    }
    let pool = app.db.pool();
    let size = f64::from(pool.size());
    let idle = pool.num_idle() as f64;
    metrics::gauge!("tollgate_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("tollgate_db_pool_connections", "state" => "in_use")
        .set((size - idle).max(0.0));
    metrics::gauge!("tollgate_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));
}

/// The metrics server: `GET /metrics` and nothing else, on its own address,
/// one worker. Stopped by the application when the main server stops.
pub fn server(bind: &str, app: web::Data<Tollgate>) -> anyhow::Result<(Server, SocketAddr)> {
    let handle = handle().context("the metrics recorder could not be installed")?;
    let listener =
        TcpListener::bind(bind).with_context(|| format!("binding the metrics address {bind}"))?;
    let address = listener.local_addr()?;
    let handle = web::Data::new(handle);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            .app_data(handle.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((server, address))
}

async fn scrape(app: web::Data<Tollgate>, handle: web::Data<PrometheusHandle>) -> HttpResponse {
    collect(&app);
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(handle.render())
}
