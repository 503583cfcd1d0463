//! Issue: what was answered survives a crash. The real binary serves a
//! database while clients create, delete and revoke tokens, sign in and
//! out, invite and accept; it is killed with SIGKILL in the middle, started
//! again on the same database, and everything the clients were told is
//! checked against what the new process says.
//!
//! Only answered requests count: a request cut by the kill may or may not
//! have taken effect, so what it touched is set aside as uncertain.

use std::collections::HashSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tollgate::clock::now;
use tollgate::domain::UserId;
use tollgate::service::Tollgate;
use tollgate::service::auth::NewUser;
use tollgate::service::tokens::GenerateRequest;
use tollgate::storage::Db;

use crate::helpers::{ADMIN, Backend, PASSWORD, TestClient, TestDatabase, backends, bearer, seed};

/// The `tollgate` binary serving a database on a free loopback port.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `tollgate serve` on `database_url` and waits until it listens.
    /// "Last used" times are written only at shutdown (flush every hour),
    /// so a test sees exactly what shutdown writes.
    pub fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    /// As `start`, with more environment variables.
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--last-used-flush-seconds",
                "3600",
            ])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .env("TOLLGATE_LOG_FORMAT", "text")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tollgate");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        // Keeps reading the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("http://")
                    && let Some(tx) = address_tx.take()
                {
                    let address = line[at..].split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(address.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", log.lock().unwrap()));
        Self {
            child,
            address,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (at most `limit`) for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no handler runs.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Creates a Read-Write member in the seeded workspace.
pub async fn create_member(db: &Db, email: &str, role: &str) {
    Tollgate::new(db.clone(), None)
        .create_user(
            NewUser {
                email,
                name: None,
                role,
                workspace: None,
                password: PASSWORD,
            },
            now(),
        )
        .await
        .expect("create member");
}

/// Issues a token for `email` directly through the service.
pub async fn issue_token(db: &Db, email: &str, name: &str) -> String {
    let core = Tollgate::new(db.clone(), None);
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(db.pool())
        .await
        .expect("user id");
    let user = core
        .signed_in_user(UserId(id))
        .await
        .expect("load user")
        .expect("user exists");
    let request = GenerateRequest {
        name: name.to_owned(),
        scope: None,
        workspace: None,
        expiry: None,
    };
    core.generate_token(
        &tollgate::service::Actor::Member(user),
        &request,
        &Default::default(),
        now(),
    )
    .await
    .expect("issue token")
    .token
    .expose()
    .to_owned()
}

/// What the clients were told, and what was cut by the kill.
#[derive(Default)]
struct Ledger {
    /// Tokens whose creation (or rotation) was answered and that were not
    /// deleted since.
    live_tokens: HashSet<String>,
    /// Tokens whose deletion, revocation or rotation was answered.
    dead_tokens: HashSet<String>,
    /// Session cookies whose sign-in was answered.
    signed_in: HashSet<String>,
    /// Session cookies whose sign-out was answered.
    signed_out: HashSet<String>,
    /// Invitation codes whose creation was answered (not yet accepted).
    invited: HashSet<String>,
    /// (code, email, session cookie) of answered acceptances.
    accepted: Vec<(String, String, String)>,
    /// Whatever a cut request touched.
    uncertain: HashSet<String>,
    /// Answered requests per kind, to show the clients did their work.
    answered: std::collections::BTreeMap<&'static str, usize>,
}

type Shared = Arc<Mutex<Ledger>>;

fn note(ledger: &Shared, kind: &'static str, change: impl FnOnce(&mut Ledger)) {
    let mut ledger = ledger.lock().unwrap();
    *ledger.answered.entry(kind).or_default() += 1;
    change(&mut ledger);
}

/// Sets aside what a request may change, until its answer says how it went.
fn at_risk<'a>(ledger: &Shared, items: impl IntoIterator<Item = &'a String>) {
    let mut ledger = ledger.lock().unwrap();
    for item in items {
        ledger.uncertain.insert(item.clone());
    }
}

fn settled<'a>(ledger: &mut Ledger, items: impl IntoIterator<Item = &'a String>) {
    for item in items {
        ledger.uncertain.remove(item);
    }
}

/// Any failure to get an answer (the kill) ends a client.
type Step<T> = Result<T, reqwest::Error>;

struct Browser {
    client: TestClient,
    /// The session's CSRF token, read once from a page.
    csrf: Mutex<Option<String>>,
}

impl Browser {
    fn new(address: &str) -> Self {
        Self {
            client: TestClient::new(address),
            csrf: Mutex::new(None),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Step<crate::helpers::Page> {
        let res = request.send().await?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await?;
        Ok(crate::helpers::Page {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, path: &str) -> Step<crate::helpers::Page> {
        self.send(self.client.http.get(self.client.url(path))).await
    }

    async fn csrf(&self) -> Step<String> {
        if let Some(token) = self.csrf.lock().unwrap().clone() {
            return Ok(token);
        }
        let page = self.get("/profile").await?;
        let page = if page.status == StatusCode::OK {
            page
        } else {
            self.get("/login").await?
        };
        let token = page
            .attr("meta[name=csrf-token]", "content")
            .expect("CSRF token");
        *self.csrf.lock().unwrap() = Some(token.clone());
        Ok(token)
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Step<crate::helpers::Page> {
        let csrf = self.csrf().await?;
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(
            self.client
                .http
                .post(self.client.url(path))
                .header("Origin", &self.client.base)
                .form(&all),
        )
        .await
    }

    fn session(&self) -> String {
        self.client.cookie("tollgate_session").expect("session")
    }

    async fn sign_in(&self, email: &str) -> Step<bool> {
        let res = self
            .post("/login", &[("email", email), ("password", PASSWORD)])
            .await?;
        // A CSRF token is bound to the sign-in: read a fresh one next time.
        *self.csrf.lock().unwrap() = None;
        Ok(res.status == StatusCode::SEE_OTHER)
    }
}

async fn api_get(address: &str, path: &str, token: &str) -> Step<crate::helpers::Page> {
    let res = reqwest::Client::new()
        .get(format!("{address}{path}"))
        .header("Authorization", bearer(token))
        .send()
        .await?;
    let status = res.status();
    let headers = res.headers().clone();
    Ok(crate::helpers::Page {
        status,
        headers,
        body: res.text().await?,
    })
}

/// Generates tokens on the tokens tab and deletes or revokes them, by page
/// and by API.
async fn pages_client(address: String, email: &'static str, ledger: Shared) -> Step<()> {
    let browser = Browser::new(&address);
    assert!(browser.sign_in(email).await?, "sign-in of {email}");
    note(&ledger, "sign-in", |l| {
        l.signed_in.insert(browser.session());
    });
    let mut mine: Vec<String> = Vec::new();
    for i in 0.. {
        let name = format!("crash-{i}");
        let res = browser.post("/profile/tokens", &[("name", &name)]).await?;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let shown = browser.get("/profile/tokens/created").await?;
        let secret = shown.attr("#issued-token", "value").expect("token shown");
        note(&ledger, "generate (page)", |l| {
            l.live_tokens.insert(secret.clone());
        });
        mine.push(secret);
        if i % 3 == 2 {
            let victim = mine.remove(0);
            let me = api_get(&address, "/api/v1/me", &victim).await?;
            assert_eq!(me.status, StatusCode::OK, "{}", me.body);
            let id = me.json()["token"]["id"].as_i64().expect("token id");
            at_risk(&ledger, [&victim]);
            let deleted = if i % 2 == 0 {
                let res = browser
                    .post(&format!("/profile/tokens/{id}/delete"), &[])
                    .await?;
                res.status == StatusCode::SEE_OTHER
            } else {
                let res = reqwest::Client::new()
                    .delete(format!("{address}/api/v1/tokens/{id}"))
                    .header("Authorization", bearer(&victim))
                    .send()
                    .await?;
                res.status() == StatusCode::NO_CONTENT
            };
            assert!(deleted, "token {id} deleted");
            note(&ledger, "delete", |l| {
                settled(l, [&victim]);
                l.live_tokens.remove(&victim);
                l.dead_tokens.insert(victim.clone());
            });
        }
        if i == 3 {
            at_risk(&ledger, &mine);
            let res = browser.post("/profile/tokens/revoke-all", &[]).await?;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
            note(&ledger, "revoke all", |l| {
                settled(l, &mine);
                for token in &mine {
                    l.live_tokens.remove(token);
                    l.dead_tokens.insert(token.clone());
                }
            });
            mine.clear();
        }
    }
    Ok(())
}

/// Uses its token and rotates it, over and over.
async fn api_client(address: String, first: String, ledger: Shared) -> Step<()> {
    note(&ledger, "issue", |l| {
        l.live_tokens.insert(first.clone());
    });
    let http = reqwest::Client::new();
    let mut token = first;
    loop {
        let me = api_get(&address, "/api/v1/me", &token).await?;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        let list = api_get(&address, "/api/v1/tokens", &token).await?;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        at_risk(&ledger, [&token]);
        let res = http
            .post(format!("{address}/api/v1/tokens/self/rotate"))
            .header("Authorization", bearer(&token))
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let fresh = body["token"].as_str().expect("new token").to_owned();
        note(&ledger, "rotate", |l| {
            settled(l, [&token]);
            l.live_tokens.remove(&token);
            l.dead_tokens.insert(token.clone());
            l.live_tokens.insert(fresh.clone());
        });
        token = fresh;
    }
}

/// Signs in and out with fresh browsers.
async fn sessions_client(address: String, email: &'static str, ledger: Shared) -> Step<()> {
    for i in 0.. {
        let browser = Browser::new(&address);
        assert!(browser.sign_in(email).await?, "sign-in of {email}");
        let session = browser.session();
        note(&ledger, "sign-in", |l| {
            l.signed_in.insert(session.clone());
        });
        if i % 2 == 1 {
            at_risk(&ledger, [&session]);
            let res = browser.post("/logout", &[]).await?;
            assert_eq!(res.status, StatusCode::SEE_OTHER);
            note(&ledger, "sign-out", |l| {
                settled(l, [&session]);
                l.signed_in.remove(&session);
                l.signed_out.insert(session.clone());
            });
        }
    }
    Ok(())
}

/// Invites new members and has every other one accept.
async fn invitations_client(address: String, ledger: Shared) -> Step<()> {
    let admin = Browser::new(&address);
    assert!(admin.sign_in(ADMIN).await?, "admin sign-in");
    note(&ledger, "sign-in", |l| {
        l.signed_in.insert(admin.session());
    });
    for i in 0.. {
        let email = format!("invitee{i}@example.com");
        let res = admin
            .post(
                "/members/invite",
                &[("email", &email), ("role", "read-write")],
            )
            .await?;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let link = res
            .body
            .split("/invitations/")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric()).next())
            .expect("invitation link")
            .to_owned();
        note(&ledger, "invite", |l| {
            l.invited.insert(link.clone());
        });
        if i % 2 == 0 {
            let invitee = Browser::new(&address);
            let path = format!("/invitations/{link}");
            let form = invitee.get(&path).await?;
            assert_eq!(form.status, StatusCode::OK, "{}", form.body);
            at_risk(&ledger, [&link]);
            let res = invitee
                .post(&path, &[("name", "Invitee"), ("password", PASSWORD)])
                .await?;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
            let session = invitee.session();
            note(&ledger, "accept", |l| {
                settled(l, [&link]);
                l.invited.remove(&link);
                l.accepted.push((link.clone(), email.clone(), session));
            });
        }
    }
    Ok(())
}

/// Fails unless the database is consistent on disk after the kill.
async fn check_integrity(backend: Backend, url: &str) {
    let db = Db::connect(url).await.expect("open after the kill");
    match backend {
        Backend::Sqlite => {
            let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_all(db.pool())
                .await
                .unwrap();
            assert_eq!(verdict, ["ok"]);
            let broken_keys = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(db.pool())
                .await
                .unwrap();
            assert!(broken_keys.is_empty(), "foreign keys broken");
        }
        Backend::Postgres => {
            let orphans: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM personal_access_tokens t
                          WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)
                             OR NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = t.workspace_id))
                      + (SELECT COUNT(*) FROM memberships m
                          WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id)
                             OR NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = m.workspace_id))
                      + (SELECT COUNT(*) FROM sessions s
                          WHERE s.user_id IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id))
                      + (SELECT COUNT(*) FROM invitations i
                          WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = i.workspace_id))
                      + (SELECT COUNT(*) FROM users u
                          WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id))",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            assert_eq!(orphans, 0, "orphan rows");
            let unindexed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            assert_eq!(unindexed, 0, "invalid indexes");
        }
    }
    db.close().await;
}

