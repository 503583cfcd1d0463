//! The workspace token policy (maximum lifetime, required expiry) on the
//! Workspace tokens page, how it narrows the generate dialog, the tokens it
//! leaves outside, and the notices about tokens that expire within a week.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate::clock::now;
use tollgate::domain::UserId;
use tollgate::service::tokens::GenerateRequest;

use crate::each_backend;
use crate::helpers::{ADMIN, TestApp, WRITER, api, api_json, bearer};

const DAY: i64 = 86_400;

async fn stored_policy(app: &TestApp) -> Option<(Option<i64>, i64)> {
    sqlx::query_as("SELECT max_lifetime_days, require_expiry FROM token_policies")
        .fetch_optional(app.db().pool())
        .await
        .expect("read the policy")
}

async fn policy_events(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'workspace.token_policy_changed'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("count events")
}

/// The expiry choices the tokens tab offers.
fn expiry_choices(page: &crate::helpers::Page) -> Vec<String> {
    let html = page.html();
    let options = scraper::Selector::parse("#token-expiry option").expect("selector");
    html.select(&options)
        .filter_map(|o| o.value().attr("value").map(str::to_owned))
        .collect()
}

/// The policy part of an answer of `/api/v1/workspace/token-policy`.
fn policy_fields(answer: &Value) -> Value {
    json!({"max_lifetime_days": answer["max_lifetime_days"], "require_expiry": answer["require_expiry"]})
}

/// Generates a token for `email` through the service, as if at `at`.
async fn token_at(app: &TestApp, email: &str, name: &str, expiry: &str, at: i64) -> (i64, String) {
    scoped_token_at(app, email, name, None, expiry, at).await
}

/// Like `token_at`, with a scope (`None`: the role's default).
async fn scoped_token_at(
    app: &TestApp,
    email: &str,
    name: &str,
    scope: Option<&str>,
    expiry: &str,
    at: i64,
) -> (i64, String) {
    let user = app
        .core
        .signed_in_user(UserId(app.user_id(email).await))
        .await
        .expect("load user")
        .expect("user exists");
    let request = GenerateRequest {
        name: name.to_owned(),
        scope: scope.map(str::to_owned),
        workspace: None,
        expiry: Some(expiry.to_owned()),
    };
    let issued = app
        .core
        .generate_token(
            &tollgate::service::Actor::Member(user),
            &request,
            &Default::default(),
            at,
        )
        .await
        .expect("generate token");
    (issued.id.0, issued.token.expose().to_owned())
}

each_backend! {
    async fn an_admin_sets_a_token_policy_and_the_generate_dialog_offers_only_what_it_allows(app) {
        let admin = app.signed_in(ADMIN).await;
        let writer = app.signed_in(WRITER).await;
        let page = admin.get("/workspace-tokens").await;
        assert_eq!(page.text("#token-policy-title"), "Token policy");
        assert_eq!(page.attr("#policy-max-lifetime option[selected]", "value").as_deref(), Some("none"));
        assert_eq!(expiry_choices(&writer.get("/profile/tokens").await), ["7", "30", "90", "365", "never"]);

        let res = admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "30")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(stored_policy(&app).await, Some((Some(30), 1)));
        let page = admin.get("/workspace-tokens").await;
        assert_eq!(page.attr("#policy-max-lifetime option[selected]", "value").as_deref(), Some("30"));
        assert!(page.text("#token-policy-summary").contains("30 days"));
        let tab = writer.get("/profile/tokens").await;
        assert_eq!(expiry_choices(&tab), ["7", "30"]);
        assert_eq!(tab.attr("#token-expiry option[selected]", "value").as_deref(), Some("30"), "the default follows the policy");
        assert!(tab.text("#token-policy-note").contains("30 days"));
        assert_eq!(expiry_choices(&writer.get("/profile/tokens/new").await), ["7", "30"]);

        let res = admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "none"), ("require_expiry", "on")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(stored_policy(&app).await, Some((None, 1)));
        assert_eq!(expiry_choices(&writer.get("/profile/tokens").await), ["7", "30", "90", "365"], "no “No expiration”");

        // Saving the same policy again records nothing new.
        admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "none"), ("require_expiry", "on")]).await;
        assert_eq!(policy_events(&app).await, 2);
        let detail: String = sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'workspace.token_policy_changed' ORDER BY id DESC")
            .fetch_one(app.db().pool()).await.unwrap();
        assert!(detail.contains("maximum lifetime 30 days →") && detail.contains("expiration date required"), "{detail}");
    }
}

