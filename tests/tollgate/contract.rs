//! The OpenAPI document, checked against the running server from the
//! document itself: every operation it describes is called with inputs made
//! from its own parameters, path and body schemas — valid ones and invalid
//! ones — and every status the server answers must be one the operation
//! declares, with a body that matches the declared schema.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::each_backend;
use crate::helpers::{ADMIN, READER, TestApp, WRITER, bearer, read};

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
            resolve(doc, target)
        }
        None => node,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("the document uses a type this check does not know: {other}"),
    }
}

/// The properties a schema names, its `allOf` parts included.
fn known_properties<'a>(doc: &'a Value, schema: &'a Value) -> Option<BTreeSet<&'a str>> {
    let schema = resolve(doc, schema);
    let mut names: Option<BTreeSet<&str>> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect());
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(more) = known_properties(doc, part) {
            names.get_or_insert_with(BTreeSet::new).extend(more);
        }
    }
    names
}

/// Checks `value` against `schema`: the parts of JSON Schema the document
/// uses (type, required, properties, items, allOf, oneOf, and patterns that
/// list alternatives). Stricter than JSON Schema on purpose: a field the
/// document does not name is a difference, so that the document can not
/// fall behind the answers.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut found = check(doc, schema, value, at);
    if let (Some(object), Some(known)) = (value.as_object(), known_properties(doc, schema)) {
        for name in object.keys() {
            if !known.contains(name.as_str()) {
                found.push(format!("{at}: `{name}` is not in the document"));
            }
        }
    }
    found
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut found = Vec::new();
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            found.extend(check(doc, part, value, at));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| violations(doc, o, value, at).is_empty())
            .count();
        if matching != 1 {
            found.push(format!("{at}: matches {matching} of the oneOf options"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        found.push(format!("{at}: {value} is not {types:?}"));
        return found;
    }
    if let (Some(pattern), Some(text)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        let alternatives = pattern
            .strip_prefix("^(")
            .and_then(|p| p.strip_suffix(")$"))
            .unwrap_or_else(|| panic!("a pattern this check can not read: {pattern}"));
        if !alternatives.split('|').any(|a| a == text) {
            found.push(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                found.push(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, field) in object {
            if let Some(field_schema) = properties.and_then(|p| p.get(name)) {
                found.extend(violations(
                    doc,
                    field_schema,
                    field,
                    &format!("{at}.{name}"),
                ));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            found.extend(violations(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    found
}

/// Values for a schema: some it allows, some it does not.
fn samples(doc: &Value, schema: &Value, known_ids: &[i64]) -> (Vec<Value>, Vec<Value>) {
    let schema = resolve(doc, schema);
    let (kind, nullable) = match schema.get("type") {
        Some(Value::String(one)) => (Some(one.as_str()), false),
        // `["integer", "null"]`: the one type, and `null` among the valid values.
        Some(Value::Array(many)) => (
            many.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            many.iter().any(|t| t == "null"),
        ),
        _ => (None, false),
    };
    let (mut valid, invalid) = match kind {
        Some("integer") => {
            let min = schema.get("minimum").and_then(Value::as_i64);
            let max = schema.get("maximum").and_then(Value::as_i64);
            let mut valid: Vec<Value> = match (min, max) {
                (Some(min), Some(max)) => vec![json!(min), json!(max)],
                _ => known_ids.iter().map(|id| json!(id)).collect(),
            };
            valid.dedup();
            let mut invalid = vec![json!("abc"), json!(1.5)];
            invalid.extend(min.map(|m| json!(m - 1)));
            invalid.extend(max.map(|m| json!(m + 1)));
            (valid, invalid)
        }
        Some("boolean") => (
            vec![json!(true), json!(false)],
            vec![json!("yes"), json!(1)],
        ),
        Some("string") => {
            // A pattern of alternatives lists the valid values; any other
            // string field gets one plain value.
            let valid = match schema.get("pattern").and_then(Value::as_str) {
                Some(pattern) => pattern
                    .strip_prefix("^(")
                    .and_then(|p| p.strip_suffix(")$"))
                    .map(|alternatives| alternatives.split('|').map(|a| json!(a)).collect())
                    .unwrap_or_default(),
                None => vec![json!("contract")],
            };
            (
                valid,
                vec![json!("!!"), json!("-5"), json!("x".repeat(300))],
            )
        }
        Some("object") => {
            let mut valid = vec![json!({})];
            let mut invalid = vec![json!([]), json!("x"), json!(1), json!(null)];
            let properties = schema.get("properties").and_then(Value::as_object);
            // Every property at once, each with its first valid value: the
            // only way a body with several required fields can succeed.
            let mut full = serde_json::Map::new();
            for (name, field) in properties.into_iter().flatten() {
                let (good, bad) = samples(doc, field, known_ids);
                if let Some(first) = good.first() {
                    full.insert(name.clone(), first.clone());
                }
                valid.extend(good.into_iter().map(|v| json!({ name: v })));
                invalid.extend(bad.into_iter().map(|v| json!({ name: v })));
                invalid.push(json!({ name: null }));
            }
            if full.len() > 1 {
                valid.push(Value::Object(full));
            }
            if schema.get("additionalProperties") == Some(&json!(false)) {
                invalid.push(json!({ "not_in_the_document": 1 }));
            }
            (valid, invalid)
        }
        Some("array") => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            let (good, bad) = samples(doc, items, known_ids);
            let mut valid = vec![json!([])];
            valid.extend(good.into_iter().map(|v| json!([v])));
            let mut invalid = vec![json!({}), json!("x"), json!(1), json!(null)];
            invalid.extend(bad.into_iter().map(|v| json!([v])));
            (valid, invalid)
        }
        other => panic!("no samples for schema type {other:?}"),
    };
    if nullable {
        valid.push(Value::Null);
    }
    (valid, invalid)
}

/// One request to make.
struct Case {
    method: Method,
    path: String,
    auth: Option<String>,
    body: Option<String>,
    what: String,
}

async fn send(app: &TestApp, case: &Case) -> crate::helpers::Page {
    let mut request = reqwest::Client::new()
        .request(case.method.clone(), format!("{}{}", app.address, case.path));
    if let Some(auth) = &case.auth {
        request = request.header("Authorization", auth);
    }
    if let Some(body) = &case.body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.clone());
    }
    read(request.send().await.expect("request")).await
}

/// A service account of the Admin's workspace with one token, made through
/// the API for one request: (account id, token id).
async fn service_account_with_token(app: &TestApp, n: &mut u32) -> (i64, i64) {
    let (_, admin_token) = fresh(app, ADMIN, "admin", n).await;
    let call = |path: &'static str, body: Value| {
        let request = reqwest::Client::new()
            .post(format!("{}{path}", app.address))
            .header("Authorization", bearer(&admin_token))
            .json(&body);
        async move { read(request.send().await.expect("request")).await }
    };
    let created = call(
        "/api/v1/service-accounts",
        json!({"name": format!("contract account {n}"), "role": "admin"}),
    )
    .await;
    assert_eq!(
        created.status,
        reqwest::StatusCode::CREATED,
        "{}",
        created.body
    );
    let account = created.json()["id"].as_i64().unwrap();
    let token = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/service-accounts/{account}/tokens",
            app.address
        ))
        .header("Authorization", bearer(&admin_token))
        .json(&json!({"name": "contract"}))
        .send()
        .await
        .expect("request");
    let token = read(token).await;
    assert_eq!(token.status, reqwest::StatusCode::CREATED, "{}", token.body);
    (account, token.json()["id"].as_i64().unwrap())
}

/// A token of `email` with `scope`, made for one request.
async fn fresh(app: &TestApp, email: &str, scope: &str, n: &mut u32) -> (i64, String) {
    *n += 1;
    app.token_for(email, &format!("contract {n}"), scope).await
}

each_backend! {
    async fn every_answer_of_every_documented_operation_is_declared(app) {
        let doc = read(reqwest::get(format!("{}/api/openapi.json", app.address)).await.unwrap()).await.json();
        let reader_id = app.user_id(READER).await;
        // A token whose owner is then disabled: refused with 403 everywhere.
        let disabled = "disabled@example.com";
        app.core.create_user(tollgate::service::auth::NewUser { email: disabled, name: None, role: "read-write", workspace: None, password: crate::helpers::PASSWORD }, tollgate::clock::now()).await.unwrap();
        sqlx::query("UPDATE users SET disabled_at = 1 WHERE email = $1").bind(disabled).execute(app.db().pool()).await.unwrap();
        let mut n = 0;
        // Per operation: the statuses seen, to show each was really exercised.
        let mut seen: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        // Operations that take no token (the document, leak reports).
        let mut unsecured: BTreeSet<String> = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let name = format!("{} {path}", method.to_uppercase());
                let method: Method = method.to_uppercase().parse().unwrap();
                let secured = operation.get("security") != Some(&json!([{}]));
                if !secured {
                    unsecured.insert(name.clone());
                }
                let params: Vec<&Value> = operation["parameters"].as_array().into_iter().flatten().collect();
                let body_schema = operation.pointer("/requestBody/content/application~1json/schema");
                let mut cases = Vec::new();
                // A fresh token for each case: deletion and rotation consume theirs.
                let mut case = |query: String, id: Option<String>, body: Option<String>, auth: Option<String>, what: String| {
                    let mut full = path.clone();
                    if let Some(id) = id {
                        full = full.replace("{id}", &id);
                    }
                    if !query.is_empty() {
                        full = format!("{full}?{query}");
                    }
                    cases.push(Case { method: method.clone(), path: full, auth, body, what });
                };
                // Tokens are made below, per case; `None` marks "use a fresh Admin token".
                let (valid_ids, invalid_ids) = match params.iter().find(|p| p["in"] == "path") {
                    Some(p) => {
                        let (_, bad) = samples(&doc, &p["schema"], &[]);
                        (vec![None], bad.into_iter().map(|v| Some(v.as_str().map(str::to_owned).unwrap_or(v.to_string()))).chain([Some("0".to_owned())]).collect())
                    }
                    None => (vec![None], vec![]),
                };
                let query_params: Vec<&&Value> = params.iter().filter(|p| p["in"] == "query").collect();
                for id in &valid_ids {
                    case(String::new(), id.clone(), None, None, "valid".into());
                    if secured {
                        case(String::new(), id.clone(), None, Some(String::new()), "no token".into());
                        case(String::new(), id.clone(), None, Some("Bearer tgp_garbage".into()), "bad token".into());
                        case(String::new(), id.clone(), None, Some("read-only".into()), "read-only token".into());
                        case(String::new(), id.clone(), None, Some("owner disabled".into()), "owner disabled".into());
                    }
                    for p in &query_params {
                        let param = p["name"].as_str().unwrap();
                        let (good, bad) = samples(&doc, &p["schema"], &[]);
                        for v in good {
                            case(format!("{param}={}", v.as_str().map(str::to_owned).unwrap_or(v.to_string())), id.clone(), None, None, format!("valid {param}"));
                        }
                        for v in bad {
                            case(format!("{param}={}", v.as_str().map(str::to_owned).unwrap_or(v.to_string())), id.clone(), None, None, format!("invalid {param}"));
                        }
                    }
                }
                for id in invalid_ids {
                    case(String::new(), id.clone(), None, None, format!("invalid path id {id:?}"));
                }
                if let Some(schema) = body_schema {
                    let (good, bad) = samples(&doc, schema, &[reader_id, 0]);
                    for v in good {
                        case(String::new(), None, Some(v.to_string()), None, format!("valid body {v}"));
                    }
                    for v in bad {
                        case(String::new(), None, Some(v.to_string()), None, format!("invalid body {v}"));
                    }
                    case(String::new(), None, Some("{not json".into()), None, "unreadable body".into());
                    case(String::new(), None, Some(format!("{{\"user_id\": {reader_id}, \"pad\": \"{}\"}}", "x".repeat(20_000))), None, "too large a body".into());
                }
                for mut c in cases {
                    // Fill in the tokens: fresh for every case.
                    let (_, admin_token) = fresh(&app, ADMIN, "admin", &mut n).await;
                    c.auth = match c.auth.as_deref() {
                        None => Some(bearer(&admin_token)),
                        Some("") => None,
                        Some("read-only") => Some(bearer(&fresh(&app, WRITER, "read-only", &mut n).await.1)),
                        // Made for the case: a revoke-all earlier in the run
                        // may have taken an older one.
                        Some("owner disabled") => {
                            let enable = |at: Option<i64>| sqlx::query("UPDATE users SET disabled_at = $1 WHERE email = $2").bind(at).bind(disabled).execute(app.db().pool());
                            enable(None).await.unwrap();
                            let token = fresh(&app, disabled, "read-write", &mut n).await.1;
                            enable(Some(1)).await.unwrap();
                            Some(bearer(&token))
                        }
                        Some(other) => Some(other.to_owned()),
                    };
                    // Ids of what the path names: a service account (and its
                    // token), the token's own workspace, else a token.
                    if c.path.contains("/service-accounts/{id}") {
                        let (account, token) = service_account_with_token(&app, &mut n).await;
                        c.path = c.path.replace("{id}", &account.to_string()).replace("{token_id}", &token.to_string());
                    }
                    if c.path.contains("{token_id}") {
                        let (_, token) = service_account_with_token(&app, &mut n).await;
                        c.path = c.path.replace("{token_id}", &token.to_string());
                    }
                    if c.path.contains("/workspaces/{id}") {
                        let me = read(reqwest::Client::new().get(format!("{}/api/v1/me", app.address)).header("Authorization", bearer(&admin_token)).send().await.unwrap()).await;
                        c.path = c.path.replace("{id}", &me.json()["workspace"]["id"].to_string());
                    }
                    if c.path.contains("{id}") {
                        let (victim, _) = fresh(&app, ADMIN, "read-only", &mut n).await;
                        c.path = c.path.replace("{id}", &victim.to_string());
                    }
                    let res = send(&app, &c).await;
                    let status = res.status.as_str().to_owned();
                    let declared = &operation["responses"][status.as_str()];
                    assert!(declared.is_object(), "{name} ({}) answered {status}, which the document does not declare: {}", c.what, res.body);
                    let declared = resolve(&doc, declared);
                    let schema = declared.pointer("/content/application~1json/schema");
                    match schema {
                        Some(schema) => {
                            let body: Value = serde_json::from_str(&res.body).unwrap_or_else(|_| panic!("{name} ({}): not JSON: {}", c.what, res.body));
                            let wrong = violations(&doc, schema, &body, "body");
                            assert!(wrong.is_empty(), "{name} ({}) answered {status} with a body the document does not describe: {wrong:?}", c.what);
                        }
                        None => match declared.get("content").and_then(Value::as_object) {
                            // Not JSON (a download): the answer's type must be one declared.
                            Some(types) => {
                                let answered = res.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
                                assert!(types.keys().any(|t| answered.starts_with(t.as_str())), "{name} ({}) answered {status} as {answered:?}, not one of {:?}", c.what, types.keys());
                            }
                            None => assert!(res.body.is_empty(), "{name} ({}) answered {status} with a body the document does not describe", c.what),
                        },
                    }
                    seen.entry(name.clone()).or_default().insert(res.status.as_u16());
                    // Keep under the 50-token quota: the run makes many.
                    sqlx::query("DELETE FROM personal_access_tokens WHERE id <> 0 AND name LIKE 'contract %'").execute(app.db().pool()).await.unwrap();
                }
            }
        }
        // Nothing vacuous: every operation succeeded at least once, and every
        // secured one refused at least once.
        for (name, statuses) in &seen {
            assert!(statuses.iter().any(|s| (200..300).contains(s)), "{name} never succeeded: {statuses:?}");
            if !unsecured.contains(name) {
                assert!(statuses.contains(&401) && statuses.contains(&403), "{name}: {statuses:?}");
            }
        }
        assert_eq!(seen.len(), tollgate::api::ROUTES.len());
    }
}
