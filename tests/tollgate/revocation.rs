//! Issue: exact revocation under real traffic. Two real instances on one
//! database, a lagging database link, changes made in plain SQL, concurrent
//! rotations of one secret, and a cache that survives writes that do not
//! concern tokens. The cache counters (`TokenCache::stats`) prove that the
//! cached path was in use when a change arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web::Data;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate::clock::now;
use tollgate::service::Tollgate;
use tollgate::service::token_cache::CacheStats;
use tollgate::startup::Application;
use tollgate::storage::Db;

use crate::each_backend;
use crate::helpers::{ADMIN, Backend, WRITER, bearer, postgres_url, test_config};

/// Another server on the same database (or on `database_url`), as behind a
/// load balancer.
struct Instance {
    address: String,
    core: Data<Tollgate>,
    handle: ServerHandle,
}

impl Instance {
    async fn start(database_url: &str) -> Self {
        let application = Application::build(test_config(database_url)).await.unwrap();
        let address = format!("http://127.0.0.1:{}", application.port());
        let core = application.core();
        let handle = application.handle();
        tokio::spawn(application.run_until_stopped());
        Self {
            address,
            core,
            handle,
        }
    }

    fn stats(&self) -> CacheStats {
        self.core.tokens.stats()
    }

    async fn me(&self, token: &str) -> StatusCode {
        me(&self.address, token).await
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.core.db.close().await;
    }
}

async fn me(base: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .header("Authorization", bearer(token))
        .send()
        .await
        .unwrap()
        .status()
}

/// Asks `instance` until a request for `token` is answered from its cache
/// (PostgreSQL: once its listener has heard its own heartbeat). Bounded.
async fn warm(instance: &Instance, token: &str) {
    warm_at(&instance.address, &instance.core, token).await;
}

