//! Issue: the token-authenticated JSON API. Both authentication forms,
//! malformed headers, the permission matrix, exact revocation (also across
//! instances sharing a database), rotation, paging and the OpenAPI document.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate::clock::now;
use tollgate::startup::Application;

use crate::each_backend;
use crate::helpers::{
    ADMIN, Backend, Page, READER, TestApp, WRITER, api, bearer, eventually, read, test_config,
};

fn basic(email: &str, token: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{email}:{token}")))
}

/// Asserts the JSON error shape, its code and (for 401) the challenge.
fn assert_error(res: &Page, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    let body = res.json();
    assert_eq!(body["error"]["code"], code, "{}", res.body);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = res
            .headers
            .get("www-authenticate")
            .expect("WWW-Authenticate on 401")
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"tollgate\""),
            "{challenge}"
        );
    }
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> Page {
    api(app, method, path, Some(&bearer(token))).await
}

async fn post_json(app: &TestApp, path: &str, token: &str, body: &str) -> Page {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.address))
        .header("Authorization", bearer(token))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(res).await
}

each_backend! {
    async fn me_answers_with_a_bearer_token_and_with_basic_auth(app) {
        let (id, token) = app.token_for(WRITER, "script", "read-write").await;
        let res = call(&app, Method::GET, "/api/v1/me", &token).await;
        assert_eq!(res.status, StatusCode::OK);
        let body = res.json();
        assert_eq!(body["user"]["email"], WRITER);
        assert_eq!(body["workspace"]["name"], "Default");
        assert_eq!(body["role"], "read-write");
        assert_eq!(body["token"]["id"], id);
        assert_eq!(body["token"]["name"], "script");
        assert_eq!(body["token"]["scope"], "read-write");
        assert!(!res.body.contains(&token));
        assert_eq!(res.headers.get("content-type").unwrap(), "application/json");

        let res = api(&app, Method::GET, "/api/v1/me", Some(&basic(WRITER, &token))).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = api(&app, Method::GET, "/api/v1/me", Some(&basic("Writer@Example.COM", &token))).await;
        assert_eq!(res.status, StatusCode::OK, "the email compares case-insensitively");
        // Basic with somebody else's email is refused.
        let res = api(&app, Method::GET, "/api/v1/me", Some(&basic(ADMIN, &token))).await;
        assert_error(&res, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
}

each_backend! {
    async fn a_missing_token_is_a_401_with_a_challenge(app) {
        for path in ["/api/v1/me", "/api/v1/tokens", "/api/v1/members", "/api/v1/audit-log"] {
            assert_error(&api(&app, Method::GET, path, None).await, StatusCode::UNAUTHORIZED, "missing_token");
        }
        let res = api(&app, Method::DELETE, "/api/v1/tokens/1", None).await;
        assert_error(&res, StatusCode::UNAUTHORIZED, "missing_token");
        let res = api(&app, Method::POST, "/api/v1/workspace/tokens/revoke-all", None).await;
        assert_error(&res, StatusCode::UNAUTHORIZED, "missing_token");
    }
}

each_backend! {
    async fn malformed_authorization_headers_are_401_json_never_5xx(app) {
        let (_, token) = app.token_for(WRITER, "real", "read-write").await;
        let mut typo = token.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        let unknown = tollgate::domain::PlainToken::generate();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "malformed_authorization"),
            (b"Bearer".to_vec(), "malformed_authorization"),
            (b"Bearer ".to_vec(), "malformed_authorization"),
            (b"Bearer    ".to_vec(), "malformed_authorization"),
            (format!("Token {token}").into_bytes(), "malformed_authorization"),
            (format!("Digest {token}").into_bytes(), "malformed_authorization"),
            (format!("Bearer {token} {token}").into_bytes(), "malformed_authorization"),
            (format!("Bearer {token} extra").into_bytes(), "malformed_authorization"),
            (format!("Bearer\t{token}").into_bytes(), "malformed_authorization"),
            (format!("Bearer{token}").into_bytes(), "malformed_authorization"),
            (format!("Bearer {}", "a".repeat(5000)).into_bytes(), "malformed_authorization"),
            ("Bearer tgp_ééééééééééééééééééé".as_bytes().to_vec(), "invalid_token"),
            (b"Bearer \xff\xfe\xfd".to_vec(), "malformed_authorization"),
            (b"Basic".to_vec(), "malformed_authorization"),
            (b"Basic !!!not-base64!!!".to_vec(), "malformed_authorization"),
            (format!("Basic {}", STANDARD.encode("no colon here")).into_bytes(), "malformed_authorization"),
            (format!("Basic {}", STANDARD.encode(b"\xff\xfe:\xfd")).into_bytes(), "malformed_authorization"),
            (format!("Basic {}", STANDARD.encode(format!("{WRITER}:"))).into_bytes(), "invalid_token"),
            (format!("Basic {}", STANDARD.encode(format!(":{token}"))).into_bytes(), "invalid_credentials"),
            (b"Bearer tgp_".to_vec(), "invalid_token"),
            (b"Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyz".to_vec(), "invalid_token"),
            (format!("Bearer {}", &token[..41]).into_bytes(), "invalid_token"),
            (format!("Bearer {token}x").into_bytes(), "invalid_token"),
            (format!("Bearer {}", token.to_uppercase()).into_bytes(), "invalid_token"),
            (format!("Bearer {typo}").into_bytes(), "invalid_token"),
            (format!("Bearer {}", unknown.expose()).into_bytes(), "invalid_token"),
            (b"Bearer ' OR '1'='1".to_vec(), "malformed_authorization"),
            (b"Bearer tgp_';DROP TABLE users;--aaaaaaaaaaaaaaaaaaa".to_vec(), "malformed_authorization"),
            (b"Bearer tgp_';DROP/**/TABLE/**/users;--aaaaaaaaaaaaa".to_vec(), "invalid_token"),
            (format!("Bearer {}", "tgp_".to_owned() + &"A".repeat(38)).into_bytes(), "invalid_token"),
        ];
        let client = reqwest::Client::new();
        for (value, code) in cases {
            let header = reqwest::header::HeaderValue::from_bytes(&value).expect("a header value reqwest can send");
            let res = read(client.get(format!("{}/api/v1/me", app.address)).header("Authorization", header).send().await.unwrap()).await;
            assert_eq!(res.json()["error"]["code"], code, "{}", String::from_utf8_lossy(&value));
            assert_error(&res, StatusCode::UNAUTHORIZED, code);
        }
        // None of that revoked, rotated or locked the real token.
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
    }
}

