//! The API benchmark: how fast token verification is and how lean the server
//! stays. Run it with `scripts/bench`; `docs/benchmarks.md` explains the
//! figures.
//!
//! For each backend (SQLite always; PostgreSQL when
//! `TOLLGATE_BENCH_DATABASE_URL` names a server) it seeds one fresh database
//! per token count (1,000 and 1,000,000 by default), starts the real release
//! server on each as a child process, and drives them over loopback with a
//! small HTTP/1.1 keep-alive load generator: `GET /healthz` (no token, no
//! database) and `GET /api/v1/me` (one token check). The machine may be busy
//! with other work, so every goal is a ratio of figures measured side by side
//! in one run, interleaved in short slices, never an absolute rate.
//!
//! It prints figures and PASS/MISS against each goal; it asserts nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tollgate::domain::{PlainToken, Scope};
use tollgate::service::Tollgate;
use tollgate::service::auth::NewUser;
use tollgate::startup::now;
use tollgate::storage::tokens::NewToken;
use tollgate::storage::{Backend, Db};

const GOAL_RATIO: f64 = 0.70;
const GOAL_SCALING: f64 = 0.10;
const GOAL_IDLE_MIB: f64 = 30.0;
const GOAL_PEAK_MIB: f64 = 100.0;

/// A member holds at most 50 live tokens, so tokens are spread 50 per user.
const TOKENS_PER_USER: u64 = 50;
const ROWS_PER_INSERT: usize = 1_000;
const INSERTS_PER_TRANSACTION: usize = 100;
/// Per-connection cap, so a run is bounded in count as well as in time.
const MAX_REQUESTS_PER_CONNECTION: u64 = 2_000_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BENCH_EMAIL: &str = "bench@example.com";
const BENCH_PASSWORD: &str = "correct horse battery staple";

const USAGE: &str = "\
usage: scripts/bench [options]

  --tokens N,N,...     token counts to seed, ascending (default 1000,1000000);
                       the first is the baseline of the scaling goal
  --connections N      keep-alive connections per server (default 64)
  --seconds SECONDS    measured time per server and route (default 8)
  --slice MS           length of one slice of the interleaving (default 50)
  --warmup SECONDS     warm-up before counting starts (default 1)
  --client-threads N   threads of the load generator (default 1)
  --server-log FILTER  RUST_LOG of the server (default warn; the server's log
                       goes to a file in the temporary folder)
  --sqlite-only        skip PostgreSQL even when TOLLGATE_BENCH_DATABASE_URL is set
  --no-hashes          skip the reference timings of SHA-256, PBKDF2 and argon2id

environment:
  TOLLGATE_BENCH_DATABASE_URL   a PostgreSQL server URL (a role that may
                                CREATE DATABASE); scripts/bench sets it to the
                                local server when `pg_isready -h 127.0.0.1` succeeds";

