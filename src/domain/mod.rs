//! Domain types: values that are valid by construction ("parse, don't
//! validate"). Nothing here knows about HTTP or SQL.

mod account;
mod email;
mod ids;
mod password;
mod policy;
mod role;
mod token;
mod token_name;
mod workspace_name;

pub use account::{AccountKind, ServiceAccountName};
pub use email::Email;
pub use ids::{TokenId, UserId, WorkspaceId};
pub use password::{NewPassword, Password};
pub use policy::{LIFETIME_DAYS, TokenPolicy, lifetime_label};
pub use role::{Role, Scope};
pub use token::{PlainToken, TokenDigest, display_hint, sha256_hex};
pub use token_name::{TokenName, is_spoofing};
pub use workspace_name::WorkspaceName;

/// Why a value was refused. The message is shown to the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// How long a new token lives. GitHub and GitLab both push for an expiry, so
/// the default is 90 days, and "No expiration" is an explicit choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    Days7,
    Days30,
    #[default]
    Days90,
    Year,
    Never,
}

impl Expiry {
    pub const ALL: [Expiry; 5] = [
        Expiry::Days7,
        Expiry::Days30,
        Expiry::Days90,
        Expiry::Year,
        Expiry::Never,
    ];

    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
            .ok_or_else(|| ValidationError::new("Choose an expiry from the list."))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Days7 => "7",
            Expiry::Days30 => "30",
            Expiry::Days90 => "90",
            Expiry::Year => "365",
            Expiry::Never => "never",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Expiry::Days7 => "7 days",
            Expiry::Days30 => "30 days",
            Expiry::Days90 => "90 days",
            Expiry::Year => "1 year",
            Expiry::Never => "No expiration",
        }
    }

    /// How many days a token lives; `None` for "No expiration".
    pub fn days(self) -> Option<i64> {
        match self {
            Expiry::Days7 => Some(7),
            Expiry::Days30 => Some(30),
            Expiry::Days90 => Some(90),
            Expiry::Year => Some(365),
            Expiry::Never => None,
        }
    }

    /// The expiry instant (unix seconds) for a token created at `now`.
    pub fn expires_at(self, now: i64) -> Option<i64> {
        self.days().map(|days| now + days * 86_400)
    }
}