async fn warm_at(address: &str, core: &Tollgate, token: &str) {
    for _ in 0..100 {
        let before = core.tokens.stats().hits;
        assert_eq!(me(address, token).await, StatusCode::OK);
        if core.tokens.stats().hits > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cache of {address} never answered");
}

each_backend! {
    async fn a_change_on_one_instance_is_refused_on_a_warm_other_instance_at_once(app) {
        let b = Instance::start(&app.database.url).await;
        let client = reqwest::Client::new();

        // Deleted on A.
        let (id, token) = app.token_for(WRITER, "deleted", "read-write").await;
        let (_, deleter) = app.token_for(WRITER, "deleter", "read-write").await;
        warm(&b, &token).await;
        let res = client.delete(format!("{}/api/v1/tokens/{id}", app.address)).header("Authorization", bearer(&deleter)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(b.me(&token).await, StatusCode::UNAUTHORIZED, "deleted on A, still accepted by B");

        // Rotated on A.
        warm(&b, &deleter).await;
        let res = client.post(format!("{}/api/v1/tokens/self/rotate", app.address)).header("Authorization", bearer(&deleter)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let fresh = res.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        assert_eq!(b.me(&deleter).await, StatusCode::UNAUTHORIZED, "rotated on A, old secret still accepted by B");
        assert_eq!(b.me(&fresh).await, StatusCode::OK);

        // Owner downgraded on A.
        let (_, token) = app.token_for(WRITER, "downgraded", "read-write").await;
        warm(&b, &token).await;
        app.set_role(WRITER, "read-only").await;
        assert_eq!(b.me(&token).await, StatusCode::FORBIDDEN, "owner downgraded on A, token still accepted by B");
        b.stop().await;
    }
}

each_backend! {
    async fn changes_made_in_plain_sql_are_refused_within_two_seconds(app) {
        // An operator's SQL console: a connection of its own.
        let console = Db::connect(&app.database.url).await.unwrap();
        let b = Instance::start(&app.database.url).await;

        let (id, token) = app.token_for(WRITER, "leaked", "read-write").await;
        warm(&b, &token).await;
        sqlx::query("DELETE FROM personal_access_tokens WHERE id = $1").bind(id).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&b, &token, StatusCode::UNAUTHORIZED).await;

        let (_, token) = app.token_for(WRITER, "owner disabled", "read-write").await;
        warm(&b, &token).await;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE email = $2").bind(now()).bind(WRITER).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&b, &token, StatusCode::FORBIDDEN).await;
        console.close().await;
        b.stop().await;
    }
}

/// SQLite: the server in a process of its own, this test process as the
/// operator's SQL console. The server's cache, proven warm by its hit
/// counter, must refuse a token deleted here on the very next request,
/// without waiting. Its version-check counter proves how: a cache hit with
/// nothing committed since reads no change log (so the server does look at
/// the mapped WAL index, and finds it unchanged), and the request after the
/// other process's commit does read it. Each round closes this process's
/// connections and the next opens new ones.
#[tokio::test]
async fn on_sqlite_another_process_commit_is_refused_by_the_very_next_request() {
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let server = crate::crash::Server::start_with(
        &database.url,
        &[("TOLLGATE_METRICS_BIND", metrics_bind.as_str())],
    );
    let counter = |name: &'static str| {
        let url = format!("http://{metrics_bind}/metrics");
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let hits = || counter("tollgate_token_cache_hits_total");
    let checks = || counter("tollgate_token_cache_version_checks_total");
    for round in 0..3 {
        let console = Db::connect(&database.url).await.unwrap();
        let name = format!("deleted in SQL, round {round}");
        let token = crate::crash::issue_token(&console, WRITER, &name).await;
        let before = hits().await;
        assert_eq!(me(&server.address, &token).await, StatusCode::OK);
        let looked = checks().await;
        assert_eq!(me(&server.address, &token).await, StatusCode::OK);
        assert!(
            hits().await > before,
            "round {round}: the second answer came from the cache"
        );
        assert_eq!(
            checks().await,
            looked,
            "round {round}: nothing committed, no change log read"
        );

        sqlx::query("DELETE FROM personal_access_tokens WHERE name = $1")
            .bind(&name)
            .execute(console.pool())
            .await
            .unwrap();
        assert_eq!(
            me(&server.address, &token).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: deleted by another process, still accepted: {}",
            server.log()
        );
        assert!(
            checks().await > looked,
            "round {round}: the commit was noticed"
        );
        console.close().await;
    }
}

/// SQLite: while this process has the database open (a `Db`, whose token
/// cache maps the WAL index), another process opening it must find the
/// shared-memory file in use and leave it whole. Closing any descriptor of
/// the file would drop this process's locks on it, SQLite's included; the
/// other process would then take the file for unused and shorten it, and
/// every mapping of it here would fault.
#[tokio::test]
async fn on_sqlite_another_process_opening_the_database_leaves_its_shared_memory_whole() {
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let db = Db::connect(&database.url).await.unwrap();
    let before = db.commit_marker().expect("the WAL index is mapped");
    let shm = format!("{}-shm", database.url.trim_start_matches("sqlite://"));
    // SQLite's shared lock on the file's "in use" byte (128), as the kernel
    // lists it: what another process looks for before it shortens the file.
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&shm).unwrap());
    let pid = std::process::id().to_string();
    let in_use = std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8
                && f[1] == "POSIX"
                && f[4] == pid
                && f[5].ends_with(&format!(":{inode}"))
                && f[6] == "128"
        });
    assert!(
        in_use,
        "this process no longer holds SQLite's lock on the -shm file"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check")
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shm).unwrap().len();
    assert!(
        size >= 32 * 1024,
        "the other process shortened the file to {size} bytes"
    );
    assert_eq!(db.commit_marker(), Some(before), "a read commits nothing");
    sqlx::query("CREATE TABLE scratch (x INTEGER)")
        .execute(db.pool())
        .await
        .unwrap();
    assert_ne!(
        db.commit_marker(),
        Some(before),
        "a commit moves the header"
    );
    db.close().await;
}

