//! Hardening: sign-in floods and parallel guessing, invitations that outlive
//! their Admin, sessions that store nothing for anonymous visitors, hostile
//! request bodies, headers and names. Each test checks that the refused
//! request changed nothing.

use reqwest::{Method, StatusCode};
use tollgate::clock::now;
use tollgate::service::auth::NewUser;

use crate::each_backend;
use crate::helpers::{ADMIN, Backend, PASSWORD, READER, TestApp, TestClient, WRITER, api, bearer};

/// Posts a JSON body to the API's revoke-all with a token.
async fn revoke_all_with_body(app: &TestApp, token: &str, body: &str) -> crate::helpers::Page {
    crate::helpers::read(
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/workspace/tokens/revoke-all",
                app.address
            ))
            .header("Authorization", bearer(token))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

each_backend! {
    async fn revoke_all_accepts_only_a_json_object_as_its_body(app) {
        let (_, token) = app.token_for(ADMIN, "incident", "admin").await;
        app.token_for(WRITER, "bystander", "read-write").await;
        for body in ["[]", "null", "1", "\"x\"", "[1]", "true"] {
            let res = revoke_all_with_body(&app, &token, body).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(res.json()["error"]["code"], "invalid_json", "{body}");
            assert_eq!(app.count("personal_access_tokens").await, 2, "{body} revoked tokens");
        }
        // An object naming one member revokes only theirs.
        let writer = app.user_id(WRITER).await;
        let res = revoke_all_with_body(&app, &token, &format!("{{\"user_id\": {writer}}}")).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["revoked"], 1);
        assert_eq!(app.count("personal_access_tokens").await, 1);
    }
}

/// Sends `count` sign-ins for `email` with `password` at once from one
/// browser; returns how many were answered 401 and how many 429.
async fn parallel_sign_ins(
    client: &TestClient,
    email: &str,
    password: &str,
    count: usize,
) -> (usize, usize) {
    let csrf = client.csrf().await;
    let attempts = (0..count).map(|_| {
        let request = client
            .http
            .post(client.url("/login"))
            .header("Origin", &client.base)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", password),
            ]);
        async move { request.send().await.map(|r| r.status()) }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let (mut checked, mut throttled) = (0, 0);
    for status in statuses {
        match status.expect("sign-in request") {
            StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected answer {other}"),
        }
    }
    (checked, throttled)
}