each_backend! {
    async fn generation_outside_the_policy_is_refused_inline_and_stores_nothing(app) {
        let admin = app.signed_in(ADMIN).await;
        admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "30")]).await;
        let writer = app.signed_in(WRITER).await;
        for expiry in ["90", "365", "never"] {
            let (res, secret) = writer.generate(&[("name", "too long"), ("expiry", expiry)]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{expiry}");
            assert!(secret.is_none());
            assert!(res.text("#token-expiry-error").contains("30 days at most"), "{expiry}: {}", res.text("#token-expiry-error"));
            assert_eq!(res.attr("#token-name", "value").as_deref(), Some("too long"), "what was typed is kept");
        }
        assert_eq!(app.count("personal_access_tokens").await, 0);
        let created: i64 = app.count("audit_events WHERE action = 'token.created'").await;
        assert_eq!(created, 0);

        // No expiry given: the policy's default, inside it.
        let (res, secret) = writer.generate(&[("name", "fits")]).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(secret.is_some());
        let lifetime: i64 = sqlx::query_scalar("SELECT expires_at - created_at FROM personal_access_tokens")
            .fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(lifetime, 30 * DAY);

        // Requiring an expiry refuses "No expiration" only.
        admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "none"), ("require_expiry", "on")]).await;
        let (res, _) = writer.generate(&[("name", "forever"), ("expiry", "never")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text("#token-expiry-error").contains("requires an expiration date"));
        let (res, secret) = writer.generate(&[("name", "a year"), ("expiry", "365")]).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(secret.is_some());
        assert_eq!(app.count("personal_access_tokens").await, 2);
    }
}

each_backend! {
    async fn bad_policy_input_is_refused_inline_and_changes_nothing(app) {
        let admin = app.signed_in(ADMIN).await;
        admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "30")]).await;
        for fields in [
            vec![("max_lifetime", "8")],
            vec![("max_lifetime", "forever")],
            vec![("max_lifetime", "-30")],
            vec![("max_lifetime", "none"), ("require_expiry", "maybe")],
        ] {
            let res = admin.post_form("/workspace-tokens/policy", &fields).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            assert!(!res.text("#policy-error").is_empty(), "{fields:?}: the error is shown by the form");
            assert!(res.text("#token-policy-summary").contains("30 days"), "the stored policy is still shown as such");
        }
        assert_eq!(stored_policy(&app).await, Some((Some(30), 1)));
        assert_eq!(policy_events(&app).await, 1);

        // Only Admins may set it.
        let writer = app.signed_in(WRITER).await;
        let res = writer.post_form("/workspace-tokens/policy", &[("max_lifetime", "none")]).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(writer.post_form("/workspace-tokens/revoke-outside-policy", &[]).await.status, StatusCode::FORBIDDEN);
        assert_eq!(stored_policy(&app).await, Some((Some(30), 1)));
        // A form without its CSRF token changes nothing either.
        let res = admin.post_raw("/workspace-tokens/policy", &[("max_lifetime", "none")], Some(&admin.base)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(stored_policy(&app).await, Some((Some(30), 1)));
    }
}

