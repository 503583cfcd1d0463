//! Service accounts: the Admin pages, their tokens (Bearer only, same
//! format, cache and revocation), and their independence from the Admin who
//! made them.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tollgate::storage::Db;

use crate::each_backend;
use crate::helpers::{ADMIN, READER, TestApp, TestClient, WRITER, api, api_json, bearer};

/// Creates a service account through its page and returns its id.
async fn create_account(client: &TestClient, name: &str, role: &str) -> i64 {
    let res = client
        .post_form("/service-accounts", &[("name", name), ("role", role)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location().expect("a redirect to the account's page");
    let id = location
        .strip_prefix("/service-accounts/")
        .and_then(|rest| rest.split('?').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an account page: {location}"));
    id
}

/// Generates a token for a service account through its page; returns the
/// secret shown once.
async fn account_token(client: &TestClient, id: i64, name: &str, scope: &str) -> String {
    let res = client
        .post_form(
            &format!("/service-accounts/{id}/tokens"),
            &[("name", name), ("scope", scope), ("expiry", "30")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let shown = client.get(&res.location().unwrap()).await;
    assert_eq!(shown.status, StatusCode::OK);
    shown
        .attr("#issued-token", "value")
        .expect("the token, shown once")
}

async fn me(app: &TestApp, token: &str) -> crate::helpers::Page {
    api(app, Method::GET, "/api/v1/me", Some(&bearer(token))).await
}

async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(app.db().pool())
        .await
        .unwrap()
}

each_backend! {
    async fn an_admin_creates_a_service_account_and_manages_its_tokens(app) {
        let admin = app.signed_in(ADMIN).await;
        let panel = admin.get("/profile").await.texts("nav.sidebar .nav a");
        assert!(panel.contains(&"Service accounts".to_owned()), "{panel:?}");
        let list = admin.get("/service-accounts").await;
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(list.text("a[href='#new-service-account']"), "New service account");
        assert!(list.text("#service-accounts").contains("No service accounts yet"));

        let users_before = app.count("users").await;
        let id = create_account(&admin, "  Deploy bot ", "read-write").await;
        assert_eq!(app.count("users").await, users_before + 1);
        let page = admin.get(&format!("/service-accounts/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text("h1"), "Deploy bot");
        assert!(page.text("main").contains("Read-Write"));
        assert!(page.text("#tokens-table").contains("No tokens yet"));
        assert_eq!(page.attr("button.danger[disabled]", "title").as_deref(), Some("This account has no tokens to revoke"));
        assert_eq!(page.text("a[data-open-dialog=generate-dialog]"), "Generate new token");
        assert_eq!(page.text("a[data-open-dialog=delete-account-dialog]"), "Delete service account");
        // The dialog's page of its own, for browsers without script.
        let fallback = admin.get(&format!("/service-accounts/{id}/tokens/new")).await;
        assert!(fallback.attr("#generate-dialog", "open").is_some());

        // A scope above the account's role is refused inline; nothing stored.
        let ro = create_account(&admin, "Reader bot", "read-only").await;
        let res = admin.post_form(&format!("/service-accounts/{ro}/tokens"), &[("name", "x"), ("scope", "read-write")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text("#token-scope-error").contains("can not exceed the service account's role"));
        assert_eq!(app.count("personal_access_tokens").await, 0);

        let secret = account_token(&admin, id, "ci", "read-write").await;
        assert!(secret.starts_with("tgp_") && secret.len() == 42);
        // Shown once: the show-once page shows nothing the second time.
        let again = admin.get(&format!("/service-accounts/{id}/tokens/created")).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);

        let answer = me(&app, &secret).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let json = answer.json();
        assert_eq!(json["kind"], "service_account");
        assert_eq!(json["user"]["name"], "Deploy bot");
        assert!(json["user"]["email"].is_null(), "a service account has no email: {json}");
        assert_eq!(json["role"], "read-write");
        assert_eq!(json["token"]["effective_scope"], "read-write");
        // A member's token says so too.
        let (_, member_token) = app.token_for(WRITER, "mine", "read-write").await;
        let json = me(&app, &member_token).await.json();
        assert_eq!(json["kind"], "member");
        assert_eq!(json["user"]["email"], WRITER);

        // The list, and Workspace tokens, which marks service tokens.
        let list = admin.get("/service-accounts").await;
        let row = list.text("#service-accounts tbody tr:first-child");
        assert!(row.contains("Deploy bot") && row.contains("Read-Write") && row.contains(ADMIN), "{row}");
        assert!(row.contains(" 1 "), "one token: {row}");
        let tokens = admin.get("/workspace-tokens").await;
        assert!(tokens.text("table").contains("Deploy bot Service account"), "{}", tokens.text("table"));
        assert!(!tokens.body.contains("service-account-"), "the placeholder email is never shown");
        let (_, admin_token) = app.token_for(ADMIN, "admin api", "admin").await;
        let listed = api(&app, Method::GET, "/api/v1/workspace/tokens", Some(&bearer(&admin_token))).await.json();
        let service = listed["data"].as_array().unwrap().iter().find(|t| t["name"] == "ci").expect("the service token");
        assert_eq!(service["owner"]["kind"], "service_account");
        assert_eq!(service["owner"]["name"], "Deploy bot");
        assert!(service["owner"]["email"].is_null());

        // Delete one token: the next call is refused.
        let token_id: i64 = sqlx::query_scalar("SELECT id FROM personal_access_tokens WHERE name = 'ci'").fetch_one(app.db().pool()).await.unwrap();
        let confirm = admin.get(&format!("/service-accounts/{id}/tokens/{token_id}/delete")).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("main").contains("Yes, delete"));
        let res = admin.post_form(&format!("/service-accounts/{id}/tokens/{token_id}/delete"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(me(&app, &secret).await.status, StatusCode::UNAUTHORIZED);

        // Revoke all: both stop at once; other tokens are untouched.
        let one = account_token(&admin, id, "one", "read-only").await;
        let two = account_token(&admin, id, "two", "read-write").await;
        let confirm = admin.get(&format!("/service-accounts/{id}/revoke-all")).await;
        assert!(confirm.text("main").contains("2 tokens will stop working at once"), "{}", confirm.text("main"));
        let res = admin.post_form(&format!("/service-accounts/{id}/revoke-all"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(me(&app, &one).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&app, &two).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&app, &member_token).await.status, StatusCode::OK);

        let logged = actions(&app).await;
        for action in ["service_account.created", "service_account.token_created", "service_account.token_deleted", "service_account.tokens_revoked"] {
            assert!(logged.iter().any(|a| a == action), "{action} in {logged:?}");
        }
        let log = admin.get("/audit-log").await;
        assert!(log.text("table").contains("Deploy bot"));
    }
}

each_backend! {
    async fn bad_service_account_names_are_answered_inline_and_store_nothing(app) {
        let admin = app.signed_in(ADMIN).await;
        create_account(&admin, "Deploy bot", "read-write").await;
        let users = app.count("users").await;
        let memberships = app.count("memberships").await;
        let events = app.count("audit_events").await;
        let long = "x".repeat(101);
        for (name, role, status, says) in [
            ("", "read-write", StatusCode::UNPROCESSABLE_ENTITY, "Enter a name"),
            ("   ", "read-write", StatusCode::UNPROCESSABLE_ENTITY, "Enter a name"),
            ("bell\u{7}bot", "read-write", StatusCode::UNPROCESSABLE_ENTITY, "control characters"),
            ("evil\u{202E}txt.exe", "read-write", StatusCode::UNPROCESSABLE_ENTITY, "invisible"),
            ("zero\u{200B}width", "read-write", StatusCode::UNPROCESSABLE_ENTITY, "invisible"),
            (long.as_str(), "read-write", StatusCode::UNPROCESSABLE_ENTITY, "at most 100"),
            ("Deploy bot", "read-only", StatusCode::CONFLICT, "already has a service account named"),
            (" Deploy bot ", "read-only", StatusCode::CONFLICT, "already has a service account named"),
            ("Fine name", "owner", StatusCode::UNPROCESSABLE_ENTITY, "Choose a role"),
        ] {
            let res = admin.post_form("/service-accounts", &[("name", name), ("role", role)]).await;
            assert_eq!(res.status, status, "{name:?}");
            assert!(res.text("#service-account-error").contains(says), "{name:?}: {}", res.text("#service-account-error"));
            assert_eq!(res.attr("#service-account-name", "value").as_deref(), Some(name), "what was typed stays");
        }
        assert_eq!(app.count("users").await, users);
        assert_eq!(app.count("memberships").await, memberships);
        assert_eq!(app.count("audit_events").await, events);
    }
}

each_backend! {
    async fn members_who_are_not_admins_can_not_reach_service_accounts(app) {
        let admin = app.signed_in(ADMIN).await;
        let id = create_account(&admin, "Deploy bot", "admin").await;
        let secret = account_token(&admin, id, "ci", "admin").await;
        let tokens = app.count("personal_access_tokens").await;
        let users = app.count("users").await;
        for email in [WRITER, READER] {
            let member = app.signed_in(email).await;
            assert!(!member.get("/profile").await.texts("nav.sidebar .nav a").contains(&"Service accounts".to_owned()));
            for path in [
                "/service-accounts".to_owned(),
                format!("/service-accounts/{id}"),
                format!("/service-accounts/{id}/tokens/new"),
                format!("/service-accounts/{id}/delete"),
                format!("/service-accounts/{id}/revoke-all"),
            ] {
                assert_eq!(member.get(&path).await.status, StatusCode::FORBIDDEN, "{email} GET {path}");
            }
            for (path, fields) in [
                ("/service-accounts".to_owned(), vec![("name", "mine"), ("role", "admin")]),
                (format!("/service-accounts/{id}/tokens"), vec![("name", "stolen"), ("scope", "admin")]),
                (format!("/service-accounts/{id}/revoke-all"), vec![]),
                (format!("/service-accounts/{id}/delete"), vec![]),
            ] {
                assert_eq!(member.post_form(&path, &fields).await.status, StatusCode::FORBIDDEN, "{email} POST {path}");
            }
        }
        assert_eq!(app.count("users").await, users);
        assert_eq!(app.count("personal_access_tokens").await, tokens);
        assert_eq!(me(&app, &secret).await.status, StatusCode::OK);
        // An account of another workspace is not found, even by its Admins.
        assert_eq!(admin.get("/service-accounts/999999").await.status, StatusCode::NOT_FOUND);
        let writer = app.user_id(WRITER).await;
        assert_eq!(admin.get(&format!("/service-accounts/{writer}")).await.status, StatusCode::NOT_FOUND, "a member is not a service account");
    }
}

each_backend! {
    async fn deleting_a_service_account_stops_its_tokens_at_once(app) {
        let admin = app.signed_in(ADMIN).await;
        let id = create_account(&admin, "Deploy bot", "read-write").await;
        let first = account_token(&admin, id, "one", "read-write").await;
        let second = account_token(&admin, id, "two", "read-only").await;
        // Cached as valid.
        assert_eq!(me(&app, &first).await.status, StatusCode::OK);
        assert_eq!(me(&app, &second).await.status, StatusCode::OK);
        let confirm = admin.get(&format!("/service-accounts/{id}/delete")).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("main").contains("Its 2 tokens will stop working at once"), "{}", confirm.text("main"));
        let dialog = admin.get(&format!("/service-accounts/{id}")).await;
        assert!(dialog.text("#delete-account-dialog").contains("Its 2 tokens will stop working at once"));
        let res = admin.post_form(&format!("/service-accounts/{id}/delete"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(me(&app, &first).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&app, &second).await.status, StatusCode::UNAUTHORIZED);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(left, 0);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        assert_eq!(admin.get(&format!("/service-accounts/{id}")).await.status, StatusCode::NOT_FOUND);
        let detail: String = sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'service_account.deleted'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(detail, "2 token(s) revoked");
    }
}

each_backend! {
    async fn the_account_outlives_the_admin_who_made_it(app) {
        app.set_role(WRITER, "admin").await;
        let maker = app.signed_in(WRITER).await;
        let id = create_account(&maker, "Nightly export", "read-write").await;
        let secret = account_token(&maker, id, "export", "read-write").await;
        assert_eq!(me(&app, &secret).await.status, StatusCode::OK);
        let admin = app.signed_in(ADMIN).await;
        let writer = app.user_id(WRITER).await;
        let res = admin.post_form(&format!("/members/{writer}/remove"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("memberships").await, 3, "Ada, Rita and the service account");
        let answer = me(&app, &secret).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["role"], "read-write");
        // The remaining Admin manages it.
        let page = admin.get(&format!("/service-accounts/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text("main").contains(WRITER), "created by is kept for the record");
        // The workspace's Revoke all covers service tokens too.
        let res = admin.post_form("/workspace-tokens/revoke-all", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(me(&app, &secret).await.status, StatusCode::UNAUTHORIZED);
    }
}

each_backend! {
    async fn a_service_account_is_bearer_only_and_never_a_member(app) {
        use base64::Engine;
        let admin = app.signed_in(ADMIN).await;
        let id = create_account(&admin, "Deploy bot", "admin").await;
        let secret = account_token(&admin, id, "ci", "admin").await;
        let placeholder: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        for user in [placeholder.as_str(), ADMIN, ""] {
            let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")));
            let res = api(&app, Method::GET, "/api/v1/me", Some(&basic)).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "Basic as {user:?}");
            assert_eq!(res.json()["error"]["code"], "bearer_only");
        }
        // Nobody signs in as it, with any password.
        for password in ["", "x", secret.as_str()] {
            let res = app.client().login(&placeholder, password).await;
            assert_ne!(res.status, StatusCode::SEE_OTHER);
        }
        // Not a member: neither the Members page, the members API, the
        // Admin count nor the help line's Admins list it.
        let members = admin.get("/members").await;
        assert!(!members.text("main").contains("Deploy bot"));
        let listed = api(&app, Method::GET, "/api/v1/members", Some(&bearer(&secret))).await;
        assert_eq!(listed.status, StatusCode::OK, "an Admin service account reads the members");
        let names: Vec<String> = listed.json()["data"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(names, vec!["Ada Admin", "Will Writer", "Rita Reader"]);
        let ada = app.user_id(ADMIN).await;
        let res = admin.post_form(&format!("/members/{ada}/role"), &[("role", "read-write")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let role: String = sqlx::query_scalar("SELECT role FROM memberships WHERE user_id = $1").bind(ada).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(role, "admin", "an Admin service account does not count as the workspace's Admin");
        // Member actions do not reach it.
        let res = admin.post_form(&format!("/members/{id}/remove"), &[]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let writer = app.signed_in(WRITER).await;
        assert!(!writer.get("/profile/tokens").await.text("p.help").contains("Deploy bot"));
        assert_eq!(me(&app, &secret).await.status, StatusCode::OK);
    }
}

/// Real time on purpose: a change made outside Tollgate reaches the running
/// server through the database's triggers. Polls every 20 ms, up to 2 s.
async fn refused_within_two_seconds(app: &TestApp, token: &str, refusal: StatusCode) {
    let started = Instant::now();
    loop {
        let status = me(app, token).await.status;
        if status == refusal {
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

each_backend! {
    async fn plain_sql_changes_to_a_service_account_reach_its_tokens(app) {
        let console = Db::connect(&app.database.url).await.unwrap();
        let admin = app.signed_in(ADMIN).await;
        // A Read-Only service account's tokens read; made a member by hand,
        // it is a Read-Only member, whose tokens do not work.
        let id = create_account(&admin, "Reader bot", "read-only").await;
        let secret = account_token(&admin, id, "ci", "read-only").await;
        assert_eq!(me(&app, &secret).await.status, StatusCode::OK);
        let listed = api(&app, Method::GET, "/api/v1/tokens", Some(&bearer(&secret))).await;
        assert_eq!(listed.status, StatusCode::OK);
        sqlx::query("UPDATE users SET kind = 'member' WHERE id = $1").bind(id).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&app, &secret, StatusCode::FORBIDDEN).await;

        let id = create_account(&admin, "Writer bot", "read-write").await;
        let secret = account_token(&admin, id, "ci", "read-write").await;
        assert_eq!(me(&app, &secret).await.status, StatusCode::OK);
        sqlx::query("DELETE FROM memberships WHERE user_id = $1").bind(id).execute(console.pool()).await.unwrap();
        refused_within_two_seconds(&app, &secret, StatusCode::FORBIDDEN).await;
        console.close().await;
    }
}

// ---- Through the API ---------------------------------------------------------

/// A service account created through the API with an Admin token: its id.
async fn api_account(app: &TestApp, admin: &str, name: &str, role: &str) -> i64 {
    let res = api_json(
        app,
        Method::POST,
        "/api/v1/service-accounts",
        admin,
        &json!({"name": name, "role": role}),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.json()["id"].as_i64().expect("an id")
}

/// A token of a service account generated through the API: (id, secret).
async fn api_token(
    app: &TestApp,
    admin: &str,
    account: i64,
    body: serde_json::Value,
) -> (i64, String) {
    let res = api_json(
        app,
        Method::POST,
        &format!("/api/v1/service-accounts/{account}/tokens"),
        admin,
        &body,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let json = res.json();
    (
        json["id"].as_i64().unwrap(),
        json["token"].as_str().unwrap().to_owned(),
    )
}

async fn token_count(app: &TestApp) -> i64 {
    app.count("personal_access_tokens").await
}

each_backend! {
    async fn an_admin_token_manages_service_accounts_and_their_tokens_through_the_api(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        let list = api(&app, Method::GET, "/api/v1/service-accounts", Some(&bearer(&admin))).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        assert_eq!(list.json()["data"], json!([]));

        let res = api_json(&app, Method::POST, "/api/v1/service-accounts", &admin, &json!({"name": "  Deploy bot ", "role": "read-write"})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let created = res.json();
        assert_eq!(created["name"], "Deploy bot");
        assert_eq!(created["role"], "read-write");
        assert_eq!(created["tokens"], 0);
        assert_eq!(created["created_by"], ADMIN);
        let id = created["id"].as_i64().unwrap();
        assert!(actions(&app).await.contains(&"service_account.created".to_owned()));

        // A token, its secret in this answer only; it works on /me as the account.
        let res = api_json(&app, Method::POST, &format!("/api/v1/service-accounts/{id}/tokens"), &admin, &json!({"name": "ci", "scope": "read-write", "expires_in_days": 30})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        assert_eq!(res.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        let issued = res.json();
        let ci = issued["token"].as_str().unwrap().to_owned();
        assert!(ci.starts_with("tgp_") && ci.len() == 42);
        assert_eq!(issued["scope"], "read-write");
        assert_eq!(issued["owner"]["kind"], "service_account");
        assert!(issued["expires_at"].is_string(), "30 days: {issued}");
        let json = me(&app, &ci).await.json();
        assert_eq!(json["kind"], "service_account");
        assert_eq!(json["user"]["name"], "Deploy bot");

        // Listed, without a secret; the account's count follows.
        let tokens = api(&app, Method::GET, &format!("/api/v1/service-accounts/{id}/tokens"), Some(&bearer(&admin))).await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
        let data = tokens.json()["data"].as_array().unwrap().clone();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0]["name"], "ci");
        assert!(data[0].get("token").is_none() && !tokens.body.contains(&ci));
        let list = api(&app, Method::GET, "/api/v1/service-accounts", Some(&bearer(&admin))).await.json();
        assert_eq!(list["data"][0]["tokens"], 1);

        // Deleting one token stops that one only.
        let (nightly_id, nightly) = api_token(&app, &admin, id, json!({"name": "nightly"})).await;
        let res = api(&app, Method::DELETE, &format!("/api/v1/service-accounts/{id}/tokens/{nightly_id}"), Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
        assert_eq!(me(&app, &nightly).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&app, &ci).await.status, StatusCode::OK);
        let again = api(&app, Method::DELETE, &format!("/api/v1/service-accounts/{id}/tokens/{nightly_id}"), Some(&bearer(&admin))).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);

        // Revoke all: every token of the account, the account stays.
        let (_, third) = api_token(&app, &admin, id, json!({"name": "third", "expires_in_days": null})).await;
        let res = api(&app, Method::POST, &format!("/api/v1/service-accounts/{id}/tokens/revoke-all"), Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json()["revoked"], 2);
        assert_eq!(me(&app, &ci).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&app, &third).await.status, StatusCode::UNAUTHORIZED);

        // Deleting the account stops its tokens at once.
        let (_, last) = api_token(&app, &admin, id, json!({"name": "last"})).await;
        assert_eq!(me(&app, &last).await.status, StatusCode::OK);
        let res = api(&app, Method::DELETE, &format!("/api/v1/service-accounts/{id}"), Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
        assert_eq!(me(&app, &last).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(api(&app, Method::GET, "/api/v1/service-accounts", Some(&bearer(&admin))).await.json()["data"], json!([]));
        assert_eq!(api(&app, Method::GET, &format!("/api/v1/service-accounts/{id}/tokens"), Some(&bearer(&admin))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(api(&app, Method::DELETE, &format!("/api/v1/service-accounts/{id}"), Some(&bearer(&admin))).await.status, StatusCode::NOT_FOUND);
        assert!(actions(&app).await.contains(&"service_account.deleted".to_owned()));
    }
}

each_backend! {
    async fn tokens_without_admin_rights_are_refused_every_service_account_endpoint(app) {
        let (_, owner_admin) = app.token_for(ADMIN, "owner", "admin").await;
        let id = api_account(&app, &owner_admin, "Deploy bot", "admin").await;
        let (token_id, _) = api_token(&app, &owner_admin, id, json!({"name": "ci"})).await;
        let (_, writer) = app.token_for(WRITER, "writer", "read-write").await;
        let (_, admin_capped) = app.token_for(ADMIN, "capped", "read-write").await;
        let (users, tokens, events) = (app.count("users").await, token_count(&app).await, app.count("audit_events").await);
        for token in [&writer, &admin_capped] {
            for (method, path, body) in [
                (Method::GET, "/api/v1/service-accounts".to_owned(), None),
                (Method::POST, "/api/v1/service-accounts".to_owned(), Some(json!({"name": "Sneaky", "role": "admin"}))),
                (Method::DELETE, format!("/api/v1/service-accounts/{id}"), None),
                (Method::GET, format!("/api/v1/service-accounts/{id}/tokens"), None),
                (Method::POST, format!("/api/v1/service-accounts/{id}/tokens"), Some(json!({"name": "sneaky"}))),
                (Method::DELETE, format!("/api/v1/service-accounts/{id}/tokens/{token_id}"), None),
                (Method::POST, format!("/api/v1/service-accounts/{id}/tokens/revoke-all"), None),
            ] {
                let res = api_json(&app, method.clone(), &path, token, &body.unwrap_or(json!({}))).await;
                assert_eq!(res.status, StatusCode::FORBIDDEN, "{method} {path}: {}", res.body);
                assert_eq!(res.json()["error"]["code"], "insufficient_scope", "{method} {path}");
            }
        }
        assert_eq!((app.count("users").await, token_count(&app).await, app.count("audit_events").await), (users, tokens, events));
        // A service account's own Admin token may not create accounts: the
        // list names a person as each account's creator.
        let (_, service_admin) = api_token(&app, &owner_admin, id, json!({"name": "service admin", "scope": "admin"})).await;
        let (tokens, events) = (tokens + 1, events + 1);
        let res = api_json(&app, Method::POST, "/api/v1/service-accounts", &service_admin, &json!({"name": "Child", "role": "read-only"})).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
        assert_eq!(res.json()["error"]["code"], "members_only");
        assert_eq!((app.count("users").await, token_count(&app).await, app.count("audit_events").await), (users, tokens, events));
        // Nor mint tokens, for itself or another account: a leaked service
        // token must not outlive its own revocation through a sibling.
        let other = api_account(&app, &owner_admin, "Other bot", "read-write").await;
        let (users, events) = (users + 1, events + 1);
        for account in [id, other] {
            let path = format!("/api/v1/service-accounts/{account}/tokens");
            let res = api_json(&app, Method::POST, &path, &service_admin, &json!({"name": "sibling", "expires_in_days": null})).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], "members_only", "{path}");
        }
        assert_eq!((app.count("users").await, token_count(&app).await, app.count("audit_events").await), (users, tokens, events));
    }
}

each_backend! {
    async fn bad_service_account_input_through_the_api_is_422_with_a_code_and_stores_nothing(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        let id = api_account(&app, &admin, "Deploy bot", "read-only").await;
        let (users, tokens, events) = (app.count("users").await, token_count(&app).await, app.count("audit_events").await);
        let long = "n".repeat(101);
        for (body, status, code) in [
            (json!({"name": "", "role": "read-write"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": "bell\u{7}bot", "role": "read-write"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": long, "role": "read-write"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": "Fine", "role": "owner"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_role"),
            (json!({"name": " Deploy bot ", "role": "admin"}), StatusCode::CONFLICT, "conflict"),
            (json!({"name": "Fine"}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!({"name": "Fine", "role": "admin", "extra": 1}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!(["Fine", "admin"]), StatusCode::BAD_REQUEST, "invalid_json"),
        ] {
            let res = api_json(&app, Method::POST, "/api/v1/service-accounts", &admin, &body).await;
            assert_eq!(res.status, status, "{body}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], code, "{body}");
        }
        let path = format!("/api/v1/service-accounts/{id}/tokens");
        for (body, status, code) in [
            (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": "ci", "scope": "read-write"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_scope"),
            (json!({"name": "ci", "scope": "owner"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_scope"),
            (json!({"name": "ci", "expires_in_days": 45}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_expiry"),
            (json!({"name": "ci", "expires_in_days": "30"}), StatusCode::BAD_REQUEST, "invalid_json"),
        ] {
            let res = api_json(&app, Method::POST, &path, &admin, &body).await;
            assert_eq!(res.status, status, "{body}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], code, "{body}");
        }
        // An account that does not exist (or is a member) is not found.
        let writer_id = app.user_id(WRITER).await;
        for account in [writer_id, id + 1000] {
            let res = api_json(&app, Method::POST, &format!("/api/v1/service-accounts/{account}/tokens"), &admin, &json!({"name": "ci"})).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.body);
            assert_eq!(api(&app, Method::DELETE, &format!("/api/v1/service-accounts/{account}"), Some(&bearer(&admin))).await.status, StatusCode::NOT_FOUND);
        }
        assert_eq!((app.count("users").await, token_count(&app).await, app.count("audit_events").await), (users, tokens, events));
        let list = api(&app, Method::GET, "/api/v1/service-accounts", Some(&bearer(&admin))).await.json();
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
    }
}
