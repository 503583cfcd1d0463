//! `POST /api/v1/leaked-tokens`: secret scanners report tokens they found;
//! live ones are revoked at once, recorded with where they were found and
//! shown to their owner and the workspace's Admins; unreadable reports
//! revoke nothing; one address can not flood the endpoint. Also the
//! scanner rules shipped in `deploy/secret-scanning/` and the offline
//! `tollgate check-token`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate::domain::PlainToken;

use crate::each_backend;
use crate::helpers::{ADMIN, PASSWORD, Page, TestApp, WRITER, api, bearer, read};

async fn report(app: &TestApp, body: impl Into<reqwest::Body>) -> Page {
    read(
        reqwest::Client::new()
            .post(format!("{}/api/v1/leaked-tokens", app.address))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("report"),
    )
    .await
}

async fn works(app: &TestApp, token: &str) -> bool {
    let res = api(app, Method::GET, "/api/v1/me", Some(&bearer(token))).await;
    match res.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("GET /api/v1/me answered {other}: {}", res.body),
    }
}

async fn leak_events(app: &TestApp) -> Vec<(Option<i64>, i64, String, String)> {
    sqlx::query_as(
        "SELECT workspace_id, target_id, detail, actor_label FROM audit_events \
         WHERE action = 'token.leak_reported' ORDER BY id",
    )
    .fetch_all(app.db().pool())
    .await
    .expect("leak events")
}

/// A well-formed token with a valid checksum that was never issued.
fn unknown_token() -> String {
    PlainToken::generate().expose().to_owned()
}

/// The token with one character changed (the checksum no longer matches).
fn typo(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[12] = if bytes[12] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ASCII")
}

each_backend! {
    async fn a_reported_live_token_is_revoked_at_once_and_recorded_with_its_url(app) {
        let (id, leaked) = app.token_for(WRITER, "ci deploy", "read-write").await;
        let (_, kept) = app.token_for(WRITER, "laptop", "read-write").await;
        assert!(works(&app, &leaked).await);
        let unknown = unknown_token();
        let url = "https://github.com/acme/app/blob/abc123/.env#L3";
        let body = json!([
            {"token": leaked, "type": "tollgate_pat", "url": url, "source": "content"},
            {"token": typo(&leaked), "type": "tollgate_pat", "url": url, "source": "content"},
            {"token": unknown, "type": "tollgate_pat", "url": url, "source": "content"},
            {"token": "not a token at all", "type": "tollgate_pat"},
            {"token": leaked, "type": "tollgate_pat", "url": url, "source": "commit"},
        ]);
        let res = report(&app, body.to_string()).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        let labels = res.json();
        assert_eq!(labels, json!([
            {"token_raw": leaked, "token_type": "tollgate_pat", "label": "true_positive"},
            {"token_raw": typo(&leaked), "token_type": "tollgate_pat", "label": "false_positive"},
            {"token_raw": unknown, "token_type": "tollgate_pat", "label": "false_positive"},
            {"token_raw": "not a token at all", "token_type": "tollgate_pat", "label": "false_positive"},
            // The same token twice in one report: one verdict for both.
            {"token_raw": leaked, "token_type": "tollgate_pat", "label": "true_positive"},
        ]));
        // Refused by the very next request; the owner's other token still works.
        assert!(!works(&app, &leaked).await);
        assert!(works(&app, &kept).await);
        // One audit event, in the token's workspace, with the URL and source.
        let events = leak_events(&app).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let (workspace, target, detail, actor) = &events[0];
        assert!(workspace.is_some());
        assert_eq!(*target, id);
        assert!(detail.contains(url) && detail.contains("source content") && detail.contains(WRITER), "{detail}");
        assert_eq!(actor, "secret scanning report");
        // Reported again: already revoked, so a false positive, and nothing more recorded.
        let again = report(&app, json!([{"token": leaked}]).to_string()).await;
        assert_eq!(again.json(), json!([{"token_raw": leaked, "token_type": "", "label": "false_positive"}]));
        assert_eq!(leak_events(&app).await.len(), 1);
        // The owner sees it on the tokens tab, the Admin on the Workspace tokens page and in the audit log.
        let owner = app.signed_in(WRITER).await.get("/profile/tokens").await;
        let notice = owner.text(".leak-notices");
        assert!(notice.contains("ci deploy") && notice.contains(url), "{notice}");
        let admin = app.signed_in(ADMIN).await;
        let notice = admin.get("/workspace-tokens").await.text(".leak-notices");
        assert!(notice.contains("ci deploy") && notice.contains(WRITER) && notice.contains(url), "{notice}");
        let log = admin.get("/audit-log?action=token.leak_reported").await;
        assert!(log.text("#audit-table tbody").contains(url));
        // Members whose tokens were not reported see no notice.
        assert_eq!(admin.get("/profile/tokens").await.count(".leak-notices"), 0);
    }
}