/// Sends a page request with only this session cookie.
async fn with_session(address: &str, path: &str, session: &str) -> crate::helpers::Page {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    crate::helpers::read(
        client
            .get(format!("{address}{path}"))
            .header("Cookie", format!("tollgate_session={session}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The kill comes once every kind of change has been answered this often
/// (the clients keep going, so requests are in flight when it lands), or
/// after `LOAD_AT_MOST`.
const ANSWERED_BEFORE_KILL: &[(&str, usize)] = &[
    ("generate (page)", 8),
    ("delete", 2),
    ("revoke all", 1),
    ("rotate", 3),
    ("sign-in", 3),
    ("sign-out", 1),
    ("invite", 2),
    ("accept", 1),
];
const LOAD_AT_MOST: Duration = Duration::from_secs(30);

fn enough_answered(ledger: &Ledger) -> bool {
    ANSWERED_BEFORE_KILL
        .iter()
        .all(|(kind, n)| ledger.answered.get(kind).is_some_and(|got| got >= n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_changes_survive_sigkill_under_load() {
    for backend in backends() {
        eprintln!("-- crash test on {backend:?}");
        let started = Instant::now();
        let database = TestDatabase::create(backend).await;
        seed(&database.url).await;
        let db = Db::connect(&database.url).await.unwrap();
        for email in ["pages@example.com", "sessions@example.com"] {
            create_member(&db, email, "read-write").await;
        }
        create_member(&db, "api@example.com", "read-write").await;
        let first = issue_token(&db, "api@example.com", "rotating").await;
        db.close().await;

        let mut server = Server::start(&database.url);
        let ledger: Shared = Arc::default();
        let address = server.address.clone();
        let clients = vec![
            tokio::spawn(pages_client(
                address.clone(),
                "pages@example.com",
                ledger.clone(),
            )),
            tokio::spawn(api_client(address.clone(), first, ledger.clone())),
            tokio::spawn(sessions_client(
                address.clone(),
                "sessions@example.com",
                ledger.clone(),
            )),
            tokio::spawn(invitations_client(address.clone(), ledger.clone())),
        ];
        // Polled in real time: the clients run against a real process.
        let deadline = Instant::now() + LOAD_AT_MOST;
        while !enough_answered(&ledger.lock().unwrap()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The kill lands right after a rotation is answered (the most
        // frequent change), when a change answered but not yet durable
        // would be lost, while the other clients are mid-request.
        let rotations = |l: &Shared| l.lock().unwrap().answered.get("rotate").copied();
        let before = rotations(&ledger);
        while rotations(&ledger) == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
        for client in clients {
            let ended = tokio::time::timeout(Duration::from_secs(20), client)
                .await
                .expect("clients stop once the server is gone");
            // Panics are failed assertions of a client: report them.
            let outcome = ended.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            assert!(outcome.is_err(), "a client ended without the kill");
        }

        check_integrity(backend, &database.url).await;

        let mut server = Server::start(&database.url);
        let address = server.address.clone();
        let ledger = std::mem::take(&mut *ledger.lock().unwrap());
        eprintln!("answered before the kill: {:?}", ledger.answered);
        assert!(
            enough_answered(&ledger),
            "too little was answered before the kill: {:?}",
            ledger.answered
        );

        let certain = |item: &String| !ledger.uncertain.contains(item);
        for token in ledger.live_tokens.iter().filter(|t| certain(t)) {
            let res = api_get(&address, "/api/v1/me", token).await.unwrap();
            assert_eq!(
                res.status,
                StatusCode::OK,
                "an answered token is lost: {}",
                res.body
            );
        }
        for token in ledger.dead_tokens.iter().filter(|t| certain(t)) {
            let res = api_get(&address, "/api/v1/me", token).await.unwrap();
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "a deleted token came back"
            );
        }
        for session in ledger.signed_in.iter().filter(|s| certain(s)) {
            let res = with_session(&address, "/profile", session).await;
            assert_eq!(res.status, StatusCode::OK, "an answered sign-in is lost");
        }
        for session in ledger.signed_out.iter().filter(|s| certain(s)) {
            let res = with_session(&address, "/profile", session).await;
            assert_eq!(
                res.status,
                StatusCode::SEE_OTHER,
                "a signed-out session came back"
            );
            assert_eq!(res.location().as_deref(), Some("/login"));
        }
        let anonymous = TestClient::new(&address);
        for code in ledger.invited.iter().filter(|c| certain(c)) {
            let res = anonymous.get(&format!("/invitations/{code}")).await;
            assert_eq!(res.status, StatusCode::OK, "an answered invitation is lost");
        }
        for (code, email, session) in &ledger.accepted {
            let res = anonymous.get(&format!("/invitations/{code}")).await;
            assert_ne!(
                res.status,
                StatusCode::OK,
                "an accepted invitation opened again"
            );
            let res = with_session(&address, "/profile", session).await;
            assert_eq!(res.status, StatusCode::OK, "{email}: the member is lost");
            assert!(res.body.contains(email.as_str()));
        }
        server.kill();
        eprintln!(
            "-- crash test on {backend:?}: {} live and {} dead tokens, {} + {} sessions, {} + {} invitations checked ({} uncertain) in {:?}",
            ledger.live_tokens.len(),
            ledger.dead_tokens.len(),
            ledger.signed_in.len(),
            ledger.signed_out.len(),
            ledger.invited.len(),
            ledger.accepted.len(),
            ledger.uncertain.len(),
            started.elapsed(),
        );
    }
}
