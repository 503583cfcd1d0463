//! Issue: a graceful stop. SIGTERM to the real binary while a request is
//! still arriving: the server stops accepting, answers that request, writes
//! the "last used" times it held in memory, closes the database and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tollgate::storage::Db;

use crate::crash::{Server, issue_token};
use crate::helpers::{Backend, PASSWORD, TestClient, TestDatabase, WRITER, backends, bearer, seed};

/// `kill -TERM pid`, as a service manager or `docker stop` would send it
/// (the shell's own `kill`: a minimal system may lack procps).
fn sigterm(pid: u32) {
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .expect("run kill");
    assert!(status.success());
}

async fn last_used(url: &str, token_name: &str) -> Option<i64> {
    let db = Db::connect(url).await.unwrap();
    let at: Option<i64> =
        sqlx::query_scalar("SELECT last_used_at FROM personal_access_tokens WHERE name = $1")
            .bind(token_name)
            .fetch_one(db.pool())
            .await
            .unwrap();
    db.close().await;
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_flushes_and_exits_zero() {
    for backend in backends() {
        eprintln!("-- shutdown test on {backend:?}");
        let database = TestDatabase::create(backend).await;
        seed(&database.url).await;
        let db = Db::connect(&database.url).await.unwrap();
        let token = issue_token(&db, WRITER, "used-before-shutdown").await;
        db.close().await;
        let mut server = Server::start(&database.url);
        let address = server.address.clone();
        let host = address.trim_start_matches("http://").to_owned();

        // The token is used; its "last used" time waits in memory (the
        // periodic flush is an hour away).
        let me = reqwest::Client::new()
            .get(format!("{address}/api/v1/me"))
            .header("Authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        assert_eq!(last_used(&database.url, "used-before-shutdown").await, None);

        // A signed-in browser starts generating a token, but its form body
        // arrives slowly: half of it before SIGTERM, the rest after.
        let browser = TestClient::new(&address);
        assert_eq!(
            browser.login(WRITER, PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        let csrf = browser.csrf().await;
        let session = browser.cookie("tollgate_session").unwrap();
        let csrf_nonce = browser.cookie("tollgate_csrf").unwrap();
        let body = format!("csrf_token={csrf}&name=sent-during-shutdown");
        let (first, rest) = body.split_at(body.len() / 2);
        let mut slow = TcpStream::connect(&host).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            slow,
            "POST /profile/tokens HTTP/1.1\r\nHost: {host}\r\nOrigin: {address}\r\n\
             Cookie: tollgate_session={session}; tollgate_csrf={csrf_nonce}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        // "100 Continue" proves the server has read the request line and
        // headers: the request is in flight, not a connection still idle.
        let mut interim = [0u8; 25];
        slow.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        slow.write_all(first.as_bytes()).unwrap();
        slow.flush().unwrap();

        sigterm(server.pid());

        // New connections are refused soon after the signal, while the slow
        // request is still open (polled: the listener closes on the
        // server's own thread, a moment after the signal).
        let deadline = Instant::now() + Duration::from_secs(5);
        let refused = loop {
            match TcpStream::connect(&host) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break true,
                _ if Instant::now() > deadline => break false,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        assert!(refused, "new connections still accepted after SIGTERM");
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server exited with a request in flight"
        );

        // The rest of the body arrives; the request is answered.
        slow.write_all(rest.as_bytes()).unwrap();
        let mut response = String::new();
        slow.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 303"),
            "{response}\n{}",
            server.log()
        );

        let status = server
            .wait(Duration::from_secs(15))
            .expect("the server exits after a graceful stop");
        assert_eq!(status.code(), Some(0), "{}", server.log());
        if backend == Backend::Sqlite {
            // Closed cleanly: the WAL was checkpointed into the database
            // file and emptied. Looked at before anything opens the file
            // again (closing the last connection would clean up too).
            let path = database.url.trim_start_matches("sqlite://");
            let wal = std::fs::metadata(format!("{path}-wal")).map(|m| m.len());
            assert!(matches!(wal, Err(_) | Ok(0)), "WAL left behind: {wal:?}");
        }

        // What the server held in memory is on disk, and so is the request
        // answered during shutdown.
        assert!(
            last_used(&database.url, "used-before-shutdown")
                .await
                .is_some(),
            "last-used time lost at shutdown"
        );
        let db = Db::connect(&database.url).await.unwrap();
        let made: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM personal_access_tokens WHERE name = 'sent-during-shutdown'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(made, 1);
        db.close().await;
    }
}
