//! Outgoing email: invitations and "your token expires soon" notices, over
//! SMTP when `TOLLGATE_SMTP_URL` and `TOLLGATE_MAIL_FROM` are set. Without
//! them there is no `Mailer`, nothing is sent, and the dashboard shows
//! invitation links to copy instead.
//!
//! What the emails say is decided in the services; this module only
//! delivers plain-text messages.
//!
//! The connection is plain SMTP (`smtp://[user:password@]host[:port]`), the
//! usual set-up with a relay on the same host or network. No TLS stack is
//! built in, so `smtps://` and `?tls=` URLs are refused at start rather than
//! silently sent in the clear.

use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one delivery may take (connect, talk, send).
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_PORT: u16 = 25;

/// Delivers email through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The mailer the configuration asks for: none when neither setting is
    /// given, an error when only one is or when either can not be read.
    pub fn from_settings(
        smtp_url: Option<&str>,
        from: Option<&str>,
    ) -> anyhow::Result<Option<Self>> {
        let (url, from) = match (
            smtp_url.filter(|u| !u.trim().is_empty()),
            from.filter(|f| !f.trim().is_empty()),
        ) {
            (None, None) => return Ok(None),
            (Some(url), Some(from)) => (url, from),
            _ => anyhow::bail!(
                "TOLLGATE_SMTP_URL and TOLLGATE_MAIL_FROM go together: set both to send email, or neither"
            ),
        };
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("TOLLGATE_MAIL_FROM is not an email address: {from}"))?;
        let server =
            SmtpServer::parse(url).map_err(|e| anyhow::anyhow!("TOLLGATE_SMTP_URL: {e}"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host)
            .port(server.port)
            .timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = server.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        if let Some(name) = server.hello_name {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one plain-text email.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let to: Mailbox = to
            .parse()
            .with_context(|| "the recipient is not an email address")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("building the email")?;
        self.transport
            .send(message)
            .await
            .context("sending the email")?;
        Ok(())
    }
}

/// `smtp://[user[:password]@]host[:port][/hello-name]`.
#[derive(Debug, PartialEq, Eq)]
struct SmtpServer {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
}

impl SmtpServer {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = match url.split_once("://") {
            Some(("smtp", rest)) => rest,
            Some(("smtps", _)) => {
                return Err(
                    "smtps:// needs TLS, which this build does not include; use a relay reachable over smtp://".to_owned(),
                );
            }
            _ => return Err("expected smtp://[user:password@]host[:port]".to_owned()),
        };
        if rest.contains('?') {
            return Err(
                "query parameters (such as ?tls=) are not supported: this build speaks plain SMTP to a relay".to_owned(),
            );
        }
        let (authority, hello_name) = match rest.split_once('/') {
            Some((authority, path)) => (
                authority,
                Some(path.trim_matches('/').to_owned()).filter(|p| !p.is_empty()),
            ),
            None => (rest, None),
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user)?, percent_decode(password)?)),
                    host_port,
                )
            }
            None => (None, authority),
        };
        // `[v6 address]:port`, `host:port`, or either without a port.
        let (host, port) = match host_port.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| "an IPv6 address lacks its `]`".to_owned())?;
                (host, after.strip_prefix(':'))
            }
            None => match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("the port `{port}` is not a number"))?,
            None => DEFAULT_PORT,
        };
        if host.is_empty() {
            return Err("the host is missing".to_owned());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
            hello_name,
        })
    }
}

/// `%40` → `@`, for user names and passwords in the URL.
fn percent_decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = raw
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| "a %-escape in the credentials is malformed".to_owned())?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the credentials are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_read_with_their_parts() {
        assert_eq!(
            SmtpServer::parse("smtp://mail.example.com").unwrap(),
            SmtpServer {
                host: "mail.example.com".to_owned(),
                port: 25,
                credentials: None,
                hello_name: None
            }
        );
        assert_eq!(
            SmtpServer::parse("smtp://tollgate:p%40ss:word@127.0.0.1:2525/tokens.example.com")
                .unwrap(),
            SmtpServer {
                host: "127.0.0.1".to_owned(),
                port: 2525,
                credentials: Some(("tollgate".to_owned(), "p@ss:word".to_owned())),
                hello_name: Some("tokens.example.com".to_owned()),
            }
        );
        assert_eq!(SmtpServer::parse("smtp://[::1]:587").unwrap().host, "::1");
    }

    #[test]
    fn urls_this_build_can_not_serve_are_refused() {
        for bad in [
            "smtps://mail.example.com",
            "smtp://mail.example.com?tls=required",
            "http://mail.example.com",
            "mail.example.com",
            "smtp://",
            "smtp://host:port",
            "smtp://user:%zz@host",
        ] {
            assert!(SmtpServer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mail_is_configured_by_both_settings_or_neither() {
        assert!(Mailer::from_settings(None, None).unwrap().is_none());
        assert!(Mailer::from_settings(Some("smtp://127.0.0.1:2525"), None).is_err());
        assert!(Mailer::from_settings(None, Some("tollgate@example.com")).is_err());
        assert!(
            Mailer::from_settings(Some("smtp://127.0.0.1:2525"), Some("not an address")).is_err()
        );
    }

    #[tokio::test]
    async fn a_mailer_is_made_from_good_settings() {
        let mailer = Mailer::from_settings(
            Some("smtp://127.0.0.1:2525"),
            Some("Tollgate <tollgate@example.com>"),
        )
        .unwrap();
        assert!(mailer.is_some());
    }
}
