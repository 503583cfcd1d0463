//! Issue: the ground floor. Setup, sign-in, sessions, CSRF, password change,
//! security headers, health probes and the command line.

use reqwest::StatusCode;

use crate::each_backend;
use crate::helpers::{ADMIN, Backend, PASSWORD, READER, WRITER, backends, spawn_empty_app};

async fn setup_page(client: &crate::helpers::TestClient, code: &str) -> crate::helpers::Page {
    client.get(&format!("/setup?code={code}")).await
}

/// The `Set-Cookie` header of the session cookie.
fn session_cookie(res: &crate::helpers::Page) -> String {
    res.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tollgate_session=") || c.starts_with("__Host-tollgate_session="))
        .expect("session cookie")
        .to_owned()
}

fn setup_fields<'a>(code: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("code", code),
        ("organization", "Acme"),
        ("name", "Ada"),
        ("email", email),
        ("password", "a long password"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_setup_needs_the_printed_code_and_works_only_once() {
    for backend in backends() {
        let mut app = spawn_empty_app(backend).await;
        let code = app
            .setup_code
            .clone()
            .expect("a setup code while no user exists");
        let client = app.client();

        // Without the code the page only explains where to find it.
        let page = client.get("/setup").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.count("form[action='/setup']"), 0);

        // A wrong code is refused and creates nothing.
        let page = client.get("/setup?code=wrong").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let res = client
            .post_form(
                "/setup",
                &setup_fields("wrong-code-000000000000", "eve@example.com"),
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{backend:?}");
        assert_eq!(app.count("users").await, 0);

        // Bad input is answered inline and stores nothing.
        let page = setup_page(&client, &code).await;
        assert_eq!(page.count("form[action='/setup']"), 1);
        let mut bad = setup_fields(&code, "not-an-email");
        let res = client.post_form("/setup", &bad).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            res.text(".form-error").contains("valid email"),
            "{}",
            res.text(".form-error")
        );
        assert_eq!(app.count("users").await, 0);
        assert_eq!(app.count("organizations").await, 0);
        bad[4] = ("password", "short");
        bad[3] = ("email", "ada@example.com");
        let res = client.post_form("/setup", &bad).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("users").await, 0);

        // The right code sets up the organization and signs the Admin in.
        let res = client
            .post_form("/setup", &setup_fields(&code, "Ada@Example.com"))
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.location().as_deref(), Some("/profile"));
        let profile = client.get("/profile").await;
        assert_eq!(profile.status, StatusCode::OK);
        assert!(profile.body.contains("ada@example.com"));
        assert!(profile.text("table").contains("Admin"));

        // Once a user exists, setup is closed, even with the code.
        let again = app.client();
        assert_eq!(
            again.get(&format!("/setup?code={code}")).await.status,
            StatusCode::FORBIDDEN
        );
        let res = again
            .post_form("/setup", &setup_fields(&code, "eve@example.com"))
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("users").await, 1);
        app.stop().await;
    }
}

each_backend! {
    async fn sign_in_with_the_right_password_opens_the_profile(app) {
        let client = app.client();
        let page = client.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text("label[for=email]"), "Email");
        assert_eq!(page.text("label[for=password]"), "Password");
        assert_eq!(page.text("form button[type=submit]"), "Sign in");
        let res = client.login(WRITER, PASSWORD).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let profile = client.get("/profile").await;
        assert_eq!(profile.status, StatusCode::OK);
        assert!(profile.text(".facts").contains(WRITER));
        assert!(profile.text("table").contains("Read-Write"));
        assert_eq!(profile.text("nav.sidebar a[aria-current=page]"), "Profile");
        assert_eq!(profile.text("nav.sidebar form[action='/logout'] button"), "Sign out");
    }
}

each_backend! {
    async fn wrong_password_and_unknown_email_get_the_same_answer(app) {
        let client = app.client();
        let wrong = client.login(WRITER, "not the password").await;
        let unknown = client.login("nobody@example.com", PASSWORD).await;
        let malformed = client.login("not an email", PASSWORD).await;
        for res in [&wrong, &unknown, &malformed] {
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
            assert_eq!(res.text(".form-error"), "Incorrect email or password.");
        }
        // Nobody is signed in afterwards.
        assert_eq!(client.get("/profile").await.status, StatusCode::SEE_OTHER);
        // The typed email is kept, the password is not.
        assert_eq!(wrong.attr("#email", "value").as_deref(), Some(WRITER));
        assert_eq!(wrong.attr("#password", "value"), None);
    }
}

