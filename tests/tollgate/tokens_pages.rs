//! Issue: the Personal Access Tokens tab, step by step as the guide says,
//! with every bad input checked for its message and for nothing changed.

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::each_backend;
use crate::helpers::{ADMIN, Backend, READER, TestApp, WRITER, api, bearer};

/// Every text value stored anywhere in the database, for "never stored" checks.
async fn everything_stored(app: &TestApp) -> String {
    let mut all = String::new();
    for (table, columns) in [
        (
            "personal_access_tokens",
            "name || ' ' || scope || ' ' || digest || ' ' || last4",
        ),
        ("sessions", "state"),
        (
            "audit_events",
            "actor_label || ' ' || action || ' ' || target_label || ' ' || detail || ' ' || user_agent",
        ),
        ("settings", "value"),
        ("users", "email || ' ' || name || ' ' || password_hash"),
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM {table}"
        )))
        .fetch_all(app.db().pool())
        .await
        .unwrap();
        all.push_str(&rows.join("\n"));
    }
    all
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn token_rows(app: &TestApp, email: &str) -> i64 {
    let id = app.user_id(email).await;
    sqlx::query_scalar("SELECT COUNT(*) FROM personal_access_tokens WHERE user_id = $1")
        .bind(id)
        .fetch_one(app.db().pool())
        .await
        .unwrap()
}

each_backend! {
    async fn the_tab_explains_tokens_and_starts_empty(app) {
        let client = app.signed_in(WRITER).await;
        let page = client.get("/profile/tokens").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text("nav.tabs a[aria-current=page]"), "Personal Access Tokens");
        assert!(page.text(".subtitle").contains("used to access the Tollgate API"));
        assert_eq!(page.text("a[data-open-dialog=generate-dialog]"), "Generate new token");
        assert_eq!(page.attr("a[data-open-dialog=generate-dialog]", "href").as_deref(), Some("/profile/tokens/new"));
        assert!(page.text("#tokens-table .empty").contains("No tokens yet"));
        assert!(page.text("#tokens-table .empty").contains("Generate new token"));
        // Revoke all is there, greyed out.
        assert_eq!(page.text("button[disabled]"), "Revoke all");
        // The generate dialog, as the guide shows it.
        assert_eq!(page.text("#generate-dialog h2"), "New Personal Access Token");
        assert_eq!(page.text("#generate-dialog label[for=token-name]"), "Token name");
        assert_eq!(page.text("#generate-dialog button[type=submit]"), "Generate");
        // Defaults: the member's highest scope (never Admin), 90 days.
        assert_eq!(page.attr("#token-scope option[selected]", "value").as_deref(), Some("read-write"));
        assert_eq!(page.count("#token-scope option[value=admin]"), 0);
        assert_eq!(page.text("#token-expiry option[selected]"), "90 days");
        assert_eq!(page.texts("#token-expiry option"), vec!["7 days", "30 days", "90 days", "1 year", "No expiration"]);
        // The help line points to the workspace's Admins.
        assert!(page.text(".help").contains("Ada Admin"), "{}", page.text(".help"));
    }
}

