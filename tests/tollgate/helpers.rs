//! Test helpers: a running Tollgate on port 0 with a fresh database, seeded
//! users of every role, and a cookie-keeping client that does not follow
//! redirects.
//!
//! Every test runs on SQLite (a temporary file). When
//! `TOLLGATE_TEST_DATABASE_URL` names a PostgreSQL server, it runs there too,
//! each time in a database of its own that is dropped afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::Data;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Client, StatusCode};
use scraper::{Html, Selector};
use tollgate::clock::{Clock, ManualClock, SystemClock, now};
use tollgate::config::Config;
use tollgate::service::Tollgate;
use tollgate::service::auth::NewUser;
use tollgate::startup::Application;
use tollgate::storage::Db;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ADMIN: &str = "admin@example.com";
pub const WRITER: &str = "writer@example.com";
pub const READER: &str = "reader@example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when a test database URL is set.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if postgres_url().is_some() {
        all.push(Backend::Postgres);
    }
    all
}

pub fn postgres_url() -> Option<String> {
    std::env::var("TOLLGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Runs a test body once per backend, each time against a fresh app.
#[macro_export]
macro_rules! each_backend {
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        $(#[$meta])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in $crate::helpers::backends() {
                eprintln!("-- {} on {:?}", stringify!($name), backend);
                #[allow(unused_mut)]
                let mut $app = $crate::helpers::spawn_app(backend).await;
                $body
                $app.stop().await;
            }
        }
    };
}