each_backend! {
    async fn tokens_outside_a_new_policy_are_listed_and_revoked_at_once_after_confirmation(app) {
        let start = now();
        let (_, forever) = token_at(&app, WRITER, "forever", "never", start).await;
        let (_, quarter) = token_at(&app, ADMIN, "quarterly", "90", start).await;
        let (_, week) = token_at(&app, WRITER, "weekly", "7", start).await;
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.get("/workspace-tokens").await.count("#outside-policy"), 0, "no policy, nothing outside");

        admin.post_form("/workspace-tokens/policy", &[("max_lifetime", "30")]).await;
        let page = admin.get("/workspace-tokens").await;
        let listed = page.texts("#outside-policy-tokens tbody tr td:nth-child(2)");
        assert_eq!(listed, vec!["forever", "quarterly"]);
        assert!(page.text("#revoke-outside-dialog").contains("2 tokens will stop working at once"));
        let confirm = admin.get("/workspace-tokens/revoke-outside-policy").await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("main").contains("2 tokens will stop working at once"));
        assert_eq!(app.count("personal_access_tokens").await, 3, "asking is not doing");
        for secret in [&forever, &quarter, &week] {
            assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(secret))).await.status, StatusCode::OK);
        }

        let res = admin.post_form("/workspace-tokens/revoke-outside-policy", &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM personal_access_tokens")
            .fetch_all(app.db().pool()).await.unwrap();
        assert_eq!(names, vec!["weekly"]);
        for secret in [&forever, &quarter] {
            assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(secret))).await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&week))).await.status, StatusCode::OK);
        let detail: String = sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'workspace.tokens_revoked'")
            .fetch_one(app.db().pool()).await.unwrap();
        assert!(detail.starts_with("2 token(s) outside the token policy"), "{detail}");
        let page = admin.get("/workspace-tokens").await;
        assert_eq!(page.count("#outside-policy"), 0);
    }
}

each_backend! {
    async fn tokens_expiring_within_a_week_are_flagged_on_the_tab_and_the_workspace_page(app) {
        let start = now();
        // Made 25 days ago for 30 days: 5 days left.
        token_at(&app, WRITER, "nightly", "30", start - 25 * DAY).await;
        token_at(&app, WRITER, "fresh", "90", start).await;
        // Made 40 days ago for 30 days: already expired, not "soon".
        token_at(&app, WRITER, "gone", "30", start - 40 * DAY).await;
        let writer = app.signed_in(WRITER).await;
        let tab = writer.get("/profile/tokens").await;
        let notice = tab.text("#expiring-notice");
        assert!(notice.starts_with("1 token expires within 7 days: “nightly”"), "{notice}");
        assert_eq!(tab.texts("#tokens-table tr.expiring .token-name"), vec!["nightly"]);
        assert!(tab.text("#tokens-table tr.expiring").contains("Expires soon"));

        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/workspace-tokens").await;
        assert!(page.text("#expiring-notice").contains("“nightly”"));
        assert_eq!(page.count("#workspace-tokens tr.expiring"), 1);
        assert!(page.text("#workspace-tokens tr.expiring").contains("nightly"));

        // Nothing expiring: no notice.
        let admin_tab = admin.get("/profile/tokens").await;
        assert_eq!(admin_tab.count("#expiring-notice"), 0);
    }
}

// ---- Through the API ---------------------------------------------------------

each_backend! {
    async fn an_admin_token_reads_and_sets_the_policy_and_generation_keeps_to_it(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(policy_fields(&res.json()), json!({"max_lifetime_days": null, "require_expiry": false}));

        let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &json!({"max_lifetime_days": 30, "require_expiry": false})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // A maximum lifetime implies an expiration date.
        assert_eq!(policy_fields(&res.json()), json!({"max_lifetime_days": 30, "require_expiry": true}));
        assert_eq!(stored_policy(&app).await, Some((Some(30), 1)));
        assert_eq!(policy_events(&app).await, 1);
        let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(&admin))).await;
        assert_eq!(policy_fields(&res.json()), json!({"max_lifetime_days": 30, "require_expiry": true}));

        // Service tokens keep to it too, through the API and the page.
        let account = api_json(&app, Method::POST, "/api/v1/service-accounts", &admin, &json!({"name": "Bot", "role": "read-write"})).await.json()["id"].as_i64().unwrap();
        let tokens = app.count("personal_access_tokens").await;
        for expires in [json!(90), json!(null)] {
            let res = api_json(&app, Method::POST, &format!("/api/v1/service-accounts/{account}/tokens"), &admin, &json!({"name": "long", "expires_in_days": expires})).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{expires}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], "invalid_expiry");
            assert!(res.json()["error"]["message"].as_str().unwrap().contains("30 days"), "{}", res.body);
        }
        assert_eq!(app.count("personal_access_tokens").await, tokens);
        let page = app.signed_in(ADMIN).await.get(&format!("/service-accounts/{account}/tokens/new")).await;
        let offered: Vec<String> = page.html().select(&scraper::Selector::parse("#token-expiry option").unwrap()).filter_map(|o| o.value().attr("value").map(str::to_owned)).collect();
        assert_eq!(offered, vec!["7", "30"]);
        // No expiry asked for: the longest the policy allows.
        let res = api_json(&app, Method::POST, &format!("/api/v1/service-accounts/{account}/tokens"), &admin, &json!({"name": "default"})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let expires_at: i64 = sqlx::query_scalar("SELECT expires_at - created_at FROM personal_access_tokens WHERE name = 'default'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(expires_at, 30 * DAY);

        // Back to no policy.
        let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &json!({"max_lifetime_days": null, "require_expiry": false})).await;
        assert_eq!(policy_fields(&res.json()), json!({"max_lifetime_days": null, "require_expiry": false}));
        assert_eq!(policy_events(&app).await, 2);
    }
}

