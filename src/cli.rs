//! The command line: `serve` (the default), `migrate`, `check`, `backup`,
//! `users create`, `check-token`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, redact_url};
use crate::service::auth::NewUser;
use crate::service::{ServiceError, Tollgate};
use crate::startup::Application;
use crate::storage::Db;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Personal access tokens for your workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dashboard and the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration, the database connection and the migration
    /// state, then exit (non-zero with a one-line message when something is
    /// wrong). Changes nothing.
    Check,
    /// Copy the running SQLite database to PATH, consistently, while the
    /// server serves (PostgreSQL: use pg_dump).
    Backup {
        /// The file to write; must not exist yet.
        path: std::path::PathBuf,
    },
    /// Check tokens read from standard input, one a line, for the Tollgate
    /// format and checksum, offline: prints `valid` or `invalid` per line
    /// (with the token's hint, never the secret) and exits non-zero when any
    /// line is invalid. Use it to drop a secret scanner's false positives:
    /// a regular expression can not check a CRC32.
    CheckToken,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user (and the organization and workspace when none exists).
    Create {
        #[arg(long)]
        email: String,
        /// admin, read-write or read-only.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// Workspace name (default: "Default"); created when missing.
        #[arg(long)]
        workspace: Option<String>,
        /// Read the password from standard input (required: passwords are
        /// never taken as arguments, where other users could see them).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("can not start the runtime: {err}")),
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve(cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&format!("{err:#}")),
        },
        Command::Migrate => match migrate(&cli.config).await {
            Ok(()) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&format!("{err:#}")),
        },
        Command::Check => match check(&cli.config).await {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
        Command::Backup { path } => match backup(&cli.config, &path).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
        Command::CheckToken => {
            let mut input = String::new();
            if let Err(err) = std::io::stdin().read_to_string(&mut input) {
                return fail(&format!("can not read standard input: {err}"));
            }
            let (report, all_valid) = check_tokens(&input);
            print!("{report}");
            if all_valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    role,
                    name,
                    workspace,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            if let Err(err) = std::io::stdin().read_to_string(&mut password) {
                return fail(&format!(
                    "can not read the password from standard input: {err}"
                ));
            }
            let password = password
                .strip_suffix('\n')
                .map(|p| p.strip_suffix('\r').unwrap_or(p))
                .unwrap_or(&password);
            let input = NewUser {
                email: &email,
                name: name.as_deref(),
                role: &role,
                workspace: workspace.as_deref(),
                password,
            };
            match create_user(&cli.config, input).await {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(message) => fail(&message),
            }
        }
    }
}

/// One line per non-empty input line: `valid tgp_…last4` or `invalid`
/// with the line number; and whether every token was valid.
pub fn check_tokens(input: &str) -> (String, bool) {
    let mut report = String::new();
    let mut all_valid = true;
    for (number, line) in input.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match crate::domain::PlainToken::parse(line) {
            Ok(token) => report.push_str(&format!("line {}: valid {token:?}\n", number + 1)),
            Err(_) => {
                all_valid = false;
                report.push_str(&format!(
                    "line {}: invalid (not a Tollgate token, or its checksum does not match)\n",
                    number + 1
                ));
            }
        }
    }
    (report, all_valid)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!(address = %app.address(), "Tollgate is listening on http://{}", app.address());
    app.run_until_stopped().await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await
}

/// How long `check` waits for the database before calling it unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `tollgate check`: the settings one by one, then the database. Returns the
/// lines to print, or the first problem as one line.
async fn check(config: &Config) -> Result<Vec<String>, String> {
    let mut lines = vec![format!("tollgate {}", env!("CARGO_PKG_VERSION"))];
    lines.push(check_settings(config)?);
    let url = &config.database_url;
    let shown = redact_url(url);
    if let Some(path) = sqlite_path(url) {
        if !path.exists() {
            lines.push(format!(
                "ok: database {shown}: the file does not exist yet; the first start (or `tollgate migrate`) creates it"
            ));
            return Ok(lines);
        }
        if !path.is_file() {
            return Err(format!("database {shown}: not a file"));
        }
    }
    let db = connect_existing(url).await?;
    let state = tokio::time::timeout(CHECK_TIMEOUT, db.migration_state()).await;
    db.close().await;
    let state = match state {
        Ok(Ok(state)) => state,
        Ok(Err(err)) => {
            return Err(format!(
                "database {shown}: reading the migration state: {err}"
            ));
        }
        Err(_) => {
            return Err(format!(
                "database {shown}: no answer within {}s",
                CHECK_TIMEOUT.as_secs()
            ));
        }
    };
    let versions = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    if !state.unknown.is_empty() {
        return Err(format!(
            "database {shown}: migration(s) {} are not known to this version: the database belongs to a newer release",
            versions(&state.unknown)
        ));
    }
    if !state.failed.is_empty() {
        return Err(format!(
            "database {shown}: migration(s) {} failed part way; repair the database before starting",
            versions(&state.failed)
        ));
    }
    if !state.changed.is_empty() {
        return Err(format!(
            "database {shown}: migration(s) {} differ from the ones this version carries",
            versions(&state.changed)
        ));
    }
    lines.push(format!("ok: database {shown} answers"));
    lines.push(if state.pending.is_empty() {
        format!("ok: migrations up to date ({} applied)", state.applied)
    } else {
        format!(
            "ok: {} applied, {} pending ({}): applied by `tollgate migrate` or at start",
            state.applied,
            state.pending.len(),
            versions(&state.pending)
        )
    });
    Ok(lines)
}