/// A database made for one test and removed after it.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect("TOLLGATE_TEST_DATABASE_URL");
                let name = format!(
                    "tollgate_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    now() % 100_000
                );
                let db = Db::connect(&admin_url)
                    .await
                    .expect("connect to the test PostgreSQL server");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(db.pool())
                    .await
                    .expect("create test database");
                db.close().await;
                let url = tollgate::storage::url_with_database(&admin_url, &name);
                Self {
                    url,
                    _dir: None,
                    postgres: Some((admin_url, name)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside async code: use a runtime of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(db) = Db::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(db.pool())
                        .await;
                        db.close().await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub core: Data<Tollgate>,
    pub setup_code: Option<String>,
    pub database: TestDatabase,
    /// Set when the app was started on a clock the test moves.
    pub clock: Option<Arc<ManualClock>>,
    handle: ServerHandle,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    config.bind = "127.0.0.1:0".to_owned();
    config.workers = Some(2);
    config.last_used_flush_seconds = 3600;
    // Tests write audit events with fixed dates in the past; the clean-up
    // that runs as the server starts must not race them and delete some.
    // The retention test sets its own period.
    config.audit_retention_days = 36_500;
    config
}

/// An app with no user yet (first-run setup is open).
pub async fn spawn_empty_app(backend: Backend) -> TestApp {
    let database = TestDatabase::create(backend).await;
    spawn_with(backend, database, |_| {}).await
}

/// An app with an organization, the "Default" workspace and one member of
/// each role (ADMIN, WRITER, READER; all with PASSWORD).
pub async fn spawn_app(backend: Backend) -> TestApp {
    let database = TestDatabase::create(backend).await;
    seed(&database.url).await;
    spawn_with(backend, database, |_| {}).await
}

pub async fn seed(url: &str) {
    let db = Db::connect(url).await.expect("connect");
    db.migrate().await.expect("migrate");
    let core = Tollgate::new(db.clone(), None);
    for (email, role, name) in [
        (ADMIN, "admin", "Ada Admin"),
        (WRITER, "read-write", "Will Writer"),
        (READER, "read-only", "Rita Reader"),
    ] {
        core.create_user(
            NewUser {
                email,
                name: Some(name),
                role,
                workspace: None,
                password: PASSWORD,
            },
            now(),
        )
        .await
        .expect("seed user");
    }
    db.close().await;
}

/// The seeded app of `spawn_app`, on a `ManualClock` that starts at the
/// current time and moves only by `TestApp::advance`.
pub async fn spawn_app_on_manual_clock(backend: Backend) -> TestApp {
    let database = TestDatabase::create(backend).await;
    seed(&database.url).await;
    let clock = Arc::new(ManualClock::new(now()));
    spawn_with_clock(backend, database, |_| {}, Some(clock)).await
}

pub async fn spawn_with(
    backend: Backend,
    database: TestDatabase,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_with_clock(backend, database, adjust, None).await
}

/// `spawn_with`, reading time from `clock` when given (else the system clock).
pub async fn spawn_with_clock(
    backend: Backend,
    database: TestDatabase,
    adjust: impl FnOnce(&mut Config),
    clock: Option<Arc<ManualClock>>,
) -> TestApp {
    let mut config = test_config(&database.url);
    adjust(&mut config);
    let app_clock: Arc<dyn Clock> = match &clock {
        Some(manual) => manual.clone(),
        None => Arc::new(SystemClock::new()),
    };
    let db = Db::connect(&config.database_url).await.expect("connect");
    db.migrate().await.expect("migrate");
    let application = Application::build_with_clock(config, db, app_clock)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", application.port());
    let core = application.core();
    let setup_code = application.setup_code().map(str::to_owned);
    let handle = application.handle();
    let server = tokio::spawn(application.run_until_stopped());
    let app = TestApp {
        backend,
        address,
        core,
        setup_code,
        database,
        clock,
        handle,
        server: Some(server),
    };
    app.wait_until_ready().await;
    app
}

impl TestApp {
    /// Until the server answers `/readyz` and the token cache may answer
    /// (on PostgreSQL its listener must be up), so that tests exercise the
    /// cached path too.
    async fn wait_until_ready(&self) {
        let ready = || async {
            reqwest::get(format!("{}/readyz", self.address))
                .await
                .is_ok_and(|r| r.status().is_success())
        };
        let core = self.core.clone();
        eventually("the server to answer /readyz", ready).await;
        eventually("the token cache to be trusted", || {
            let core = core.clone();
            async move { core.tokens.trusted() }
        })
        .await;
    }

    /// Moves the app's clock forward; the app must have been started on a
    /// `ManualClock`.
    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("the app runs on a ManualClock")
            .advance(by);
    }

    /// A new browser-like client: keeps cookies, does not follow redirects.
    pub fn client(&self) -> TestClient {
        TestClient::new(&self.address)
    }

    /// A client signed in as `email` (with the seeded password).
    pub async fn signed_in(&self, email: &str) -> TestClient {
        let client = self.client();
        let res = client.login(email, PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "sign-in of {email} failed: {}",
            res.body
        );
        client
    }

    pub fn db(&self) -> &Db {
        &self.core.db
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(self.db().pool())
            .await
            .expect("count rows")
    }

    pub async fn user_id(&self, email: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(self.db().pool())
            .await
            .expect("user id")
    }

    /// Creates a token for `email` through the service and returns its secret.
    /// Gives `email` the role `role` in the first workspace, as one of its
    /// current Admins.
    pub async fn set_role(&self, email: &str, role: &str) {
        let admin: i64 = sqlx::query_scalar(
            "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.role = 'admin' AND u.disabled_at IS NULL ORDER BY m.user_id LIMIT 1",
        )
        .fetch_one(self.db().pool())
        .await
        .expect("an Admin");
        let admin = self
            .core
            .signed_in_user(tollgate::domain::UserId(admin))
            .await
            .expect("load the Admin")
            .expect("the Admin exists");
        let workspace = admin.memberships[0].workspace_id;
        self.core
            .set_member_role(
                &tollgate::service::Actor::Member(admin),
                workspace,
                tollgate::domain::UserId(self.user_id(email).await),
                role,
                &Default::default(),
                now(),
            )
            .await
            .expect("set the role");
    }

    pub async fn token_for(&self, email: &str, name: &str, scope: &str) -> (i64, String) {
        let id = self.user_id(email).await;
        let user = self
            .core
            .signed_in_user(tollgate::domain::UserId(id))
            .await
            .expect("load user")
            .expect("user exists");
        let request = tollgate::service::tokens::GenerateRequest {
            name: name.to_owned(),
            scope: Some(scope.to_owned()),
            workspace: None,
            expiry: None,
        };
        let issued = self
            .core
            .generate_token(
                &tollgate::service::Actor::Member(user),
                &request,
                &Default::default(),
                now(),
            )
            .await
            .expect("generate token");
        (issued.id.0, issued.token.expose().to_owned())
    }

    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.core.db.close().await;
    }
}

