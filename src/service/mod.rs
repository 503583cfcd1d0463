//! Use-cases. Services decide who acts, on what, whether it is allowed, and
//! what goes into the audit log. They take `now` (unix seconds) as an
//! argument so that expiry is testable without sleeping, and know nothing of
//! HTTP.

pub mod actor;
pub mod audit;
pub mod auth;
pub mod export;
pub mod housekeeping;
pub mod leaks;
pub mod measure;
pub mod members;
pub mod notices;
pub mod passwords;
pub mod policy;
pub mod service_accounts;
pub mod throttle;
pub mod token_cache;
pub mod tokens;
pub mod workspaces;

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::domain::{Role, UserId, ValidationError, WorkspaceId};
use crate::storage::{self, Db};

pub use actor::Actor;
pub use token_cache::{Principal, TokenCache};

/// The application core: what every handler gets.
pub struct Tollgate {
    pub db: Db,
    /// The time every request, service and background task reads: the
    /// system clock in production, a `ManualClock` in tests that move time.
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<TokenCache>,
    /// Shown in the help line of the tokens tab when set.
    pub support_contact: Option<String>,
    /// Counts guesses of passwords and codes (see `throttle`).
    pub throttle: throttle::Throttle,
    /// Counts leaked-token reports per address (see `leaks`).
    pub leak_reports: throttle::Throttle,
    /// Counts small leaked-token reports from everyone together (see
    /// `leaks`).
    pub leak_reports_instance: throttle::Throttle,
    /// Counts large leaked-token reports from everyone together.
    pub leak_reports_instance_large: throttle::Throttle,
    /// Sends invitations and expiry notices; `None` when no SMTP server is
    /// configured.
    pub mailer: Option<crate::mail::Mailer>,
}

impl Tollgate {
    pub fn new(db: Db, support_contact: Option<String>) -> Self {
        Self::with_clock(db, support_contact, Arc::new(SystemClock::new()))
    }

    /// The core reading time from `clock` (the token cache included).
    pub fn with_clock(db: Db, support_contact: Option<String>, clock: Arc<dyn Clock>) -> Self {
        let tokens = Arc::new(TokenCache::with_clock(&db, Arc::clone(&clock)));
        Self {
            db,
            clock,
            tokens,
            throttle: Default::default(),
            leak_reports: leaks::report_throttle(),
            leak_reports_instance: leaks::instance_report_throttle(),
            leak_reports_instance_large: leaks::instance_large_report_throttle(),
            support_contact,
            mailer: None,
        }
    }

    /// The same core, sending email through `mailer`.
    pub fn with_mailer(mut self, mailer: Option<crate::mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Unix seconds now, by this core's clock.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; `field` names the form field the message belongs to.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Absent, or not visible to the actor: never reveals which.
    #[error("not found")]
    NotFound,
    /// The credentials the request presented are not (or no longer) valid.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The actor may not do this; `code` is machine-readable.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Clashes with what exists (a taken name, a full quota).
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// Too many attempts; try again after this many seconds.
    #[error("{message}")]
    TooManyAttempts { retry_after: i64, message: String },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn invalid(field: &'static str, err: ValidationError) -> Self {
        Self::Invalid {
            field,
            message: err.0,
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }
}

impl ServiceError {
    /// True when the server refused for load, not for a fault.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Unexpected(err) if err.is::<passwords::Busy>())
    }
}

impl From<storage::Error> for ServiceError {
    fn from(err: storage::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database query failed"))
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: String,
    pub user_agent: String,
}

/// A member's place in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub role: Role,
}

/// A person signed in to the dashboard, with their current memberships.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub memberships: Vec<Membership>,
}

impl SignedInUser {
    pub fn membership(&self, workspace: WorkspaceId) -> Option<&Membership> {
        self.memberships
            .iter()
            .find(|m| m.workspace_id == workspace)
    }

    /// The member's highest role in any workspace.
    pub fn highest_role(&self) -> Option<Role> {
        self.memberships.iter().map(|m| m.role).max()
    }

    pub fn is_admin(&self) -> bool {
        self.highest_role() == Some(Role::Admin)
    }

    /// Workspaces where the member may create tokens.
    pub fn token_workspaces(&self) -> impl Iterator<Item = &Membership> {
        self.memberships.iter().filter(|m| m.role.may_use_tokens())
    }

    /// The workspace an Admin page is about: the one asked for if the member
    /// administers it, else the first one they administer.
    pub fn admin_workspace(&self, wanted: Option<i64>) -> Option<&Membership> {
        let mut admin = self.memberships.iter().filter(|m| m.role == Role::Admin);
        match wanted {
            Some(id) => admin.find(|m| m.workspace_id.0 == id),
            None => admin.next(),
        }
    }
}

/// Page size rules shared by every list.
pub fn clamp_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

/// One page of a list. Storage is asked for one row more than the page
/// holds; that row's presence says whether there is a next page.
pub struct Page<T> {
    pub items: Vec<T>,
    /// The position of the last item, to continue after it.
    pub next_cursor: Option<i64>,
}

impl<T> Page<T> {
    pub fn from_overfetch(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(&position)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}
