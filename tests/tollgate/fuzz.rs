//! Issue: no input breaks the server. Property tests against a running
//! server (one per property run, a bounded number of cases): arbitrary form
//! bodies to every form route with a valid session and CSRF token, and
//! arbitrary JSON (or not-quite-JSON) to the API's write routes with valid
//! tokens. Never a 5xx; and whenever the answer is a refusal (4xx), the
//! database is exactly as it was.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN, READER, TestApp, WRITER, backends, bearer, read, spawn_app};

const CASES: u32 = 64;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        // Cases change the server's state: a shrunk case run later would
        // meet another state. Report the failing case as it was.
        max_shrink_iters: 0,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Everything a request could change, row by row (sessions aside: every
/// page request extends its own session).
async fn snapshot(app: &TestApp) -> Vec<String> {
    let mut rows = Vec::new();
    for query in [
        "SELECT 'user ' || id || ' ' || email || ' ' || name || ' ' || password_hash || ' ' \
         || COALESCE(CAST(disabled_at AS TEXT), '-') FROM users ORDER BY id",
        "SELECT 'member ' || workspace_id || ' ' || user_id || ' ' || role FROM memberships \
         ORDER BY workspace_id, user_id",
        "SELECT 'token ' || id || ' ' || name || ' ' || scope || ' ' \
         || COALESCE(CAST(expires_at AS TEXT), '-') FROM personal_access_tokens ORDER BY id",
        "SELECT 'invitation ' || id || ' ' || email || ' ' || role || ' ' \
         || COALESCE(CAST(accepted_at AS TEXT), '-') FROM invitations ORDER BY id",
        "SELECT 'workspace ' || id || ' ' || name FROM workspaces ORDER BY id",
        // Failed sign-ins are recorded on purpose (aggregated): a refused
        // form changes nothing else.
        "SELECT 'audit ' || COUNT(*) FROM audit_events WHERE action <> 'user.sign_in_failed'",
    ] {
        let found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_all(app.db().pool())
            .await
            .expect("snapshot");
        rows.extend(found);
    }
    rows
}

/// A value a form field might hold: typical ones and anything at all.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "admin",
            "read-write",
            "read-only",
            "owner",
            "1",
            "0",
            "-1",
            "30",
            "90",
            "never",
            "custom",
            "99999999999999999999",
            "new@example.com",
            "x@y",
            "ci",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,40}",
        ".{0,20}",
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "scope",
            "workspace",
            "expiry",
            "email",
            "role",
            "password",
            "current_password",
            "new_password",
            "confirm_password",
            "member",
            "user_id",
            "code",
            "organization",
            "csrf_token",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
}

/// A path segment: a real id, a number, or junk (percent-escapes included).
fn segment(real: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(real),
        any::<i64>().prop_map(|n| n.to_string()),
        "[A-Za-z0-9%._~-]{0,16}",
    ]
}

#[derive(Debug, Clone)]
struct FormCase {
    path: String,
    fields: Vec<(String, String)>,
    /// Raw bytes appended after the encoded fields: broken escapes,
    /// invalid UTF-8, stray `=` and `&`.
    tail: Vec<u8>,
}

fn form_case(tokens: Vec<String>, members: Vec<String>) -> impl Strategy<Value = FormCase> {
    let path = prop_oneof![
        Just("/profile/tokens".to_owned()),
        Just("/profile/tokens/revoke-all".to_owned()),
        Just("/profile/password".to_owned()),
        Just("/members/invite".to_owned()),
        Just("/workspace-tokens/revoke-all".to_owned()),
        Just("/setup".to_owned()),
        Just("/login".to_owned()),
        segment(tokens.clone()).prop_map(|id| format!("/profile/tokens/{id}/delete")),
        segment(tokens).prop_map(|id| format!("/workspace-tokens/{id}/revoke")),
        (
            segment(members),
            prop::sample::select(vec!["role", "disable", "enable", "remove", "promote", ""]),
        )
            .prop_map(|(id, action)| format!("/members/{id}/{action}")),
        "[A-Za-z0-9]{0,40}".prop_map(|code| format!("/invitations/{code}")),
    ];
    let tail = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..40),
        "[%=&+a-z0-9]{0,20}".prop_map(String::into_bytes),
    ];
    (
        path,
        prop::collection::vec((field_name(), field_value()), 0..6),
        tail,
    )
        .prop_map(|(path, fields, tail)| FormCase { path, fields, tail })
}