/// What each endpoint needs, for the permission matrix.
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/me", "read-only"),
    ("GET", "/api/v1/tokens", "read-only"),
    ("DELETE", "/api/v1/tokens/{victim}", "read-write"),
    ("POST", "/api/v1/tokens/self/rotate", "read-write"),
    ("GET", "/api/v1/members", "admin"),
    ("GET", "/api/v1/workspace/tokens", "admin"),
    ("POST", "/api/v1/workspace/tokens/revoke-all", "admin"),
    ("GET", "/api/v1/audit-log", "admin"),
];

fn rank(level: &str) -> u8 {
    match level {
        "read-only" => 0,
        "read-write" => 1,
        _ => 2,
    }
}

each_backend! {
    async fn every_endpoint_answers_every_role_and_scope_as_the_rules_say(app) {
        for (owner, role, scopes) in [(WRITER, "read-write", &["read-only", "read-write"][..]), (ADMIN, "admin", &["read-only", "read-write", "admin"][..])] {
            for &scope in scopes {
                for &(method, path, needs) in MATRIX {
                    // A fresh token per call: rotation and revocation consume theirs.
                    let (_, token) = app.token_for(owner, &format!("{scope} {method} {path}"), scope).await;
                    let (victim, _) = app.token_for(owner, &format!("victim {scope} {method} {path}"), "read-only").await;
                    let path = path.replace("{victim}", &victim.to_string());
                    let method: Method = method.parse().unwrap();
                    let res = if path.ends_with("revoke-all") {
                        // Only the bystander's tokens, so the run can go on.
                        post_json(&app, &path, &token, &json!({ "user_id": app.user_id(READER).await }).to_string()).await
                    } else {
                        call(&app, method.clone(), &path, &token).await
                    };
                    let allowed = rank(scope).min(rank(role)) >= rank(needs);
                    if allowed {
                        assert!(res.status.is_success(), "{owner} {scope} {method} {path}: {} {}", res.status, res.body);
                    } else {
                        assert_error(&res, StatusCode::FORBIDDEN, "insufficient_scope");
                    }
                }
            }
        }
    }
}