/// The settings that parse but may still be wrong.
fn check_settings(config: &Config) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    if config
        .bind
        .to_socket_addrs()
        .map_or(true, |mut a| a.next().is_none())
    {
        return Err(format!(
            "TOLLGATE_BIND {:?} is not an address to listen on (e.g. 127.0.0.1:8080)",
            config.bind
        ));
    }
    if let Some(metrics) = &config.metrics_bind {
        if metrics
            .to_socket_addrs()
            .map_or(true, |mut a| a.next().is_none())
        {
            return Err(format!(
                "TOLLGATE_METRICS_BIND {metrics:?} is not an address to listen on (e.g. 127.0.0.1:9090)"
            ));
        }
        if metrics == &config.bind {
            return Err(
                "TOLLGATE_METRICS_BIND must differ from TOLLGATE_BIND: metrics are never served on the public address"
                    .to_owned(),
            );
        }
    }
    let url = &config.database_url;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres:")
        || url.starts_with("postgresql:"))
    {
        return Err(format!(
            "DATABASE_URL {:?} is not sqlite://PATH or postgres://user:password@host/db",
            redact_url(url)
        ));
    }
    if let Some(key) = &config.secret_key
        && key.len() < 32
    {
        return Err("TOLLGATE_SECRET_KEY must be at least 32 bytes long".to_owned());
    }
    if let Some(public) = &config.public_url {
        let rest = public
            .strip_prefix("https://")
            .or_else(|| public.strip_prefix("http://"));
        let host = rest.map(|r| r.trim_end_matches('/'));
        if host.is_none_or(|h| h.is_empty() || h.contains(['/', '?', '#', ' '])) {
            return Err(format!(
                "TOLLGATE_PUBLIC_URL {public:?} must be an origin such as https://tokens.example.com (no path)"
            ));
        }
    }
    crate::mail::Mailer::from_settings(config.smtp_url.as_deref(), config.mail_from.as_deref())
        .map_err(|e| format!("{e:#}"))?;
    for (name, value) in [
        ("TOLLGATE_SESSION_IDLE_MINUTES", config.session_idle_minutes),
        ("TOLLGATE_SESSION_MAX_HOURS", config.session_max_hours),
        (
            "TOLLGATE_LAST_USED_FLUSH_SECONDS",
            i64::try_from(config.last_used_flush_seconds).unwrap_or(i64::MAX),
        ),
        (
            "TOLLGATE_WORKERS",
            config
                .workers
                .map_or(1, |w| i64::try_from(w).unwrap_or(i64::MAX)),
        ),
    ] {
        if value < 1 {
            return Err(format!("{name} must be at least 1"));
        }
    }
    Ok(format!("ok: configuration (listens on {})", config.bind))
}

/// The file of an `sqlite://` URL.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Connects without creating anything: an SQLite file must exist.
async fn connect_existing(url: &str) -> Result<Db, String> {
    let shown = redact_url(url);
    let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
        format!("{url}{}mode=rw", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_owned()
    };
    match tokio::time::timeout(CHECK_TIMEOUT, Db::probe(&url)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(format!("database {shown}: {err}")),
        Err(_) => {
            return Err(format!(
                "database {shown}: no answer within {}s",
                CHECK_TIMEOUT.as_secs()
            ));
        }
    }
    match tokio::time::timeout(CHECK_TIMEOUT, Db::connect(&url)).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(err)) => Err(format!("database {shown}: {}", err.root_cause())),
        Err(_) => Err(format!(
            "database {shown}: no answer within {}s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// `tollgate backup PATH`: `VACUUM INTO` a temporary file beside PATH, then
/// rename it, so PATH is either absent or a whole copy.
async fn backup(config: &Config, target: &std::path::Path) -> Result<String, String> {
    let url = &config.database_url;
    let Some(source) = sqlite_path(url) else {
        return Err(
            "`tollgate backup` copies SQLite databases; back up PostgreSQL with pg_dump (see the README)"
                .to_owned(),
        );
    };
    if !source.is_file() {
        return Err(format!("no database at {}", source.display()));
    }
    if target.exists() {
        return Err(format!(
            "{} already exists; name a new file",
            target.display()
        ));
    }
    if let Some(parent) = target.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        return Err(format!("the folder {} does not exist", parent.display()));
    }
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let db = connect_existing(url).await?;
    let copied = db.vacuum_into(&partial).await;
    db.close().await;
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("copying {}: {err}", source.display()));
    }
    if let Err(err) = std::fs::rename(&partial, target) {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("writing {}: {err}", target.display()));
    }
    let size = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "backed up {} to {} ({size} bytes)",
        source.display(),
        target.display()
    ))
}

async fn create_user(config: &Config, input: NewUser<'_>) -> Result<String, String> {
    let db = Db::connect(&config.database_url)
        .await
        .map_err(|e| format!("{e:#}"))?;
    db.migrate().await.map_err(|e| format!("{e:#}"))?;
    let app = Tollgate::new(db, None);
    let email = input.email.trim().to_lowercase();
    match app.create_user(input, app.now()).await {
        Ok(id) => Ok(format!("created user {email} (id {id})")),
        Err(ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. }) => {
            Err(message)
        }
        Err(err) => Err(format!("{err:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