each_backend! {
    async fn generating_with_only_a_name_shows_the_token_once_and_stores_only_its_digest(app) {
        let client = app.signed_in(WRITER).await;
        let res = client.post_form("/profile/tokens", &[("name", "  CI deploy  ")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let location = res.location().unwrap();
        assert_eq!(location, "/profile/tokens/created");

        // Taken while the secret is on its way to the next page, before that
        // page is opened: whatever carries it must not be the database.
        let stored_in_flight = everything_stored(&app).await;
        let (digest, last4): (String, String) = sqlx::query_as("SELECT digest, last4 FROM personal_access_tokens").fetch_one(app.db().pool()).await.unwrap();

        let shown = client.get(&location).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert_eq!(shown.headers.get("cache-control").unwrap(), "no-store");
        let secret = shown.attr("#issued-token", "value").expect("the token in a field");
        assert_eq!(shown.attr("#issued-token", "readonly").as_deref(), Some(""));
        assert_eq!(shown.text("#issued-dialog button[data-copy]"), "Copy");
        assert!(shown.text("#issued-dialog .warning").contains("Make sure you copy the generated token. You won't be able to see it again."));
        assert_eq!(shown.text("#issued-dialog .dialog-actions a"), "Close");

        assert!(secret.starts_with("tgp_") && secret.len() == 42, "{secret}");
        assert_eq!(digest, sha256_hex(&secret));
        assert_eq!(last4, secret[38..]);
        // Not in plain text, hex or base64, in flight or afterwards.
        use base64::Engine;
        let forms = [
            secret.clone(),
            secret[4..36].to_owned(),
            hex::encode(&secret),
            hex::encode(&secret[4..36]),
            base64::engine::general_purpose::STANDARD.encode(&secret),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&secret[4..36]),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret),
        ];
        for stored in [stored_in_flight, everything_stored(&app).await] {
            for form in &forms {
                assert!(!stored.to_lowercase().contains(&form.to_lowercase()), "stored as {form}");
            }
        }

        // The row, as listed: name trimmed, defaults applied, only the hint.
        let list = client.get("/profile/tokens").await;
        assert_eq!(list.text("#tokens-table .token-name"), "CI deploy");
        assert!(list.text("#tokens-table").contains(&format!("tgp_…{}", &secret[38..])));
        assert!(list.text("#tokens-table").contains("Read-Write"));
        assert!(list.text("#tokens-table").contains("Never"), "last used: never");
        assert!(!list.body.contains(&secret));
        let expires: Option<i64> = sqlx::query_scalar("SELECT expires_at - created_at FROM personal_access_tokens").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(expires, Some(90 * 86_400));

        // The token works.
        assert_eq!(api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&secret))).await.status, StatusCode::OK);
    }
}