each_backend! {
    async fn parallel_guesses_are_counted_before_the_password_is_checked(app) {
        let client = app.client();
        let (checked, throttled) = parallel_sign_ins(&client, WRITER, "wrong guess", 150).await;
        eprintln!("of 150 parallel guesses {checked} were checked, {throttled} throttled");
        assert!(checked <= 10, "{checked} of 150 parallel guesses were checked");
        assert_eq!(checked + throttled, 150);
        // The right password is refused from there too, for now.
        assert_eq!(client.login(WRITER, PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
        // One failed sign-in event with the count (the 150 guesses and the
        // refused right password), not 151 rows.
        let (events, detail): (i64, String) = sqlx::query_as("SELECT COUNT(*), MAX(detail) FROM audit_events WHERE action = 'user.sign_in_failed'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(events, 1);
        assert_eq!(detail, "151 failed sign-ins");
        // The Admin of the member's workspace sees it.
        let admin = app.signed_in(ADMIN).await;
        let log = admin.get("/audit-log").await.text("table");
        assert!(log.contains("user.sign_in_failed") && log.contains(WRITER), "{log}");
    }
}

each_backend! {
    async fn wrong_current_passwords_are_throttled_too(app) {
        let client = app.signed_in(WRITER).await;
        let mut statuses = Vec::new();
        for _ in 0..11 {
            let res = client.post_form("/profile/password", &[("current_password", "not it at all"), ("new_password", "another long password"), ("confirm_password", "another long password")]).await;
            statuses.push(res.status);
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count(), 10, "{statuses:?}");
        assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
        // Even the right one waits now, and nothing changed.
        let res = client.post_form("/profile/password", &[("current_password", PASSWORD), ("new_password", "another long password"), ("confirm_password", "another long password")]).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(app.client().login(WRITER, PASSWORD).await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn guessing_invitation_codes_is_throttled(app) {
        let admin = app.signed_in(ADMIN).await;
        let res = admin.post_form("/members/invite", &[("email", "new@example.com"), ("role", "read-only")]).await;
        let link = res.attr("#invite-link", "value").expect("invitation link");
        let path = link.trim_start_matches(&app.address).to_owned();
        let guesser = app.client();
        for i in 0..10 {
            assert_eq!(guesser.get(&format!("/invitations/guess{i}")).await.status, StatusCode::NOT_FOUND);
        }
        assert_eq!(guesser.get("/invitations/guess-again").await.status, StatusCode::TOO_MANY_REQUESTS);
        // From here even the real code waits; nothing was accepted.
        assert_eq!(guesser.get(&path).await.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(app.count("users").await, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_setup_code_is_throttled() {
    for backend in crate::helpers::backends() {
        let mut app = crate::helpers::spawn_empty_app(backend).await;
        let code = app.setup_code.clone().unwrap();
        let client = app.client();
        for i in 0..10 {
            assert_eq!(
                client.get(&format!("/setup?code=guess{i}")).await.status,
                StatusCode::FORBIDDEN
            );
        }
        assert_eq!(
            client.get("/setup?code=guess-again").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
        let res = client.get(&format!("/setup?code={code}")).await;
        assert_eq!(
            res.status,
            StatusCode::TOO_MANY_REQUESTS,
            "the real code waits too"
        );
        assert_eq!(app.count("users").await, 0);
        app.stop().await;
    }
}

each_backend! {
    async fn anonymous_visits_store_no_session(app) {
        let before = app.count("sessions").await;
        for _ in 0..50 {
            let client = app.client();
            assert_eq!(client.get("/login").await.status, StatusCode::OK);
        }
        assert_eq!(app.count("sessions").await, before, "GET /login stored sessions");
        // The sign-in form still works without a stored session, and a
        // failed sign-in stores nothing either.
        let client = app.client();
        assert_eq!(client.login(READER, "wrong password").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.count("sessions").await, before);
        assert_eq!(client.login(READER, PASSWORD).await.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("sessions").await, before + 1);
    }
}

each_backend! {
    async fn page_views_do_not_rewrite_the_session_more_than_once_a_minute(app) {
        let client = app.signed_in(WRITER).await;
        let later = now() + 600;
        sqlx::query("UPDATE sessions SET expires_at = $1").bind(later).execute(app.db().pool()).await.unwrap();
        for _ in 0..3 {
            assert_eq!(client.get("/profile").await.status, StatusCode::OK);
        }
        let expires: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(expires, later, "a page view rewrote the session");
        // A minute later the idle expiry moves on.
        let state: String = sqlx::query_scalar("SELECT state FROM sessions").fetch_one(app.db().pool()).await.unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
        state["seen_at"] = serde_json::Value::String((now() - 61).to_string());
        sqlx::query("UPDATE sessions SET state = $1").bind(state.to_string()).execute(app.db().pool()).await.unwrap();
        assert_eq!(client.get("/profile").await.status, StatusCode::OK);
        let expires: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions").fetch_one(app.db().pool()).await.unwrap();
        assert!(expires > later, "the idle expiry was not extended");
    }
}

each_backend! {
    async fn signing_in_starts_with_an_empty_session(app) {
        // The writer leaves a flash message and a generated token unseen.
        let browser = app.signed_in(WRITER).await;
        assert_eq!(browser.get("/profile/tokens/revoke-all").await.status, StatusCode::SEE_OTHER, "no tokens: a flash, and back");
        let res = browser.post_form("/profile/tokens", &[("name", "left behind")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let writer_csrf = browser.csrf().await;
        // Someone else signs in on the same browser.
        assert_eq!(browser.login(ADMIN, PASSWORD).await.status, StatusCode::SEE_OTHER);
        let profile = browser.get("/profile").await;
        assert_eq!(profile.status, StatusCode::OK);
        assert!(profile.text(".flash").is_empty(), "a flash survived: {}", profile.text(".flash"));
        let shown = browser.get("/profile/tokens/created").await;
        assert!(shown.attr("#issued-token", "value").is_none(), "the writer's token was shown to the next user");
        // The writer's CSRF token no longer works.
        let before = app.count("personal_access_tokens").await;
        let res = browser.post_raw("/profile/tokens", &[("csrf_token", writer_csrf.as_str()), ("name", "forged")], Some(&app.address)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, before);
    }
}

each_backend! {
    async fn basic_credentials_with_a_foreign_origin_are_refused(app) {
        let (_, token) = app.token_for(ADMIN, "remembered", "admin").await;
        let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{ADMIN}:{token}")));
        for origin in ["https://evil.example", "null"] {
            let res = crate::helpers::read(
                reqwest::Client::new()
                    .post(format!("{}/api/v1/tokens/self/rotate", app.address))
                    .header("Authorization", &basic)
                    .header("Origin", origin)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{origin}");
            assert_eq!(res.json()["error"]["code"], "cross_site_request");
        }
        // The token still works: nothing was rotated.
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await.status, StatusCode::OK);
        // Same-origin Basic (a page of Tollgate itself) and no Origin (curl) work.
        for origin in [Some(app.address.as_str()), None] {
            let mut request = reqwest::Client::new().get(format!("{}/api/v1/me", app.address)).header("Authorization", &basic);
            if let Some(origin) = origin {
                request = request.header("Origin", origin);
            }
            assert_eq!(request.send().await.unwrap().status(), StatusCode::OK, "{origin:?}");
        }
    }
}

/// Adds a second Admin to the Default workspace.
async fn second_admin(app: &TestApp) -> (&'static str, i64) {
    let email = "second-admin@example.com";
    app.core
        .create_user(
            NewUser {
                email,
                name: Some("Sam"),
                role: "admin",
                workspace: None,
                password: PASSWORD,
            },
            now(),
        )
        .await
        .unwrap();
    (email, app.user_id(email).await)
}

async fn invite(client: &TestClient, app: &TestApp, email: &str, role: &str) -> String {
    let res = client
        .post_form("/members/invite", &[("email", email), ("role", role)])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text("main"));
    let link = res.attr("#invite-link", "value").expect("invitation link");
    link.trim_start_matches(&app.address).to_owned()
}

each_backend! {
    async fn pending_invitations_show_their_inviter_and_can_be_cancelled(app) {
        let admin = app.signed_in(ADMIN).await;
        let path = invite(&admin, &app, "outsider@example.com", "admin").await;
        let page = admin.get("/members").await;
        let row = page.text("#invitations tbody tr");
        assert!(row.contains("outsider@example.com") && row.contains(ADMIN), "{row}");
        let cancel = page.attr("#invitations a[data-open-dialog]", "href").expect("a Cancel per invitation");
        assert!(page.count("dialog#cancel-invitation-dialog form") == 1, "a confirmation dialog");
        // Without script: a confirmation page; asking cancels nothing.
        let confirm = admin.get(&cancel).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("main").contains("outsider@example.com"));
        assert_eq!(app.count("invitations").await, 1);
        let action = confirm.attr("main form", "action").unwrap();
        // A Read-Write member can not cancel it.
        let writer = app.signed_in(WRITER).await;
        assert_eq!(writer.post_form(&action, &[]).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.client().get(&path).await.status, StatusCode::OK);
        let res = admin.post_form(&action, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert!(admin.get("/members").await.text(".flash").contains("cancelled"));
        assert_eq!(app.client().get(&path).await.status, StatusCode::NOT_FOUND);
        let res = app.client().post_form(&path, &[("name", "Eve"), ("password", "a fine long password")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("users").await, 3);
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'member.invitation_cancelled'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(events, 1);
        // Cancelling again is not found.
        assert_eq!(admin.post_form(&action, &[]).await.status, StatusCode::NOT_FOUND);
    }
}

each_backend! {
    async fn invitations_die_with_their_inviters_admin_role(app) {
        let (sam, sam_id) = second_admin(&app).await;
        let admin = app.signed_in(ADMIN).await;
        for (undo, change) in [
            ("UPDATE memberships SET role = 'admin' WHERE user_id = $1", "role"),
            ("UPDATE users SET disabled_at = NULL WHERE id = $1", "disable"),
            ("", "remove"),
        ] {
            let sam_client = app.signed_in(sam).await;
            let path = invite(&sam_client, &app, &format!("{change}@example.com"), "admin").await;
            let res = match change {
                "role" => admin.post_form(&format!("/members/{sam_id}/role"), &[("role", "read-write")]).await,
                other => admin.post_form(&format!("/members/{sam_id}/{other}"), &[]).await,
            };
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{change}");
            assert_eq!(app.client().get(&path).await.status, StatusCode::NOT_FOUND, "after {change}");
            let res = app.client().post_form(&path, &[("name", "Eve"), ("password", "a fine long password")]).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "after {change}");
            assert!(!admin.get("/members").await.text("#invitations").contains(&format!("{change}@example.com")));
            if !undo.is_empty() {
                sqlx::query(undo).bind(sam_id).execute(app.db().pool()).await.unwrap();
            }
        }
        let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE role = 'admin'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(admins, 1, "no invitation made a new Admin");
        assert_eq!(app.count("users").await, 4);
    }
}

each_backend! {
    async fn accepting_into_a_workspace_you_belong_to_is_answered_clearly(app) {
        let admin = app.signed_in(ADMIN).await;
        let first = invite(&admin, &app, "twice@example.com", "read-write").await;
        let second = invite(&admin, &app, "twice@example.com", "admin").await;
        let newcomer = app.client();
        let res = newcomer.post_form(&first, &[("name", "Tia"), ("password", "a fine long password")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let res = newcomer.post_form(&second, &[("name", ""), ("password", "")]).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text("main"));
        assert!(res.text("main").contains("already a member"), "{}", res.text("main"));
        let role: String = sqlx::query_scalar("SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'twice@example.com'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(role, "read-write", "the second invitation changed nothing");
    }
}

each_backend! {
    async fn invisible_and_bidi_characters_are_refused_in_names(app) {
        let client = app.signed_in(WRITER).await;
        for name in ["evil\u{202E}txt.exe", "zero\u{200B}width", "\u{FEFF}bom", "iso\u{2066}late"] {
            let res = client.post_form("/profile/tokens", &[("name", name)]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
            assert!(res.text(".form-error").contains("invisible"), "{}", res.text(".form-error"));
        }
        assert_eq!(app.count("personal_access_tokens").await, 0);
        // Display names at invitation acceptance.
        let admin = app.signed_in(ADMIN).await;
        let path = invite(&admin, &app, "newbie@example.com", "read-only").await;
        let res = app.client().post_form(&path, &[("name", "Ad\u{202E}nimda"), ("password", "a fine long password")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("users").await, 3);
        // The command line refuses them in workspace names too.
        let err = app.core.create_user(NewUser { email: "x@example.com", name: None, role: "read-only", workspace: Some("Op\u{200F}s"), password: PASSWORD }, now()).await;
        assert!(err.is_err());
        assert_eq!(app.count("users").await, 3);
    }
}

each_backend! {
    async fn forwarded_headers_of_strangers_are_not_believed(app) {
        let admin = app.signed_in(ADMIN).await;
        // A page claiming to be served at evil.example can not pass the
        // Origin check by saying so in X-Forwarded-Host.
        let csrf = admin.csrf().await;
        let res = crate::helpers::read(
            admin.http.post(admin.url("/members/invite"))
                .header("Origin", "https://evil.example")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https")
                .form(&[("csrf_token", csrf.as_str()), ("email", "a@example.com"), ("role", "admin")])
                .send().await.unwrap(),
        ).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("invitations").await, 0);
        // Nor can it steer invitation links elsewhere.
        let res = crate::helpers::read(
            admin.http.post(admin.url("/members/invite"))
                .header("Origin", &admin.base)
                .header("X-Forwarded-Host", "evil.example")
                .form(&[("csrf_token", csrf.as_str()), ("email", "b@example.com"), ("role", "admin")])
                .send().await.unwrap(),
        ).await;
        assert_eq!(res.status, StatusCode::OK);
        let link = res.attr("#invite-link", "value").unwrap();
        assert!(link.starts_with(&format!("{}/invitations/", app.address)), "{link}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_links_use_the_public_url_and_transport_is_strict() {
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let mut app = crate::helpers::spawn_with(Backend::Sqlite, database, |c| {
        c.public_url = Some("https://tokens.example.com".to_owned())
    })
    .await;
    let res = app.client().get("/login").await;
    let hsts = res
        .headers
        .get("strict-transport-security")
        .expect("HSTS")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(hsts.contains("max-age="), "{hsts}");
    let cookies: Vec<String> = res
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(
            cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
            "{cookie}"
        );
    }
    app.stop().await;
    // Without https: no HSTS (browsers would pin a plain-http dashboard).
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let mut app = crate::helpers::spawn_with(Backend::Sqlite, database, |_| {}).await;
    assert!(
        app.client()
            .get("/login")
            .await
            .headers
            .get("strict-transport-security")
            .is_none()
    );
    app.stop().await;
}

each_backend! {
    async fn revoking_ones_own_tokens_is_recorded_per_workspace(app) {
        // The writer also belongs to Ops, with a token there.
        app.core.create_user(NewUser { email: "bob@ops.example.com", name: None, role: "admin", workspace: Some("Ops"), password: PASSWORD }, now()).await.unwrap();
        let ops: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Ops'").fetch_one(app.db().pool()).await.unwrap();
        let writer = app.user_id(WRITER).await;
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'read-write', 0)").bind(ops).bind(writer).execute(app.db().pool()).await.unwrap();
        let client = app.signed_in(WRITER).await;
        client.generate(&[("name", "default one")]).await;
        client.generate(&[("name", "default two")]).await;
        client.generate(&[("name", "ops one"), ("workspace", &ops.to_string())]).await;
        assert_eq!(client.post_form("/profile/tokens/revoke-all", &[]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        let events: Vec<(Option<i64>, String)> = sqlx::query_as("SELECT workspace_id, detail FROM audit_events WHERE action = 'token.revoked_all' ORDER BY workspace_id").fetch_all(app.db().pool()).await.unwrap();
        let default: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Default'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].0, Some(default));
        assert!(events[0].1.starts_with("2 "), "{events:?}");
        assert_eq!(events[1].0, Some(ops));
        assert!(events[1].1.starts_with("1 "), "{events:?}");
        // The Ops Admin sees only the Ops count.
        let bob = app.signed_in("bob@ops.example.com").await;
        let log = bob.get(&format!("/audit-log?workspace={ops}")).await.texts("tbody tr");
        let revoked: Vec<&String> = log.iter().filter(|r| r.contains("token.revoked_all")).collect();
        assert_eq!(revoked.len(), 1, "{log:?}");
        assert!(revoked[0].contains("1 "), "{revoked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_audit_events_are_removed_after_the_retention_period() {
    for backend in crate::helpers::backends() {
        let database = crate::helpers::TestDatabase::create(backend).await;
        crate::helpers::seed(&database.url).await;
        let db = tollgate::storage::Db::connect(&database.url).await.unwrap();
        let old = now() - 31 * 86_400;
        sqlx::query("INSERT INTO audit_events (actor_label, action, target_label, created_at) VALUES ('old', 'old.event', '', $1)").bind(old).execute(db.pool()).await.unwrap();
        db.close().await;
        let mut app =
            crate::helpers::spawn_with(backend, database, |c| c.audit_retention_days = 30).await;
        // The cleanup runs in the background at start-up: wait for it (real
        // time is what is tested here; bounded to 5 s).
        let mut left = 1;
        for _ in 0..100 {
            left = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM audit_events WHERE action = 'old.event'",
            )
            .fetch_one(app.db().pool())
            .await
            .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(left, 0, "{backend:?}");
        assert!(
            app.count("audit_events").await >= 3,
            "recent events are kept"
        );
        app.stop().await;
    }
}

/// The binary, started on a seeded SQLite file; returns the child and its address.
fn start_server(dir: &std::path::Path, database_url: &str) -> (std::process::Child, String) {
    let (child, address, lines) = crate::helpers::start_binary(
        dir,
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ],
    );
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Failed sign-ins with many different emails, each really checked: the
/// server's memory must stay bounded during and after the flood. Measured on
/// the real binary, as a separate process, so that its RSS is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_does_not_take_memory_that_stays() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flood.db").display());
    crate::helpers::seed(&url).await;
    let (mut child, address) = start_server(dir.path(), &url);
    let client = TestClient::new(&address);
    let csrf = client.csrf().await;
    // Five waves of 40 at once: each wave is checked well within the
    // server's 10 s wait for a hashing slot, even on a busy machine.
    let mut statuses = Vec::new();
    for wave in 0..5 {
        let attempts = (0..40).map(|i| {
            let request = client
                .http
                .post(client.url("/login"))
                .header("Origin", &address)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", &format!("nobody{wave}-{i}@example.com")),
                    ("password", "wrong password"),
                ]);
            async move { request.send().await.map(|r| r.status()) }
        });
        statuses.extend(futures_util::future::join_all(attempts).await);
    }
    let checked = statuses
        .iter()
        .filter(|s| matches!(s, Ok(StatusCode::UNAUTHORIZED)))
        .count();
    let (rss, peak) = memory_mib(child.id());
    eprintln!("after 200 failed sign-ins ({checked} checked): RSS {rss} MiB, peak {peak} MiB");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        checked >= 100,
        "only {checked} of 200 sign-ins were checked: {statuses:?}"
    );
    assert!(
        peak <= 100,
        "peak RSS {peak} MiB during 200 failed sign-ins"
    );
    assert!(rss <= 100, "RSS {rss} MiB after 200 failed sign-ins");
}

/// Writes `role` into `email`'s membership past the schema's CHECK
/// constraint, as an operator could after dropping it by hand.
async fn corrupt_role(app: &TestApp, email: &str, role: &str) {
    let user = app.user_id(email).await;
    let mut conn = app.db().pool().acquire().await.unwrap();
    let unchecked = match app.db().backend() {
        tollgate::storage::Backend::Sqlite => "PRAGMA ignore_check_constraints = ON",
        tollgate::storage::Backend::Postgres => {
            "ALTER TABLE memberships DROP CONSTRAINT IF EXISTS memberships_role_check"
        }
    };
    sqlx::query(unchecked).execute(&mut *conn).await.unwrap();
    sqlx::query("UPDATE memberships SET role = $1 WHERE user_id = $2")
        .bind(role)
        .bind(user)
        .execute(&mut *conn)
        .await
        .unwrap();
    if app.db().backend() == tollgate::storage::Backend::Sqlite {
        sqlx::query("PRAGMA ignore_check_constraints = OFF")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

each_backend! {
    async fn a_role_edited_into_nonsense_is_an_error_not_a_lesser_role(app) {
        let (_, token) = app.token_for(ADMIN, "ops", "admin").await;
        let browser = app.signed_in(ADMIN).await;
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await.status, StatusCode::OK);

        corrupt_role(&app, ADMIN, "owner").await;

        // Neither the API nor the pages guess a role: no 200 as Read-Only,
        // no 403 "owner is Read-Only", but a server error that says so in
        // the log, on every path that reads the membership. A change made
        // in SQL reaches the token cache through the database's
        // notification on PostgreSQL (within 2 s); until then the token
        // answers as it was, never as anything else.
        crate::helpers::eventually("the SQL edit to reach the token cache", || async {
            let status = api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await.status;
            assert!(matches!(status, StatusCode::OK | StatusCode::INTERNAL_SERVER_ERROR), "{status}");
            status == StatusCode::INTERNAL_SERVER_ERROR
        })
        .await;
        let me = api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await;
        assert_eq!(me.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", me.body);
        assert_eq!(me.json()["error"]["code"], "internal_error", "{}", me.body);
        assert!(!me.body.contains("owner"), "the stored value stays out of the answer: {}", me.body);
        let page = browser.get("/profile").await;
        assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
        let members = api(&app, Method::GET, "/api/v1/members", Some(&bearer(&token))).await;
        assert_eq!(members.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", members.body);

        // Put right, everything works again.
        corrupt_role(&app, ADMIN, "admin").await;
        crate::helpers::eventually("the repaired role to be read", || async {
            api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await.status == StatusCode::OK
        })
        .await;
        assert_eq!(browser.get("/profile").await.status, StatusCode::OK);
    }
}
