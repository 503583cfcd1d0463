//! The API benchmark, run by `scripts/bench` (docs/benchmarks.md explains
//! every figure). It seeds databases with SQL, starts the release server,
//! and measures it with `wrk`, `/healthz` and `/api/v1/me` in alternating
//! slices so both see the same machine. It prints figures and PASS or MISS
//! against each goal; it asserts nothing.
//!
//! Scenarios, per backend, stored-token count and log level:
//! - `1 token`: one token, over and over;
//! - `distinct`: up to 10,000 distinct tokens in rotation;
//! - `distinct + dashboard`: the same while people use the dashboard
//!   (sign-in page views, signed-in page views, a token generated and
//!   deleted every second, which evicts that token from every cache);
//! - the miss pass, before the scenarios: a fresh server on every size at
//!   once (after a warm-up with unknown tokens that opens the pools'
//!   connections), 1,000 distinct tokens of each verified once (all cache
//!   misses) in chunks alternating between the servers, each chunk
//!   followed by as many `/healthz` requests: the difference in server CPU
//!   time (the process's CPU-time clock, to the nanosecond) per request is
//!   what one uncached verification costs. It always runs.
//!
//! `TOLLGATE_BENCH_SCENARIOS` (`one,distinct,dashboard` by default) picks
//! scenarios; the `warn` log level is measured only for `one` and `distinct`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use tollgate::domain::PlainToken;
use tollgate::service::Tollgate;
use tollgate::service::auth::NewUser;
use tollgate::storage::{Backend, Db, url_with_database};

const GOAL_RATIO: f64 = 0.80;
const GOAL_SCALING: f64 = 0.10;
const GOAL_PEAK_MIB: f64 = 100.0;
const ROTATING: usize = 10_000;
/// Tokens verified uncached in the measured miss pass, on every size.
const MISS_PASS: usize = 1_000;
const TOKENS_PER_MEMBER: usize = 50;
const DASHBOARD_EMAIL: &str = "dashboard@example.com";
const PASSWORD: &str = "correct horse battery staple";
const SECRET_KEY: &str = "benchmark-cookie-key-of-at-least-32-bytes";
/// Scenario names for `TOLLGATE_BENCH_SCENARIOS`: `1 token`, `distinct`,
/// `distinct + dashboard`.
const SCENARIOS: [&str; 3] = ["one", "distinct", "dashboard"];