each_backend! {
    async fn tokens_of_members_who_became_read_only_or_left_stop_working_at_once(app) {
        let (_, token) = app.token_for(WRITER, "downgraded", "read-write").await;
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
        app.set_role(WRITER, "read-only").await;
        assert_error(&call(&app, Method::GET, "/api/v1/me", &token).await, StatusCode::FORBIDDEN, "owner_read_only");
        assert_error(&call(&app, Method::GET, "/api/v1/tokens", &token).await, StatusCode::FORBIDDEN, "owner_read_only");
        app.set_role(WRITER, "read-write").await;
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK, "and work again when restored");

        // An Admin token of someone now Read-Write can do only what Read-Write can.
        let (_, admin_token) = app.token_for(ADMIN, "admin power", "admin").await;
        assert_eq!(call(&app, Method::GET, "/api/v1/members", &admin_token).await.status, StatusCode::OK);
        let second_admin = "second@example.com";
        app.core.create_user(tollgate::service::auth::NewUser { email: second_admin, name: None, role: "admin", workspace: None, password: crate::helpers::PASSWORD }, now()).await.unwrap();
        app.set_role(ADMIN, "read-write").await;
        assert_error(&call(&app, Method::GET, "/api/v1/members", &admin_token).await, StatusCode::FORBIDDEN, "insufficient_scope");
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &admin_token).await.json()["token"]["effective_scope"], "read-write");
    }
}

