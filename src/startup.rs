//! Building the application: database, migrations, cookie key, background
//! tasks and the HTTP server, bound and ready (port 0 picks a free port, as
//! the tests do).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::distr::{Alphanumeric, SampleString};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::mail::Mailer;
use crate::service::Tollgate;
use crate::service::housekeeping::shared_setting;
use crate::storage::Db;
use crate::web::session::DbSessionStore;
use crate::{api, web as pages};

pub struct Application {
    address: SocketAddr,
    server: Server,
    /// The metrics server (`TOLLGATE_METRICS_BIND`), stopped with `server`.
    metrics: Option<(ServerHandle, SocketAddr)>,
    app: web::Data<Tollgate>,
    setup_code: Option<String>,
}

const COOKIE_KEY_SETTING: &str = "cookie_key";
const MAX_BODY: usize = 64 * 1024;
/// How long a graceful stop waits for requests in flight.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the expiry notices that have come due are sent.
const EXPIRY_NOTICE_EVERY: Duration = Duration::from_secs(15 * 60);

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        Self::build_with_db(config, db).await
    }

    pub async fn build_with_db(config: Config, db: Db) -> anyhow::Result<Self> {
        Self::build_with_clock(config, db, Arc::new(SystemClock::new())).await
    }

    /// Builds on a migrated database with `clock` as the time of every
    /// request and background task (tests pass a `ManualClock`).
    pub async fn build_with_clock(
        config: Config,
        db: Db,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let key = cookie_key(&config, &db).await?;
        let mailer =
            Mailer::from_settings(config.smtp_url.as_deref(), config.mail_from.as_deref())?;
        let app = web::Data::new(
            Tollgate::with_clock(db.clone(), config.support.clone(), clock).with_mailer(mailer),
        );

        let setup_code = if app.needs_setup().await? {
            let code = Alphanumeric.sample_string(&mut rand::rng(), 24);
            Some(code)
        } else {
            None
        };

        tokio::spawn(Arc::clone(&app.tokens).listen(db.clone()));
        spawn_background_tasks(
            app.clone(),
            config.last_used_flush_seconds,
            config.audit_retention_days,
        );

        let listener =
            TcpListener::bind(&config.bind).with_context(|| format!("binding {}", config.bind))?;
        let address = listener.local_addr()?;
        let metrics = match &config.metrics_bind {
            Some(bind) => {
                let (server, address) = crate::metrics::server(bind, app.clone())?;
                let handle = server.handle();
                tokio::spawn(server);
                Some((handle, address))
            }
            None => None,
        };

        let origin = config
            .public_origin()
            .unwrap_or_else(|| format!("http://{address}"));
        spawn_expiry_notices(app.clone(), Arc::clone(&app.clock), origin.clone());
        if let Some(code) = &setup_code {
            let host = &origin;
            // Printed, not logged: it is meant for the person starting the server.
            println!("No user exists yet. Finish setting up Tollgate at {host}/setup?code={code}");
        }

        let config = web::Data::new(config);
        let setup = web::Data::new(crate::service::auth::SetupCode(setup_code.clone()));
        let reveal_key = web::Data::new(pages::reveal::RevealKey(key.clone()));
        let server_app = app.clone();
        let workers = config.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let csrf_key = web::Data::new(pages::extractors::CsrfKey::new(&key));
        let server = HttpServer::new(move || {
            let sessions = SessionMiddleware::builder(
                DbSessionStore::new(server_app.db.clone(), Arc::clone(&server_app.clock)),
                key.clone(),
            )
            .cookie_name(session_cookie_name(&config))
            .cookie_secure(config.secure_cookies())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(
                BrowserSession::default()
                    .state_ttl(actix_web::cookie::time::Duration::minutes(
                        config.session_idle_minutes,
                    ))
                    // The idle expiry moves on when the state is
                    // written, which `CurrentUser` does at most once
                    // a minute: page views do not each write.
                    .state_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
            )
            .build();
            App::new()
                .app_data(server_app.clone())
                .app_data(config.clone())
                .app_data(setup.clone())
                .app_data(reveal_key.clone())
                .app_data(csrf_key.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .app_data(web::FormConfig::default().limit(MAX_BODY))
                .configure(api::error_config)
                .wrap(pages::security::default_headers(config.secure_cookies()))
                .wrap(from_fn(pages::security::request_log))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                // Fixed paths before patterns: the router tries routes in
                // order, and matching a pattern costs more than comparing.
                .configure(api::configure)
                .route("/static/{name}", web::get().to(pages::static_files::serve))
                .service(web::scope("/api").default_service(web::to(api::handlers::not_found)))
                .service(
                    web::scope("")
                        .wrap(from_fn(pages::extractors::csrf_layer))
                        .wrap(sessions)
                        .configure(pages::configure)
                        .default_service(web::to(page_not_found)),
                )
        })
        .workers(workers)
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
        .listen(listener)?
        .run();

        Ok(Self {
            address,
            server,
            metrics,
            app,
            setup_code,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `GET /metrics` answers, when `TOLLGATE_METRICS_BIND` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, address)| *address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    /// The application core, for tests and tools.
    pub fn core(&self) -> web::Data<Tollgate> {
        self.app.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then shuts down in order: write the pending
    /// "last used" times, then close the database (on SQLite after moving
    /// the WAL into the database file).
    ///
    /// SIGTERM (and SIGINT) start a graceful stop, handled by the server
    /// itself: the listening socket is closed at once, so new connections
    /// are refused, while requests already in flight get up to
    /// `SHUTDOWN_TIMEOUT` to finish. SIGQUIT stops at once. `handle().stop()`
    /// does the same from code.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        if let Some((metrics, _)) = &self.metrics {
            metrics.stop(true).await;
        }
        served?;
        tracing::info!("stopped serving; writing last-used times and closing the database");
        // On PostgreSQL, pooled connections opened by the server's worker
        // threads belong to runtimes that have just stopped: the last write
        // goes through a connection opened here.
        let writer = match self.app.db.backend() {
            crate::storage::Backend::Postgres => Some(
                Db::connect(self.app.db.url())
                    .await
                    .context("reconnecting to write last-used times at shutdown")?,
            ),
            crate::storage::Backend::Sqlite => None,
        };
        let flushed = self
            .app
            .tokens
            .flush_last_used(writer.as_ref().unwrap_or(&self.app.db))
            .await
            .context("writing last-used times at shutdown");
        if let Some(writer) = &writer {
            writer.pool().close().await;
        }
        let closed = self
            .app
            .db
            .shutdown()
            .await
            .context("closing the database at shutdown");
        flushed?;
        closed?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// The session cookie's name: with the `__Host-` prefix behind https, so
/// that no other host can set or shadow it.
fn session_cookie_name(config: &Config) -> String {
    if config.secure_cookies() {
        "__Host-tollgate_session".to_owned()
    } else {
        "tollgate_session".to_owned()
    }
}

fn spawn_background_tasks(app: web::Data<Tollgate>, flush_seconds: u64, audit_days: i64) {
    tokio::spawn(async move {
        // The first flush one period after start (an interval's first tick
        // is immediate, and at start there is nothing to write).
        let every = Duration::from_secs(flush_seconds.max(1));
        let mut flush = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut cleanup = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(err) = app.tokens.flush_last_used(&app.db).await {
                        tracing::warn!(error = %err, "writing last-used times failed");
                    }
                }
                _ = cleanup.tick() => {
                    if let Err(err) = app.clean_up(audit_days).await {
                        tracing::warn!(error = %err, "deleting expired sessions and old audit events failed");
                    }
                }
            }
        }
    });
}