struct Options {
    server: PathBuf,
    script: PathBuf,
    sizes: Vec<usize>,
    postgres: Option<String>,
    scenarios: Vec<String>,
    slice_seconds: u32,
    rounds: u32,
    connections: u32,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Options {
    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

fn main() -> ExitCode {
    // `cargo test --benches` runs this binary without `--bench`: measure nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let Some(server) = std::env::var_os("TOLLGATE_BENCH_SERVER") else {
        eprintln!("run the benchmark with scripts/bench");
        return ExitCode::FAILURE;
    };
    let options = Options {
        server: server.into(),
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/me.lua"),
        sizes: std::env::var("TOLLGATE_BENCH_SIZES")
            .unwrap_or_else(|_| "1000,1000000".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        postgres: std::env::var("TOLLGATE_BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        scenarios: std::env::var("TOLLGATE_BENCH_SCENARIOS")
            .unwrap_or_else(|_| SCENARIOS.join(","))
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        slice_seconds: env_or("TOLLGATE_BENCH_SLICE", 2),
        rounds: env_or("TOLLGATE_BENCH_ROUNDS", 2),
        connections: env_or("TOLLGATE_BENCH_CONNECTIONS", 32),
    };
    if let Some(unknown) = options
        .scenarios
        .iter()
        .find(|s| !SCENARIOS.contains(&s.as_str()))
    {
        eprintln!(
            "unknown scenario {unknown:?} in TOLLGATE_BENCH_SCENARIOS; known: {}",
            SCENARIOS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benchmark failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// One measured line of the table.
struct Row {
    backend: Backend,
    size: usize,
    log: &'static str,
    scenario: &'static str,
    healthz: f64,
    me: f64,
    /// The median of the rounds' `/me` ÷ `/healthz`.
    ratio: f64,
}

/// Figures of one server run.
struct ServerRun {
    backend: Backend,
    size: usize,
    log: &'static str,
    miss_us: f64,
    peak_mib: f64,
}

async fn run(o: &Options) -> anyhow::Result<()> {
    let machine_start = machine_busy();
    let started = Instant::now();
    println!(
        "API benchmark: wrk -t1 -c{} in {} alternating slices of {} s per route; load average at start: {}",
        o.connections,
        o.rounds,
        o.slice_seconds,
        load_average()
    );
    let mut backends = vec![Backend::Sqlite];
    if o.postgres.is_some() {
        backends.push(Backend::Postgres);
    }
    let (mut rows, mut runs) = (Vec::new(), Vec::new());
    for backend in backends {
        let mut seeded = Vec::new();
        for &size in &o.sizes {
            let database = BenchDb::create(backend, size, o).await?;
            let tokens = seed(&o.server, &database.url, size, &database.dir).await?;
            seeded.push((size, database, tokens));
        }
        let misses = uncached_side_by_side(o, backend, &seeded).await?;
        for (i, (size, database, tokens)) in seeded.into_iter().enumerate() {
            let mut levels = vec!["info"];
            if i + 1 == o.sizes.len() && (o.runs("one") || o.runs("distinct")) {
                levels.push("warn");
            }
            for log in levels {
                let (r, peak_mib) = bench_server(o, &database, backend, size, log, &tokens).await?;
                rows.extend(r);
                runs.push(ServerRun {
                    backend,
                    size,
                    log,
                    miss_us: if log == "info" { misses[i] } else { f64::NAN },
                    peak_mib,
                });
            }
            database.drop_it(o).await;
        }
    }
    report(&rows, &runs);
    let (busy, total) = match (machine_start, machine_busy()) {
        (Some((b0, t0)), Some((b1, t1))) => (b1 - b0, t1 - t0),
        _ => (0.0, 0.0),
    };
    println!(
        "\nMachine: {:.0} % of all cores busy during the {:.0} s run (this benchmark included); load average at end: {}",
        if total > 0.0 {
            100.0 * busy / total
        } else {
            0.0
        },
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

struct BenchDb {
    url: String,
    dir: PathBuf,
    _temp: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl BenchDb {
    async fn create(backend: Backend, size: usize, o: &Options) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_path_buf();
        let (url, postgres_name) = match (backend, &o.postgres) {
            (Backend::Postgres, Some(admin)) => {
                let name = format!("tollgate_bench_{}_{size}", std::process::id());
                let db = Db::connect(admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}"
                )))
                .execute(db.pool())
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(db.pool())
                    .await?;
                db.close().await;
                (url_with_database(admin, &name), Some(name))
            }
            _ => (format!("sqlite://{}", dir.join("bench.db").display()), None),
        };
        Ok(Self {
            url,
            dir,
            _temp: temp,
            postgres_name,
        })
    }

    async fn drop_it(self, o: &Options) {
        if let (Some(name), Some(admin)) = (&self.postgres_name, &o.postgres)
            && let Ok(db) = Db::connect(admin).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(db.pool())
                .await;
            db.close().await;
        }
    }
}

/// Seeds `size` tokens, 50 per Read-Write member: the first `ROTATING` (or
/// all) with real secrets, written to `tokens.txt` for wrk; the rest filler
/// rows made by SQL alone. Returns the path of the token list.
async fn seed(server: &Path, url: &str, size: usize, dir: &Path) -> anyhow::Result<PathBuf> {
    let t = Instant::now();
    // The server under test migrates: its schema is the one it expects,
    // whichever build it is.
    let migrated = Command::new(server)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("TOLLGATE_SECRET_KEY", SECRET_KEY)
        .env("RUST_LOG", "warn")
        .status()
        .context("migrating with the server")?;
    anyhow::ensure!(
        migrated.success(),
        "the server could not migrate the database"
    );
    let db = Db::connect(url).await?;
    let core = Tollgate::new(db.clone(), None);
    let user = NewUser {
        email: DASHBOARD_EMAIL,
        name: Some("Dashboard"),
        role: "admin",
        workspace: None,
        password: PASSWORD,
    };
    core.create_user(user, tollgate::clock::now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = db.pool();
    let workspace: i64 = sqlx::query_scalar("SELECT MIN(id) FROM workspaces")
        .fetch_one(pool)
        .await?;
    let members = size.div_ceil(TOKENS_PER_MEMBER) as i64;
    let count = |n: &str| {
        format!("WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n})")
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (email, name, password_hash, created_at) {} \
         SELECT 'member' || i || '@example.com', 'Member ' || i, '!', 0 FROM seq",
        count("$1")
    )))
    .bind(members)
    .execute(pool)
    .await?;
    let first: i64 = sqlx::query_scalar("SELECT MIN(id) FROM users WHERE email LIKE 'member%'")
        .fetch_one(pool)
        .await?;
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
         SELECT $1, id, 'read-write', 0 FROM users WHERE email LIKE 'member%'",
    )
    .bind(workspace)
    .execute(pool)
    .await?;
    let real = size.min(ROTATING);
    let filler_digest = match db.backend() {
        Backend::Sqlite => "printf('%064d', i)",
        Backend::Postgres => "lpad(i::text, 64, '0')",
    };
    // Filler: tokens real+1 ..= size, in one statement.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO personal_access_tokens \
         (user_id, workspace_id, name, scope, digest, last4, created_at) {} \
         SELECT {first} + (i - 1) / {TOKENS_PER_MEMBER}, {workspace}, 'filler ' || i, 'read-write', {filler_digest}, 'xxxx', 0 \
         FROM seq WHERE i > {real}",
        count(&size.to_string())
    )))
    .execute(pool)
    .await?;
    let mut secrets = String::new();
    let mut tx = db.begin().await?;
    for chunk in (1..=real).collect::<Vec<_>>().chunks(500) {
        let mut values = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let token = PlainToken::generate();
            secrets.push_str(token.expose());
            secrets.push('\n');
            values.push(format!(
                "({}, {workspace}, 'bench {i}', 'read-write', '{}', '{}', 0)",
                first + ((i - 1) / TOKENS_PER_MEMBER) as i64,
                token.digest().as_str(),
                token.last4()
            ));
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO personal_access_tokens \
             (user_id, workspace_id, name, scope, digest, last4, created_at) VALUES {}",
            values.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    db.close().await;
    let list = dir.join("tokens.txt");
    std::fs::write(&list, secrets)?;
    println!(
        "seeded {size} tokens ({real} with real secrets) on {:?} in {:.1} s",
        db.backend(),
        t.elapsed().as_secs_f64()
    );
    Ok(list)
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn start(o: &Options, database: &BenchDb, log: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_file = std::fs::File::create(database.dir.join(format!("server-{log}.log")))?;
        let child = Command::new(&o.server)
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("TOLLGATE_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", log)
            .env("TOLLGATE_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting the server")?;
        let server = Self { child, port };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(server.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                // PostgreSQL: let the cache's listener hear its first heartbeat.
                tokio::time::sleep(Duration::from_millis(700)).await;
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server did not become ready")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn cpu(&self) -> f64 {
        process_cpu(self.child.id())
    }

    fn peak_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run: requests per second, and server CPU µs per request.
struct Measure {
    requests: f64,
    seconds: f64,
    cpu: f64,
}

async fn wrk(
    o: &Options,
    server: &Server,
    path: &str,
    tokens: &Path,
    seconds: u32,
) -> anyhow::Result<Measure> {
    let cpu = server.cpu();
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{}", o.connections),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&o.script)
        .arg(server.url(path))
        .env("TOLLGATE_BENCH_TOKENS", tokens)
        .output()
        .context("running wrk")?;
    let cpu = server.cpu() - cpu;
    let text = String::from_utf8_lossy(&output.stdout);
    // "  12345 requests in 2.00s, 1.23MB read"
    let line = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .with_context(|| format!("wrk printed no summary: {text}"))?;
    let mut words = line.split_whitespace();
    let requests: f64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    let seconds: f64 = words
        .nth(2)
        .map(|s| s.trim_end_matches(','))
        .and_then(|s| {
            s.strip_suffix("ms")
                .map(|m| m.parse::<f64>().map(|v| v / 1000.0))
                .or_else(|| s.strip_suffix('s').map(str::parse))
        })
        .and_then(Result::ok)
        .unwrap_or(f64::NAN);
    if let Some(bad) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("{path} answered errors: {}", bad.trim());
    }
    Ok(Measure {
        requests,
        seconds,
        cpu,
    })
}

/// Each token once, `connections` requests at a time (wrk can not stop
/// after a count): the server CPU per request of a cold cache. `expected`
/// is the status every answer should have.
async fn pass(
    o: &Options,
    server: &Server,
    path: &str,
    tokens: &[String],
    expected: reqwest::StatusCode,
) -> anyhow::Result<Measure> {
    use futures_util::StreamExt;
    let client = reqwest::Client::new();
    let (url, started, cpu) = (server.url(path), Instant::now(), server.cpu());
    let answers: Vec<bool> = futures_util::stream::iter(tokens)
        .map(|token| {
            let request = client.get(&url).bearer_auth(token);
            async move { request.send().await.is_ok_and(|r| r.status() == expected) }
        })
        .buffer_unordered(o.connections as usize)
        .collect()
        .await;
    // Counted, not fatal: on an overloaded machine a connection may fail.
    let failed = answers.iter().filter(|ok| !**ok).count();
    if failed > 0 {
        println!(
            "  {path}: {failed} of {} requests failed in the miss pass",
            answers.len()
        );
    }
    Ok(Measure {
        requests: (answers.len() - failed).max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
        cpu: server.cpu() - cpu,
    })
}

/// `/healthz` and `/api/v1/me` in alternating slices.
struct SideBySide {
    /// Requests per second over all slices.
    healthz: f64,
    me: f64,
    /// The median of the rounds' ratios: each round's two slices ran back
    /// to back, so a slice the machine slowed down (other work, a busy
    /// neighbour) spoils one round, not the figure.
    ratio: f64,
}

async fn side_by_side(o: &Options, server: &Server, tokens: &Path) -> anyhow::Result<SideBySide> {
    let (mut h, mut m) = ((0.0, 0.0), (0.0, 0.0));
    let mut ratios = Vec::new();
    for round in 0..o.rounds {
        let mut this = (0.0, 0.0);
        let order = if round % 2 == 0 {
            ["/healthz", "/api/v1/me"]
        } else {
            ["/api/v1/me", "/healthz"]
        };
        for path in order {
            let r = wrk(o, server, path, tokens, o.slice_seconds).await?;
            let (slot, rate) = if path == "/healthz" {
                (&mut h, &mut this.0)
            } else {
                (&mut m, &mut this.1)
            };
            slot.0 += r.requests;
            slot.1 += r.seconds;
            *rate = r.requests / r.seconds;
        }
        ratios.push(this.1 / this.0);
    }
    Ok(SideBySide {
        healthz: h.0 / h.1,
        me: m.0 / m.1,
        ratio: median(&mut ratios),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn read_tokens(tokens: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(tokens)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Tokens of the right shape that are not stored: each costs a query and is
/// not cached, so the pool opens its connections and the database's pages
/// are read before anything is measured.
async fn warm_up(o: &Options, server: &Server) -> anyhow::Result<()> {
    let unknown: Vec<String> = (0..4 * o.connections)
        .map(|_| PlainToken::generate().expose().to_owned())
        .collect();
    pass(o, server, "/api/v1/me", &unknown, StatusCode::UNAUTHORIZED).await?;
    Ok(())
}

/// The server CPU of one uncached verification, in µs, per size: a fresh
/// server on every size at once, and `MISS_PASS` tokens of each verified
/// once (all cache misses) in chunks that alternate between the servers,
/// each chunk followed by as many `/healthz` requests. The difference in
/// CPU per request is the verification's cost. Side by side, the sizes see
/// the same machine and differ only in what is stored.
async fn uncached_side_by_side(
    o: &Options,
    backend: Backend,
    seeded: &[(usize, BenchDb, PathBuf)],
) -> anyhow::Result<Vec<f64>> {
    const CHUNKS: usize = 10;
    let mut servers = Vec::new();
    for (_, database, tokens) in seeded {
        let server = Server::start(o, database, "info").await?;
        warm_up(o, &server).await?;
        let mut secrets = read_tokens(tokens)?;
        secrets.truncate(MISS_PASS);
        servers.push((server, secrets, [0.0f64; 4]));
    }
    for chunk in 0..CHUNKS {
        let count = servers.len();
        for k in 0..count {
            // The order turns every chunk, so no size always goes first.
            let (server, secrets, sums) = &mut servers[(k + chunk) % count];
            let per = secrets.len().div_ceil(CHUNKS);
            let part =
                &secrets[(chunk * per).min(secrets.len())..((chunk + 1) * per).min(secrets.len())];
            let miss = pass(o, server, "/api/v1/me", part, StatusCode::OK).await?;
            let base = pass(o, server, "/healthz", part, StatusCode::OK).await?;
            *sums = [
                sums[0] + miss.cpu,
                sums[1] + miss.requests,
                sums[2] + base.cpu,
                sums[3] + base.requests,
            ];
        }
    }
    let mut misses = Vec::new();
    for ((size, _, _), (server, _, sums)) in seeded.iter().zip(servers) {
        let miss_us = 1e6 * (sums[0] / sums[1] - sums[2] / sums[3]);
        println!(
            "  {backend:?}, {size} tokens: {miss_us:.0} µs server CPU per uncached verification"
        );
        misses.push(miss_us);
        server.stop();
    }
    Ok(misses)
}

/// One server's scenarios; returns their rows and the server's peak memory.
async fn bench_server(
    o: &Options,
    database: &BenchDb,
    backend: Backend,
    size: usize,
    log: &'static str,
    tokens: &Path,
) -> anyhow::Result<(Vec<Row>, f64)> {
    let server = Server::start(o, database, log).await?;
    // Every token once, unmeasured: the scenarios start on a warm cache.
    warm_up(o, &server).await?;
    let secrets = read_tokens(tokens)?;
    pass(o, &server, "/api/v1/me", &secrets, StatusCode::OK).await?;
    println!("  {backend:?}, {size} tokens, log {log}:");
    let one = database.dir.join("one.txt");
    let first = secrets.first().map(String::as_str).unwrap_or_default();
    std::fs::write(&one, format!("{first}\n"))?;
    let mut rows = Vec::new();
    let row = |scenario, s: SideBySide| {
        println!(
            "  {scenario}: /healthz {:.0}, /me {:.0} req/s (median ratio {:.2})",
            s.healthz, s.me, s.ratio
        );
        Row {
            backend,
            size,
            log,
            scenario,
            healthz: s.healthz,
            me: s.me,
            ratio: s.ratio,
        }
    };
    if o.runs("one") {
        rows.push(row("1 token", side_by_side(o, &server, &one).await?));
    }
    if o.runs("distinct") {
        rows.push(row("distinct", side_by_side(o, &server, tokens).await?));
    }
    if log == "info" && o.runs("dashboard") {
        let stop = Arc::new(AtomicBool::new(false));
        let dashboard = tokio::spawn(dashboard_load(server.url(""), Arc::clone(&stop)));
        let figures = side_by_side(o, &server, tokens).await;
        stop.store(true, Ordering::Release);
        let done = dashboard
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))?;
        rows.push(row("distinct + dashboard", figures?));
        println!("  dashboard load: {done}");
    }
    let peak_mib = server.peak_mib();
    server.stop();
    Ok((rows, peak_mib))
}

/// People using the dashboard: 40 sign-in page views (each a new visitor,
/// so a new session), 10 signed-in page views and one token generated and
/// deleted per second, each request on its own so a slow answer does not
/// hold the next back (at most 32 at once; ticks beyond that are skipped).
async fn dashboard_load(base: String, stop: Arc<AtomicBool>) -> anyhow::Result<String> {
    let signed_in = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = signed_in
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let res = signed_in
        .post(format!("{base}/login"))
        .header("Origin", &base)
        .form(&[
            ("csrf_token", csrf(&login)?.as_str()),
            ("email", DASHBOARD_EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_redirection(),
        "dashboard sign-in failed: {}",
        res.status()
    );
    let done = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        n += 1;
        let kind = if n.is_multiple_of(40) {
            2
        } else if n.is_multiple_of(4) {
            1
        } else {
            0
        };
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            done[3].fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (base, client, done) = (base.clone(), signed_in.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let ok = match kind {
                // A new visitor: a new client, so a new anonymous session.
                0 => reqwest::get(format!("{base}/login"))
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                1 => client
                    .get(format!("{base}/profile/tokens"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                _ => generate_and_delete(&base, &client, n).await.is_ok(),
            };
            let slot = if !ok {
                3
            } else if kind == 2 {
                2
            } else {
                kind
            };
            done[slot].fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    let _ = in_flight.acquire_many(32).await;
    let count = |i: usize| done[i].load(Ordering::Relaxed);
    Ok(format!(
        "{} sign-in page views, {} signed-in page views, {} tokens generated and deleted, {} failed or skipped",
        count(0),
        count(1),
        count(2),
        count(3)
    ))
}

fn csrf(page: &str) -> anyhow::Result<String> {
    page.split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("no CSRF token on the page")
}

/// Generates a token on the dashboard, then deletes it through the API with itself.
async fn generate_and_delete(base: &str, client: &reqwest::Client, n: u64) -> anyhow::Result<()> {
    let page = client
        .get(format!("{base}/profile/tokens/new"))
        .send()
        .await?
        .text()
        .await?;
    let fields = [
        ("csrf_token", csrf(&page)?),
        ("name", format!("dashboard {n}")),
    ];
    let res = client
        .post(format!("{base}/profile/tokens"))
        .header("Origin", base)
        .form(&fields)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_redirection(),
        "generating failed: {}",
        res.status()
    );
    let shown = client
        .get(format!("{base}/profile/tokens/created"))
        .send()
        .await?
        .text()
        .await?;
    let secret = shown
        .split("id=\"issued-token\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .context("no token shown")?
        .to_owned();
    let api = reqwest::Client::new();
    let me: serde_json::Value = api
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await?
        .json()
        .await?;
    let id = me["token"]["id"].as_i64().context("no token id")?;
    let res = api
        .delete(format!("{base}/api/v1/tokens/{id}"))
        .bearer_auth(&secret)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "deleting failed: {}",
        res.status()
    );
    Ok(())
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn report(rows: &[Row], runs: &[ServerRun]) {
    println!(
        "\n| backend | tokens stored | log | scenario | /healthz req/s | /me req/s | /me ÷ /healthz, median of rounds (goal ≥ {GOAL_RATIO:.2}) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = r.ratio;
        println!(
            "| {:?} | {} | {} | {} | {:.0} | {:.0} | {ratio:.2} {} |",
            r.backend,
            r.size,
            r.log,
            r.scenario,
            r.healthz,
            r.me,
            verdict(ratio >= GOAL_RATIO)
        );
    }
    println!(
        "\n| backend | tokens stored | log | µs server CPU per uncached verification (`info`, sizes side by side) | peak RSS MiB (goal ≤ {GOAL_PEAK_MIB:.0}) |"
    );
    println!("|---|---|---|---|---|");
    for s in runs {
        let miss = if s.miss_us.is_nan() {
            "–".to_owned()
        } else {
            format!("{:.0}", s.miss_us)
        };
        println!(
            "| {:?} | {} | {} | {miss} | {:.1} {} |",
            s.backend,
            s.size,
            s.log,
            s.peak_mib,
            verdict(s.peak_mib <= GOAL_PEAK_MIB)
        );
    }
    println!(
        "\nScaling from the fewest to the most stored tokens (goal: within {:.0} %, misses included):",
        GOAL_SCALING * 100.0
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let info: Vec<&Row> = rows
            .iter()
            .filter(|r| r.backend == backend && r.log == "info")
            .collect();
        let (Some(small), Some(large)) = (
            info.iter().map(|r| r.size).min(),
            info.iter().map(|r| r.size).max(),
        ) else {
            continue;
        };
        if small == large {
            continue;
        }
        // Each size is a server of its own, measured minutes apart: the raw
        // change carries whatever the machine did meanwhile. `/me` counted
        // in `/healthz` of the same slices (the ratio) does not, and
        // `/healthz` does not look at tokens, so the judged change is the
        // ratio's; the raw one is shown beside it.
        for scenario in ["distinct", "distinct + dashboard"] {
            let at = |size| {
                info.iter()
                    .find(|r| r.size == size && r.scenario == scenario)
                    .map(|r| (r.me, r.ratio))
            };
            if let (Some((a, ra)), Some((b, rb))) = (at(small), at(large)) {
                let change = rb / ra - 1.0;
                println!(
                    "  {backend:?} {scenario}: /me ÷ /healthz {ra:.2} → {rb:.2}, {:+.1} % {} (raw /me {a:.0} → {b:.0} req/s, {:+.1} %)",
                    change * 100.0,
                    verdict(change.abs() <= GOAL_SCALING),
                    (b / a - 1.0) * 100.0
                );
            }
        }
        let miss = |size| {
            runs.iter()
                .find(|s| s.backend == backend && s.size == size && s.log == "info")
                .map(|s| s.miss_us)
        };
        if let (Some(a), Some(b)) = (miss(small), miss(large)) {
            let change = b / a - 1.0;
            println!(
                "  {backend:?} uncached verification: {a:.0} → {b:.0} µs, {:+.1} % {}",
                change * 100.0,
                verdict(change.abs() <= GOAL_SCALING)
            );
        }
    }
}

/// CPU seconds used by a process so far.
///
/// Read from the process's CPU-time clock, to the nanosecond, every thread
/// included (those that ended too). `/proc/PID/stat` counts in ticks of
/// 10 ms: the miss pass on 1,000 tokens uses about 50 ms of CPU, which
/// ticks measured only to within a fifth.
fn process_cpu(pid: u32) -> f64 {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return 0.0;
    };
    let mut clock: libc::clockid_t = 0;
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write into the locals passed to them.
    unsafe {
        if libc::clock_getcpuclockid(pid, &mut clock) != 0
            || libc::clock_gettime(clock, &mut time) != 0
        {
            return 0.0;
        }
    }
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// (busy, total) CPU time of the whole machine so far, in ticks.
fn machine_busy() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