each_backend! {
    async fn a_policy_outside_the_allowed_values_is_422_and_changes_nothing(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &json!({"max_lifetime_days": 90, "require_expiry": true})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let events = app.count("audit_events").await;
        for (body, status, code) in [
            (json!({"max_lifetime_days": 45, "require_expiry": true}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            (json!({"max_lifetime_days": 0, "require_expiry": false}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            (json!({"max_lifetime_days": -7, "require_expiry": false}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            (json!({"max_lifetime_days": "30", "require_expiry": true}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!({"max_lifetime_days": 30}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!({"max_lifetime_days": 30, "require_expiry": "yes"}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!({"max_lifetime_days": 30, "require_expiry": true, "also": 1}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!([30, true]), StatusCode::BAD_REQUEST, "invalid_json"),
        ] {
            let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &body).await;
            assert_eq!(res.status, status, "{body}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], code, "{body}");
        }
        assert_eq!(stored_policy(&app).await, Some((Some(90), 1)));
        assert_eq!(app.count("audit_events").await, events);
        // Tokens without Admin rights may neither read nor change it.
        let (_, writer) = app.token_for(WRITER, "writer", "read-write").await;
        let (_, capped) = app.token_for(ADMIN, "capped", "read-write").await;
        let events = app.count("audit_events").await;
        for token in [&writer, &capped] {
            let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(token))).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
            let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", token, &json!({"max_lifetime_days": null, "require_expiry": false})).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
            assert_eq!(res.json()["error"]["code"], "insufficient_scope");
        }
        assert_eq!(stored_policy(&app).await, Some((Some(90), 1)));
        assert_eq!(app.count("audit_events").await, events);
    }
}

/// The live tokens of the workspace, by name.
async fn token_names(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM personal_access_tokens ORDER BY name")
        .fetch_all(app.db().pool())
        .await
        .expect("read the tokens")
}

async fn revocation_events(app: &TestApp) -> i64 {
    app.count("audit_events WHERE action = 'workspace.tokens_revoked'")
        .await
}

/// The names the Token policy section lists as outside the policy.
async fn listed_outside_on_the_page(app: &TestApp) -> Vec<String> {
    app.signed_in(ADMIN)
        .await
        .get("/workspace-tokens")
        .await
        .texts("#outside-policy-tokens tbody tr td:nth-child(2)")
}

fn names_of(tokens: &Value) -> Vec<String> {
    tokens
        .as_array()
        .expect("a list of tokens")
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_owned())
        .collect()
}

const REVOKE_OUTSIDE: &str = "/api/v1/workspace/token-policy/revoke-outside";

each_backend! {
    async fn the_api_lists_the_tokens_outside_the_policy_as_the_page_does_and_revokes_them(app) {
        let start = now();
        let (forever_id, forever) = token_at(&app, WRITER, "forever", "never", start).await;
        let (quarter_id, quarter) = token_at(&app, ADMIN, "quarterly", "90", start).await;
        let (_, week) = token_at(&app, WRITER, "weekly", "7", start).await;
        let (admin_id, admin) = scoped_token_at(&app, ADMIN, "admin api", Some("admin"), "7", start).await;

        let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json()["outside_policy"], json!({"count": 0, "tokens": []}), "no policy, nothing outside");

        let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &json!({"max_lifetime_days": 30, "require_expiry": false})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let answer = res.json();
        assert_eq!(policy_fields(&answer), json!({"max_lifetime_days": 30, "require_expiry": true}));
        let outside = &answer["outside_policy"];
        assert_eq!(outside["count"], 2);
        assert_eq!(names_of(&outside["tokens"]), vec!["forever", "quarterly"]);
        assert_eq!(outside["tokens"][0]["id"], forever_id);
        assert_eq!(outside["tokens"][0]["owner"]["email"], WRITER);
        assert_eq!(outside["tokens"][0]["expires_at"], Value::Null);
        assert_eq!(outside["tokens"][1]["id"], quarter_id);
        assert_eq!(outside["tokens"][1]["owner"]["email"], ADMIN);
        assert!(outside["tokens"][1]["expires_at"].is_string());
        // The same list as the page's, and the same answer from GET.
        assert_eq!(listed_outside_on_the_page(&app).await, names_of(&outside["tokens"]));
        let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(&admin))).await;
        assert_eq!(res.json(), answer);
        assert_eq!(token_names(&app).await, vec!["admin api", "forever", "quarterly", "weekly"], "asking is not doing");

        let res = api(&app, Method::POST, REVOKE_OUTSIDE, Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json(), json!({"revoked": 2}));
        assert_eq!(token_names(&app).await, vec!["admin api", "weekly"]);
        for secret in [&forever, &quarter] {
            assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(secret))).await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&week))).await.status, StatusCode::OK);
        // Recorded as the page records it, with the token that acted.
        let (detail, actor_token): (String, Option<i64>) = sqlx::query_as("SELECT detail, actor_token_id FROM audit_events WHERE action = 'workspace.tokens_revoked'")
            .fetch_one(app.db().pool()).await.unwrap();
        assert!(detail.starts_with("2 token(s) outside the token policy (maximum lifetime 30 days)"), "{detail}");
        // Each revoked token is named, so a review can tell which.
        assert!(detail.contains("“forever”") && detail.contains("“quarterly”") && !detail.contains("“weekly”"), "{detail}");
        assert_eq!(actor_token, Some(admin_id));
        let res = api(&app, Method::GET, "/api/v1/workspace/token-policy", Some(&bearer(&admin))).await;
        assert_eq!(res.json()["outside_policy"], json!({"count": 0, "tokens": []}));
        assert!(listed_outside_on_the_page(&app).await.is_empty());

        // Nothing left outside: `{}` is accepted, revokes nothing and records nothing.
        let res = api_json(&app, Method::POST, REVOKE_OUTSIDE, &admin, &json!({})).await;
        assert_eq!((res.status, res.json()), (StatusCode::OK, json!({"revoked": 0})));
        assert_eq!(revocation_events(&app).await, 1);
    }
}

