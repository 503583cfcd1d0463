//! Configuration, from command-line flags and environment variables, with
//! defaults that let `cargo run` work with nothing set.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TOLLGATE_BIND` | `127.0.0.1:8080` | address to listen on (`--bind`) |
//! | `DATABASE_URL` | `sqlite://data/tollgate.db` | `sqlite://PATH` or `postgres://…` (`--database-url`) |
//! | `TOLLGATE_SECRET_KEY` | generated once, kept in the database | cookie-signing key, at least 32 bytes |
//! | `TOLLGATE_PUBLIC_URL` | none | public origin, e.g. `https://tokens.example.com`; https makes cookies `Secure` |
//! | `TOLLGATE_SUPPORT` | none | support email or URL shown on the tokens tab |
//! | `TOLLGATE_TRUSTED_PROXY` | none | address of a reverse proxy whose `X-Forwarded-For` is believed |
//! | `TOLLGATE_SESSION_IDLE_MINUTES` | `120` | a session ends after this long without a request |
//! | `TOLLGATE_SESSION_MAX_HOURS` | `24` | a session ends this long after sign-in, used or not |
//! | `TOLLGATE_AUDIT_RETENTION_DAYS` | `365` | audit events older than this are deleted |
//! | `TOLLGATE_LAST_USED_FLUSH_SECONDS` | `30` | how often "last used" times are written |
//! | `TOLLGATE_WORKERS` | number of cores | HTTP worker threads |
//! | `TOLLGATE_METRICS_BIND` | none (off) | address for Prometheus' `GET /metrics`; never the public one |
//! | `TOLLGATE_SMTP_URL` | none (no email) | `smtp://[user:password@]host[:port]` of a mail relay for invitations and expiry notices |
//! | `TOLLGATE_MAIL_FROM` | none | sender of those emails, e.g. `Tollgate <tollgate@example.com>`; needed with `TOLLGATE_SMTP_URL` |
//! | `TOLLGATE_LOG_FORMAT` | `text` | `text` or `json` |
//! | `RUST_LOG` | `info` | log filter |

use clap::Args;

#[derive(Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: String,

    /// Database: sqlite://PATH (created when missing) or postgres://….
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://data/tollgate.db"
    )]
    pub database_url: String,

    /// Cookie-signing key (32 bytes or more). Generated once and kept in the
    /// database when not given.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,

    /// Public origin of the dashboard (scheme://host[:port]).
    #[arg(long, global = true, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Support email address or URL shown on the tokens tab.
    #[arg(long, global = true, env = "TOLLGATE_SUPPORT")]
    pub support: Option<String>,

    /// Address of the reverse proxy in front of Tollgate: requests from it
    /// are attributed to the last address in `X-Forwarded-For` (for the
    /// audit log and sign-in throttling).
    #[arg(long, global = true, env = "TOLLGATE_TRUSTED_PROXY")]
    pub trusted_proxy: Option<std::net::IpAddr>,

    /// Idle session lifetime in minutes.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_SESSION_IDLE_MINUTES",
        default_value_t = 120
    )]
    pub session_idle_minutes: i64,

    /// Absolute session lifetime in hours.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_SESSION_MAX_HOURS",
        default_value_t = 24
    )]
    pub session_max_hours: i64,

    /// Audit events older than this many days are deleted by the
    /// background cleanup.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_AUDIT_RETENTION_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    pub audit_retention_days: i64,

    /// Seconds between writes of coalesced "last used" times.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_LAST_USED_FLUSH_SECONDS",
        default_value_t = 30
    )]
    pub last_used_flush_seconds: u64,

    /// HTTP worker threads (default: one per core).
    #[arg(long, global = true, env = "TOLLGATE_WORKERS")]
    pub workers: Option<usize>,

    /// Address for `GET /metrics` (Prometheus text format), e.g.
    /// 127.0.0.1:9090. Off when not set; never served on the public address.
    #[arg(long, global = true, env = "TOLLGATE_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// Mail relay for invitation and expiry emails:
    /// smtp://[user:password@]host[:port]. No email is sent when not set.
    #[arg(long, global = true, env = "TOLLGATE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of Tollgate's emails, e.g. `Tollgate <tollgate@example.com>`.
    #[arg(long, global = true, env = "TOLLGATE_MAIL_FROM")]
    pub mail_from: Option<String>,
}

impl Config {
    /// The defaults, as `cargo run` with nothing set would use them.
    pub fn for_database(database_url: &str) -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            database_url: database_url.to_owned(),
            secret_key: None,
            public_url: None,
            support: None,
            trusted_proxy: None,
            session_idle_minutes: 120,
            session_max_hours: 24,
            audit_retention_days: 365,
            last_used_flush_seconds: 30,
            workers: None,
            metrics_bind: None,
            smtp_url: None,
            mail_from: None,
        }
    }

    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The public origin without a trailing slash, when configured.
    pub fn public_origin(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}

/// Redacts the secret key and any password in the database URL.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &redact_url(&self.database_url))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("public_url", &self.public_url)
            .field("support", &self.support)
            .field("trusted_proxy", &self.trusted_proxy)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("session_max_hours", &self.session_max_hours)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("last_used_flush_seconds", &self.last_used_flush_seconds)
            .field("workers", &self.workers)
            .field("metrics_bind", &self.metrics_bind)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let mut config = Config::for_database("postgres://app:hunter2@db/tollgate");
        config.secret_key = Some("0123456789abcdef0123456789abcdef-very-secret".to_owned());
        config.smtp_url = Some("smtp://relay:mail-secret@mail.example.com:587".to_owned());
        let shown = format!("{config:?}");
        assert!(!shown.contains("mail-secret"));
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("very-secret"));
        assert!(shown.contains("postgres://app:***@db/tollgate"));
    }
}
