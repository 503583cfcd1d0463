//! Attacks and abuses, each with the check that it changed nothing.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use reqwest::{Method, StatusCode};
use tollgate::clock::now;
use tollgate::service::auth::NewUser;

use crate::each_backend;
use crate::helpers::{ADMIN, PASSWORD, READER, TestApp, WRITER, api, bearer};

const BOB: &str = "bob@ops.example.com";

/// Adds a second workspace, "Ops", whose only Admin is BOB.
async fn ops_workspace(app: &TestApp) -> i64 {
    let input = NewUser {
        email: BOB,
        name: Some("Bob"),
        role: "admin",
        workspace: Some("Ops"),
        password: PASSWORD,
    };
    app.core.create_user(input, now()).await.unwrap();
    sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Ops'")
        .fetch_one(app.db().pool())
        .await
        .unwrap()
}

each_backend! {
    async fn an_invitation_for_an_existing_account_needs_its_owner_signed_in(app) {
        ops_workspace(&app).await;
        let bob = app.signed_in(BOB).await;
        let res = bob.post_form("/members/invite", &[("email", ADMIN), ("role", "read-only")]).await;
        let link = res.attr("#invite-link", "value").expect("invitation link");
        let path = link.trim_start_matches(&app.address).to_owned();

        // Whoever holds the link can not use it to open the account.
        for holder in [app.client(), bob] {
            let res = holder.post_form(&path, &[("name", ""), ("password", "")]).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN);
            assert!(res.text("main").contains("sign in as admin@example.com"), "{}", res.text("main"));
            assert!(!holder.get("/profile").await.text(".facts").contains(ADMIN));
        }
        let memberships: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1").bind(ADMIN).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(memberships, 1);

        // The owner, signed in, accepts it.
        let owner = app.signed_in(ADMIN).await;
        let res = owner.post_form(&path, &[("name", ""), ("password", "")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert!(owner.get("/profile").await.text("table").contains("Ops"));
    }
}

each_backend! {
    async fn an_admin_of_one_workspace_can_not_disable_members_of_another(app) {
        let ops = ops_workspace(&app).await;
        // ADMIN joins Ops as Read-Only, so Bob sees them as a member.
        let admin_id = app.user_id(ADMIN).await;
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'read-only', 0)").bind(ops).bind(admin_id).execute(app.db().pool()).await.unwrap();
        let bob = app.signed_in(BOB).await;
        let res = bob.post_form(&format!("/members/{admin_id}/disable"), &[("workspace", &ops.to_string())]).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert!(res.text("main").contains("Default"));
        let disabled: Option<i64> = sqlx::query_scalar("SELECT disabled_at FROM users WHERE id = $1").bind(admin_id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(disabled, None);
        assert_eq!(app.client().login(ADMIN, PASSWORD).await.status, StatusCode::SEE_OTHER);
        // Removing them from Ops is Bob's to do, and leaves Default alone.
        let res = bob.post_form(&format!("/members/{admin_id}/remove"), &[("workspace", &ops.to_string())]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert!(app.signed_in(ADMIN).await.get("/profile").await.text("table").contains("Admin"));
    }
}

each_backend! {
    async fn the_audit_log_shows_account_events_only_of_the_workspaces_own_members(app) {
        let ops = ops_workspace(&app).await;
        app.signed_in(READER).await;
        let bob = app.signed_in(BOB).await;
        let page = bob.get(&format!("/audit-log?workspace={ops}")).await;
        assert!(page.text("table").contains(BOB));
        assert!(!page.text("table").contains(READER), "a Default member's sign-in leaked into Ops");
        let admin = app.signed_in(ADMIN).await;
        assert!(admin.get("/audit-log").await.text("table").contains(READER));
    }
}

each_backend! {
    async fn api_tokens_reach_only_their_own_workspace(app) {
        let ops = ops_workspace(&app).await;
        let writer = app.user_id(WRITER).await;
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'admin', 0)").bind(ops).bind(writer).execute(app.db().pool()).await.unwrap();
        let (_, default_token) = app.token_for(WRITER, "default", "read-write").await;
        let client = app.signed_in(WRITER).await;
        let (_, ops_token) = client.generate(&[("name", "ops admin"), ("workspace", &ops.to_string()), ("scope", "admin")]).await;
        let ops_token = ops_token.unwrap();
        let ops_id: i64 = sqlx::query_scalar("SELECT id FROM personal_access_tokens WHERE name = 'ops admin'").fetch_one(app.db().pool()).await.unwrap();
        let listed = api(&app, Method::GET, "/api/v1/tokens", Some(&bearer(&default_token))).await.json();
        let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["default"]);
        let res = api(&app, Method::DELETE, &format!("/api/v1/tokens/{ops_id}"), Some(&bearer(&default_token))).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&ops_token))).await.status, StatusCode::OK);
    }
}

