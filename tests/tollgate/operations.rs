//! Operations: `tollgate --version`, `tollgate check`, `tollgate backup` and
//! a restore, and the systemd unit. The commands run as the real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reqwest::{Method, StatusCode};

use crate::helpers::{ADMIN, Backend, TestDatabase, WRITER, api, backends, bearer, postgres_url};

/// Runs the `tollgate` binary with `DATABASE_URL` set and nothing on stdin.
fn tollgate(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env_remove("TOLLGATE_PUBLIC_URL")
        .env_remove("TOLLGATE_SECRET_KEY")
        .env_remove("TOLLGATE_BIND")
        .stdin(Stdio::null())
        .output()
        .expect("run tollgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A refusal: non-zero, nothing on stdout, one line on stderr saying `says`.
fn assert_refused(out: &Output, says: &str, what: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: succeeded: {}", stdout(out));
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: one line expected, got: {err}"
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(err.contains(says), "{what}: expected {says:?} in: {err}");
}

#[test]
fn version_names_the_release() {
    let out = tollgate("sqlite://unused.db", &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("tollgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_configuration_the_database_and_its_migrations() {
    for backend in backends() {
        let database = TestDatabase::create(backend).await;
        let url = database.url.clone();
        // A database never migrated: reachable, migrations pending.
        let out = tollgate(&url, &["check"]);
        if backend == Backend::Sqlite {
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(
                stdout(&out).contains("does not exist yet"),
                "{}",
                stdout(&out)
            );
            let file = url.trim_start_matches("sqlite://");
            assert!(
                !Path::new(file).exists(),
                "check must not create the database"
            );
        } else {
            assert!(out.status.success(), "{}", stderr(&out));
            let shipped =
                std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
                    .unwrap()
                    .count();
            assert!(
                stdout(&out).contains(&format!("0 applied, {shipped} pending")),
                "{}",
                stdout(&out)
            );
        }
        let out = tollgate(&url, &["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = tollgate(&url, &["check"]);
        assert!(out.status.success(), "{backend:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("ok: configuration"), "{text}");
        assert!(text.contains("answers"), "{text}");
        assert!(text.contains("migrations up to date ("), "{text}");

        // A database migrated by a newer release: refused, so that an old
        // binary is not started against it during a roll-back.
        let db = tollgate::storage::Db::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 29991231000000, 'from the future', success, checksum, execution_time \
             FROM _sqlx_migrations LIMIT 1",
        )
        .execute(db.pool())
        .await
        .unwrap();
        db.close().await;
        let out = tollgate(&url, &["check"]);
        assert_refused(&out, "newer release", "database from a newer release");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_each_bad_setting_with_one_line() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let good = database.url.clone();
    let out = tollgate(&good, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            "mysql://root@localhost/tollgate".into(),
            vec![],
            "is not sqlite://PATH or postgres://",
        ),
        // Nothing listens on port 1: refused at once, with the reason.
        (
            "postgres://tollgate@127.0.0.1:1/tollgate".into(),
            vec![],
            "Connection refused",
        ),
        ("sqlite:///".into(), vec![], "not a file"),
        (
            good.clone(),
            vec!["--public-url", "https://tokens.example.com/app"],
            "TOLLGATE_PUBLIC_URL",
        ),
        (
            good.clone(),
            vec!["--public-url", "tokens.example.com"],
            "TOLLGATE_PUBLIC_URL",
        ),
        (
            good.clone(),
            vec!["--secret-key", "too short"],
            "at least 32 bytes",
        ),
        (good.clone(), vec!["--bind", "everywhere"], "TOLLGATE_BIND"),
        (good.clone(), vec!["--workers", "0"], "TOLLGATE_WORKERS"),
        (
            good.clone(),
            vec!["--session-idle-minutes", "0"],
            "TOLLGATE_SESSION_IDLE_MINUTES",
        ),
    ];
    if let Some(pg) = postgres_url() {
        let missing = tollgate::storage::url_with_database(&pg, "tollgate_no_such_database");
        cases.push((missing, vec![], "does not exist"));
    }
    for (url, flags, says) in cases {
        let mut args = vec!["check"];
        args.extend(flags.iter().copied());
        let out = tollgate(&url, &args);
        assert_refused(&out, says, &format!("{url} {flags:?}"));
    }
    // The password of a database URL is never printed.
    let out = tollgate("postgres://app:hunter2@127.0.0.1:1/tollgate", &["check"]);
    assert_refused(
        &out,
        "postgres://app:***@127.0.0.1:1/tollgate",
        "redacted URL",
    );
    assert!(!stderr(&out).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_what_it_can_not_copy_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tollgate.db");
    let url = format!("sqlite://{}", source.display());
    let target = dir.path().join("backup.db");
    let target_arg = target.to_str().unwrap();

    let out = tollgate(&url, &["backup", target_arg]);
    assert_refused(&out, "no database at", "missing source");
    assert!(!source.exists() && !target.exists());

    let out = tollgate(
        "postgres://tollgate@127.0.0.1:1/tollgate",
        &["backup", target_arg],
    );
    assert_refused(&out, "pg_dump", "PostgreSQL");
    assert!(!target.exists());

    assert!(tollgate(&url, &["migrate"]).status.success());
    let nowhere = dir.path().join("no/such/folder/backup.db");
    let out = tollgate(&url, &["backup", nowhere.to_str().unwrap()]);
    assert_refused(&out, "does not exist", "missing folder");

    std::fs::write(&target, b"an older backup").unwrap();
    let out = tollgate(&url, &["backup", target_arg]);
    assert_refused(&out, "already exists", "existing target");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"an older backup",
        "never overwritten"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// One churn worker: creates tokens for ADMIN and deletes every other one
/// over the API, until the backup is done (and at least a few rounds).
async fn churn(
    app: &crate::helpers::TestApp,
    worker: usize,
    backup_done: &AtomicBool,
) -> Vec<Churned> {
    let mut made: Vec<Churned> = Vec::new();
    let mut ids: Vec<i64> = Vec::new();
    for i in 0..30 {
        if i >= 6 && backup_done.load(Ordering::Acquire) {
            break;
        }
        let (id, secret) = app
            .token_for(ADMIN, &format!("churn {worker}-{i}"), "read-write")
            .await;
        made.push(Churned {
            secret: secret.clone(),
            created: Instant::now(),
            delete_started: None,
            deleted: None,
        });
        ids.push(id);
        if i % 2 == 1 {
            // Delete the previous token, authenticated with this one.
            let victim = i - 1;
            made[victim].delete_started = Some(Instant::now());
            let res = api(
                app,
                Method::DELETE,
                &format!("/api/v1/tokens/{}", ids[victim]),
                Some(&bearer(&secret)),
            )
            .await;
            assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
            made[victim].deleted = Some(Instant::now());
        }
    }
    made
}

/// One token made while the backup may run, and when it changed.
struct Churned {
    secret: String,
    /// When its creation had committed.
    created: Instant,
    /// When the request deleting it was sent, and when it was answered.
    delete_started: Option<Instant>,
    deleted: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_token_and_every_refusal() {
    let mut app = crate::helpers::spawn_app(Backend::Sqlite).await;
    // Before the backup: tokens that must survive, and deleted ones that
    // must stay refused.
    let mut kept = Vec::new();
    for i in 0..20 {
        kept.push(
            app.token_for(WRITER, &format!("kept {i}"), "read-write")
                .await,
        );
    }
    let mut deleted = Vec::new();
    for i in 0..10 {
        let (id, secret) = app
            .token_for(WRITER, &format!("deleted {i}"), "read-only")
            .await;
        let res = api(
            &app,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&bearer(&kept[0].1)),
        )
        .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
        deleted.push(secret);
    }
    // A revocation of the whole workspace's tokens of one member, too.
    let (_, revoked) = app
        .token_for(ADMIN, "revoked by revoke-all", "read-write")
        .await;
    let res = app
        .signed_in(ADMIN)
        .await
        .post_form("/profile/tokens/revoke-all", &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    deleted.push(revoked);
    for secret in &deleted {
        let res = api(&app, Method::GET, "/api/v1/me", Some(&bearer(secret))).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }

    // The backup runs as the real command, in its own process, while
    // three workers create and delete tokens through the running server.
    let backup_dir = tempfile::tempdir().unwrap();
    let backup_file = backup_dir.path().join("tollgate-backup.db");
    let backup_done = AtomicBool::new(false);
    let url = app.database.url.clone();
    let target = backup_file.clone();
    let backup = async {
        // Let the workers get going first (real time: the point is overlap).
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            tollgate(&url, &["backup", target.to_str().unwrap()])
        })
        .await
        .unwrap();
        let finished = Instant::now();
        backup_done.store(true, Ordering::Release);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
        (started, finished)
    };
    let (made_0, made_1, made_2, (started, finished)) = tokio::join!(
        churn(&app, 0, &backup_done),
        churn(&app, 1, &backup_done),
        churn(&app, 2, &backup_done),
        backup
    );
    let churned: Vec<Churned> = made_0.into_iter().chain(made_1).chain(made_2).collect();
    let during = churned
        .iter()
        .flat_map(|c| [Some(c.created), c.deleted])
        .flatten()
        .filter(|t| *t > started && *t < finished)
        .count();
    eprintln!(
        "{} tokens churned, {during} changes committed while the backup ran",
        churned.len()
    );
    assert!(during > 0, "the load must overlap the backup");
    app.stop().await;

    // Restore, as the README says: the copy becomes the database file of a
    // fresh server.
    let database = TestDatabase::create(Backend::Sqlite).await;
    let restored_file = database.url.trim_start_matches("sqlite://").to_owned();
    std::fs::copy(&backup_file, &restored_file).unwrap();
    let mut restored = crate::helpers::spawn_with(Backend::Sqlite, database, |_| {}).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(restored.db().pool())
        .await
        .unwrap();
    assert_eq!(integrity, "ok");

    let status = |secret: String| {
        let restored = &restored;
        async move {
            api(restored, Method::GET, "/api/v1/me", Some(&bearer(&secret)))
                .await
                .status
        }
    };
    for (_, secret) in &kept {
        assert_eq!(
            status(secret.clone()).await,
            StatusCode::OK,
            "a kept token works"
        );
    }
    for secret in &deleted {
        assert_eq!(
            status(secret.clone()).await,
            StatusCode::UNAUTHORIZED,
            "a deleted token stays refused"
        );
    }
    let (mut must_work, mut must_fail) = (0, 0);
    for token in &churned {
        let got = status(token.secret.clone()).await;
        let existed = token.created < started;
        let still_there = token.delete_started.is_none_or(|at| at > finished);
        if existed && still_there {
            must_work += 1;
            assert_eq!(
                got,
                StatusCode::OK,
                "created before the backup, deleted after it"
            );
        } else if token.deleted.is_some_and(|at| at < started) {
            must_fail += 1;
            assert_eq!(got, StatusCode::UNAUTHORIZED, "deleted before the backup");
        } else {
            // Changed while the copy was taken: either state is consistent.
            assert!(
                matches!(got, StatusCode::OK | StatusCode::UNAUTHORIZED),
                "{got}"
            );
        }
    }
    eprintln!("churned tokens checked: {must_work} must work, {must_fail} must be refused");
    restored.stop().await;
}

/// The unit's `key=value` settings, in order.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/tollgate.service"
    ))
    .expect("deploy/tollgate.service");
    let settings = unit_settings(&unit);
    let value = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "tollgate"),
        ("ExecStart", "/usr/local/bin/tollgate serve"),
    ] {
        assert_eq!(value(key), Some(expected), "{key}");
    }
    // The database lives in the state directory, the only writable place.
    assert!(
        unit.contains("DATABASE_URL=sqlite:///var/lib/tollgate/"),
        "the SQLite file must be under StateDirectory"
    );

    // systemd's own parser, when this machine has it (it is part of systemd,
    // not installed for the tests). The binary path is pointed at the one
    // just built, because verify checks that it exists.
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: only the settings were checked");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tollgate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    // verify exits 0 on settings it ignores; anything it prints is a fault.
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