#[test]
fn arbitrary_form_bodies_never_break_the_server_and_refusals_change_nothing() {
    let rt = runtime();
    for backend in backends() {
        eprintln!("-- form fuzzing on {backend:?}");
        let mut app = rt.block_on(spawn_app(backend));
        let (admin, csrf, tokens, members) = rt.block_on(async {
            let admin = app.signed_in(ADMIN).await;
            let csrf = admin.csrf().await;
            let mut tokens = Vec::new();
            for (email, name) in [(ADMIN, "fuzz-admin"), (WRITER, "fuzz-writer")] {
                tokens.push(app.token_for(email, name, "read-write").await.0.to_string());
            }
            let members = vec![
                app.user_id(WRITER).await.to_string(),
                app.user_id(READER).await.to_string(),
            ];
            (admin, csrf, tokens, members)
        });
        let result = runner().run(&form_case(tokens, members), |case| {
            rt.block_on(async {
                let mut body = serde_urlencoded::to_string([("csrf_token", &csrf)])
                    .expect("encode")
                    .into_bytes();
                if !case.fields.is_empty() {
                    body.push(b'&');
                    body.extend(
                        serde_urlencoded::to_string(&case.fields)
                            .expect("encode")
                            .into_bytes(),
                    );
                }
                if !case.tail.is_empty() {
                    body.push(b'&');
                    body.extend(&case.tail);
                }
                let before = snapshot(&app).await;
                let res = read(
                    admin
                        .http
                        .post(admin.url(&case.path))
                        .header("Origin", &app.address)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(body)
                        .send()
                        .await
                        .expect("POST"),
                )
                .await;
                prop_assert!(
                    !res.status.is_server_error(),
                    "{} answered {}: {}",
                    case.path,
                    res.status,
                    res.body
                );
                if res.status.is_client_error() {
                    prop_assert_eq!(snapshot(&app).await, before, "{} changed data", case.path);
                }
                Ok::<(), TestCaseError>(())
            })
        });
        rt.block_on(app.stop());
        if let Err(failure) = result {
            panic!("{backend:?}: {failure}");
        }
    }
}

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![Just("user_id".to_owned()), "[a-z_]{0,8}"],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body: JSON, `{"user_id": <anything>}`, or not JSON at all.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        json().prop_map(|v| serde_json::json!({ "user_id": v }).to_string().into_bytes()),
        // Short arrays: serde reads a struct from a sequence too.
        prop::collection::vec(any::<i64>().prop_map(Value::from), 0..2).prop_map(|v| Value::Array(
            v
        )
        .to_string()
        .into_bytes()),
        prop::collection::vec(any::<u8>(), 0..60),
        "[{}\\[\\]\":, 0-9a-z_.-]{0,30}".prop_map(String::into_bytes),
        Just(Vec::new()),
    ]
}

#[derive(Debug, Clone)]
enum ApiTarget {
    RevokeAll,
    Rotate,
    Delete(String),
}

/// What `POST /api/v1/workspace/tokens/revoke-all` accepts: an empty body,
/// `{}`, or `{"user_id": <integer>}`. Anything else must be refused.
fn revoke_all_body_is_valid(body: &[u8]) -> bool {
    if body.iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields
            .iter()
            .all(|(name, value)| name == "user_id" && value.is_i64()),
        _ => false,
    }
}