each_backend! {
    async fn the_show_once_view_can_not_be_seen_twice(app) {
        let client = app.signed_in(WRITER).await;
        let (first, secret) = client.generate(&[("name", "once")]).await;
        let secret = secret.expect("shown the first time");
        assert_eq!(first.status, StatusCode::OK);
        let again = client.get("/profile/tokens/created").await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(again.location().as_deref(), Some("/profile/tokens"));
        let list = client.get("/profile/tokens").await;
        assert!(list.text(".flash").contains("shown only once"));
        assert!(!list.body.contains(&secret));
        // Another tab of the same member does not see it either.
        let other = app.signed_in(WRITER).await;
        assert_eq!(other.get("/profile/tokens/created").await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn bad_token_names_are_answered_inline_and_store_nothing(app) {
        let client = app.signed_in(WRITER).await;
        let long = "x".repeat(101);
        for (name, message) in [("", "Enter a token name."), ("    ", "Enter a token name."), (long.as_str(), "at most 100 characters"), ("tab\there", "control characters"), ("bell\u{7}", "control characters")] {
            let res = client.post_form("/profile/tokens", &[("name", name), ("expiry", "30")]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
            assert_eq!(res.attr("#generate-dialog", "open").as_deref(), Some(""), "the dialog is shown again");
            assert!(res.text("#token-name-error").contains(message), "{name:?}: {}", res.text("#token-name-error"));
            assert_eq!(res.attr("#token-name", "aria-invalid").as_deref(), Some("true"));
            assert_eq!(res.attr("#token-name", "value").as_deref(), Some(name), "the typed value is kept");
            assert_eq!(res.attr("#token-expiry option[selected]", "value").as_deref(), Some("30"), "choices are kept");
        }
        assert_eq!(app.count("personal_access_tokens").await, 0);
        let token_events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action LIKE 'token.%'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(token_events, 0);
    }
}

each_backend! {
    async fn a_name_already_used_by_a_live_token_is_refused(app) {
        let client = app.signed_in(WRITER).await;
        client.generate(&[("name", "deploy")]).await;
        let res = client.post_form("/profile/tokens", &[("name", " deploy ")]).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert!(res.text("#token-name-error").contains("already have a token named “deploy”"));
        assert_eq!(app.count("personal_access_tokens").await, 1);
        // Once that token has expired, the name is free again.
        sqlx::query("UPDATE personal_access_tokens SET expires_at = 1").execute(app.db().pool()).await.unwrap();
        let (_, secret) = client.generate(&[("name", "deploy")]).await;
        assert!(secret.is_some());
        // Other members may use the same name.
        let (_, secret) = app.signed_in(ADMIN).await.generate(&[("name", "deploy")]).await;
        assert!(secret.is_some());
    }
}

each_backend! {
    async fn a_member_holds_at_most_fifty_live_tokens(app) {
        for i in 0..50 {
            app.token_for(WRITER, &format!("token {i}"), "read-write").await;
        }
        let client = app.signed_in(WRITER).await;
        let res = client.post_form("/profile/tokens", &[("name", "one too many")]).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert!(res.text("#token-name-error").contains("50 tokens"));
        assert_eq!(res.attr("#token-name", "value").as_deref(), Some("one too many"));
        assert_eq!(token_rows(&app, WRITER).await, 50);
    }
}

each_backend! {
    async fn a_scope_above_the_members_role_is_refused(app) {
        let client = app.signed_in(WRITER).await;
        for (scope, expiry) in [("admin", "90"), ("owner", "90"), ("read-write", "10000")] {
            let res = client.post_form("/profile/tokens", &[("name", "sneaky"), ("scope", scope), ("expiry", expiry)]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{scope} {expiry}");
            assert_eq!(res.count(".form-error"), 1);
        }
        let res = client.post_form("/profile/tokens", &[("name", "sneaky"), ("workspace", "999")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        // An Admin may choose Admin, but it is never the default.
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/profile/tokens").await;
        assert_eq!(page.attr("#token-scope option[selected]", "value").as_deref(), Some("read-write"));
        assert_eq!(page.count("#token-scope option[value=admin]"), 1);
        let (_, secret) = admin.generate(&[("name", "incident bot"), ("scope", "admin"), ("expiry", "never")]).await;
        assert!(secret.is_some());
        let (scope, expires): (String, Option<i64>) = sqlx::query_as("SELECT scope, expires_at FROM personal_access_tokens").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!((scope.as_str(), expires), ("admin", None));
    }
}

each_backend! {
    async fn read_only_member_sees_why_and_cannot_generate_a_token(app) {
        let client = app.signed_in(READER).await;
        let page = client.get("/profile/tokens").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.count("a[data-open-dialog=generate-dialog]"), 0);
        assert_eq!(page.count("#generate-dialog"), 0);
        assert!(page.text(".notice").contains("Only members with the Read-Write or Admin role can generate access tokens"));
        assert_eq!(client.get("/profile/tokens/new").await.status, StatusCode::FORBIDDEN);
        // A forged request is refused and stores nothing.
        let res = client.post_form("/profile/tokens", &[("name", "forged"), ("scope", "read-only")]).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, 0);
    }
}

each_backend! {
    async fn delete_asks_first_and_the_token_stops_working_at_once(app) {
        let client = app.signed_in(WRITER).await;
        let (_, secret) = client.generate(&[("name", "to delete")]).await;
        let secret = secret.unwrap();
        assert_eq!(api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&secret))).await.status, StatusCode::OK);
        let list = client.get("/profile/tokens").await;
        let delete_url = list.attr("#tokens-table a[data-open-dialog=delete-dialog]", "href").unwrap();
        assert_eq!(list.text("#tokens-table a[data-open-dialog=delete-dialog]"), "Delete");
        // The dialog, and its page for browsers without script.
        assert!(list.text("#delete-dialog").contains("will stop working at once"));
        assert_eq!(list.texts("#delete-dialog button"), vec!["Cancel", "Yes, delete"]);
        let confirm = client.get(&delete_url).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("h1").contains("to delete"));
        assert!(confirm.text("main").contains("stop working at once"));
        assert_eq!(confirm.text("main form button[type=submit]"), "Yes, delete");
        assert_eq!(confirm.text("main form a"), "Cancel");
        assert_eq!(app.count("personal_access_tokens").await, 1, "asking deletes nothing");

        let res = client.post_form(&delete_url, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        assert!(client.get("/profile/tokens").await.text(".flash").contains("deleted"));
        let res = api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&secret))).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        // Deleting again: not found.
        assert_eq!(client.post_form(&delete_url, &[]).await.status, StatusCode::NOT_FOUND);
    }
}

each_backend! {
    async fn another_members_token_is_not_found_and_untouched(app) {
        let (id, secret) = app.token_for(ADMIN, "admin's", "read-write").await;
        let client = app.signed_in(WRITER).await;
        let url = format!("/profile/tokens/{id}/delete");
        assert_eq!(client.get(&url).await.status, StatusCode::NOT_FOUND);
        assert_eq!(client.post_form(&url, &[]).await.status, StatusCode::NOT_FOUND);
        // Same answer as for an id that does not exist at all.
        assert_eq!(client.post_form("/profile/tokens/99999/delete", &[]).await.status, StatusCode::NOT_FOUND);
        assert_eq!(client.get("/profile/tokens/not-a-number/delete").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("personal_access_tokens").await, 1);
        assert!(!client.get("/profile/tokens").await.body.contains("admin&#x27;s"));
        assert_eq!(api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&secret))).await.status, StatusCode::OK);
    }
}