each_backend! {
    async fn revoking_outside_the_policy_is_for_admins_and_refuses_a_body_or_method_it_does_not_take(app) {
        let start = now();
        token_at(&app, WRITER, "forever", "never", start).await;
        token_at(&app, ADMIN, "quarterly", "90", start).await;
        let (_, admin) = scoped_token_at(&app, ADMIN, "admin api", Some("admin"), "7", start).await;
        let (_, writer) = scoped_token_at(&app, WRITER, "writer api", Some("read-write"), "7", start).await;
        let (_, capped) = scoped_token_at(&app, ADMIN, "capped api", Some("read-write"), "7", start).await;
        let res = api_json(&app, Method::PUT, "/api/v1/workspace/token-policy", &admin, &json!({"max_lifetime_days": 30, "require_expiry": true})).await;
        assert_eq!(res.json()["outside_policy"]["count"], 2, "{}", res.body);
        let tokens = token_names(&app).await;
        let events = app.count("audit_events").await;

        // Without Admin rights: refused, nothing revoked.
        for (token, code) in [(&writer, "insufficient_scope"), (&capped, "insufficient_scope")] {
            let res = api(&app, Method::POST, REVOKE_OUTSIDE, Some(&bearer(token))).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
            assert_eq!(res.json()["error"]["code"], code);
        }
        let res = api(&app, Method::POST, REVOKE_OUTSIDE, None).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(token_names(&app).await, tokens);
        assert_eq!(app.count("audit_events").await, events);

        // A body that asks for anything: refused, nothing revoked.
        for body in [r#"{"user_id": 1}"#, r#"{"all": true}"#, "[]", "null", "1", r#""all""#, "{not json"] {
            let res = reqwest::Client::new()
                .post(format!("{}{REVOKE_OUTSIDE}", app.address))
                .header("Authorization", bearer(&admin))
                .header("Content-Type", "application/json")
                .body(body)
                .send().await.unwrap();
            let res = crate::helpers::read(res).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], "invalid_json", "{body}");
        }
        let res = api_json(&app, Method::POST, REVOKE_OUTSIDE, &admin, &json!({"pad": "x".repeat(20_000)})).await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(res.json()["error"]["code"], "payload_too_large");
        // Another method: 405 naming the one there is.
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let res = api(&app, method.clone(), REVOKE_OUTSIDE, Some(&bearer(&admin))).await;
            assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(res.json()["error"]["code"], "method_not_allowed");
            assert_eq!(res.headers.get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
        }
        assert_eq!(token_names(&app).await, tokens);
        assert_eq!(app.count("audit_events").await, events);
        assert_eq!(listed_outside_on_the_page(&app).await, vec!["forever", "quarterly"]);

        // The same Admin token with no body does it.
        let res = api(&app, Method::POST, REVOKE_OUTSIDE, Some(&bearer(&admin))).await;
        assert_eq!(res.json(), json!({"revoked": 2}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_list_of_the_api_flags_the_tokens_the_pages_flag_as_expiring_soon() {
    for backend in crate::helpers::backends() {
        let mut app = crate::helpers::spawn_app_on_manual_clock(backend).await;
        let start = app.core.now();
        token_at(&app, WRITER, "monthly", "30", start).await;
        token_at(&app, WRITER, "weekly", "7", start).await;
        token_at(&app, WRITER, "yearly", "365", start).await;
        let (_, admin) =
            scoped_token_at(&app, ADMIN, "admin api", Some("admin"), "90", start).await;
        let (_, writer) =
            scoped_token_at(&app, WRITER, "writer api", Some("read-write"), "90", start).await;
        let account = api_json(
            &app,
            Method::POST,
            "/api/v1/service-accounts",
            &admin,
            &json!({"name": "Nightly job", "role": "read-only"}),
        )
        .await
        .json()["id"]
            .as_i64()
            .unwrap();
        for (name, days) in [("ci week", 7), ("ci month", 30)] {
            let res = api_json(
                &app,
                Method::POST,
                &format!("/api/v1/service-accounts/{account}/tokens"),
                &admin,
                &json!({"name": name, "expires_in_days": days}),
            )
            .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
            assert_eq!(
                res.json()["expires_soon"],
                days == 7,
                "{name}: a 7-day token is within the window from the start"
            );
        }
        let flagged = |answer: Value| -> Vec<String> {
            let mut names: Vec<String> = answer["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["expires_soon"] == json!(true))
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let own = api(&app, Method::GET, "/api/v1/tokens", Some(&bearer(&writer))).await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.body);
        assert!(
            own.json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["expires_soon"].is_boolean())
        );
        assert_eq!(flagged(own.json()), vec!["weekly"]);

        // 24 days on: the monthly tokens have 6 days left, the weekly ones are gone.
        app.advance(std::time::Duration::from_secs(24 * DAY as u64));
        let own = api(&app, Method::GET, "/api/v1/tokens", Some(&bearer(&writer))).await;
        assert_eq!(flagged(own.json()), vec!["monthly"]);
        let workspace = api(
            &app,
            Method::GET,
            "/api/v1/workspace/tokens",
            Some(&bearer(&admin)),
        )
        .await;
        assert_eq!(flagged(workspace.json()), vec!["ci month", "monthly"]);
        let service = api(
            &app,
            Method::GET,
            &format!("/api/v1/service-accounts/{account}/tokens"),
            Some(&bearer(&admin)),
        )
        .await;
        assert_eq!(flagged(service.json()), vec!["ci month"]);
        // What the pages mark.
        let page = app.signed_in(ADMIN).await.get("/workspace-tokens").await;
        let mut marked = page.texts("#workspace-tokens tr.expiring td:nth-child(2)");
        marked.sort();
        assert_eq!(marked, flagged(workspace.json()));
        let tab = app.signed_in(WRITER).await.get("/profile/tokens").await;
        assert_eq!(
            tab.texts("#tokens-table tr.expiring .token-name"),
            vec!["monthly"]
        );
        app.stop().await;
    }
}