/// Real time on purpose: what is tested is how soon a commit made outside
/// Tollgate reaches a running server, through the database itself. Polls
/// every 20 ms and gives up after 2 s.
async fn refused_within_two_seconds(instance: &Instance, token: &str, refusal: StatusCode) {
    let started = Instant::now();
    loop {
        let status = instance.me(token).await;
        if status == refusal {
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted 2 s after the SQL change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks `instance` for `token` and checks the cache answered: one more
/// hit, no miss, nothing emptied.
async fn answered_from_cache(name: &str, address: &str, core: &Tollgate, token: &str) {
    let before = core.tokens.stats();
    assert_eq!(me(address, token).await, StatusCode::OK, "{name}");
    let after = core.tokens.stats();
    assert_eq!(
        after.hits,
        before.hits + 1,
        "{name}: {before:?} → {after:?}"
    );
    assert_eq!(
        after.misses, before.misses,
        "{name}: {before:?} → {after:?}"
    );
}

each_backend! {
    async fn deleting_one_token_keeps_the_others_cached_on_every_instance(app) {
        let b = Instance::start(&app.database.url).await;
        let (id, deleted) = app.token_for(WRITER, "deleted", "read-write").await;
        let (_, sibling) = app.token_for(WRITER, "sibling", "read-write").await;
        let (_, other) = app.token_for(ADMIN, "other owner", "admin").await;
        for token in [&deleted, &sibling, &other] {
            warm_at(&app.address, &app.core, token).await;
            warm(&b, token).await;
        }
        let (a_before, b_before) = (app.core.tokens.stats(), b.stats());

        let res = reqwest::Client::new().delete(format!("{}/api/v1/tokens/{id}", app.address)).header("Authorization", bearer(&deleted)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);

        for token in [&sibling, &other] {
            answered_from_cache("A", &app.address, &app.core, token).await;
            answered_from_cache("B", &b.address, &b.core, token).await;
        }
        assert_eq!(me(&app.address, &deleted).await, StatusCode::UNAUTHORIZED);
        assert_eq!(b.me(&deleted).await, StatusCode::UNAUTHORIZED);
        for (name, before, after) in [("A", a_before, app.core.tokens.stats()), ("B", b_before, b.stats())] {
            assert_eq!(after.invalidations, before.invalidations, "{name}: nothing emptied: {before:?} → {after:?}");
            assert!(after.evictions > before.evictions, "{name}: {before:?} → {after:?}");
        }
        b.stop().await;
    }
}

each_backend! {
    async fn a_change_made_in_plain_sql_evicts_only_what_it_concerns(app) {
        let console = Db::connect(&app.database.url).await.unwrap();
        let b = Instance::start(&app.database.url).await;
        let (deleted_id, deleted) = app.token_for(WRITER, "deleted in SQL", "read-write").await;
        let (_, writers) = app.token_for(WRITER, "writer's other", "read-write").await;
        let (expired_id, expired) = app.token_for(ADMIN, "expired in SQL", "admin").await;
        let (_, admins) = app.token_for(ADMIN, "admin's other", "admin").await;
        for token in [&deleted, &writers, &expired, &admins] {
            warm(&b, token).await;
        }
        let invalidations = b.stats().invalidations;

        // One token row deleted.
        sqlx::query("DELETE FROM personal_access_tokens WHERE id = $1").bind(deleted_id).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&b, &deleted, StatusCode::UNAUTHORIZED).await;
        for token in [&writers, &expired, &admins] {
            answered_from_cache("after a token's DELETE", &b.address, &b.core, token).await;
        }

        // One token row updated.
        sqlx::query("UPDATE personal_access_tokens SET expires_at = $1 WHERE id = $2").bind(now() - 60).bind(expired_id).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&b, &expired, StatusCode::UNAUTHORIZED).await;
        for token in [&writers, &admins] {
            answered_from_cache("after a token's UPDATE", &b.address, &b.core, token).await;
        }

        // A member's role: every token of theirs in the workspace, no other.
        sqlx::query("UPDATE memberships SET role = 'read-only' WHERE user_id = $1").bind(app.user_id(WRITER).await).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&b, &writers, StatusCode::FORBIDDEN).await;
        answered_from_cache("after a role's UPDATE", &b.address, &b.core, &admins).await;

        assert_eq!(b.stats().invalidations, invalidations, "nothing was emptied");
        console.close().await;
        b.stop().await;
    }
}

each_backend! {
    async fn of_concurrent_rotations_of_one_secret_exactly_one_wins(app) {
        let (_, token) = app.token_for(WRITER, "rotated", "read-write").await;
        assert_eq!(me(&app.address, &token).await, StatusCode::OK);
        let client = reqwest::Client::new();
        let rotations = (0..6).map(|_| {
            let request = client.post(format!("{}/api/v1/tokens/self/rotate", app.address)).header("Authorization", bearer(&token));
            async move {
                let res = request.send().await.unwrap();
                let status = res.status();
                (status, res.json::<serde_json::Value>().await.unwrap())
            }
        });
        let answers = futures_util::future::join_all(rotations).await;
        let winners: Vec<&serde_json::Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"]["code"], "invalid_token", "{body}");
        }
        let fresh = winners[0]["token"].as_str().unwrap();
        assert_eq!(me(&app.address, fresh).await, StatusCode::OK);
        assert_eq!(me(&app.address, &token).await, StatusCode::UNAUTHORIZED);
    }
}