/// Polls `condition` every few milliseconds until it holds; fails the test
/// after ten seconds.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A response, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    pub fn location(&self) -> Option<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Text of every element matching `selector`, whitespace-collapsed.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let selector = Selector::parse(selector).expect("selector");
        self.html()
            .select(&selector)
            .map(|e| {
                e.text()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    pub fn text(&self, selector: &str) -> String {
        self.texts(selector).join(" ")
    }

    pub fn count(&self, selector: &str) -> usize {
        let selector = Selector::parse(selector).expect("selector");
        self.html().select(&selector).count()
    }

    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let selector = Selector::parse(selector).expect("selector");
        self.html()
            .select(&selector)
            .next()
            .and_then(|e| e.value().attr(name))
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct TestClient {
    pub base: String,
    pub http: Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl TestClient {
    pub fn new(base: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Self {
            base: base.to_owned(),
            http,
            jar,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Page {
        read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// The CSRF token of this client's session (read from a page's form).
    pub async fn csrf(&self) -> String {
        let page = self.get("/login").await;
        page.attr("meta[name=csrf-token]", "content")
            .expect("the layout's CSRF token")
    }

    /// Posts a form the way a browser on this site does: with the session's
    /// CSRF token and a same-origin `Origin`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, Some(&self.base)).await
    }

    /// Posts exactly these fields with this `Origin` (None: no header).
    pub async fn post_raw(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut request = self.http.post(self.url(path)).form(fields);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        read(request.send().await.expect("POST")).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.post_form("/login", &[("email", email), ("password", password)])
            .await
    }

    /// The value of a cookie this client holds.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// Generates a token through the dashboard and returns (page after
    /// redirect, secret shown once).
    pub async fn generate(&self, fields: &[(&str, &str)]) -> (Page, Option<String>) {
        let res = self.post_form("/profile/tokens", fields).await;
        if res.status != StatusCode::SEE_OTHER {
            return (res, None);
        }
        let shown = self.get("/profile/tokens/created").await;
        let secret = shown.attr("#issued-token", "value");
        (shown, secret)
    }
}

pub async fn read(res: reqwest::Response) -> Page {
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.expect("body");
    Page {
        status,
        headers,
        body,
    }
}

/// A plain API request with an Authorization header.
pub async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: Option<&str>,
) -> Page {
    let mut request = reqwest::Client::new().request(method, format!("{}{}", app.address, path));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    read(request.send().await.expect("API request")).await
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Starts the `tollgate` binary with `args` in `dir`, waits for the line in
/// which it says where it listens, and returns the child, that address and
/// the rest of its log (drop it to close the pipe, or drain it).
pub fn start_binary(
    dir: &std::path::Path,
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .env("TOLLGATE_LOG_FORMAT", "text")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tollgate");
    let stderr = child.stderr.take().expect("the server's log");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("a log line");
        if let Some(at) = line.find("http://") {
            break line[at..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    (child, address, lines)
}

/// An API request with a Bearer token and a JSON body.
pub async fn api_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> Page {
    let request = reqwest::Client::new()
        .request(method, format!("{}{}", app.address, path))
        .header("Authorization", bearer(token))
        .json(body);
    read(request.send().await.expect("API request")).await
}
