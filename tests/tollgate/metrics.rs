//! `GET /metrics`: Prometheus text on its own address (never the public
//! one), with requests by route and status, token checks by outcome, and
//! no token, email or path in any label.
//!
//! The `metrics` facade keeps one recorder per process, so series count
//! the requests of every test in this binary: the tests compare a series
//! before and after what they do, and only ask for "at least".

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use reqwest::{Method, StatusCode};
use tollgate::startup::Application;

use crate::helpers::{
    ADMIN, Backend, PASSWORD, TestClient, TestDatabase, WRITER, backends, bearer, seed, test_config,
};

struct Served {
    base: String,
    metrics: String,
    core: actix_web::web::Data<tollgate::service::Tollgate>,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _database: TestDatabase,
}

impl Served {
    async fn start(backend: Backend) -> Self {
        let database = TestDatabase::create(backend).await;
        seed(&database.url).await;
        let mut config = test_config(&database.url);
        config.metrics_bind = Some("127.0.0.1:0".to_owned());
        let app = Application::build(config).await.expect("build app");
        let metrics: SocketAddr = app.metrics_address().expect("metrics address");
        let base = format!("http://{}", app.address());
        let core = app.core();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            base,
            metrics: format!("http://{metrics}"),
            core,
            handle,
            server,
            _database: database,
        }
    }

    async fn scrape(&self) -> String {
        let res = reqwest::get(format!("{}/metrics", self.metrics))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        res.text().await.unwrap()
    }

    async fn call(&self, method: Method, path: &str, authorization: Option<&str>) -> StatusCode {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send().await.unwrap().status()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
        self.core.db.close().await;
    }
}