each_backend! {
    async fn page_views_sign_ins_and_last_used_writes_leave_the_cache_alone(app) {
        let (_, token) = app.token_for(WRITER, "busy", "read-write").await;
        let b = Instance::start(&app.database.url).await;
        warm_at(&app.address, &app.core, &token).await;
        warm(&b, &token).await;
        let (a_before, b_before) = (app.core.tokens.stats(), b.stats());

        // Anonymous sign-in page views (each stores a session), a sign-in,
        // signed-in page views, and the "last used" flush: all commits.
        for _ in 0..10 {
            assert_eq!(app.client().get("/login").await.status, StatusCode::OK);
        }
        let user = app.signed_in(WRITER).await;
        for _ in 0..5 {
            assert_eq!(user.get("/profile/tokens").await.status, StatusCode::OK);
        }
        assert!(app.core.tokens.flush_last_used(app.db()).await.unwrap() > 0, "a use was waiting to be written");
        for _ in 0..5 {
            assert_eq!(me(&app.address, &token).await, StatusCode::OK);
            assert_eq!(b.me(&token).await, StatusCode::OK);
        }

        for (name, before, after) in [("A", a_before, app.core.tokens.stats()), ("B", b_before, b.stats())] {
            assert_eq!(after.invalidations, before.invalidations, "{name}: {before:?} → {after:?}");
            assert_eq!(after.misses, before.misses, "{name}: {before:?} → {after:?}");
            assert_eq!(after.hits, before.hits + 5, "{name}: {before:?} → {after:?}");
            if app.backend == Backend::Sqlite {
                assert!(after.version_checks > before.version_checks, "{name}: the commits were noticed");
            }
        }
        b.stop().await;
    }
}

/// A TCP proxy on loopback that holds every chunk coming back from the
/// server for `delay` milliseconds (changeable while it runs), as a slow
/// network or a stalled proxy would: the instance behind it hears query
/// results and notifications late. Its tasks end with the test's runtime.
struct DelayProxy {
    port: u16,
    delay: Arc<AtomicU64>,
}

impl DelayProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay = Arc::new(AtomicU64::new(0));
        let shared = Arc::clone(&delay);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::new(AtomicU64::new(0))));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&shared)));
            }
        });
        Self { port, delay }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay
            .store(delay.as_millis() as u64, Ordering::Release);
    }
}

/// Copies `from` to `to`, each chunk leaving `delay` after it arrived, in order.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    let (sender, mut receiver) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let due =
            tokio::time::Instant::now() + Duration::from_millis(delay.load(Ordering::Acquire));
        if sender.send((due, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(sender);
    let _ = writer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_instance_never_answers_a_stale_200_after_the_change_is_answered() {
    // PostgreSQL only: instances sharing an SQLite file share no link that
    // could lag.
    if postgres_url().is_none() {
        eprintln!("-- skipped: no TOLLGATE_TEST_DATABASE_URL");
        return;
    }
    let app = crate::helpers::spawn_app(Backend::Postgres).await;
    let proxy = DelayProxy::start("127.0.0.1:5432".to_owned()).await;
    let through_proxy = app
        .database
        .url
        .replacen(":5432/", &format!(":{}/", proxy.port), 1);
    assert_ne!(
        through_proxy, app.database.url,
        "the test database must be on port 5432"
    );
    let b = Instance::start(&through_proxy).await;
    let client = reqwest::Client::new();

    let (id, token) = app.token_for(WRITER, "lagging", "read-write").await;
    let (_, deleter) = app.token_for(WRITER, "deleter", "read-write").await;
    warm(&b, &token).await;
    // From now on whatever the database sends B arrives 4 s late. Real
    // time on purpose: the lag is what is tested. After 12 s B's own
    // heartbeats come back about once a second, as regularly as a healthy
    // listener's, only 8 s old: the state in which B must distrust its cache.
    proxy.set_delay(Duration::from_secs(4));
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (timeouts, fail_closed) = (app.core.tokens.stats().ack_timeouts, b.stats().fail_closed);
    let res = client
        .delete(format!("{}/api/v1/tokens/{id}", app.address))
        .header("Authorization", bearer(&deleter))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The deletion is answered (B's acknowledgement can not have come yet);
    // B hears of it only 4 s after the commit, and must not accept the
    // token meanwhile.
    assert_eq!(
        b.me(&token).await,
        StatusCode::UNAUTHORIZED,
        "a stale 200 from the lagging instance"
    );
    assert_eq!(
        app.core.tokens.stats().ack_timeouts,
        timeouts + 1,
        "A waited out B's late acknowledgement"
    );
    assert!(b.stats().fail_closed > fail_closed, "B bypassed its cache");
    proxy.set_delay(Duration::ZERO);
    b.stop().await;
    let mut app = app;
    app.stop().await;
}