each_backend! {
    async fn an_expired_token_is_a_false_positive_and_stays_listed(app) {
        let (id, token) = app.token_for(WRITER, "old", "read-write").await;
        sqlx::query("UPDATE personal_access_tokens SET expires_at = 1 WHERE id = $1").bind(id).execute(app.db().pool()).await.unwrap();
        let res = report(&app, json!([{"token": token}]).to_string()).await;
        assert_eq!(res.json()[0]["label"], "false_positive");
        assert_eq!(app.count("personal_access_tokens").await, 1);
        assert!(leak_events(&app).await.is_empty());
    }
}

each_backend! {
    async fn a_token_of_another_workspace_is_revoked_and_noticed_only_there(app) {
        let other = "olga@example.com";
        app.core.create_user(tollgate::service::auth::NewUser { email: other, name: None, role: "admin", workspace: Some("Other"), password: PASSWORD }, tollgate::clock::now()).await.unwrap();
        let (_, token) = app.token_for(other, "elsewhere", "read-write").await;
        let res = report(&app, json!([{"token": token, "type": "tollgate_pat", "url": "https://paste.example/x", "source": "gitleaks"}]).to_string()).await;
        assert_eq!(res.json()[0]["label"], "true_positive");
        assert!(!works(&app, &token).await);
        let other_workspace: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Other'").fetch_one(app.db().pool()).await.unwrap();
        let events = leak_events(&app).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, Some(other_workspace));
        // The Default workspace's Admin sees nothing of it; Other's Admin does.
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.get("/workspace-tokens").await.count(".leak-notices"), 0);
        assert!(!admin.get("/audit-log").await.body.contains("paste.example"));
        let olga = app.signed_in(other).await;
        assert!(olga.get("/workspace-tokens").await.text(".leak-notices").contains("paste.example"));
    }
}