/// Sends the expiry notices that have come due, every
/// `EXPIRY_NOTICE_EVERY`, at the time `clock` tells; nothing when no mail
/// server is configured. Every instance runs it: each notice is claimed in
/// the database before it is sent, so it goes out once.
fn spawn_expiry_notices(app: web::Data<Tollgate>, clock: Arc<dyn Clock>, origin: String) {
    if !app.mail_enabled() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EXPIRY_NOTICE_EVERY);
        loop {
            every.tick().await;
            if let Err(err) = app.send_expiry_notices(&origin, clock.unix()).await {
                tracing::warn!(error = %err, "sending expiry notices failed");
            }
        }
    });
}

/// The cookie key: from `TOLLGATE_SECRET_KEY`, or generated once and kept in
/// the database so that every instance (and every restart) shares it.
async fn cookie_key(config: &Config, db: &Db) -> anyhow::Result<Key> {
    if let Some(secret) = &config.secret_key {
        anyhow::ensure!(
            secret.len() >= 32,
            "TOLLGATE_SECRET_KEY must be at least 32 bytes long"
        );
        return Ok(Key::derive_from(secret.as_bytes()));
    }
    let fresh = STANDARD.encode(Key::generate().master());
    let stored = shared_setting(db, COOKIE_KEY_SETTING, &fresh).await?;
    let bytes = STANDARD
        .decode(stored)
        .context("the stored cookie key is not base64")?;
    Key::try_from(bytes.as_slice()).context("the stored cookie key is too short")
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

async fn readyz(app: web::Data<Tollgate>) -> HttpResponse {
    match app.db.ping().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("database unavailable")
        }
    }
}

async fn page_not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&pages::errors::PageError::NotFound)
}