each_backend! {
    async fn revoke_all_says_how_many_and_removes_every_own_token(app) {
        let client = app.signed_in(WRITER).await;
        let mut secrets = Vec::new();
        for name in ["one", "two", "three"] {
            secrets.push(client.generate(&[("name", name)]).await.1.unwrap());
        }
        let (_, admin_secret) = app.token_for(ADMIN, "keeps working", "read-write").await;
        let list = client.get("/profile/tokens").await;
        assert_eq!(list.text("a[data-open-dialog=revoke-dialog]"), "Revoke all");
        assert!(list.text("#revoke-dialog").contains("3 tokens will stop working"));
        assert_eq!(list.texts("#revoke-dialog button"), vec!["Cancel", "Yes, revoke all"]);
        let confirm = client.get("/profile/tokens/revoke-all").await;
        assert!(confirm.text("main").contains("3 tokens will stop working"));
        assert_eq!(confirm.text("main form button[type=submit]"), "Yes, revoke all");
        assert_eq!(token_rows(&app, WRITER).await, 3, "asking revokes nothing");

        let res = client.post_form("/profile/tokens/revoke-all", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(token_rows(&app, WRITER).await, 0);
        let list = client.get("/profile/tokens").await;
        assert!(list.text(".flash").contains("3 tokens revoked"));
        assert!(list.text("#tokens-table").contains("No tokens yet"));
        for secret in &secrets {
            assert_eq!(api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(secret))).await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&admin_secret))).await.status, StatusCode::OK, "other members keep theirs");
    }
}

each_backend! {
    async fn revoke_all_takes_every_token_that_existed_when_it_was_confirmed(app) {
        let generator = std::sync::Arc::new(app.signed_in(WRITER).await);
        let revoker = app.signed_in(WRITER).await;
        let revoker_csrf = revoker.csrf().await;
        // The race is real only when tokens land on both sides of the
        // revocation; rounds repeat until one does (each round checks the rule).
        let mut both_sides = false;
        for round in 0..8 {
            if both_sides {
                break;
            }
            let last_event: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_events").fetch_one(app.db().pool()).await.unwrap();
            for i in 0..3 {
                app.token_for(WRITER, &format!("early {round} {i}"), "read-write").await;
            }
            let start = std::sync::Arc::new(tokio::sync::Barrier::new(13));
            let mut tasks = Vec::new();
            for i in 0..12 {
                let (client, start) = (generator.clone(), start.clone());
                tasks.push(tokio::spawn(async move {
                    let csrf = client.csrf().await;
                    let name = format!("racing {round} {i}");
                    start.wait().await;
                    client.post_raw("/profile/tokens", &[("csrf_token", csrf.as_str()), ("name", name.as_str())], Some(&client.url(""))).await.status
                }));
            }
            start.wait().await;
            let revoke = revoker.post_raw("/profile/tokens/revoke-all", &[("csrf_token", &revoker_csrf)], Some(&app.address)).await;
            assert_eq!(revoke.status, StatusCode::SEE_OTHER);
            for task in tasks {
                assert_eq!(task.await.unwrap(), StatusCode::SEE_OTHER);
            }
            // Transactions on one member's tokens are serialised, so the audit
            // log orders them: whatever was created before the revocation is
            // gone, whatever survived was created after it.
            let revoked_at: i64 = sqlx::query_scalar("SELECT id FROM audit_events WHERE action = 'token.revoked_all' AND id > $1").bind(last_event).fetch_one(app.db().pool()).await.unwrap();
            let created: Vec<(i64, String)> = sqlx::query_as("SELECT id, target_label FROM audit_events WHERE action = 'token.created' AND id > $1").bind(last_event).fetch_all(app.db().pool()).await.unwrap();
            let surviving: Vec<String> = sqlx::query_scalar("SELECT name FROM personal_access_tokens").fetch_all(app.db().pool()).await.unwrap();
            assert_eq!(created.len(), 15);
            for (event, name) in &created {
                let survived = surviving.contains(name);
                assert_eq!(survived, *event > revoked_at, "{name}: created at event {event}, revoke at {revoked_at}, survived: {survived}");
            }
            let racing_before = created.iter().any(|(e, n)| n.starts_with("racing") && *e < revoked_at);
            let racing_after = created.iter().any(|(e, n)| n.starts_with("racing") && *e > revoked_at);
            both_sides = racing_before && racing_after;
            // Start the next round from nothing.
            sqlx::query("DELETE FROM personal_access_tokens").execute(app.db().pool()).await.unwrap();
        }
        assert!(both_sides, "no round raced: the generates never straddled the revocation");
    }
}