each_backend! {
    async fn revoke_all_with_a_null_member_is_refused_not_widened(app) {
        let (_, token) = app.token_for(ADMIN, "incident", "admin").await;
        app.token_for(WRITER, "bystander", "read-write").await;
        let res = crate::helpers::read(
            reqwest::Client::new()
                .post(format!("{}/api/v1/workspace/tokens/revoke-all", app.address))
                .header("Authorization", bearer(&token))
                .header("Content-Type", "application/json")
                .body(r#"{"user_id": null}"#)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.count("personal_access_tokens").await, 2);
    }
}

each_backend! {
    async fn basic_credentials_are_not_accepted_from_other_sites_nor_prompted_for(app) {
        let (_, token) = app.token_for(ADMIN, "remembered", "admin").await;
        let missing = api(&app, Method::GET, "/api/v1/me", None).await;
        let challenge = missing.headers.get("www-authenticate").unwrap().to_str().unwrap().to_owned();
        assert!(!challenge.contains("Basic"), "{challenge}");
        let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{ADMIN}:{token}")));
        let res = crate::helpers::read(
            reqwest::Client::new()
                .post(format!("{}/api/v1/workspace/tokens/revoke-all", app.address))
                .header("Authorization", &basic)
                .header("Sec-Fetch-Site", "cross-site")
                .header("Origin", "https://evil.example")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.json()["error"]["code"], "cross_site_request");
        assert_eq!(app.count("personal_access_tokens").await, 1);
    }
}

each_backend! {
    async fn two_admins_demoting_each_other_at_once_leave_an_admin(app) {
        let second = "second-admin@example.com";
        app.core.create_user(NewUser { email: second, name: None, role: "admin", workspace: None, password: PASSWORD }, now()).await.unwrap();
        let (first_id, second_id) = (app.user_id(ADMIN).await, app.user_id(second).await);
        for _ in 0..3 {
            let a = app.signed_in(ADMIN).await;
            let b = app.signed_in(second).await;
            let (path_a, path_b) = (format!("/members/{second_id}/role"), format!("/members/{first_id}/role"));
            let (ra, rb) = tokio::join!(
                a.post_form(&path_a, &[("role", "read-only")]),
                b.post_form(&path_b, &[("role", "read-only")]),
            );
            // The loser is refused either way: no longer an Admin (403), or
            // the workspace would lose its last Admin (a flash message).
            for res in [&ra, &rb] {
                assert!(matches!(res.status, StatusCode::SEE_OTHER | StatusCode::FORBIDDEN), "{}", res.status);
            }
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE role = 'admin'").fetch_one(app.db().pool()).await.unwrap();
            assert_eq!(admins, 1);
            // Restore both for the next round.
            sqlx::query("UPDATE memberships SET role = 'admin' WHERE user_id IN ($1, $2)").bind(first_id).bind(second_id).execute(app.db().pool()).await.unwrap();
        }
    }
}

/// Log lines of the whole test binary, captured once.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            // Every level of the server's own code and of the crates that
            // see requests and queries: a secret logged at trace is a leak too.
            .with_env_filter("trace,reqwest=off,hyper_util=off,h2=off")
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

each_backend! {
    async fn logs_never_carry_secrets_codes_or_passwords(app) {
        let logs = captured_logs();
        let admin = app.signed_in(ADMIN).await;
        let res = admin.post_form("/members/invite", &[("email", "new@example.com"), ("role", "read-only")]).await;
        let link = res.attr("#invite-link", "value").unwrap();
        let code = link.rsplit('/').next().unwrap().to_owned();
        app.client().get(&format!("/invitations/{code}")).await;
        let (_, secret) = admin.generate(&[("name", "logged?")]).await;
        let secret = secret.unwrap();
        api(&app, Method::GET, "/api/v1/me", Some(&bearer(&secret))).await;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{secret}")));
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&basic)).await.status, StatusCode::OK);
        let bogus = "tgp_not_a_real_token_at_all_000000000000";
        api(&app, Method::GET, "/api/v1/me", Some(&bearer(bogus))).await;
        let bogus_shaped = tollgate::domain::PlainToken::generate();
        api(&app, Method::GET, "/api/v1/me", Some(&bearer(bogus_shaped.expose()))).await;
        let rotated = api(&app, Method::POST, "/api/v1/tokens/self/rotate", Some(&bearer(&secret))).await;
        let rotated = rotated.json()["token"].as_str().expect("rotated").to_owned();
        let new_password = "an entirely new passphrase";
        let changed = admin.post_form("/profile/password", &[("current_password", PASSWORD), ("new_password", new_password), ("confirm_password", new_password)]).await;
        assert!(changed.status.is_redirection() || changed.status.is_success(), "{}", changed.status);
        let digest: String = sqlx::query_scalar("SELECT digest FROM personal_access_tokens").fetch_one(app.db().pool()).await.unwrap();
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
        assert!(text.contains("route=\"/invitations/{code}\""), "the request log is captured: {}", &text[..text.len().min(2000)]);
        assert!(text.contains("TRACE") || text.contains("DEBUG"), "all levels are captured");
        let needles = [code.as_str(), secret.as_str(), &secret[4..36], rotated.as_str(), &rotated[4..36], bogus, bogus_shaped.expose(), digest.as_str(), PASSWORD, new_password, &basic[6..]];
        for needle in needles {
            assert!(!text.contains(needle), "a log line contains {needle}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trusted_proxys_forwarded_address_is_recorded_and_no_one_elses() {
    for (trusted, expected) in [(Some("127.0.0.1"), "203.0.113.9"), (None, "127.0.0.1")] {
        let database = crate::helpers::TestDatabase::create(crate::helpers::Backend::Sqlite).await;
        crate::helpers::seed(&database.url).await;
        let mut app = crate::helpers::spawn_with(crate::helpers::Backend::Sqlite, database, |c| {
            c.trusted_proxy = trusted.map(|t| t.parse().unwrap())
        })
        .await;
        let client = app.client();
        let csrf = client.csrf().await;
        let res = client
            .http
            .post(client.url("/login"))
            .header("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", WRITER),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let ip: String =
            sqlx::query_scalar("SELECT ip FROM audit_events WHERE action = 'user.signed_in'")
                .fetch_one(app.db().pool())
                .await
                .unwrap();
        assert_eq!(ip, expected, "trusted proxy {trusted:?}");
        app.stop().await;
    }
}
