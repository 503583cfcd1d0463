//! Email: the expiry notice a token's owner gets once, a week before the
//! token expires, and invitations sent by email. A small SMTP server in the
//! test (on 127.0.0.1, port 0) accepts and keeps what Tollgate sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tollgate::clock::now;
use tollgate::domain::UserId;
use tollgate::mail::Mailer;
use tollgate::service::Tollgate;
use tollgate::service::tokens::GenerateRequest;

use crate::helpers::{ADMIN, Backend, TestApp, TestDatabase, WRITER, backends, seed, spawn_with};

const DAY: i64 = 86_400;
const FROM: &str = "Tollgate <tollgate@example.com>";

/// One message as the SMTP server received it, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// A minimal SMTP server: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
pub struct SmtpSink {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let address = listener.local_addr().expect("the sink's address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let _ = session(stream, keep).await;
                });
            }
        });
        Self {
            address,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("sink lock").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    keep: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut recipients) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                from = address_in(&command);
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                recipients.push(address_in(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // Dot-stuffing: a leading dot was doubled by the sender.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let (subject, body) = decode(&data);
                keep.lock().expect("sink lock").push(Received {
                    from: from.clone(),
                    recipients: std::mem::take(&mut recipients),
                    subject,
                    body,
                });
                b"250 OK: queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// `MAIL FROM:<a@b> SIZE=12` → `a@b`.
fn address_in(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

/// The subject (RFC 2047 words decoded) and the body (quoted-printable or
/// base64 decoded) of a message.
fn decode(data: &str) -> (String, String) {
    let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let subject = decode_words(&header("Subject"));
    let body = match header("Content-Transfer-Encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "quoted-printable" => quoted_printable(body),
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .expect("base64 body"),
        )
        .expect("UTF-8 body"),
        _ => body.to_owned(),
    };
    (subject, body.replace("\r\n", "\n"))
}

/// RFC 2047: `=?utf-8?b?…?=` words; the space between two of them is not text.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for (i, part) in value.split(' ').enumerate() {
        match decode_word(part) {
            Some(text) => {
                if i > 0 && !previous_encoded {
                    out.push(' ');
                }
                out.push_str(&text);
                previous_encoded = true;
            }
            None => {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(part);
                previous_encoded = false;
            }
        }
    }
    out
}

fn decode_word(part: &str) -> Option<String> {
    let inner = part.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut pieces = inner.splitn(3, '?');
    let (_charset, encoding, text) = (pieces.next()?, pieces.next()?, pieces.next()?);
    match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        _ => Some(quoted_printable(&text.replace('_', " "))),
    }
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(byte) = joined
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 text")
}

/// An app on `backend` that sends its email to `sink`.
async fn spawn_mailing(backend: Backend, sink: &SmtpSink) -> TestApp {
    let database = TestDatabase::create(backend).await;
    seed(&database.url).await;
    let url = sink.url();
    spawn_with(backend, database, move |config| {
        config.smtp_url = Some(url);
        config.mail_from = Some(FROM.to_owned());
    })
    .await
}