each_backend! {
    async fn every_token_change_is_in_the_audit_log_with_where_it_came_from(app) {
        let client = app.signed_in(WRITER).await;
        client.generate(&[("name", "audited")]).await;
        let list = client.get("/profile/tokens").await;
        let delete_url = list.attr("#tokens-table a[data-open-dialog=delete-dialog]", "href").unwrap();
        client.post_form(&delete_url, &[]).await;
        client.generate(&[("name", "second")]).await;
        client.post_form("/profile/tokens/revoke-all", &[]).await;
        let events: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT action, actor_label, target_label, ip FROM audit_events WHERE action LIKE 'token.%' ORDER BY id",
        )
        .fetch_all(app.db().pool())
        .await
        .unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(actions, vec!["token.created", "token.deleted", "token.created", "token.revoked_all"]);
        assert!(events.iter().all(|e| e.1 == WRITER && e.3 == "127.0.0.1"));
        assert_eq!(events[0].2, "audited");
        assert_eq!(events[1].2, "audited");
    }
}

each_backend! {
    async fn the_no_script_generate_page_has_the_same_form(app) {
        let client = app.signed_in(WRITER).await;
        let page = client.get("/profile/tokens/new").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text("h2#generate-title"), "New Personal Access Token");
        assert_eq!(page.text("label[for=token-name]"), "Token name");
        assert_eq!(page.attr("main form", "action").as_deref(), Some("/profile/tokens"));
        assert_eq!(page.text("main form button[type=submit]"), "Generate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_line_names_the_support_contact_when_configured() {
    let database = crate::helpers::TestDatabase::create(Backend::Sqlite).await;
    crate::helpers::seed(&database.url).await;
    let mut app = crate::helpers::spawn_with(Backend::Sqlite, database, |c| {
        c.support = Some("help@example.com".to_owned())
    })
    .await;
    let page = app.signed_in(READER).await.get("/profile/tokens").await;
    assert!(page.text(".help").contains("help@example.com"));
    assert_eq!(
        page.attr(".help a[href^='mailto:help']", "href").as_deref(),
        Some("mailto:help@example.com")
    );
    app.stop().await;
}

each_backend! {
    async fn members_of_several_workspaces_choose_where_a_token_belongs(app) {
        let writer = app.user_id(WRITER).await;
        let org: i64 = sqlx::query_scalar("SELECT id FROM organizations").fetch_one(app.db().pool()).await.unwrap();
        let mut workspaces = Vec::new();
        for (name, role) in [("Staging", "admin"), ("Archive", "read-only")] {
            let id: i64 = sqlx::query_scalar("INSERT INTO workspaces (organization_id, name, created_at) VALUES ($1, $2, 0) RETURNING id")
                .bind(org).bind(name).fetch_one(app.db().pool()).await.unwrap();
            sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, 0)")
                .bind(id).bind(writer).bind(role).execute(app.db().pool()).await.unwrap();
            workspaces.push(id);
        }
        let client = app.signed_in(WRITER).await;
        let page = client.get("/profile/tokens").await;
        // Only workspaces where the member may create tokens are offered.
        assert_eq!(page.texts("#token-workspace option"), vec!["Default", "Staging"]);
        let (_, secret) = client.generate(&[("name", "staging deploy"), ("workspace", &workspaces[0].to_string()), ("scope", "admin")]).await;
        let me = api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&secret.unwrap()))).await.json();
        assert_eq!(me["workspace"]["name"], "Staging");
        assert_eq!(me["token"]["scope"], "admin");
        // Admin scope is only for the workspace where the member is Admin,
        // and a Read-Only workspace takes no tokens at all.
        let res = client.post_form("/profile/tokens", &[("name", "too much"), ("scope", "admin")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        let res = client.post_form("/profile/tokens", &[("name", "archive"), ("workspace", &workspaces[1].to_string())]).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, 1);
        let list = client.get("/profile/tokens").await;
        assert!(list.text("#tokens-table").contains("Staging"));
    }
}