#[derive(Debug, Clone)]
struct Options {
    tokens: Vec<u64>,
    connections: usize,
    warmup: Duration,
    window: Duration,
    slice: Duration,
    client_threads: usize,
    server_log: String,
    postgres: Option<String>,
    hashes: bool,
    /// False when run by `cargo test` (no `--bench`): nothing to measure then.
    benchmarking: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            tokens: vec![1_000, 1_000_000],
            connections: 64,
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(8),
            slice: Duration::from_millis(50),
            client_threads: 1,
            server_log: "warn".to_owned(),
            postgres: std::env::var("TOLLGATE_BENCH_DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            hashes: true,
            benchmarking: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                // `cargo bench` passes `--bench` to every bench target.
                "--bench" => options.benchmarking = true,
                "-h" | "--help" => return Err(String::new()),
                "--tokens" => {
                    let raw = value("--tokens")?;
                    options.tokens = raw
                        .split(',')
                        .map(|n| {
                            n.trim()
                                .replace('_', "")
                                .parse::<u64>()
                                .map_err(|_| format!("--tokens: not a number: {n}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if options.tokens.is_empty()
                        || options.tokens.windows(2).any(|w| w[0] >= w[1])
                        || options.tokens[0] == 0
                    {
                        return Err("--tokens: give positive counts in ascending order".into());
                    }
                }
                "--connections" => options.connections = number(&value("--connections")?, 1, 1024)?,
                "--warmup" => options.warmup = seconds(&value("--warmup")?, 0.0)?,
                "--seconds" => options.window = seconds(&value("--seconds")?, 0.1)?,
                "--slice" => {
                    options.slice = Duration::from_millis(number(&value("--slice")?, 20, 5_000)?)
                }
                "--client-threads" => {
                    options.client_threads = number(&value("--client-threads")?, 1, 64)?
                }
                "--server-log" => options.server_log = value("--server-log")?,
                "--sqlite-only" => options.postgres = None,
                "--no-hashes" => options.hashes = false,
                other => return Err(format!("unknown argument: {other}")),
            }
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    raw: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match raw.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("expected a number from {min} to {max}, got {raw}")),
    }
}

fn seconds(raw: &str, min: f64) -> Result<Duration, String> {
    match raw.parse::<f64>() {
        Ok(s) if s >= min && s <= 60.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("expected seconds from {min} to 60, got {raw}")),
    }
}

fn main() -> std::process::ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(if message.is_empty() { 0 } else { 2 });
        }
    };
    if !options.benchmarking {
        // `cargo test --benches` (or `--all-targets`) runs bench targets
        // without `--bench`: a two-minute benchmark has no place there.
        println!(
            "benches/api.rs measures only under `cargo bench --bench api` (see scripts/bench)"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    print_header(&options);

    let mut results = Vec::new();
    results.extend(bench_backend(BackendKind::Sqlite, &options).await?);
    if let Some(admin_url) = &options.postgres {
        results.extend(bench_backend(BackendKind::Postgres(admin_url.clone()), &options).await?);
    } else {
        println!(
            "\nPostgreSQL: skipped (set TOLLGATE_BENCH_DATABASE_URL to a PostgreSQL server URL to include it)"
        );
    }

    print_summary(&results);
    if options.hashes {
        let me_rps = results.iter().map(|r| r.me.rps()).fold(0.0, f64::max);
        print_hash_costs(me_rps);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\ntotal run time: {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Machine and settings

fn print_header(options: &Options) {
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        });
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    println!("Tollgate API benchmark");
    println!("======================");
    println!(
        "machine      nproc {}, CPU {}",
        nproc.as_deref().unwrap_or("?"),
        cpu.as_deref().unwrap_or("unknown")
    );
    if let Some(kib) = memory {
        println!(
            "             {:.1} GiB memory, load average {} at start",
            kib / 1024.0 / 1024.0,
            load.as_deref().unwrap_or("?")
        );
    }
    println!(
        "server       release build of `tollgate serve`, its own process, default workers (one per core)"
    );
    println!(
        "             RUST_LOG={}: request logs are written at `info`, one line per request to stderr;",
        options.server_log
    );
    println!(
        "             at that level the figures would measure the log sink rather than the server"
    );
    println!(
        "load         {} keep-alive HTTP/1.1 connections per server over 127.0.0.1, {} client thread(s)",
        options.connections, options.client_threads
    );
    println!(
        "             one server per token count, all running; the load goes to one (server, route) pair at a time"
    );
    println!(
        "             in {} ms slices, each pair once per cycle, in orders that change from cycle to cycle;",
        options.slice.as_millis()
    );
    println!(
        "             {:.1} s of warm-up, then {:.1} s measured per server and route",
        options.warmup.as_secs_f64(),
        options.window.as_secs_f64()
    );
    println!(
        "             (client and server share the machine's cores: compare ratios, not absolute rates)"
    );
    println!(
        "tokens       {}",
        options
            .tokens
            .iter()
            .map(|n| thousands(*n))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ---------------------------------------------------------------------------
// Databases

#[derive(Debug, Clone)]
enum BackendKind {
    Sqlite,
    /// The admin URL of a PostgreSQL server.
    Postgres(String),
}

impl BackendKind {
    fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A database made for this run, removed at the end (also on early exit).
struct BenchDatabase {
    url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl BenchDatabase {
    async fn create(kind: &BackendKind) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-bench-")
            .tempdir()?;
        match kind {
            BackendKind::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
                Ok(Self {
                    url,
                    dir,
                    postgres: None,
                })
            }
            BackendKind::Postgres(admin_url) => {
                static SERIAL: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "tollgate_bench_{}_{}_{}",
                    std::process::id(),
                    now(),
                    SERIAL.fetch_add(1, Ordering::Relaxed)
                );
                let admin = Db::connect(admin_url).await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(admin.pool())
                    .await?;
                admin.close().await;
                let url = tollgate::storage::url_with_database(admin_url, &name);
                Ok(Self {
                    url,
                    dir,
                    postgres: Some((admin_url.clone(), name)),
                })
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database's name on a PostgreSQL server.
    fn postgres_name(&self) -> Option<&str> {
        self.postgres.as_ref().map(|(_, name)| name.as_str())
    }

    async fn drop_now(mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            drop_postgres_database(&admin_url, &name).await;
        }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Reached only on an early exit, maybe inside the runtime: use a
            // thread with a runtime of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_postgres_database(&admin_url, &name));
                }
            })
            .join();
        }
    }
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Db::connect(admin_url).await {
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(admin.pool())
        .await;
        admin.close().await;
    }
}

/// What the seeding has put in the database so far.
struct Seed {
    workspace_id: i64,
    password_hash: String,
    /// The plaintext the load generator sends.
    known: PlainToken,
    /// Bulk users, in order; user `i` holds bulk tokens `50 i .. 50 i + 49`.
    users: Vec<i64>,
    /// Bulk tokens inserted (the known token is not one of them).
    bulk_tokens: u64,
}

/// Migrates, creates the member who owns the known token through the
/// library (as `tollgate users create` does), and inserts the known token.
async fn seed_base(db: &Db) -> anyhow::Result<Seed> {
    db.migrate().await?;
    let core = Tollgate::new(db.clone(), None);
    let user = core
        .create_user(
            NewUser {
                email: BENCH_EMAIL,
                name: Some("Bench Member"),
                role: "read-write",
                workspace: None,
                password: BENCH_PASSWORD,
            },
            now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the bench member: {e}"))?;
    let workspace_id: i64 =
        sqlx::query_scalar("SELECT workspace_id FROM memberships WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(db.pool())
            .await?;
    let password_hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_one(db.pool())
        .await?;
    let known = PlainToken::generate();
    let digest = known.digest();
    let token = NewToken {
        user_id: user.0,
        workspace_id,
        name: "bench",
        scope: Scope::ReadWrite,
        digest: digest.as_str(),
        last4: known.last4(),
        created_at: now(),
        expires_at: None,
    };
    tollgate::storage::tokens::insert(db.pool(), &token).await?;
    Ok(Seed {
        workspace_id,
        password_hash,
        known,
        users: Vec::new(),
        bulk_tokens: 0,
    })
}

/// Adds users and tokens until the table holds `total` tokens (the known
/// one included): multi-row INSERTs of precomputed values, 100,000 rows per
/// transaction, with the next statements built on another thread while the
/// database runs the current one.
async fn grow(db: &Db, seed: &mut Seed, total: u64) -> anyhow::Result<()> {
    let bulk_target = total.saturating_sub(1);
    if bulk_target <= seed.bulk_tokens {
        return Ok(());
    }
    let created_at = now();

    // Users (the same argon2id hash for all: hashing 20,000 passwords would
    // take minutes and changes nothing on the token path) and memberships.
    let users_needed = bulk_target.div_ceil(TOKENS_PER_USER) as usize;
    if users_needed > seed.users.len() {
        let mut tx = db.begin().await?;
        let first = seed.users.len();
        for chunk_start in (first..users_needed).step_by(ROWS_PER_INSERT) {
            let chunk_end = (chunk_start + ROWS_PER_INSERT).min(users_needed);
            let mut sql =
                String::from("INSERT INTO users (email, name, password_hash, created_at) VALUES ");
            for i in chunk_start..chunk_end {
                if i > chunk_start {
                    sql.push(',');
                }
                let _ = write!(
                    sql,
                    "('member-{i:07}@bench.example', 'Member {i}', '{}', {created_at})",
                    seed.password_hash
                );
            }
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        }
        let sql = format!(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
             SELECT {}, u.id, 'read-write', {created_at} FROM users u \
             WHERE u.email LIKE 'member-%@bench.example' \
             AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id)",
            seed.workspace_id
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        tx.commit().await?;
        seed.users = sqlx::query_scalar(
            "SELECT id FROM users WHERE email LIKE 'member-%@bench.example' ORDER BY email",
        )
        .fetch_all(db.pool())
        .await?;
        anyhow::ensure!(
            seed.users.len() == users_needed,
            "expected {users_needed} bench users, found {}",
            seed.users.len()
        );
    }

    // Tokens: statements are built (tokens generated, digests computed) on a
    // thread of their own and handed over through a short queue.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(8);
    let users = seed.users.clone();
    let workspace_id = seed.workspace_id;
    let from = seed.bulk_tokens;
    let builder = std::thread::spawn(move || {
        let mut i = from;
        while i < bulk_target {
            let end = (i + ROWS_PER_INSERT as u64).min(bulk_target);
            let mut sql = String::with_capacity(ROWS_PER_INSERT * 190);
            sql.push_str("INSERT INTO personal_access_tokens (user_id, workspace_id, name, scope, digest, last4, created_at, expires_at) VALUES ");
            for n in i..end {
                let token = PlainToken::generate();
                let user = users[(n / TOKENS_PER_USER) as usize];
                // Every fourth token expires in a year, like a real mix.
                let expires = if n % 4 == 0 {
                    (created_at + 365 * 86_400).to_string()
                } else {
                    "NULL".to_owned()
                };
                if n > i {
                    sql.push(',');
                }
                let _ = write!(
                    sql,
                    "({user}, {workspace_id}, 'token {}', 'read-write', '{}', '{}', {created_at}, {expires})",
                    n % TOKENS_PER_USER,
                    token.digest().as_str(),
                    token.last4()
                );
            }
            if sender.blocking_send(sql).is_err() {
                return;
            }
            i = end;
        }
    });

    let mut statements = 0usize;
    let mut tx = begin_bulk(db).await?;
    while let Some(sql) = receiver.recv().await {
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        statements += 1;
        if statements.is_multiple_of(INSERTS_PER_TRANSACTION) {
            tx.commit().await?;
            tx = begin_bulk(db).await?;
        }
    }
    tx.commit().await?;
    builder
        .join()
        .map_err(|_| anyhow::anyhow!("the statement builder panicked"))?;
    seed.bulk_tokens = bulk_target;

    match db.backend() {
        Backend::Sqlite => {
            sqlx::raw_sql("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(db.pool())
                .await?;
        }
        Backend::Postgres => {
            sqlx::raw_sql("ANALYZE").execute(db.pool()).await?;
        }
    }
    Ok(())
}

/// A transaction for bulk inserts. On SQLite, a large page cache for its
/// connection keeps the digest index in memory while a million random keys
/// go in.
async fn begin_bulk(db: &Db) -> anyhow::Result<tollgate::storage::Tx> {
    let mut tx = db.begin().await?;
    if db.backend() == Backend::Sqlite {
        sqlx::raw_sql("PRAGMA cache_size = -262144")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

// ---------------------------------------------------------------------------
// One backend: a database and a server per token count, measured side by side

/// A seeded database with its running server.
struct Instance {
    tokens: u64,
    database: BenchDatabase,
    server: ServerProcess,
    /// The `GET /healthz` and `GET /api/v1/me` requests, as sent.
    requests: [Arc<[u8]>; 2],
    idle_rss_kib: u64,
    cold_me: Duration,
    warm_me: Duration,
    warm_healthz: Duration,
}

/// The figures of one server (one backend, one token count).
struct Measured {
    backend: &'static str,
    tokens: u64,
    healthz: Outcome,
    me: Outcome,
    /// /me ÷ /healthz rate in each measured cycle.
    cycle_ratios: Vec<f64>,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    cold_me: Duration,
    warm_me: Duration,
    warm_healthz: Duration,
    /// PostgreSQL only: CPU of the backends serving this database while
    /// the measured slices ran.
    database_cpu: Option<Duration>,
    warnings: String,
}

impl Measured {
    fn ratio(&self) -> f64 {
        if self.healthz.rps() > 0.0 {
            self.me.rps() / self.healthz.rps()
        } else {
            0.0
        }
    }

    /// The same comparison from the server's own CPU time per request,
    /// which other work on the machine disturbs less than a rate.
    fn cpu_ratio(&self) -> f64 {
        if self.me.server_us() > 0.0 {
            self.healthz.server_us() / self.me.server_us()
        } else {
            0.0
        }
    }
}

async fn bench_backend(kind: BackendKind, options: &Options) -> anyhow::Result<Vec<Measured>> {
    let label = kind.label();
    println!("\n{label}\n{}", "-".repeat(label.len()));

    // A database per token count, each seeded before any server starts.
    let mut seeded = Vec::new();
    for &total in &options.tokens {
        let started = Instant::now();
        let database = BenchDatabase::create(&kind).await?;
        let db = Db::connect(&database.url).await?;
        let mut seed = seed_base(&db).await?;
        grow(&db, &mut seed, total).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM personal_access_tokens")
            .fetch_one(db.pool())
            .await?;
        // The server gets the database to itself.
        db.close().await;
        anyhow::ensure!(
            count as u64 == total,
            "expected {total} tokens, the table holds {count}"
        );
        println!(
            "seeded {:>9} tokens over {:>6} members in {:>5.1} s",
            thousands(total),
            thousands(seed.users.len() as u64 + 1),
            started.elapsed().as_secs_f64()
        );
        seeded.push((total, database, seed.known));
    }

    // A server per database, all running; only the one being measured is busy.
    let mut instances = Vec::new();
    for (tokens, database, known) in seeded {
        let server = ServerProcess::start(
            &database.url,
            &database.path().join("server.log"),
            &options.server_log,
        )
        .await?;
        let idle_rss_kib = server.memory("VmRSS")?;
        let healthz = request_bytes("/healthz", server.port, None);
        let me = request_bytes("/api/v1/me", server.port, Some(&known));

        // One request before any load: the cache is empty, so this one asks
        // the database. Then sequential requests on one connection.
        let mut probe = Connection::open(server.port).await?;
        let t = Instant::now();
        let (status, body) = probe.exchange(&me).await?;
        let cold_me = t.elapsed();
        anyhow::ensure!(
            status == 200 && body.contains(BENCH_EMAIL),
            "GET /api/v1/me answered {status}: {body}"
        );
        let warm_me = probe.median_latency(&me, 200).await?;
        let warm_healthz = probe.median_latency(&healthz, 200).await?;
        drop(probe);

        instances.push(Instance {
            tokens,
            database,
            server,
            requests: [healthz, me],
            idle_rss_kib,
            cold_me,
            warm_me,
            warm_healthz,
        });
    }

    let run = interleave(&instances, options).await;

    let mut results = Vec::new();
    for (i, instance) in instances.into_iter().enumerate() {
        let peak_rss_kib = instance.server.memory("VmHWM")?;
        let warnings = instance.server.stop();
        instance.database.drop_now().await;
        let pair = |me: bool| {
            run.pairs
                .iter()
                .position(|p| p.server == i && p.me == me)
                .expect("every server has both routes")
        };
        let (healthz, me) = (pair(false), pair(true));
        let cycle_ratios = run.cycle_rates[healthz]
            .iter()
            .zip(&run.cycle_rates[me])
            .filter(|(h, _)| **h > 0.0)
            .map(|(h, m)| m / h)
            .collect();
        results.push(Measured {
            backend: label,
            tokens: instance.tokens,
            healthz: run.outcomes[healthz].clone(),
            me: run.outcomes[me].clone(),
            cycle_ratios,
            idle_rss_kib: instance.idle_rss_kib,
            peak_rss_kib,
            cold_me: instance.cold_me,
            warm_me: instance.warm_me,
            warm_healthz: instance.warm_healthz,
            database_cpu: run.database_cpu[i],
            warnings,
        });
    }
    for result in &results {
        print_result(result);
    }
    print_scaling(&results);
    if let Some((busy, others)) = run.machine_busy {
        println!(
            "\n  while measuring, {busy:.2} cores of the machine were busy on average, {others:.2} of them with work other than"
        );
        println!(
            "  the servers, the load generator and PostgreSQL (other programs running on the machine)"
        );
    }
    Ok(results)
}

// ---------------------------------------------------------------------------
// The server process

struct ServerProcess {
    child: Child,
    pid: u32,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    async fn start(database_url: &str, log: &Path, rust_log: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            // The server options belong to the top-level command; `serve` is
            // the default subcommand.
            .args(["--bind", &format!("127.0.0.1:{port}"), "serve"])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", rust_log)
            .env_remove("TOLLGATE_WORKERS")
            .env_remove("TOLLGATE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        let pid = child.id();
        let mut server = Self {
            child,
            pid,
            port,
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!(
                    "the server exited ({status}) before it was ready:\n{}",
                    server.log_text()
                );
            }
            if let Ok(mut conn) = Connection::open(port).await
                && let Ok((200, _)) = conn.exchange(&request_bytes("/readyz", port, None)).await
            {
                return Ok(server);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within 30 s:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A `Vm…` line of /proc/PID/status, in KiB.
    fn memory(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{}/status", self.pid))
    }

    /// The start of what the server logged (the log may be long at `info`).
    fn log_text(&self) -> String {
        use std::io::Read;
        let mut text = Vec::new();
        if let Ok(file) = std::fs::File::open(&self.log) {
            let _ = file.take(16 * 1024).read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Stops the server; returns what it logged (warnings and errors only).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_text()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process (this one with `None`), from /proc/PID/stat.
fn cpu_time(pid: Option<u32>) -> Duration {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // The command name may hold spaces; the fields after it start at ") ".
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after ") ".
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time the whole machine spent busy (every core), from /proc/stat.
fn machine_busy_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(Duration::from_secs_f64(busy as f64 / clock_ticks() as f64))
}

/// CPU time of the PostgreSQL backends serving database `name`, when the
/// PostgreSQL server runs on this machine and its processes are visible
/// (their process titles name the database).
fn postgres_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let title = String::from_utf8_lossy(&cmdline);
        if title.starts_with("postgres: ")
            && title
                .split(|c: char| c.is_whitespace() || c == '\0')
                .any(|word| word == name)
        {
            total += cpu_time(Some(pid));
            found = true;
        }
    }
    found.then_some(total)
}

// ---------------------------------------------------------------------------
// The load generator

fn request_bytes(path: &str, port: u16, token: Option<&PlainToken>) -> Arc<[u8]> {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: tollgate-bench\r\n");
    if let Some(token) = token {
        let _ = write!(request, "Authorization: Bearer {}\r\n", token.expose());
    }
    request.push_str("\r\n");
    request.into_bytes().into()
}

/// One keep-alive connection that sends a request and reads its response.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(8 * 1024),
        })
    }

    /// Sends one request; returns the status and the body.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, String)> {
        let (status, body_start, body_end) = self.round_trip(request).await?;
        let body = String::from_utf8_lossy(&self.buffer[body_start..body_end]).into_owned();
        self.buffer.drain(..body_end);
        Ok((status, body))
    }

    /// Sends one request; returns the status, skipping the body.
    async fn status(&mut self, request: &[u8]) -> std::io::Result<u16> {
        let (status, _, end) = self.round_trip(request).await?;
        self.buffer.drain(..end);
        Ok(status)
    }

    async fn median_latency(&mut self, request: &[u8], n: usize) -> std::io::Result<Duration> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let status = self.status(request).await?;
            times.push(t.elapsed());
            if status != 200 {
                return Err(std::io::Error::other(format!("status {status}")));
            }
        }
        times.sort();
        Ok(times[n / 2])
    }

    /// Writes the request and reads one whole response into the buffer:
    /// (status, body start, body end). Only `Content-Length` bodies (what
    /// the server sends for these routes) are understood.
    async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<(u16, usize, usize)> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(head_end) = find(&self.buffer, b"\r\n\r\n") {
                let head = &self.buffer[..head_end];
                let status = parse_status(head)
                    .ok_or_else(|| std::io::Error::other("not an HTTP/1.1 response"))?;
                let length = content_length(head)
                    .ok_or_else(|| std::io::Error::other("response without Content-Length"))?;
                let closing = header_is(head, "connection", "close");
                let body_start = head_end + 4;
                let body_end = body_start + length;
                while self.buffer.len() < body_end {
                    if self.stream.read_buf(&mut self.buffer).await? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                if closing {
                    return Err(std::io::Error::other("the server closed the connection"));
                }
                return Ok((status, body_start, body_end));
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(std::io::Error::other("response head too long"));
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let code = line.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn header_value<'h>(head: &'h [u8], name: &str) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

fn content_length(head: &[u8]) -> Option<usize> {
    std::str::from_utf8(header_value(head, "content-length")?)
        .ok()?
        .parse()
        .ok()
}

fn header_is(head: &[u8], name: &str, value: &str) -> bool {
    header_value(head, name).is_some_and(|v| v.eq_ignore_ascii_case(value.as_bytes()))
}

/// One (server, route) pair of the interleaved measurement.
#[derive(Debug, Clone, Copy)]
struct Pair {
    server: usize,
    me: bool,
}

/// The shared state of an interleaved run: which slice is on (its pair is
/// `schedule[slice]`), or a pause between slices, or the end.
const PAUSED: u64 = u64::MAX;
const STOPPED: u64 = u64::MAX - 1;

struct Shared {
    /// The slice being measured, `PAUSED` or `STOPPED`.
    state: AtomicU64,
    /// Requests sent and not yet answered; a slice ends once it is zero.
    in_flight: AtomicU64,
    drained: Notify,
    ok: Vec<AtomicU64>,
    io_errors: Vec<AtomicU64>,
    /// (slice, status) → non-200 answers.
    statuses: Mutex<BTreeMap<(usize, u16), u64>>,
}

impl Shared {
    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_one();
        }
    }
}

/// What one (server, route) pair did over the measured slices.
#[derive(Debug, Default, Clone)]
struct Outcome {
    ok: u64,
    /// Non-200 answers, by status.
    statuses: BTreeMap<u16, u64>,
    /// Connection failures, timeouts and unreadable responses.
    io_errors: u64,
    measured: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
}

impl Outcome {
    fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.io_errors
    }

    fn rps(&self) -> f64 {
        if self.measured.is_zero() {
            0.0
        } else {
            self.ok as f64 / self.measured.as_secs_f64()
        }
    }

    /// Server CPU time per successful request, in microseconds.
    fn server_us(&self) -> f64 {
        per_request_us(self.server_cpu, self.ok)
    }

    fn client_us(&self) -> f64 {
        per_request_us(self.client_cpu, self.ok)
    }

    /// Share of one core the load generator used.
    fn client_load(&self) -> f64 {
        if self.measured.is_zero() {
            0.0
        } else {
            self.client_cpu.as_secs_f64() / self.measured.as_secs_f64()
        }
    }

    fn describe_errors(&self) -> String {
        if self.errors() == 0 {
            return "0".to_owned();
        }
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{n} × {s}"))
            .collect();
        if self.io_errors > 0 {
            parts.push(format!("{} connection errors or timeouts", self.io_errors));
        }
        parts.join(", ")
    }
}

fn per_request_us(cpu: Duration, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        cpu.as_secs_f64() * 1e6 / requests as f64
    }
}

/// The figures of one interleaved run.
struct Run {
    pairs: Vec<Pair>,
    /// Per pair, over the measured slices.
    outcomes: Vec<Outcome>,
    /// Per pair, its rate in each measured cycle.
    cycle_rates: Vec<Vec<f64>>,
    /// Per server: CPU of its PostgreSQL backends over the measured slices.
    database_cpu: Vec<Option<Duration>>,
    /// Cores busy on average over the measured slices: on the whole
    /// machine, and outside the servers, the load generator and PostgreSQL.
    machine_busy: Option<(f64, f64)>,
}

/// Measures every (server, route) pair in turn, in short slices, so that
/// whatever else the machine does falls on all of them alike: each cycle
/// gives every pair one slice, in an order that changes from cycle to cycle.
/// Each server has its own keep-alive connections; they send only while one
/// of their server's pairs has the slice. A slice ends when its time is up
/// and every request sent in it has been answered, so no slice shares the
/// machine with the tail of another. The first cycles warm up and are not
/// counted.
async fn interleave(instances: &[Instance], options: &Options) -> Run {
    let pairs: Vec<Pair> = (0..instances.len())
        .flat_map(|server| [Pair { server, me: false }, Pair { server, me: true }])
        .collect();
    let cycle = options.slice * pairs.len() as u32;
    let warmup_cycles = (options.warmup.as_secs_f64() / cycle.as_secs_f64()).ceil() as usize;
    // A multiple of four cycles, so that every order below is used alike.
    let measured_cycles = ((options.window.as_secs_f64() / options.slice.as_secs_f64()).ceil()
        as usize)
        .max(1)
        .next_multiple_of(4);
    let mut schedule = Vec::new();
    for c in 0..warmup_cycles + measured_cycles {
        // Servers in order, each /healthz then /me; every other pair of
        // cycles /me first; every other cycle the whole list reversed. Over
        // four cycles each route of each server comes first after another
        // server's slice as often as the other route, so the small cost of
        // switching servers falls on neither route more than the other.
        let me_first = (c / 2) % 2 == 1;
        let mut order: Vec<usize> = (0..instances.len())
            .flat_map(|server| {
                let (healthz, me) = (2 * server, 2 * server + 1);
                if me_first {
                    [me, healthz]
                } else {
                    [healthz, me]
                }
            })
            .collect();
        if c % 2 == 1 {
            order.reverse();
        }
        schedule.extend(order);
    }
    let first_measured = warmup_cycles * pairs.len();

    let shared = Arc::new(Shared {
        state: AtomicU64::new(PAUSED),
        in_flight: AtomicU64::new(0),
        drained: Notify::new(),
        ok: (0..schedule.len()).map(|_| AtomicU64::new(0)).collect(),
        io_errors: (0..schedule.len()).map(|_| AtomicU64::new(0)).collect(),
        statuses: Mutex::new(BTreeMap::new()),
    });
    // Wakes the connections whenever the state changes.
    let (wake, woken) = tokio::sync::watch::channel(PAUSED);
    let servers_of_slices: Arc<[usize]> = schedule.iter().map(|&p| pairs[p].server).collect();
    let me_of_slices: Arc<[bool]> = schedule.iter().map(|&p| pairs[p].me).collect();

    let mut tasks = Vec::new();
    for (server, instance) in instances.iter().enumerate() {
        for _ in 0..options.connections {
            tasks.push(tokio::spawn(drive(
                instance.server.port,
                instance.requests.clone(),
                server,
                Arc::clone(&servers_of_slices),
                Arc::clone(&me_of_slices),
                woken.clone(),
                Arc::clone(&shared),
            )));
        }
    }
    drop(woken);

    // CPU of every server and of this process at each slice boundary.
    let pids: Vec<u32> = instances.iter().map(|i| i.server.pid).collect();
    let snapshot = || {
        (
            Instant::now(),
            pids.iter()
                .map(|&pid| cpu_time(Some(pid)))
                .collect::<Vec<_>>(),
            cpu_time(None),
        )
    };
    let names: Vec<Option<&str>> = instances
        .iter()
        .map(|i| i.database.postgres_name())
        .collect();
    let mut database_before = vec![None; instances.len()];
    let mut machine_before = None;

    let mut boundaries = Vec::with_capacity(schedule.len() + 1);
    boundaries.push(snapshot());
    for k in 0..schedule.len() {
        if k == first_measured {
            database_before = names.iter().map(|n| n.and_then(postgres_cpu)).collect();
            machine_before = machine_busy_time();
        }
        shared.state.store(k as u64, Ordering::SeqCst);
        let _ = wake.send(k as u64);
        tokio::time::sleep(options.slice).await;
        shared.state.store(PAUSED, Ordering::SeqCst);
        let _ = wake.send(PAUSED);
        loop {
            let drained = shared.drained.notified();
            if shared.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            drained.await;
        }
        boundaries.push(snapshot());
    }
    let database_after: Vec<Option<Duration>> =
        names.iter().map(|n| n.and_then(postgres_cpu)).collect();
    let machine_after = machine_busy_time();
    shared.state.store(STOPPED, Ordering::SeqCst);
    let _ = wake.send(STOPPED);
    for task in tasks {
        let _ = task.await;
    }

    let mut outcomes = vec![Outcome::default(); pairs.len()];
    let mut cycle_rates = vec![Vec::new(); pairs.len()];
    for (k, &p) in schedule.iter().enumerate().skip(first_measured) {
        let (t0, servers0, client0) = &boundaries[k];
        let (t1, servers1, client1) = &boundaries[k + 1];
        let server = pairs[p].server;
        let ok = shared.ok[k].load(Ordering::Relaxed);
        let duration = t1.duration_since(*t0);
        let outcome = &mut outcomes[p];
        outcome.ok += ok;
        outcome.io_errors += shared.io_errors[k].load(Ordering::Relaxed);
        outcome.measured += duration;
        outcome.server_cpu += servers1[server].saturating_sub(servers0[server]);
        outcome.client_cpu += client1.saturating_sub(*client0);
        cycle_rates[p].push(ok as f64 / duration.as_secs_f64());
    }
    let statuses = shared
        .statuses
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    for ((k, status), n) in statuses {
        if k >= first_measured {
            *outcomes[schedule[k]].statuses.entry(status).or_default() += n;
        }
    }
    let database_cpu: Vec<Option<Duration>> = database_before
        .iter()
        .zip(&database_after)
        .map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
        .collect();
    let machine_busy = machine_before.zip(machine_after).map(|(before, after)| {
        let (t0, servers0, client0) = &boundaries[first_measured];
        let (t1, servers1, client1) = &boundaries[schedule.len()];
        let wall = t1.duration_since(*t0).as_secs_f64();
        let ours = servers1
            .iter()
            .zip(servers0)
            .map(|(a, b)| a.saturating_sub(*b))
            .sum::<Duration>()
            + client1.saturating_sub(*client0)
            + database_cpu.iter().flatten().sum::<Duration>();
        let busy = after.saturating_sub(before).as_secs_f64() / wall;
        (busy, (busy - ours.as_secs_f64() / wall).max(0.0))
    });
    Run {
        pairs,
        outcomes,
        cycle_rates,
        database_cpu,
        machine_busy,
    }
}

/// One keep-alive connection to server `server`: sends while a slice of its
/// server is on, waits otherwise.
async fn drive(
    port: u16,
    requests: [Arc<[u8]>; 2],
    server: usize,
    servers_of_slices: Arc<[usize]>,
    me_of_slices: Arc<[bool]>,
    mut woken: tokio::sync::watch::Receiver<u64>,
    shared: Arc<Shared>,
) {
    let mut connection: Option<Connection> = None;
    let mut sent = 0u64;
    loop {
        woken.borrow_and_update();
        let state = shared.state.load(Ordering::SeqCst);
        if state == STOPPED {
            return;
        }
        if state == PAUSED
            || servers_of_slices[state as usize] != server
            || sent >= MAX_REQUESTS_PER_CONNECTION
        {
            if woken.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Counted in flight before the state is checked again, so that the
        // controller, which pauses and then waits for zero, can not miss it.
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        if shared.state.load(Ordering::SeqCst) != state {
            shared.request_done();
            continue;
        }
        let slice = state as usize;
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match tokio::time::timeout(REQUEST_TIMEOUT, Connection::open(port)).await {
                Ok(Ok(conn)) => connection.insert(conn),
                _ => {
                    shared.io_errors[slice].fetch_add(1, Ordering::Relaxed);
                    shared.request_done();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        sent += 1;
        let request = &requests[usize::from(me_of_slices[slice])];
        match tokio::time::timeout(REQUEST_TIMEOUT, conn.status(request)).await {
            Ok(Ok(200)) => {
                shared.ok[slice].fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(status)) => {
                if let Ok(mut statuses) = shared.statuses.lock() {
                    *statuses.entry((slice, status)).or_default() += 1;
                }
            }
            Ok(Err(_)) | Err(_) => {
                shared.io_errors[slice].fetch_add(1, Ordering::Relaxed);
                connection = None;
            }
        }
        shared.request_done();
    }
}

// ---------------------------------------------------------------------------
// Reporting

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The 25th, 50th and 75th percentiles.
fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

fn print_result(r: &Measured) {
    println!("\n[{}, {} tokens]", r.backend, thousands(r.tokens));
    for (name, o) in [("GET /healthz", &r.healthz), ("GET /api/v1/me", &r.me)] {
        println!(
            "  {name:<15} {:>7} req/s  {:>9} responses in {:.1} s  errors: {}",
            thousands(o.rps().round() as u64),
            thousands(o.ok),
            o.measured.as_secs_f64(),
            o.describe_errors()
        );
        println!(
            "  {:<15} CPU per request: server {:.1} µs, load generator {:.1} µs ({:.0} % of a core)",
            "",
            o.server_us(),
            o.client_us(),
            o.client_load() * 100.0
        );
    }
    let (q1, median, q3) = quartiles(&r.cycle_ratios);
    println!(
        "  ratio /me ÷ /healthz: {:.2}  (goal ≥ {GOAL_RATIO:.2}) {}",
        r.ratio(),
        verdict(r.ratio() >= GOAL_RATIO)
    );
    println!(
        "    per cycle: median {median:.2}, quartiles {q1:.2}–{q3:.2} over {} cycles; from server CPU per request: {:.2}",
        r.cycle_ratios.len(),
        r.cpu_ratio()
    );
    println!(
        "  latency on one idle connection: first /me {} (cache empty: one database query), then median /me {}, /healthz {}",
        micros(r.cold_me),
        micros(r.warm_me),
        micros(r.warm_healthz)
    );
    if let Some(cpu) = r.database_cpu {
        let per_request = per_request_us(cpu, r.me.ok);
        println!(
            "  PostgreSQL backends of this database: {:.0} ms CPU while measured, {per_request:.2} µs per /me request",
            cpu.as_secs_f64() * 1e3,
        );
        println!(
            "    {}",
            if per_request < 1.0 {
                "(under 1 µs, far less than one query costs: /me was answered from the token cache)"
            } else {
                "(the database worked while /me was measured: the token cache did not answer every request)"
            }
        );
    }
    println!(
        "  server memory: idle RSS {:.1} MiB (goal ≤ {GOAL_IDLE_MIB:.0}) {}, peak RSS {:.1} MiB (goal ≤ {GOAL_PEAK_MIB:.0}) {}",
        mib(r.idle_rss_kib),
        verdict(mib(r.idle_rss_kib) <= GOAL_IDLE_MIB),
        mib(r.peak_rss_kib),
        verdict(mib(r.peak_rss_kib) <= GOAL_PEAK_MIB)
    );
    let warnings = r.warnings.trim();
    if !warnings.is_empty() {
        println!("  the server logged:");
        for line in warnings.lines().take(20) {
            println!("    {line}");
        }
    }
}

/// The change of a backend's ratio from the baseline (its first token
/// count), or `None` for the baseline itself.
fn scaling(results: &[Measured], r: &Measured) -> Option<f64> {
    let baseline = results.iter().find(|b| b.backend == r.backend)?;
    (baseline.tokens != r.tokens && baseline.ratio() > 0.0)
        .then(|| r.ratio() / baseline.ratio() - 1.0)
}

fn print_scaling(results: &[Measured]) {
    let Some(baseline) = results.first() else {
        return;
    };
    for r in results.iter().skip(1) {
        let Some(change) = scaling(results, r) else {
            continue;
        };
        let per_cycle: Vec<f64> = r
            .cycle_ratios
            .iter()
            .zip(&baseline.cycle_ratios)
            .filter(|(_, b)| **b > 0.0)
            .map(|(r, b)| r / b - 1.0)
            .collect();
        let (q1, median, q3) = quartiles(&per_cycle);
        println!(
            "\n  ratio at {} tokens relative to {}: {:+.1} % (goal within ±{:.0} %) {}",
            thousands(r.tokens),
            thousands(baseline.tokens),
            change * 100.0,
            GOAL_SCALING * 100.0,
            verdict(change.abs() <= GOAL_SCALING)
        );
        let cpu_change = if baseline.cpu_ratio() > 0.0 {
            r.cpu_ratio() / baseline.cpu_ratio() - 1.0
        } else {
            0.0
        };
        println!(
            "    per cycle: median {:+.1} %, quartiles {:+.1} % to {:+.1} %; from server CPU per request: {:+.1} %",
            median * 100.0,
            q1 * 100.0,
            q3 * 100.0,
            cpu_change * 100.0
        );
    }
}

fn print_summary(results: &[Measured]) {
    println!("\nSummary");
    println!("-------");
    println!(
        "{:<11} {:>10} {:>10} {:>13} {:>12} {:>17} {:>15} {:>15} {:>7}",
        "backend",
        "tokens",
        "/me req/s",
        "/healthz r/s",
        "ratio ≥0.70",
        "vs first ±10 %",
        "idle RSS ≤30",
        "peak RSS ≤100",
        "errors"
    );
    let mut missed = 0;
    for r in results {
        let scaling = match scaling(results, r) {
            Some(change) => {
                let pass = change.abs() <= GOAL_SCALING;
                missed += u32::from(!pass);
                format!("{:+.1} % {}", change * 100.0, verdict(pass))
            }
            None => "(baseline)".to_owned(),
        };
        let ratio_pass = r.ratio() >= GOAL_RATIO;
        let idle_pass = mib(r.idle_rss_kib) <= GOAL_IDLE_MIB;
        let peak_pass = mib(r.peak_rss_kib) <= GOAL_PEAK_MIB;
        missed += u32::from(!ratio_pass) + u32::from(!idle_pass) + u32::from(!peak_pass);
        println!(
            "{:<11} {:>10} {:>10} {:>13} {:>12} {:>17} {:>15} {:>15} {:>7}",
            r.backend,
            thousands(r.tokens),
            thousands(r.me.rps().round() as u64),
            thousands(r.healthz.rps().round() as u64),
            format!("{:.2} {}", r.ratio(), verdict(ratio_pass)),
            scaling,
            format!("{:.1} MiB {}", mib(r.idle_rss_kib), verdict(idle_pass)),
            format!("{:.1} MiB {}", mib(r.peak_rss_kib), verdict(peak_pass)),
            r.me.errors() + r.healthz.errors()
        );
    }
    let errors: u64 = results
        .iter()
        .map(|r| r.me.errors() + r.healthz.errors())
        .sum();
    println!(
        "\nratio: /me req/s ÷ /healthz req/s, same server, interleaved; vs first: change of that ratio from the backend's first token count"
    );
    println!(
        "{}; {}",
        if missed == 0 {
            "every goal met".to_owned()
        } else {
            format!("{missed} goal(s) missed")
        },
        if errors == 0 {
            "every response was 200".to_owned()
        } else {
            format!("{errors} request(s) failed (see above)")
        }
    );
}

/// What checking a token would cost per request if tokens were stored with a
/// slow password hash instead of SHA-256.
fn print_hash_costs(me_rps: f64) {
    use std::hint::black_box;

    const SHA_RUNS: u32 = 100_000;
    const PBKDF2_RUNS: u32 = 20;
    const ARGON2_RUNS: u32 = 5;

    println!("\nReference: per-request verification with a slow hash (one core)");
    println!("-----------------------------------------------------------------");
    let token = PlainToken::generate();
    let salt = *b"tollgate-bench-s";

    let time = |runs: u32, f: &dyn Fn()| {
        f(); // warms caches and allocations
        let started = Instant::now();
        for _ in 0..runs {
            f();
        }
        started.elapsed() / runs
    };
    let sha = time(SHA_RUNS, &|| {
        black_box(black_box(&token).digest());
    });
    let pbkdf2 = time(PBKDF2_RUNS, &|| {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
            black_box(token.expose().as_bytes()),
            &salt,
            10_000,
            &mut out,
        );
        black_box(out);
    });
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).expect("argon2 parameters");
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let argon2 = time(ARGON2_RUNS, &|| {
        let mut out = [0u8; 32];
        hasher
            .hash_password_into(black_box(token.expose().as_bytes()), &salt, &mut out)
            .expect("argon2id");
        black_box(out);
    });

    println!(
        "{:<44} {:>6} {:>11} {:>16} {:>11} {:>16}",
        "hash of one token", "runs", "time", "verifications/s", "vs SHA-256", "cores for /me"
    );
    for (name, runs, cost) in [
        ("SHA-256, hex (what Tollgate does)", SHA_RUNS, sha),
        (
            "PBKDF2-HMAC-SHA256, 10,000 rounds (Gitea)",
            PBKDF2_RUNS,
            pbkdf2,
        ),
        (
            "argon2id, m=19456 KiB, t=2, p=1 (OWASP)",
            ARGON2_RUNS,
            argon2,
        ),
    ] {
        let per_second = 1.0 / cost.as_secs_f64();
        println!(
            "{:<44} {:>6} {:>11} {:>16} {:>10.0}× {:>16.2}",
            name,
            thousands(u64::from(runs)),
            if cost < Duration::from_micros(10) {
                format!("{:.2} µs", cost.as_secs_f64() * 1e6)
            } else {
                micros(cost)
            },
            thousands(per_second.round() as u64),
            cost.as_secs_f64() / sha.as_secs_f64(),
            me_rps / per_second
        );
    }
    println!(
        "cores for /me: cores that would do nothing but hash tokens to serve the best /me rate measured above\n\
         ({} req/s) if every request had to hash its token",
        thousands(me_rps.round() as u64)
    );
}