#[test]
fn arbitrary_json_bodies_never_break_the_api_and_refusals_change_nothing() {
    let rt = runtime();
    for backend in backends() {
        eprintln!("-- JSON fuzzing on {backend:?}");
        let mut app = rt.block_on(spawn_app(backend));
        let issued = std::cell::Cell::new(0);
        let issue = |app: &TestApp| {
            issued.set(issued.get() + 1);
            let n = issued.get();
            rt.block_on(async {
                let admin = app
                    .token_for(ADMIN, &format!("fuzz-admin-{n}"), "admin")
                    .await
                    .1;
                let (id, writer) = app
                    .token_for(WRITER, &format!("fuzz-writer-{n}"), "read-write")
                    .await;
                (admin, writer, id)
            })
        };
        let tokens = std::cell::RefCell::new(issue(&app));
        let target = prop_oneof![
            Just(ApiTarget::RevokeAll),
            Just(ApiTarget::Rotate),
            prop_oneof![
                "[A-Za-z0-9%._~-]{0,16}",
                any::<i64>().prop_map(|n| n.to_string()),
                // Small ids: some are the writer's own tokens.
                (0i64..40).prop_map(|n| n.to_string()),
            ]
            .prop_map(ApiTarget::Delete),
        ];
        let content_type = prop::sample::select(vec![
            Some("application/json"),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ]);
        let strategy = (target, json_body(), content_type);
        let result = runner().run(&strategy, |(target, body, content_type)| {
            let (admin, writer, _) = tokens.borrow().clone();
            let outcome = rt.block_on(async {
                let http = reqwest::Client::new();
                let (request, valid) = match &target {
                    ApiTarget::RevokeAll => (
                        http.post(format!(
                            "{}/api/v1/workspace/tokens/revoke-all",
                            app.address
                        ))
                        .header("Authorization", bearer(&admin)),
                        revoke_all_body_is_valid(&body),
                    ),
                    ApiTarget::Rotate => (
                        http.post(format!("{}/api/v1/tokens/self/rotate", app.address))
                            .header("Authorization", bearer(&writer)),
                        true,
                    ),
                    ApiTarget::Delete(id) => (
                        http.delete(format!("{}/api/v1/tokens/{id}", app.address))
                            .header("Authorization", bearer(&writer)),
                        true,
                    ),
                };
                let request = match content_type {
                    Some(kind) => request.header("Content-Type", kind),
                    None => request,
                };
                let before = snapshot(&app).await;
                let res = read(request.body(body.clone()).send().await.expect("API")).await;
                prop_assert!(
                    !res.status.is_server_error(),
                    "{target:?} answered {}: {}",
                    res.status,
                    res.body
                );
                if !valid {
                    prop_assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
                    prop_assert_eq!(&res.json()["error"]["code"], "invalid_json");
                }
                if res.status.is_client_error() {
                    let error = res.json();
                    prop_assert!(
                        error["error"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty())
                    );
                    prop_assert_eq!(snapshot(&app).await, before, "{:?} changed data", target);
                }
                Ok::<bool, TestCaseError>(res.status.is_success())
            })?;
            // A change that succeeded may have revoked the tokens in use.
            if outcome {
                *tokens.borrow_mut() = issue(&app);
            }
            Ok(())
        });
        rt.block_on(app.stop());
        if let Err(failure) = result {
            panic!("{backend:?}: {failure}");
        }
    }
}

crate::each_backend! {
    /// Found by the property above: serde reads a struct from an array, so
    /// `[]` was taken for "no member given" and revoked every token.
    async fn an_array_body_never_revokes_the_whole_workspace(app) {
        let (_, admin) = app.token_for(ADMIN, "admin-key", "admin").await;
        let (_, writer) = app.token_for(WRITER, "writer-key", "read-write").await;
        let writer_id = app.user_id(WRITER).await;
        for body in ["[]".to_owned(), format!("[{writer_id}]"), " [ ] ".to_owned()] {
            let res = read(
                reqwest::Client::new()
                    .post(format!("{}/api/v1/workspace/tokens/revoke-all", app.address))
                    .header("Authorization", bearer(&admin))
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.body);
            assert_eq!(res.json()["error"]["code"], "invalid_json");
        }
        assert_eq!(app.count("personal_access_tokens").await, 2);
        let me = crate::helpers::api(&app, reqwest::Method::GET, "/api/v1/me", Some(&bearer(&writer))).await;
        assert_eq!(me.status, StatusCode::OK);
    }
}
