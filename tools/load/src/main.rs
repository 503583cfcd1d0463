//! The load scenario of `scripts/load`: Goose users playing browser
//! sessions and API clients against one Tollgate, then a verdict.
//!
//! Every Goose user signs in as an account of its own (`LOAD_EMAIL_PREFIX`
//! + its index + `@example.com`, password `LOAD_PASSWORD`, created by the
//! script), so that one user's "Revoke all" never touches another's tokens
//! and every status can be predicted:
//!
//! - **browser**: open the tokens tab, generate a token (with the form's
//!   CSRF token), read it from the show-once page, use it once, delete it
//!   through the confirmation page (after which the API must refuse it:
//!   an expected 401), every fourth round "Revoke all", every fifth round
//!   sign out and in again.
//! - **api**: with a token generated in the dashboard at start, call
//!   `/api/v1/me` five times, list its tokens, delete a spare token (made
//!   in the dashboard) by id, check the deleted and the rotated-out token
//!   are refused (expected 401s), rotate.
//!
//! Any other status, or no answer, is unexpected. Goals: no unexpected
//! status, and p99 of `GET /api/v1/me` under 10 ms.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use goose::prelude::*;
use reqwest::header::HeaderMap;

const ME_P99_GOAL_MS: f64 = 10.0;

/// Unexpected answers by "operation status" (status 0: no answer).
static UNEXPECTED: LazyLock<Mutex<BTreeMap<String, usize>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));
static NAMES: AtomicUsize = AtomicUsize::new(0);

fn password() -> String {
    std::env::var("LOAD_PASSWORD").unwrap_or_else(|_| "load test password".to_owned())
}

fn email(user: &GooseUser) -> String {
    let prefix = std::env::var("LOAD_EMAIL_PREFIX").unwrap_or_else(|_| "load".to_owned());
    format!("{prefix}{}@example.com", user.weighted_users_index)
}

fn fresh_name(kind: &str) -> String {
    format!("{kind}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

fn unexpected(op: &str, status: u16) {
    if let Ok(mut map) = UNEXPECTED.lock() {
        *map.entry(format!("{op} {status}")).or_default() += 1;
    }
}

fn fail(message: String) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message))
}

/// The origin a browser on the dashboard sends with its forms.
fn origin(user: &GooseUser) -> String {
    user.base_url.as_str().trim_end_matches('/').to_owned()
}