each_backend! {
    async fn sign_in_is_case_insensitive_for_the_email(app) {
        let client = app.client();
        let res = client.login("  Writer@EXAMPLE.com ", PASSWORD).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn sign_in_renews_the_session_id(app) {
        // Anonymous visitors get no session at all (nothing to plant); a
        // sign-in over an existing session gets a new id.
        let client = app.client();
        client.get("/login").await;
        assert_eq!(client.cookie("tollgate_session"), None);
        client.login(READER, PASSWORD).await;
        let before = client.cookie("tollgate_session").expect("a session after sign-in");
        client.login(WRITER, PASSWORD).await;
        let after = client.cookie("tollgate_session").expect("a session after the second sign-in");
        assert_ne!(before, after);
        // The earlier cookie does not carry the new signed-in session.
        let planted = crate::helpers::TestClient::new(&app.address);
        let res = planted.http.get(planted.url("/profile")).header("Cookie", format!("tollgate_session={before}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn sign_out_ends_the_server_side_session(app) {
        let client = app.signed_in(WRITER).await;
        let cookie = client.cookie("tollgate_session").unwrap();
        let sessions_before = app.count("sessions").await;
        let res = client.post_form("/logout", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.location().as_deref(), Some("/login"));
        assert!(app.count("sessions").await < sessions_before);
        // Replaying the old cookie no longer works.
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let res = replay.get(format!("{}/profile", app.address)).header("Cookie", format!("tollgate_session={cookie}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn sign_out_is_a_post_with_csrf_never_a_get(app) {
        let client = app.signed_in(WRITER).await;
        let res = client.get("/logout").await;
        assert_ne!(res.status, StatusCode::SEE_OTHER);
        let res = client.post_raw("/logout", &[], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(client.get("/profile").await.status, StatusCode::OK, "still signed in");
    }
}

each_backend! {
    async fn forms_without_a_valid_csrf_token_are_refused_and_change_nothing(app) {
        let client = app.signed_in(WRITER).await;
        let csrf = client.csrf().await;
        let tokens = app.count("personal_access_tokens").await;
        // Missing token.
        let res = client.post_raw("/profile/tokens", &[("name", "ci")], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert!(res.text("h1").contains("Request refused"));
        // Wrong token.
        let res = client.post_raw("/profile/tokens", &[("csrf_token", "x".repeat(43).as_str()), ("name", "ci")], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        // Right token, but sent from another site.
        let res = client.post_raw("/profile/tokens", &[("csrf_token", &csrf), ("name", "ci")], Some("https://evil.example")).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        // Another session's token.
        let other = app.signed_in(ADMIN).await;
        let other_csrf = other.csrf().await;
        let res = client.post_raw("/profile/tokens", &[("csrf_token", &other_csrf), ("name", "ci")], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, tokens);
        // A password change without the token leaves the password alone.
        let res = client.post_raw("/profile/password", &[("current_password", PASSWORD), ("new_password", "another password"), ("confirm_password", "another password")], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.client().login(WRITER, PASSWORD).await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn changing_the_password_signs_out_every_other_session(app) {
        let laptop = app.signed_in(WRITER).await;
        let phone = app.signed_in(WRITER).await;
        let res = laptop.post_form("/profile/password", &[("current_password", PASSWORD), ("new_password", "a brand new password"), ("confirm_password", "a brand new password")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        // This session goes on; the other one is signed out.
        let page = laptop.get("/profile").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text(".flash").contains("Password changed"));
        assert_eq!(phone.get("/profile").await.status, StatusCode::SEE_OTHER);
        // Only the new password works.
        assert_eq!(app.client().login(WRITER, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.client().login(WRITER, "a brand new password").await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn a_bad_password_change_is_answered_inline_and_changes_nothing(app) {
        let client = app.signed_in(WRITER).await;
        let other = app.signed_in(WRITER).await;
        for (fields, field) in [
            ([("current_password", "wrong password"), ("new_password", "a brand new password"), ("confirm_password", "a brand new password")], "current_password"),
            ([("current_password", PASSWORD), ("new_password", "short"), ("confirm_password", "short")], "new_password"),
            ([("current_password", PASSWORD), ("new_password", "a brand new password"), ("confirm_password", "a different one!")], "confirm_password"),
        ] {
            let res = client.post_form("/profile/password", &fields).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
            assert_eq!(res.attr(&format!("#{field}"), "aria-invalid").as_deref(), Some("true"), "{field}");
            assert!(!res.text("#password-error").is_empty());
        }
        assert_eq!(other.get("/profile").await.status, StatusCode::OK, "other sessions survive");
        assert_eq!(app.client().login(WRITER, PASSWORD).await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn pages_need_a_signed_in_member(app) {
        let client = app.client();
        for path in ["/profile", "/profile/tokens", "/profile/tokens/new", "/members", "/workspace-tokens", "/audit-log"] {
            let res = client.get(path).await;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(res.location().as_deref(), Some("/login"), "{path}");
        }
    }
}

each_backend! {
    async fn every_page_carries_the_security_headers(app) {
        let client = app.signed_in(WRITER).await;
        for path in ["/login", "/profile", "/profile/tokens", "/healthz", "/api/v1/me", "/no-such-page"] {
            let res = client.get(path).await;
            let csp = res.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
            assert_eq!(res.headers.get("x-content-type-options").unwrap(), "nosniff", "{path}");
            assert!(res.headers.get("referrer-policy").is_some(), "{path}");
            assert!(res.headers.get("x-request-id").is_some(), "{path}");
        }
        // Pages use no inline script or style (the CSP would block them).
        let page = client.get("/profile/tokens").await;
        assert_eq!(page.count("script:not([src])"), 0);
        assert_eq!(page.count("[style]"), 0);
        assert_eq!(page.count("style"), 0);
    }
}

each_backend! {
    async fn session_cookies_are_http_only_and_same_site(app) {
        let client = app.client();
        // The CSRF nonce of an anonymous visitor, and the signed-in session.
        let res = client.get("/login").await;
        let csrf = res.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|c| c.starts_with("tollgate_csrf=")).expect("CSRF cookie").to_owned();
        let res = client.login(WRITER, PASSWORD).await;
        for cookie in [csrf, session_cookie(&res)] {
            assert!(cookie.contains("HttpOnly"), "{cookie}");
            assert!(cookie.contains("SameSite=Lax") || cookie.contains("SameSite=Strict"), "{cookie}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_when_the_public_url_is_https() {
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let mut app = crate::helpers::spawn_with(Backend::Sqlite, database, |c| {
        c.public_url = Some("https://tokens.example.com".to_owned())
    })
    .await;
    // Behind https the browser holds `__Host-` cookies that it sends only
    // over https: play that browser by hand over the test's plain http.
    let client = app.client();
    let res = client.get("/login").await;
    let csrf_cookie = res
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-tollgate_csrf="))
        .expect("CSRF cookie")
        .to_owned();
    assert!(csrf_cookie.contains("Secure"), "{csrf_cookie}");
    let nonce = csrf_cookie.split(';').next().unwrap().to_owned();
    let token = res.attr("meta[name=csrf-token]", "content").unwrap();
    let res = crate::helpers::read(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(client.url("/login"))
            .header("Cookie", nonce)
            .header("Origin", "https://tokens.example.com")
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", WRITER),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let cookie = session_cookie(&res);
    assert!(
        cookie.starts_with("__Host-tollgate_session=") && cookie.contains("Secure"),
        "{cookie}"
    );
    app.stop().await;
}

each_backend! {
    async fn health_and_readiness_probes_answer(app) {
        let client = app.client();
        assert_eq!(client.get("/healthz").await.status, StatusCode::OK);
        assert_eq!(client.get("/readyz").await.status, StatusCode::OK);
        app.core.db.close().await;
        assert_eq!(client.get("/healthz").await.status, StatusCode::OK, "healthz never touches the database");
        assert_eq!(client.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}

each_backend! {
    async fn oversized_bodies_are_refused_with_413(app) {
        let client = app.signed_in(WRITER).await;
        let tokens = app.count("personal_access_tokens").await;
        let huge = "x".repeat(200 * 1024);
        let csrf = client.csrf().await;
        let res = client.post_raw("/profile/tokens", &[("csrf_token", &csrf), ("name", &huge)], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.count("personal_access_tokens").await, tokens);
    }
}

each_backend! {
    async fn disabled_members_can_not_sign_in_and_lose_their_sessions(app) {
        let reader = app.signed_in(READER).await;
        let admin = app.signed_in(ADMIN).await;
        let id = app.user_id(READER).await;
        let res = admin.post_form(&format!("/members/{id}/disable"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(reader.get("/profile").await.status, StatusCode::SEE_OTHER);
        let res = app.client().login(READER, PASSWORD).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.text(".form-error"), "Incorrect email or password.");
    }
}

/// Runs the `tollgate` binary with a database URL and standard input.
fn cli(database_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tollgate");
    // A command refused before it reads its input closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_creates_users_and_explains_every_refusal() {
    for backend in backends() {
        let database = crate::helpers::TestDatabase::create(backend).await;
        let url = database.url.clone();
        let run = |args: &[&str], stdin: &str| cli(&url, args, stdin);

        let out = run(&["migrate"], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = run(
            &[
                "users",
                "create",
                "--email",
                "Root@Example.com",
                "--role",
                "admin",
                "--password-stdin",
            ],
            "a long password\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));

        let db = tollgate::storage::Db::connect(&url).await.unwrap();
        let users = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(db.pool())
                .await
                .unwrap()
        };
        assert_eq!(users().await, 1);
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(orgs, 1, "the organization is created with the first user");

        // `users create --email E --role R --password-stdin`
        let create = |email: &'static str, role: &'static str| {
            vec![
                "users",
                "create",
                "--email",
                email,
                "--role",
                role,
                "--password-stdin",
            ]
        };
        let without_stdin_flag = vec![
            "users",
            "create",
            "--email",
            "new@example.com",
            "--role",
            "admin",
        ];
        for (args, stdin, says) in [
            (
                create("ROOT@example.com", "read-only"),
                "a long password\n",
                "already exists",
            ),
            (
                create("new@example.com", "owner"),
                "a long password\n",
                "Unknown role",
            ),
            (
                create("not-an-email", "admin"),
                "a long password\n",
                "valid email",
            ),
            (create("new@example.com", "admin"), "\n", "can not be empty"),
            (create("new@example.com", "admin"), "", "can not be empty"),
            (without_stdin_flag, "a long password\n", "--password-stdin"),
        ] {
            let out = run(&args, stdin);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
            assert!(
                stderr.lines().filter(|l| !l.trim().is_empty()).count() <= 4,
                "short message: {stderr}"
            );
        }
        assert_eq!(users().await, 1, "no refused command changed anything");

        let out = run(
            &[
                "users",
                "create",
                "--email",
                "dev@example.com",
                "--role",
                "read-write",
                "--name",
                "Dev",
                "--workspace",
                "Staging",
                "--password-stdin",
            ],
            "another long password",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let workspaces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(workspaces, 2);
        db.close().await;
    }
}

each_backend! {
    async fn repeated_failed_sign_ins_are_throttled_without_locking_out_others(app) {
        let client = app.client();
        for _ in 0..10 {
            assert_eq!(client.login(WRITER, "guessing").await.status, StatusCode::UNAUTHORIZED);
        }
        // Even the right password is refused for a while from here...
        let res = client.login(WRITER, PASSWORD).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers.get("retry-after").is_some());
        assert!(res.text(".form-error").contains("Too many failed sign-ins"));
        assert_eq!(client.get("/profile").await.status, StatusCode::SEE_OTHER);
        // ...while other accounts are not affected.
        assert_eq!(app.client().login(ADMIN, PASSWORD).await.status, StatusCode::SEE_OTHER);
    }
}

/// Starts the binary with `args`; the log's read end is closed at once: the
/// server must go on answering when its log can no longer be written (a
/// restarted log collector, a closed terminal).
fn start_binary(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    let (child, address, lines) = crate::helpers::start_binary(dir, args);
    drop(lines);
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_with_or_without_the_serve_subcommand_on_a_new_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--bind", "127.0.0.1:0"][..],
        &["serve", "--bind", "127.0.0.1:0"][..],
    ] {
        let (mut child, address) = start_binary(dir.path(), args);
        let ready = reqwest::get(format!("{address}/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "{args:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // The default database file was created under ./data/.
    assert!(dir.path().join("data/tollgate.db").exists());
}