/// The value of one series (exact name and labels), 0 when absent.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_on_their_own_address_and_never_on_the_public_one() {
    let served = Served::start(Backend::Sqlite).await;
    assert_eq!(
        served.call(Method::GET, "/metrics", None).await,
        StatusCode::NOT_FOUND
    );
    let text = served.scrape().await;
    assert!(
        text.contains(&format!(
            "tollgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(
        text.contains("tollgate_db_pool_connections{state=\"idle\"}"),
        "{text}"
    );
    assert!(
        text.contains("tollgate_db_pool_max_connections 8"),
        "{text}"
    );
    // The metrics address serves nothing else.
    for path in ["/", "/api/v1/me", "/login"] {
        let res = reqwest::get(format!("{}{path}", served.metrics))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_token_checks_are_counted_without_tokens_emails_or_paths() {
    for backend in backends() {
        let served = Served::start(backend).await;
        let writer = TestClient::new(&served.base);
        assert_eq!(
            writer.login(WRITER, PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        let (_, secret) = writer.generate(&[("name", "metrics")]).await;
        let secret = secret.expect("token shown");
        let (_, gone) = writer.generate(&[("name", "deleted")]).await;
        let gone = gone.expect("token shown");
        let res = writer.post_form("/profile/tokens/revoke-all", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let (_, secret2) = writer.generate(&[("name", "metrics 2")]).await;
        let secret = secret2.unwrap_or(secret);

        let before = served.scrape().await;
        let me_ok = r#"tollgate_http_requests_total{method="GET",route="/api/v1/me",status="200"}"#;
        let me_401 =
            r#"tollgate_http_requests_total{method="GET",route="/api/v1/me",status="401"}"#;
        let outcome = |o: &str| format!(r#"tollgate_token_verifications_total{{outcome="{o}"}}"#);

        // Secrets and emails in paths and queries, on routes that exist
        // and on paths that match nothing.
        let email = ADMIN.replace('@', "%40");
        for path in [
            format!("/api/v1/me?token={secret}&email={email}"),
            format!("/api/v1/me?email={ADMIN}"),
        ] {
            assert_eq!(
                served
                    .call(Method::GET, &path, Some(&bearer(&secret)))
                    .await,
                StatusCode::OK
            );
        }
        for path in [
            format!("/invitations/{secret}?email={email}"),
            format!("/{secret}/{ADMIN}"),
            format!("/api/v1/tokens/{secret}"),
        ] {
            let _ = served
                .call(Method::GET, &path, Some(&bearer(&secret)))
                .await;
        }
        assert_eq!(
            served
                .call(Method::GET, "/api/v1/me", Some(&bearer(&gone)))
                .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            served
                .call(Method::GET, "/api/v1/me", Some("Bearer not-a-token"))
                .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            served.call(Method::GET, "/api/v1/me", None).await,
            StatusCode::UNAUTHORIZED
        );
        // A method nobody registered must not become a label value.
        let odd = Method::from_bytes(b"SECRETMETHOD").unwrap();
        let _ = served.call(odd, "/api/v1/me", None).await;

        let after = served.scrape().await;
        for secret_text in [
            secret.as_str(),
            gone.as_str(),
            ADMIN,
            WRITER,
            email.as_str(),
            "SECRETMETHOD",
            "example.com",
        ] {
            assert!(
                !after.contains(secret_text),
                "{secret_text} appears in the metrics"
            );
        }
        assert!(
            value(&after, me_ok) >= value(&before, me_ok) + 2.0,
            "{after}"
        );
        assert!(
            value(&after, me_401) >= value(&before, me_401) + 3.0,
            "{after}"
        );
        for (o, n) in [
            ("ok", 2.0),
            ("unknown", 1.0),
            ("malformed", 1.0),
            ("missing", 1.0),
        ] {
            assert!(
                value(&after, &outcome(o)) >= value(&before, &outcome(o)) + n,
                "{o}: {after}"
            );
        }
        assert!(
            after.contains(r#"route="/invitations/{code}""#),
            "route patterns label requests"
        );
        assert!(after.contains(r#"route="unmatched""#));
        assert!(after.contains(
            r#"tollgate_http_request_duration_seconds_bucket{method="GET",route="/api/v1/me",le="0.005"}"#
        ));
        // The token cache's own counters, read at scrape time. (They are
        // per application while the series are per process, so only their
        // presence is checked here, and that this app has invalidated.)
        for name in [
            "tollgate_token_cache_hits_total",
            "tollgate_token_cache_misses_total",
            "tollgate_token_cache_invalidations_total",
            "tollgate_token_cache_fail_closed_total",
            "tollgate_token_cache_version_checks_total",
            "tollgate_peer_acknowledgements_total",
            "tollgate_peer_ack_timeouts_total",
        ] {
            assert!(after.contains(&format!("\n{name} ")), "{name}: {after}");
        }
        assert!(served.core.tokens.stats().invalidations >= 1);

        // Eleven wrong passwords: ten are hashed (after waiting for a
        // slot), the eleventh is refused by the throttle.
        let guesser = TestClient::new(&served.base);
        for _ in 0..11 {
            let _ = guesser.login(ADMIN, "not the password").await;
        }
        let last = served.scrape().await;
        let throttled = r#"tollgate_sign_in_throttled_total{kind="sign_in"}"#;
        assert!(
            value(&last, throttled) >= value(&after, throttled) + 1.0,
            "{last}"
        );
        let waited = "tollgate_password_hash_wait_seconds_count";
        assert!(
            value(&last, waited) >= value(&after, waited) + 10.0,
            "{last}"
        );
        assert!(
            last.contains("tollgate_password_hash_queue_depth "),
            "{last}"
        );
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cache_evictions_are_counted_by_cause() {
    let by_change = r#"tollgate_token_cache_evictions_total{cause="change"}"#;
    let by_size = r#"tollgate_token_cache_evictions_total{cause="size"}"#;
    for backend in backends() {
        let served = Served::start(backend).await;
        let writer = TestClient::new(&served.base);
        assert_eq!(
            writer.login(WRITER, PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        let mut secrets = Vec::new();
        for name in ["evicted 1", "evicted 2"] {
            let (_, secret) = writer.generate(&[("name", name)]).await;
            secrets.push(secret.expect("token shown"));
        }
        // Cached: the second call of each is a hit.
        for secret in &secrets {
            for _ in 0..2 {
                assert_eq!(
                    served
                        .call(Method::GET, "/api/v1/me", Some(&bearer(secret)))
                        .await,
                    StatusCode::OK
                );
            }
        }
        let before = served.core.tokens.stats();
        assert!(before.hits >= 2, "{before:?}");
        let res = writer.post_form("/profile/tokens/revoke-all", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let after = served.core.tokens.stats();
        assert_eq!(
            after.evicted_by_change,
            before.evicted_by_change + 2,
            "both cached tokens evicted: {before:?} → {after:?}"
        );
        let text = served.scrape().await;
        // The series is per process and other applications in this binary
        // set it too: it holds at least this application's count.
        assert!(
            value(&text, by_change) >= after.evicted_by_change as f64,
            "{by_change} missing or behind {after:?}: {text}"
        );
        assert!(text.contains(&format!("\n{by_size} ")), "{text}");
        for secret in &secrets {
            assert_eq!(
                served
                    .call(Method::GET, "/api/v1/me", Some(&bearer(secret)))
                    .await,
                StatusCode::UNAUTHORIZED
            );
        }
        served.stop().await;
    }
}
