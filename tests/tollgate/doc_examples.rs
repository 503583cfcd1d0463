//! The documentation's examples, run: every `sh` block of the user guide
//! and of the README's API section is run with bash against a live server,
//! with the documented variables (`$TOLLGATE_TOKEN`, `$TOKEN`) set to a real
//! token of the email the example names, `$TOLLGATE_ADMIN_TOKEN` to an
//! Admin-scoped token of the workspace's Admin, and the example's address replaced
//! by the server's. Each must answer JSON without an error, and every `json`
//! sample must have the shape of what the API really answers.

use serde_json::Value;

use crate::each_backend;
use crate::helpers::TestApp;

/// A fenced block of a markdown text: its language and its lines.
#[derive(Debug, PartialEq)]
struct Block {
    language: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, open.take()) {
            (Some(language), None) => {
                open = Some(Block {
                    language: language.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(block)) => found.push(block),
            (None, Some(mut block)) => {
                block.text.push_str(line);
                block.text.push('\n');
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    found
}

/// The part of `markdown` under the heading `title`, up to the next one.
fn section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let start = markdown
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &markdown[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

fn repository_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The examples to run: the guide's blocks and the README's API section's.
fn documented() -> Vec<(String, Block)> {
    let guide = repository_file("docs/user-guide.md");
    let readme = repository_file("README.md");
    let mut all: Vec<(String, Block)> = blocks(&guide)
        .into_iter()
        .map(|b| ("docs/user-guide.md".to_owned(), b))
        .collect();
    all.extend(
        blocks(section(&readme, "The API"))
            .into_iter()
            .map(|b| ("README.md (The API)".to_owned(), b)),
    );
    all
}

/// The shape of a JSON value: its keys and the kinds of its values, so that
/// a sample with other data but the same fields compares equal.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::String(_) => Value::from("string"),
        Value::Number(_) => Value::from("number"),
        Value::Bool(_) => Value::from("bool"),
        Value::Null => Value::from("null"),
    }
}

/// The emails and addresses an example names.
fn emails(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ':')
        .filter(|w| w.contains('@') && w.ends_with(".com"))
        .map(str::to_owned)
        .collect()
}

async fn member(app: &TestApp, email: &str) -> String {
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    if exists == 0 {
        let user = tollgate::service::auth::NewUser {
            email,
            name: Some("Your Name"),
            role: "read-write",
            workspace: None,
            password: crate::helpers::PASSWORD,
        };
        app.core
            .create_user(user, tollgate::clock::now())
            .await
            .unwrap();
    }
    app.token_for(
        email,
        &format!("docs {email} {}", rand_suffix()),
        "read-write",
    )
    .await
    .1
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

each_backend! {
    async fn every_example_in_the_docs_runs_and_every_sample_matches_the_api(app) {
        let examples = documented();
        let mut ran = 0;
        let mut last_answer: Option<Value> = None;
        for (file, block) in &examples {
            match block.language.as_str() {
                "sh" => {
                    let email = emails(&block.text).into_iter().next().unwrap_or_else(|| "you@example.com".to_owned());
                    let token = member(&app, &email).await;
                    let script = block
                        .text
                        .replace("https://tollgate.example.com", &app.address)
                        .replace("http://127.0.0.1:8080", &app.address);
                    assert!(script.contains(&app.address), "{file}: an example that names no known address:\n{}", block.text);
                    let mut command = tokio::process::Command::new("bash");
                    command
                        .args(["-euo", "pipefail", "-c", &format!("{script}\n")])
                        .env("TOLLGATE_TOKEN", &token)
                        .env("TOKEN", &token);
                    if block.text.contains("$TOLLGATE_ADMIN_TOKEN") {
                        let name = format!("docs admin {}", rand_suffix());
                        command.env("TOLLGATE_ADMIN_TOKEN", app.token_for(crate::helpers::ADMIN, &name, "admin").await.1);
                    }
                    let output = command
                        .output()
                        .await
                        .expect("run bash");
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    assert!(output.status.success(), "{file}: the example failed:\n{}\n{}", block.text, String::from_utf8_lossy(&output.stderr));
                    // One JSON answer per command of the example.
                    let answers: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
                        .into_iter::<Value>()
                        .collect::<Result<_, _>>()
                        .unwrap_or_else(|_| panic!("{file}: the example did not answer JSON:\n{}\n{stdout}", block.text));
                    let commands = block.text.lines().filter(|l| l.trim_start().starts_with("curl")).count();
                    assert_eq!(answers.len(), commands, "{file}: one answer per command:\n{}\n{stdout}", block.text);
                    for answer in &answers {
                        assert!(answer.get("error").is_none(), "{file}: the example answered an error:\n{}\n{stdout}", block.text);
                    }
                    last_answer = answers.into_iter().next();
                    ran += 1;
                }
                "json" => {
                    let sample: Value = serde_json::from_str(&block.text).unwrap_or_else(|e| panic!("{file}: a json sample that is not JSON ({e}):\n{}", block.text));
                    let answer = last_answer.as_ref().unwrap_or_else(|| panic!("{file}: a json sample with no example before it"));
                    assert_eq!(shape(&sample), shape(answer), "{file}: the sample no longer has the fields the API answers:\n{}", block.text);
                    ran += 1;
                }
                _ => {}
            }
        }
        assert!(ran >= 4, "the docs' examples were found: {examples:?}");
    }
}

#[test]
fn blocks_and_sections_are_read_as_written() {
    let text =
        "intro\n## The API\n\n```sh\ncurl x\n```\n\n```json\n{}\n```\n## Next\n```sh\nno\n```\n";
    let api = section(text, "The API");
    assert_eq!(
        blocks(api),
        vec![
            Block {
                language: "sh".into(),
                text: "curl x\n".into()
            },
            Block {
                language: "json".into(),
                text: "{}\n".into()
            },
        ]
    );
    assert_eq!(blocks(text).len(), 3);
    assert_eq!(
        emails("curl -u \"ada@example.com:$TOKEN\" http://x"),
        vec!["ada@example.com"]
    );
}