each_backend! {
    async fn disabled_or_removed_owners_tokens_are_refused(app) {
        let (_, token) = app.token_for(WRITER, "soon refused", "read-write").await;
        let admin = app.signed_in(ADMIN).await;
        let id = app.user_id(WRITER).await;
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
        admin.post_form(&format!("/members/{id}/disable"), &[]).await;
        assert_error(&call(&app, Method::GET, "/api/v1/me", &token).await, StatusCode::FORBIDDEN, "owner_disabled");
        admin.post_form(&format!("/members/{id}/enable"), &[]).await;
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
        admin.post_form(&format!("/members/{id}/remove"), &[]).await;
        // Removing a member revokes their tokens in the workspace.
        assert_error(&call(&app, Method::GET, "/api/v1/me", &token).await, StatusCode::UNAUTHORIZED, "invalid_token");
        // A user deleted outright: their tokens no longer exist.
        let (_, admin_token) = app.token_for(ADMIN, "soon orphan", "read-write").await;
        sqlx::query("DELETE FROM users WHERE email = $1").bind(ADMIN).execute(app.db().pool()).await.unwrap();
        app.core.tokens.clear();
        assert_error(&call(&app, Method::GET, "/api/v1/me", &admin_token).await, StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_on_the_next_request() {
    for backend in crate::helpers::backends() {
        let mut app = crate::helpers::spawn_app_on_manual_clock(backend).await;
        let (id, token) = app.token_for(WRITER, "short lived", "read-write").await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/me", &token).await.status,
            StatusCode::OK
        );
        // The cached entry holds the expiry; it is compared with the clock
        // at every request.
        let expires_at = app.core.now() + 2;
        sqlx::query("UPDATE personal_access_tokens SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(app.db().pool())
            .await
            .unwrap();
        app.core.tokens.clear();
        assert_eq!(
            call(&app, Method::GET, "/api/v1/me", &token).await.status,
            StatusCode::OK
        );
        assert_eq!(
            app.core.tokens.stats().misses,
            2,
            "{backend:?}: the row was read again"
        );
        app.advance(std::time::Duration::from_secs(1));
        // One second before the expiry: still accepted.
        assert_eq!(
            call(&app, Method::GET, "/api/v1/me", &token).await.status,
            StatusCode::OK
        );
        app.advance(std::time::Duration::from_secs(1));
        // At the expiry second, refused from the cache.
        assert_error(
            &call(&app, Method::GET, "/api/v1/me", &token).await,
            StatusCode::UNAUTHORIZED,
            "token_expired",
        );
        app.stop().await;
    }
}

each_backend! {
    async fn deleted_token_is_refused_on_the_next_request(app) {
        let (id, token) = app.token_for(WRITER, "deleted by api", "read-write").await;
        let (_, other) = app.token_for(WRITER, "deleter", "read-write").await;
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
        let res = call(&app, Method::DELETE, &format!("/api/v1/tokens/{id}"), &other).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        assert_error(&call(&app, Method::GET, "/api/v1/me", &token).await, StatusCode::UNAUTHORIZED, "invalid_token");
        // A token can delete itself.
        let me: Value = call(&app, Method::GET, "/api/v1/me", &other).await.json();
        let res = call(&app, Method::DELETE, &format!("/api/v1/tokens/{}", me["token"]["id"]), &other).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        assert_error(&call(&app, Method::GET, "/api/v1/me", &other).await, StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

each_backend! {
    async fn another_members_token_can_not_be_deleted_through_the_api(app) {
        let (victim, victim_token) = app.token_for(ADMIN, "not yours", "read-write").await;
        let (_, token) = app.token_for(WRITER, "curious", "read-write").await;
        for path in [format!("/api/v1/tokens/{victim}"), "/api/v1/tokens/999999".to_owned(), "/api/v1/tokens/abc".to_owned(), "/api/v1/tokens/-1".to_owned()] {
            assert_error(&call(&app, Method::DELETE, &path, &token).await, StatusCode::NOT_FOUND, "not_found");
        }
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &victim_token).await.status, StatusCode::OK);
        assert_eq!(app.count("personal_access_tokens").await, 2);
    }
}

each_backend! {
    async fn rotation_gives_a_new_secret_once_and_retires_the_old_one(app) {
        let (id, old) = app.token_for(WRITER, "rotating", "read-write").await;
        let before: (String, String, Option<i64>) = sqlx::query_as("SELECT name, scope, expires_at FROM personal_access_tokens WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        let res = call(&app, Method::POST, "/api/v1/tokens/self/rotate", &old).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.headers.get("cache-control").unwrap(), "no-store");
        let body = res.json();
        let new = body["token"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(body["id"], id);
        assert_eq!(body["name"], "rotating");
        assert_eq!(body["hint"], format!("tgp_…{}", &new[38..]));
        let after: (String, String, Option<i64>) = sqlx::query_as("SELECT name, scope, expires_at FROM personal_access_tokens WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(before, after);
        assert_error(&call(&app, Method::GET, "/api/v1/me", &old).await, StatusCode::UNAUTHORIZED, "invalid_token");
        let me = call(&app, Method::GET, "/api/v1/me", &new).await;
        assert_eq!(me.status, StatusCode::OK);
        // The secret is in no other response.
        for path in ["/api/v1/me", "/api/v1/tokens"] {
            assert!(!call(&app, Method::GET, path, &new).await.body.contains(&new));
        }
        let event: (String, Option<i64>) = sqlx::query_as("SELECT action, actor_token_id FROM audit_events WHERE action = 'token.rotated'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(event, ("token.rotated".to_owned(), Some(id)), "the audit event names the token that acted");
        // A Read-Only token can not rotate (or mint anything).
        let (_, read_only) = app.token_for(WRITER, "reader", "read-only").await;
        assert_error(&call(&app, Method::POST, "/api/v1/tokens/self/rotate", &read_only).await, StatusCode::FORBIDDEN, "insufficient_scope");
    }
}

each_backend! {
    async fn lists_are_paged_and_never_carry_secrets_or_digests(app) {
        let mut secrets = Vec::new();
        for i in 0..5 {
            secrets.push(app.token_for(WRITER, &format!("paged {i}"), "read-only").await.1);
        }
        let digests: Vec<String> = sqlx::query_scalar("SELECT digest FROM personal_access_tokens").fetch_all(app.db().pool()).await.unwrap();
        let token = &secrets[0];
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tokens?limit=2&cursor={c}"),
                None => "/api/v1/tokens?limit=2".to_owned(),
            };
            let res = call(&app, Method::GET, &path, token).await;
            assert_eq!(res.status, StatusCode::OK);
            for secret in &secrets {
                assert!(!res.body.contains(secret.as_str()) && !res.body.contains(&secret[4..36]));
            }
            for digest in &digests {
                assert!(!res.body.contains(digest.as_str()));
            }
            let body = res.json();
            let page = body["data"].as_array().unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, (0..5).map(|i| format!("paged {i}")).collect::<Vec<_>>());
        for bad in ["limit=0", "limit=201", "limit=abc", "cursor=xyz", "cursor=-5"] {
            assert_error(&call(&app, Method::GET, &format!("/api/v1/tokens?{bad}"), token).await, StatusCode::BAD_REQUEST, "invalid_query");
        }
    }
}

each_backend! {
    async fn admins_revoke_every_token_or_one_members_and_bad_bodies_change_nothing(app) {
        let (_, admin_token) = app.token_for(ADMIN, "incident", "admin").await;
        let (_, writer_a) = app.token_for(WRITER, "a", "read-write").await;
        let (_, writer_b) = app.token_for(WRITER, "b", "read-only").await;
        let (_, admin_other) = app.token_for(ADMIN, "other", "read-write").await;
        let before = app.count("personal_access_tokens").await;
        for (body, status, code) in [
            ("{not json", StatusCode::BAD_REQUEST, "invalid_json"),
            (r#"{"user_id": "abc"}"#, StatusCode::BAD_REQUEST, "invalid_json"),
            (r#"{"user": 1}"#, StatusCode::BAD_REQUEST, "invalid_json"),
            (r#"{"user_id": 999999}"#, StatusCode::NOT_FOUND, "not_found"),
        ] {
            assert_error(&post_json(&app, "/api/v1/workspace/tokens/revoke-all", &admin_token, body).await, status, code);
            assert_eq!(app.count("personal_access_tokens").await, before, "{body}");
        }
        let writer_id = app.user_id(WRITER).await;
        let res = post_json(&app, "/api/v1/workspace/tokens/revoke-all", &admin_token, &json!({ "user_id": writer_id }).to_string()).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["revoked"], 2);
        for token in [&writer_a, &writer_b] {
            assert_error(&call(&app, Method::GET, "/api/v1/me", token).await, StatusCode::UNAUTHORIZED, "invalid_token");
        }
        assert_eq!(call(&app, Method::GET, "/api/v1/me", &admin_other).await.status, StatusCode::OK);
        // Everything, the calling token included.
        let res = post_json(&app, "/api/v1/workspace/tokens/revoke-all", &admin_token, "").await;
        assert_eq!(res.json()["revoked"], 2);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        assert_error(&call(&app, Method::GET, "/api/v1/me", &admin_other).await, StatusCode::UNAUTHORIZED, "invalid_token");
        let events: Vec<Option<i64>> = sqlx::query_scalar("SELECT actor_token_id FROM audit_events WHERE action = 'workspace.tokens_revoked'").fetch_all(app.db().pool()).await.unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(Option::is_some), "events name the token that acted");
    }
}

each_backend! {
    async fn admin_lists_show_members_workspace_tokens_and_the_audit_log(app) {
        let (_, admin_token) = app.token_for(ADMIN, "auditor", "admin").await;
        app.token_for(WRITER, "writer's", "read-write").await;
        let members = call(&app, Method::GET, "/api/v1/members", &admin_token).await.json();
        let emails: Vec<&str> = members["data"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap()).collect();
        assert_eq!(emails, vec![ADMIN, WRITER, READER]);
        assert_eq!(members["data"][2]["role"], "read-only");
        let tokens = call(&app, Method::GET, "/api/v1/workspace/tokens", &admin_token).await.json();
        let owners: Vec<&str> = tokens["data"].as_array().unwrap().iter().map(|t| t["owner"]["email"].as_str().unwrap()).collect();
        assert_eq!(owners, vec![ADMIN, WRITER]);
        let log = call(&app, Method::GET, "/api/v1/audit-log?limit=2", &admin_token).await.json();
        assert_eq!(log["data"].as_array().unwrap().len(), 2);
        assert_eq!(log["data"][0]["action"], "token.created");
        let next = log["next_cursor"].as_str().unwrap();
        let older = call(&app, Method::GET, &format!("/api/v1/audit-log?limit=2&cursor={next}"), &admin_token).await.json();
        assert!(older["data"][0]["id"].as_i64().unwrap() < log["data"][1]["id"].as_i64().unwrap());
    }
}

each_backend! {
    async fn last_used_is_kept_to_the_minute_and_written_at_shutdown(app) {
        let (id, token) = app.token_for(WRITER, "used", "read-write").await;
        for _ in 0..20 {
            assert_eq!(call(&app, Method::GET, "/api/v1/me", &token).await.status, StatusCode::OK);
        }
        let stored: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM personal_access_tokens WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(stored, None, "no write per request");
        // One write for twenty requests, at the flush.
        assert_eq!(app.core.tokens.flush_last_used(app.db()).await.unwrap(), 1);
        let stored: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM personal_access_tokens WHERE id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        let minute = stored.expect("written at the flush");
        assert_eq!(minute % 60, 0);
        assert!((now() - minute) < 120);
        assert_eq!(app.core.tokens.flush_last_used(app.db()).await.unwrap(), 0, "nothing new within the minute");
        let page = app.signed_in(WRITER).await.get("/profile/tokens").await;
        assert!(!page.text("#tokens-table").contains("Never"));
        assert_eq!(call(&app, Method::GET, "/api/v1/tokens", &token).await.json()["data"][0]["last_used_at"].as_str().map(|s| s.ends_with(":00Z")), Some(true));
    }
}

each_backend! {
    async fn many_last_used_times_are_written_in_batches_and_never_move_back(app) {
        let (first, _) = app.token_for(WRITER, "batched 0", "read-write").await;
        let pool = app.db().pool();
        // More tokens than one statement takes, and a remainder.
        for n in 1..120 {
            sqlx::query("INSERT INTO personal_access_tokens (user_id, workspace_id, name, scope, digest, last4, created_at) \
                         SELECT user_id, workspace_id, $1, scope, $2, last4, created_at FROM personal_access_tokens WHERE id = $3")
                .bind(format!("batched {n}")).bind(format!("{n:064}")).bind(first).execute(pool).await.unwrap();
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM personal_access_tokens WHERE name LIKE 'batched %' ORDER BY id").fetch_all(pool).await.unwrap();
        assert_eq!(ids.len(), 120);
        let minute = 1_800_000_000;
        // A later time already stored stays.
        let later = ids[77];
        sqlx::query("UPDATE personal_access_tokens SET last_used_at = $1 WHERE id = $2").bind(minute + 60).bind(later).execute(pool).await.unwrap();
        let uses: Vec<(i64, i64)> = ids.iter().map(|id| (*id, minute)).collect();
        tollgate::storage::tokens::touch_last_used(pool, &uses).await.unwrap();
        let stored: Vec<(i64, Option<i64>)> = sqlx::query_as("SELECT id, last_used_at FROM personal_access_tokens WHERE name LIKE 'batched %' ORDER BY id").fetch_all(pool).await.unwrap();
        for (id, at) in stored {
            let expected = if id == later { minute + 60 } else { minute };
            assert_eq!(at, Some(expected), "token {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_last_used_times_are_written_when_the_server_stops() {
    for backend in crate::helpers::backends() {
        let database = crate::helpers::TestDatabase::create(backend).await;
        crate::helpers::seed(&database.url).await;
        let app = crate::helpers::spawn_with(backend, database, |_| {}).await;
        let (id, token) = app
            .token_for(WRITER, "used then stopped", "read-write")
            .await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/me", &token).await.status,
            StatusCode::OK
        );
        let url = app.database.url.clone();
        let mut app = app;
        app.stop().await;
        let db = tollgate::storage::Db::connect(&url).await.unwrap();
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT last_used_at FROM personal_access_tokens WHERE id = $1")
                .bind(id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert!(stored.is_some(), "{backend:?}: flushed at shutdown");
        db.close().await;
    }
}

/// A second server on the same database, as behind a load balancer.
struct Instance {
    address: String,
    handle: actix_web::dev::ServerHandle,
}

async fn second_instance(app: &TestApp) -> Instance {
    let application = Application::build(test_config(&app.database.url))
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let core = application.core();
    tokio::spawn(application.run_until_stopped());
    // Its cache answers only once its listener is up; and on PostgreSQL the
    // first instance must have heard it, to wait for its acknowledgements.
    eventually("the second instance's token cache to be trusted", || {
        let core = core.clone();
        async move { core.tokens.trusted() }
    })
    .await;
    if app.backend == Backend::Postgres {
        eventually("the first instance to hear the second", || {
            let first = app.core.clone();
            async move { first.tokens.live_peers() >= 1 }
        })
        .await;
    }
    Instance { address, handle }
}

each_backend! {
    async fn a_revocation_on_one_instance_is_honoured_by_the_next_request_on_another(app) {
        let other = second_instance(&app).await;
        let client = reqwest::Client::new();
        let me_on = |base: String, token: String| {
            let client = client.clone();
            async move { client.get(format!("{base}/api/v1/me")).header("Authorization", bearer(&token)).send().await.unwrap().status() }
        };
        for round in 0..10 {
            let (id, token) = app.token_for(WRITER, &format!("round {round}"), "read-write").await;
            let (_, deleter) = app.token_for(WRITER, &format!("deleter {round}"), "read-write").await;
            // Both instances have verified (and cached) the token.
            assert_eq!(me_on(app.address.clone(), token.clone()).await, StatusCode::OK);
            assert_eq!(me_on(other.address.clone(), token.clone()).await, StatusCode::OK);
            // Deleted through the first instance...
            let res = client.delete(format!("{}/api/v1/tokens/{id}", app.address)).header("Authorization", bearer(&deleter)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
            // ...refused by the very next request on the second.
            assert_eq!(me_on(other.address.clone(), token.clone()).await, StatusCode::UNAUTHORIZED, "round {round}");
            // Rotation too.
            assert_eq!(me_on(other.address.clone(), deleter.clone()).await, StatusCode::OK);
            let rotated = client.post(format!("{}/api/v1/tokens/self/rotate", app.address)).header("Authorization", bearer(&deleter)).send().await.unwrap();
            assert_eq!(rotated.status(), StatusCode::OK);
            assert_eq!(me_on(other.address.clone(), deleter.clone()).await, StatusCode::UNAUTHORIZED, "round {round}");
        }
        // A role change through the dashboard of the first instance.
        let (_, token) = app.token_for(WRITER, "downgrade me", "read-write").await;
        assert_eq!(me_on(other.address.clone(), token.clone()).await, StatusCode::OK);
        app.set_role(WRITER, "read-only").await;
        assert_eq!(me_on(other.address.clone(), token.clone()).await, StatusCode::FORBIDDEN);
        other.handle.stop(true).await;
    }
}

#[test]
fn the_openapi_document_describes_every_route_and_nothing_else() {
    let doc: Value = serde_json::from_str(tollgate::api::openapi::json()).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in tollgate::api::ROUTES {
        let operation = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing from the OpenAPI document"))[*method];
        assert!(
            operation["responses"].is_object(),
            "{method} {path} is missing or has no responses"
        );
    }
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        tollgate::api::ROUTES.len(),
        "the document describes routes that do not exist"
    );
    // Every reference resolves, wherever it is and however it is spelled.
    fn check_refs(doc: &Value, node: &Value, count: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    let target = reference.strip_prefix('#').and_then(|p| doc.pointer(p));
                    assert!(target.is_some(), "unresolved $ref {reference}");
                    *count += 1;
                }
                map.values().for_each(|v| check_refs(doc, v, count));
            }
            Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, count)),
            _ => {}
        }
    }
    let mut count = 0;
    check_refs(&doc, &doc, &mut count);
    assert!(count > 0, "the document uses references");
}

each_backend! {
    async fn a_method_a_path_does_not_have_is_a_json_405_naming_the_ones_it_has(app) {
        let (_, token) = app.token_for(WRITER, "methods", "read-write").await;
        for (method, path, allow) in [
            ("TRACE", "/api/v1/me", "GET"),
            ("PUT", "/api/v1/tokens", "GET"),
            ("GET", "/api/v1/tokens/1", "DELETE"),
            ("GET", "/api/v1/tokens/self/rotate", "POST"),
            ("DELETE", "/api/v1/workspace/tokens/revoke-all", "POST"),
            ("POST", "/api/openapi.json", "GET"),
        ] {
            let res = call(&app, method.parse().unwrap(), path, &token).await;
            assert_error(&res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            assert_eq!(res.headers.get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
        }
        // A path that does not exist stays a 404.
        assert_error(&call(&app, Method::PUT, "/api/v1/nothing", &token).await, StatusCode::NOT_FOUND, "not_found");
    }
}

each_backend! {
    async fn the_openapi_document_is_served_and_unknown_api_paths_answer_json(app) {
        let res = api(&app, Method::GET, "/api/openapi.json", None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["info"]["title"], "Tollgate API");
        assert_error(&api(&app, Method::GET, "/api/v1/nope", None).await, StatusCode::NOT_FOUND, "not_found");
    }
}