each_backend! {
    async fn unreadable_reports_are_refused_with_a_code_and_revoke_nothing(app) {
        let (_, token) = app.token_for(WRITER, "precious", "read-write").await;
        let live = json!({"token": token, "type": "tollgate_pat", "url": "https://example.com", "source": "content"});
        let too_many: Vec<Value> = std::iter::once(live.clone()).chain((0..1_000).map(|_| json!({"token": "x"}))).collect();
        let oversized = json!([live, {"token": "x", "url": "u".repeat(1024 * 1024)}]);
        let cases: Vec<(&str, String, StatusCode, &str)> = vec![
            ("not JSON", format!("[{live}"), StatusCode::BAD_REQUEST, "invalid_json"),
            ("an object", live.to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("a string", json!(token).to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("a number token", json!([live, {"token": 5}]).to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("no token", json!([live, {"url": "https://example.com"}]).to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("a number url", json!([live, {"token": "x", "url": 1}]).to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("an array entry", json!([live, [token]]).to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
            ("1,001 entries", json!(too_many).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "too_many_entries"),
            ("over 1 MiB", oversized.to_string(), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ];
        for (what, body, status, code) in cases {
            let res = report(&app, body).await;
            assert_eq!(res.status, status, "{what}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], code, "{what}");
            assert!(!res.json()["error"]["message"].as_str().unwrap().is_empty(), "{what}");
            assert!(works(&app, &token).await, "{what} revoked the token");
        }
        assert!(leak_events(&app).await.is_empty());
        assert_eq!(app.count("leak_reports").await, 0);
        // Exactly 1,000 entries is fine.
        let full: Vec<Value> = std::iter::once(live).chain((0..999).map(|_| json!({"token": "x"}))).collect();
        let res = report(&app, json!(full).to_string()).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json().as_array().unwrap().len(), 1_000);
        assert!(!works(&app, &token).await);
    }
}

each_backend! {
    async fn a_flood_of_reports_from_one_address_gets_429_with_retry_after(app) {
        let (_, token) = app.token_for(WRITER, "flooded", "read-write").await;
        for i in 0..tollgate::service::leaks::REPORTS_PER_WINDOW {
            let res = report(&app, "[]").await;
            assert_eq!(res.status, StatusCode::OK, "report {i}: {}", res.body);
        }
        // Refused before the body is read: the token in it stays live.
        let res = report(&app, json!([{"token": token}]).to_string()).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
        assert_eq!(res.json()["error"]["code"], "too_many_attempts");
        let retry: i64 = res.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
        assert!((1..=tollgate::service::leaks::WINDOW_SECONDS).contains(&retry), "{retry}");
        assert!(works(&app, &token).await);
        // Garbage counts too.
        assert_eq!(report(&app, "{").await.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

// ---- Scanner rules and the offline check -----------------------------------

fn rule_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/deploy/secret-scanning/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("rule file")
}

/// The one regular expression of each shipped rule.
fn shipped_regexes() -> Vec<(&'static str, regex::Regex)> {
    let gitleaks = rule_file("gitleaks.toml");
    let gitleaks = gitleaks
        .lines()
        .find_map(|l| l.strip_prefix("regex = '''"))
        .and_then(|l| l.strip_suffix("'''"))
        .expect("the gitleaks regex");
    let trufflehog = rule_file("trufflehog.yaml");
    let trufflehog = trufflehog
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the trufflehog regex");
    vec![
        (
            "gitleaks",
            regex::Regex::new(gitleaks).expect("a valid regex"),
        ),
        (
            "trufflehog",
            regex::Regex::new(trufflehog).expect("a valid regex"),
        ),
    ]
}

#[test]
fn the_shipped_scanner_rules_find_real_tokens_and_only_whole_ones() {
    for (name, regex) in shipped_regexes() {
        for _ in 0..500 {
            let token = PlainToken::generate().expose().to_owned();
            for text in [
                format!("TOLLGATE_TOKEN={token}\n"),
                format!("{{\"authorization\": \"Bearer {token}\"}}"),
                format!("curl -H 'Authorization: Bearer {token}' https://tollgate.example"),
                token.clone(),
            ] {
                let found: Vec<&str> = regex
                    .captures_iter(&text)
                    .map(|c| c.get(1).expect("the secret group").as_str())
                    .collect();
                assert_eq!(found, vec![token.as_str()], "{name} on {text:?}");
            }
            // A longer run of letters is not a token; neither is a cut one.
            assert!(!regex.is_match(&format!("{token}x")), "{name}");
            assert!(!regex.is_match(&token[..41]), "{name}");
            assert!(!regex.is_match(&token.replace("tgp_", "ghp_")), "{name}");
        }
    }
}

fn check_token(input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check-token")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run tollgate check-token");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_token_accepts_real_tokens_and_rejects_a_one_character_change() {
    let token = PlainToken::generate().expose().to_owned();
    let (ok, out) = check_token(&format!("{token}\n"));
    assert!(ok, "{out}");
    assert_eq!(out, format!("line 1: valid tgp_…{}\n", &token[38..]));
    assert!(!out.contains(&token[4..38]), "the secret is never printed");
    // Every position, changed to another base62 character.
    for pos in 4..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'Z' { b'Y' } else { b'Z' };
        let changed = String::from_utf8(bytes).unwrap();
        assert!(
            shipped_regexes().iter().all(|(_, r)| r.is_match(&changed)),
            "the regex alone can not tell"
        );
        let (ok, out) = check_token(&format!("{token}\n{changed}\n"));
        assert!(!ok, "position {pos}: {out}");
        assert!(out.contains("line 2: invalid"), "{out}");
    }
}

/// A report sent through the trusted proxy on behalf of `client`.
async fn report_from(app: &TestApp, client: &str, body: impl Into<reqwest::Body>) -> Page {
    read(
        reqwest::Client::new()
            .post(format!("{}/api/v1/leaked-tokens", app.address))
            .header("Content-Type", "application/json")
            .header("X-Forwarded-For", client)
            .body(body)
            .send()
            .await
            .expect("report"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reports_from_many_addresses_meets_the_instance_ceiling() {
    use tollgate::service::leaks::{
        INSTANCE_REPORTS_PER_WINDOW, REPORTS_PER_WINDOW, WINDOW_SECONDS,
    };
    for backend in crate::helpers::backends() {
        let database = crate::helpers::TestDatabase::create(backend).await;
        crate::helpers::seed(&database.url).await;
        let clock = std::sync::Arc::new(tollgate::clock::ManualClock::new(tollgate::clock::now()));
        let mut app = crate::helpers::spawn_with_clock(
            backend,
            database,
            |config| config.trusted_proxy = Some([127, 0, 0, 1].into()),
            Some(clock),
        )
        .await;
        let (_, token) = app.token_for(WRITER, "flooded", "read-write").await;
        // Each address stays under its own limit; together they reach the
        // instance's.
        let per_address = REPORTS_PER_WINDOW - 1;
        for i in 0..INSTANCE_REPORTS_PER_WINDOW {
            let client = format!("198.51.100.{}", i / per_address + 1);
            let res = report_from(&app, &client, "[]").await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "report {i} from {client}: {}",
                res.body
            );
        }
        // A fresh address is refused too, before its body is read: the token
        // in it stays live.
        let res = report_from(&app, "203.0.113.9", json!([{"token": token}]).to_string()).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
        assert_eq!(res.json()["error"]["code"], "too_many_attempts");
        assert!(
            res.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("This server"),
            "{}",
            res.body
        );
        let retry: i64 = res
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=WINDOW_SECONDS).contains(&retry), "{retry}");
        assert!(works(&app, &token).await);
        assert_eq!(app.count("leak_reports").await, 0);
        // Large reports have a lane of their own, still open.
        let res = report_from(&app, "203.0.113.10", large_empty_report()).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // Once the window has passed, reports are read again.
        app.advance(std::time::Duration::from_secs(WINDOW_SECONDS as u64));
        let res = report_from(&app, "203.0.113.9", json!([{"token": token}]).to_string()).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json()[0]["label"], "true_positive");
        assert!(!works(&app, &token).await);
        app.stop().await;
    }
}

/// An empty report padded past the small-report size.
fn large_empty_report() -> String {
    format!(
        "[{}]",
        " ".repeat(tollgate::service::leaks::SMALL_REPORT_BYTES)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_reports_leaves_room_for_small_ones_and_an_ipv6_host_counts_once() {
    use tollgate::service::leaks::{
        INSTANCE_LARGE_REPORTS_PER_WINDOW, REPORTS_PER_WINDOW, WINDOW_SECONDS,
    };
    let backend = crate::helpers::Backend::Sqlite;
    let database = crate::helpers::TestDatabase::create(backend).await;
    crate::helpers::seed(&database.url).await;
    let clock = std::sync::Arc::new(tollgate::clock::ManualClock::new(tollgate::clock::now()));
    let mut app = crate::helpers::spawn_with_clock(
        backend,
        database,
        |config| config.trusted_proxy = Some([127, 0, 0, 1].into()),
        Some(clock),
    )
    .await;
    let (_, token) = app.token_for(WRITER, "reported", "read-write").await;
    for i in 0..INSTANCE_LARGE_REPORTS_PER_WINDOW {
        let client = format!("198.51.100.{}", i + 1);
        let res = report_from(&app, &client, large_empty_report()).await;
        assert_eq!(res.status, StatusCode::OK, "large report {i}: {}", res.body);
    }
    let res = report_from(&app, "198.51.100.200", large_empty_report()).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    // The refused large report did not count against its address: it
    // still has all its reports (the last one a small report naming the
    // token, which the small lane admits and revokes).
    for i in 0..REPORTS_PER_WINDOW - 1 {
        let res = report_from(&app, "198.51.100.200", "[]").await;
        assert_eq!(res.status, StatusCode::OK, "small report {i}: {}", res.body);
    }
    let res = report_from(
        &app,
        "198.51.100.200",
        json!([{"token": token}]).to_string(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()[0]["label"], "true_positive");
    assert!(!works(&app, &token).await);

    // Every address of one IPv6 /64 shares one count; the next /64 has its own.
    for i in 0..REPORTS_PER_WINDOW {
        let client = format!("2001:db8:0:7::{:x}", i + 1);
        assert_eq!(
            report_from(&app, &client, "[]").await.status,
            StatusCode::OK,
            "{client}"
        );
    }
    let res = report_from(&app, "2001:db8:0:7:ffff::1", "[]").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this address"),
        "{}",
        res.body
    );
    assert_eq!(
        report_from(&app, "2001:db8:0:8::1", "[]").await.status,
        StatusCode::OK
    );
    app.advance(std::time::Duration::from_secs(WINDOW_SECONDS as u64));
    assert_eq!(
        report_from(&app, "2001:db8:0:7::1", "[]").await.status,
        StatusCode::OK
    );
    app.stop().await;
}