/// One request named `op`; an answer outside `expected` is counted as
/// unexpected and ends the round. Returns the status, headers and body.
async fn call(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    op: &'static str,
    expected: &[u16],
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<(u16, HeaderMap, String), Box<TransactionError>> {
    let builder = build(user.get_request_builder(&method, path)?);
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(op)
        .set_request_builder(builder)
        .build();
    let mut goose = user.request(request).await?;
    let response = match goose.response {
        Ok(response) => response,
        Err(err) => {
            unexpected(op, 0);
            return Err(fail(format!("{op}: no answer: {err}")));
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    if expected.contains(&status) {
        if !goose.request.success {
            user.set_success(&mut goose.request)?;
        }
        Ok((status, headers, body))
    } else {
        unexpected(op, status);
        user.set_failure(
            &format!("{op}: unexpected {status}"),
            &mut goose.request,
            Some(&headers),
            Some(&body),
        )?;
        Err(fail(format!("{op}: unexpected {status}")))
    }
}

/// The value of `attr` in the first tag that holds `marker`.
fn attribute(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..at + html[at..].find('>')?];
    let key = format!("{attr}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].to_owned())
}

fn csrf_of(html: &str) -> Option<String> {
    attribute(html, "name=\"csrf-token\"", "content")
}

/// The id of the first token on the tokens tab (from its delete link).
fn first_token_id(html: &str) -> Option<String> {
    html.split("/profile/tokens/").skip(1).find_map(|rest| {
        let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!id.is_empty() && rest[id.len()..].starts_with("/delete")).then_some(id)
    })
}

/// Per-user state: the session's CSRF token, the API token in use.
#[derive(Default)]
struct State {
    csrf: String,
    token: String,
    round: usize,
}

static STATES: LazyLock<Mutex<HashMap<usize, State>>> = LazyLock::new(Default::default);

fn with_state<R>(user: &GooseUser, f: impl FnOnce(&mut State) -> R) -> R {
    let mut states = STATES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(states.entry(user.weighted_users_index).or_default())
}

async fn post_form(
    user: &mut GooseUser,
    path: &str,
    op: &'static str,
    expected: &[u16],
    fields: Vec<(&'static str, String)>,
) -> Result<(u16, HeaderMap, String), Box<TransactionError>> {
    let origin = origin(user);
    let mut all = vec![("csrf_token", with_state(user, |s| s.csrf.clone()))];
    all.extend(fields);
    call(user, GooseMethod::Post, path, op, expected, move |b| {
        b.header("Origin", origin).form(&all)
    })
    .await
}

async fn sign_in(user: &mut GooseUser) -> TransactionResult {
    let (_, _, page) = call(
        user,
        GooseMethod::Get,
        "/login",
        "login page",
        &[200],
        |b| b,
    )
    .await?;
    let csrf = csrf_of(&page).ok_or_else(|| fail("no CSRF token".into()))?;
    with_state(user, |s| s.csrf = csrf);
    let fields = vec![("email", email(user)), ("password", password())];
    post_form(user, "/login", "sign in", &[303], fields).await?;
    // The CSRF token lives in the session, which sign-in renews.
    let (_, _, page) = call(user, GooseMethod::Get, "/profile", "profile", &[200], |b| b).await?;
    let csrf = csrf_of(&page).ok_or_else(|| fail("no CSRF token".into()))?;
    with_state(user, |s| s.csrf = csrf);
    Ok(())
}

/// Generates a token on the tokens tab and reads it from the show-once page.
async fn generate(user: &mut GooseUser, kind: &str) -> Result<String, Box<TransactionError>> {
    let fields = vec![("name", fresh_name(kind))];
    post_form(user, "/profile/tokens", "generate", &[303], fields).await?;
    let (_, _, shown) = call(
        user,
        GooseMethod::Get,
        "/profile/tokens/created",
        "show once",
        &[200],
        |b| b,
    )
    .await?;
    attribute(&shown, "id=\"issued-token\"", "value")
        .ok_or_else(|| fail("the token was not shown".into()))
}

async fn api(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    op: &'static str,
    token: &str,
    expected: &[u16],
) -> Result<(u16, HeaderMap, String), Box<TransactionError>> {
    let value = format!("Bearer {token}");
    call(user, method, path, op, expected, move |b| {
        b.header("Authorization", value)
    })
    .await
}

async fn browser_start(user: &mut GooseUser) -> TransactionResult {
    // A browser: keeps cookies, and looks at each redirect itself.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none());
    user.set_client_builder(client).await?;
    sign_in(user).await
}

async fn browser_round(user: &mut GooseUser) -> TransactionResult {
    let round = with_state(user, |s| {
        s.round += 1;
        s.round
    });
    call(
        user,
        GooseMethod::Get,
        "/profile/tokens",
        "tokens tab",
        &[200],
        |b| b,
    )
    .await?;
    let token = generate(user, "browser").await?;
    // Copied into a script, it works at once.
    api(user, GooseMethod::Get, "/api/v1/me", "me", &token, &[200]).await?;
    let (_, _, list) = call(
        user,
        GooseMethod::Get,
        "/profile/tokens",
        "tokens tab",
        &[200],
        |b| b,
    )
    .await?;
    if let Some(id) = first_token_id(&list) {
        let path = format!("/profile/tokens/{id}/delete");
        call(
            user,
            GooseMethod::Get,
            &path,
            "delete dialog",
            &[200],
            |b| b,
        )
        .await?;
        post_form(user, &path, "delete", &[303], Vec::new()).await?;
    }
    if round % 4 == 0 {
        generate(user, "browser").await?;
        call(
            user,
            GooseMethod::Get,
            "/profile/tokens/revoke-all",
            "revoke-all dialog",
            &[200],
            |b| b,
        )
        .await?;
        post_form(
            user,
            "/profile/tokens/revoke-all",
            "revoke all",
            &[303],
            Vec::new(),
        )
        .await?;
        // Every token of this member is gone: this one is refused.
        api(
            user,
            GooseMethod::Get,
            "/api/v1/me",
            "me (revoked)",
            &token,
            &[401],
        )
        .await?;
    }
    if round % 5 == 0 {
        post_form(user, "/logout", "sign out", &[303], Vec::new()).await?;
        sign_in(user).await?;
    }
    Ok(())
}

async fn api_start(user: &mut GooseUser) -> TransactionResult {
    browser_start(user).await?;
    let token = generate(user, "api").await?;
    with_state(user, |s| s.token = token);
    Ok(())
}

async fn api_round(user: &mut GooseUser) -> TransactionResult {
    let token = with_state(user, |s| s.token.clone());
    for _ in 0..5 {
        api(user, GooseMethod::Get, "/api/v1/me", "me", &token, &[200]).await?;
    }
    // A spare token, made in the dashboard, deleted by id through the API.
    let spare = generate(user, "spare").await?;
    let (_, _, me) = api(user, GooseMethod::Get, "/api/v1/me", "me", &spare, &[200]).await?;
    let spare_id = serde_json::from_str::<serde_json::Value>(&me)
        .ok()
        .and_then(|v| v["token"]["id"].as_i64())
        .ok_or_else(|| fail("no token id in /me".into()))?;
    api(
        user,
        GooseMethod::Get,
        "/api/v1/tokens",
        "list",
        &token,
        &[200],
    )
    .await?;
    let path = format!("/api/v1/tokens/{spare_id}");
    api(
        user,
        GooseMethod::Delete,
        &path,
        "delete by id",
        &token,
        &[204],
    )
    .await?;
    api(
        user,
        GooseMethod::Get,
        "/api/v1/me",
        "me (deleted)",
        &spare,
        &[401],
    )
    .await?;
    let (_, _, rotated) = api(
        user,
        GooseMethod::Post,
        "/api/v1/tokens/self/rotate",
        "rotate",
        &token,
        &[200],
    )
    .await?;
    let fresh = serde_json::from_str::<serde_json::Value>(&rotated)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .ok_or_else(|| fail("no token in the rotation answer".into()))?;
    with_state(user, |s| s.token = fresh);
    api(
        user,
        GooseMethod::Get,
        "/api/v1/me",
        "me (rotated out)",
        &token,
        &[401],
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let metrics = GooseAttack::initialize()?
        .register_scenario(
            scenario!("browser")
                .register_transaction(transaction!(browser_start).set_on_start())
                .register_transaction(transaction!(browser_round)),
        )
        .register_scenario(
            scenario!("api")
                .register_transaction(transaction!(api_start).set_on_start())
                .register_transaction(transaction!(api_round)),
        )
        // Sign-ins at start belong to the mix too.
        .set_default(GooseDefault::NoResetMetrics, true)?
        .execute()
        .await?;

    let mut ops: Vec<_> = metrics.requests.iter().collect();
    ops.sort_by(|a, b| a.0.cmp(b.0));
    let mut total = 0;
    let mut me_p99_ms = None;
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9}  statuses",
        "operation", "requests", "p50 ms", "p99 ms"
    );
    for (name, data) in &ops {
        let p50 = data.raw_data.percentile_us(0.50) as f64 / 1000.0;
        let p99 = data.raw_data.percentile_us(0.99) as f64 / 1000.0;
        total += data.raw_data.counter;
        if name.as_str() == "GET me" {
            me_p99_ms = Some(p99);
        }
        let mut statuses: Vec<_> = data.status_code_counts.iter().collect();
        statuses.sort();
        let statuses: Vec<String> = statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        println!(
            "{name:<28} {:>9} {p50:>9.2} {p99:>9.2}  {}",
            data.raw_data.counter,
            statuses.join(" ")
        );
    }
    let unexpected = UNEXPECTED.lock().map(|m| m.clone()).unwrap_or_default();
    let unexpected_total: usize = unexpected.values().sum();
    println!();
    println!("requests: {total} in {} s", metrics.duration);
    println!("unexpected statuses: {unexpected_total} {unexpected:?}");
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "{} 0 unexpected statuses (got {unexpected_total})",
        verdict(unexpected_total == 0 && total > 0)
    );
    match me_p99_ms {
        Some(p99) => println!(
            "{} p99 of GET /api/v1/me under {ME_P99_GOAL_MS} ms during the mix (got {p99:.2} ms)",
            verdict(p99 < ME_P99_GOAL_MS)
        ),
        None => println!("MISS p99 of GET /api/v1/me: no request was made"),
    }
    Ok(())
}