/// Generates a token for `email` as if at `at`.
async fn token_at(app: &TestApp, email: &str, name: &str, expiry: &str, at: i64) -> i64 {
    let user = app
        .core
        .signed_in_user(UserId(app.user_id(email).await))
        .await
        .expect("load user")
        .expect("user exists");
    let request = GenerateRequest {
        name: name.to_owned(),
        scope: None,
        workspace: None,
        expiry: Some(expiry.to_owned()),
    };
    app.core
        .generate_token(
            &tollgate::service::Actor::Member(user),
            &request,
            &Default::default(),
            at,
        )
        .await
        .expect("generate token")
        .id
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_of_a_token_gets_one_email_a_week_before_it_expires() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let sink = SmtpSink::start().await;
        let mut app = spawn_mailing(backend, &sink).await;
        let origin = "https://tokens.example.com";
        let start = now();
        token_at(&app, WRITER, "deploy-bot", "30", start).await;
        // Made to last a week: its owner knew from the start.
        token_at(&app, WRITER, "one-week", "7", start).await;
        token_at(&app, ADMIN, "forever", "never", start).await;

        // 23 days and a minute before: not yet within the week.
        let before = start + 23 * DAY - 60;
        assert_eq!(
            app.core
                .send_expiry_notices(origin, before)
                .await
                .expect("notices"),
            0
        );
        assert!(sink.received().is_empty());

        let due = start + 23 * DAY;
        assert_eq!(
            app.core
                .send_expiry_notices(origin, due)
                .await
                .expect("notices"),
            1
        );
        let received = sink.received();
        assert_eq!(received.len(), 1, "{received:?}");
        let mail = &received[0];
        assert_eq!(mail.recipients, vec![WRITER.to_owned()]);
        assert_eq!(mail.from, "tollgate@example.com");
        assert!(
            mail.subject.contains("deploy-bot") && mail.subject.contains("expires"),
            "{}",
            mail.subject
        );
        assert!(mail.body.contains("“deploy-bot”"), "{}", mail.body);
        assert!(
            mail.body
                .contains("https://tokens.example.com/profile/tokens"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("in 7 day(s)"), "{}", mail.body);

        // Later runs, and a restarted server on the same database, send it no more.
        assert_eq!(
            app.core
                .send_expiry_notices(origin, due + DAY)
                .await
                .expect("notices"),
            0
        );
        let restarted = Tollgate::new(app.db().clone(), None)
            .with_mailer(Mailer::from_settings(Some(&sink.url()), Some(FROM)).expect("mailer"));
        assert_eq!(
            restarted
                .send_expiry_notices(origin, due + 2 * DAY)
                .await
                .expect("notices"),
            0
        );
        assert_eq!(sink.received().len(), 1);
        assert_eq!(app.count("token_expiry_notices").await, 1);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_could_not_be_sent_is_tried_again_on_the_next_run() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let sink = SmtpSink::start().await;
        let mut app = spawn_mailing(backend, &sink).await;
        let start = now();
        token_at(&app, WRITER, "nightly", "30", start).await;
        // A mail server that is not there: nothing is sent, nothing is kept.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let broken = Tollgate::new(app.db().clone(), None).with_mailer(
            Mailer::from_settings(Some(&format!("smtp://{closed}")), Some(FROM)).expect("mailer"),
        );
        let due = start + 24 * DAY;
        assert_eq!(
            broken
                .send_expiry_notices("http://x", due)
                .await
                .expect("a failed delivery is no error"),
            0
        );
        assert_eq!(
            app.count("token_expiry_notices").await,
            0,
            "the claim is given back"
        );
        assert_eq!(
            app.core
                .send_expiry_notices("http://x", due)
                .await
                .expect("notices"),
            1
        );
        assert_eq!(sink.received().len(), 1);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_emailed_when_mail_is_configured() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let sink = SmtpSink::start().await;
        let mut app = spawn_mailing(backend, &sink).await;
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/members").await;
        assert_eq!(
            page.count("#invite-send-email"),
            1,
            "the form offers to send the link"
        );
        let res = admin
            .post_form(
                "/members/invite",
                &[
                    ("email", "Nina@Example.com"),
                    ("role", "read-only"),
                    ("send_email", "on"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.count("#invite-link"), 0, "an emailed link is not shown");
        assert!(
            res.text(".flash").contains("emailed"),
            "{}",
            res.text(".flash")
        );
        let received = sink.received();
        assert_eq!(received.len(), 1);
        let mail = &received[0];
        assert_eq!(mail.recipients, vec!["nina@example.com".to_owned()]);
        assert!(mail.subject.contains("Default"), "{}", mail.subject);
        let prefix = format!("{}/invitations/", app.address);
        let link = mail
            .body
            .split_whitespace()
            .find(|w| w.starts_with(&prefix))
            .unwrap_or_else(|| panic!("the link is in the body: {}", mail.body))
            .to_owned();
        let path = link.trim_start_matches(&app.address);
        let form = app.client().get(path).await;
        assert_eq!(
            form.status,
            StatusCode::OK,
            "the emailed link opens the invitation"
        );
        assert!(form.text("main").contains("nina@example.com"));

        // Unticked: the link is shown, nothing is sent.
        let res = admin
            .post_form(
                "/members/invite",
                &[("email", "omar@example.com"), ("role", "read-only")],
            )
            .await;
        assert!(res.attr("#invite-link", "value").is_some());
        assert_eq!(sink.received().len(), 1);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mail_server_nothing_is_sent_and_the_link_is_shown() {
    for backend in backends() {
        eprintln!("-- on {backend:?}");
        let mut app = crate::helpers::spawn_app(backend).await;
        assert!(!app.core.mail_enabled());
        let start = now();
        token_at(&app, WRITER, "nightly", "30", start).await;
        assert_eq!(
            app.core
                .send_expiry_notices("http://x", start + 25 * DAY)
                .await
                .expect("no error"),
            0
        );
        assert_eq!(app.count("token_expiry_notices").await, 0);
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.get("/members").await.count("#invite-send-email"), 0);
        // A forged "send by email" creates the invitation and shows the link.
        let res = admin
            .post_form(
                "/members/invite",
                &[
                    ("email", "nina@example.com"),
                    ("role", "read-only"),
                    ("send_email", "on"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.attr("#invite-link", "value").is_some());
        app.stop().await;
    }
}
