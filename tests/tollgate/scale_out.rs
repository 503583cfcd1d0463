//! Several instances behind nginx on one PostgreSQL database behave as one:
//! a session made on one instance works on the others, and a deleted token
//! is refused by every instance as soon as the delete is answered. Runs when
//! PostgreSQL (`TOLLGATE_TEST_DATABASE_URL`) and nginx are present; nginx
//! runs as a child process with its own configuration, pid file and logs
//! in a temporary folder, in front of instances started in this process.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use reqwest::{Method, StatusCode};
use tollgate::startup::Application;

use crate::helpers::{
    Backend, PASSWORD, TestClient, TestDatabase, WRITER, postgres_url, seed, test_config,
};

/// The proxy settings shipped for production, included as they are.
const PROXY_SNIPPET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tollgate-proxy.conf");

pub fn nginx_binary() -> Option<PathBuf> {
    ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|bin| {
            Command::new(bin)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// nginx in the foreground, killed when dropped.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub base: String,
}

impl Nginx {
    pub fn start(bin: &std::path::Path, port: u16, upstreams: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().display().to_string();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        let config = format!(
            "daemon off;\n\
             worker_processes 1;\n\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {prefix}/body;\n\
                 proxy_temp_path {prefix}/proxy;\n\
                 fastcgi_temp_path {prefix}/fastcgi;\n\
                 uwsgi_temp_path {prefix}/uwsgi;\n\
                 scgi_temp_path {prefix}/scgi;\n\
                 upstream tollgate {{\n{servers}        keepalive 16;\n    }}\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     client_max_body_size 64k;\n\
                     location / {{\n\
                         proxy_pass http://tollgate;\n\
                         include {PROXY_SNIPPET};\n\
                         add_header X-Tollgate-Upstream $upstream_addr always;\n\
                     }}\n\
                 }}\n\
             }}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx stopped ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Tollgate instance, configured as behind the proxy.
pub struct Instance {
    pub address: SocketAddr,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    pub async fn start(database_url: &str, public_url: &str) -> Self {
        let mut config = test_config(database_url);
        config.workers = Some(1);
        config.public_url = Some(public_url.to_owned());
        config.trusted_proxy = Some([127, 0, 0, 1].into());
        let app = Application::build(config).await.expect("build instance");
        let address = app.address();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            address,
            handle,
            server,
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
    }
}

async fn me(http: &reqwest::Client, base: &str, token: &str) -> StatusCode {
    http.request(Method::GET, format!("{base}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/me")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_behind_nginx_share_sessions_and_refuse_a_deleted_token_at_once() {
    let Some(_) = postgres_url() else {
        eprintln!("scale-out check skipped: set TOLLGATE_TEST_DATABASE_URL (PostgreSQL)");
        return;
    };
    let Some(bin) = nginx_binary() else {
        eprintln!("scale-out check skipped: nginx is not installed (scripts/test installs it)");
        return;
    };
    let database = TestDatabase::create(Backend::Postgres).await;
    seed(&database.url).await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&database.url, &public).await);
    }
    let addresses: Vec<SocketAddr> = instances.iter().map(|i| i.address).collect();
    let nginx = Nginx::start(&bin, port, &addresses);
    // Instances announce themselves once a second; a change waits only for
    // the peers it has heard. Real time: that interval is the protocol's.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Sign in through nginx (the form and the post may reach different
    // instances), then use the session until every instance has served it.
    let browser = TestClient::new(&nginx.base);
    let res = browser.login(WRITER, PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "sign-in: {}", res.body);
    let mut served_by = BTreeSet::new();
    for _ in 0..9 {
        let page = browser.get("/profile").await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "the session works on every instance"
        );
        let upstream = page.headers["x-tollgate-upstream"]
            .to_str()
            .unwrap()
            .to_owned();
        served_by.insert(upstream);
    }
    let expected: BTreeSet<String> = addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(served_by, expected, "round robin reached every instance");

    // Generate a token through nginx; every instance accepts (and caches) it.
    let (page, secret) = browser.generate(&[("name", "scale-out")]).await;
    let secret = secret.unwrap_or_else(|| panic!("no token shown: {}", page.body));
    let http = reqwest::Client::new();
    for address in &addresses {
        for _ in 0..2 {
            assert_eq!(
                me(&http, &format!("http://{address}"), &secret).await,
                StatusCode::OK
            );
        }
    }
    let list = http
        .get(format!("{}/api/v1/tokens", nginx.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = list["data"][0]["id"].as_i64().expect("token id");

    // Delete it through nginx; once answered, every instance refuses it.
    let res = http
        .delete(format!("{}/api/v1/tokens/{id}", nginx.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for address in &addresses {
        assert_eq!(
            me(&http, &format!("http://{address}"), &secret).await,
            StatusCode::UNAUTHORIZED,
            "{address} still accepts the deleted token"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            me(&http, &nginx.base, &secret).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let errors = nginx.error_log();
    assert!(
        !errors.contains("[error]") && !errors.contains("[emerg]"),
        "{errors}"
    );
    drop(nginx);
    for instance in instances {
        instance.stop().await;
    }
    drop(database);
}
