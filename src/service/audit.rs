//! Writing and reading the audit log. Events are written inside the same
//! transaction as the change they describe.

use crate::domain::{AccountKind, WorkspaceId};
use crate::service::{
    Actor, Page, Principal, RequestMeta, ServiceError, SignedInUser, Tollgate, clamp_limit,
};
use crate::storage::audit::{AuditRow, NewAuditEvent};
use crate::storage::{self, Tx};

/// Who did something: a signed-in person, or a script holding a token.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub label: String,
}

impl AuditActor {
    pub fn user(user: &SignedInUser) -> Self {
        Self {
            user_id: Some(user.id.0),
            token_id: None,
            label: user.email.clone(),
        }
    }

    pub fn token(principal: &Principal) -> Self {
        let label = match principal.kind {
            AccountKind::Member => {
                format!("{} (token “{}”)", principal.email, principal.token_name)
            }
            AccountKind::ServiceAccount => format!(
                "service account {} (token “{}”)",
                principal.user_name, principal.token_name
            ),
        };
        Self {
            user_id: Some(principal.user_id.0),
            token_id: Some(principal.token_id.0),
            label,
        }
    }

    /// A person acting on their own account (signing in, joining).
    pub fn account(user_id: i64, email: &str) -> Self {
        Self {
            user_id: Some(user_id),
            token_id: None,
            label: email.to_owned(),
        }
    }

    pub fn system(label: &str) -> Self {
        Self {
            user_id: None,
            token_id: None,
            label: label.to_owned(),
        }
    }
}

/// One thing to record.
pub struct Event<'a> {
    pub workspace_id: Option<WorkspaceId>,
    pub action: &'a str,
    pub target_id: Option<i64>,
    pub target_label: &'a str,
    pub detail: &'a str,
}

pub async fn record(
    tx: &mut Tx,
    actor: &AuditActor,
    meta: &RequestMeta,
    event: Event<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    storage::audit::insert(
        &mut **tx,
        &NewAuditEvent {
            workspace_id: event.workspace_id.map(|w| w.0),
            actor_user_id: actor.user_id,
            actor_token_id: actor.token_id,
            actor_label: &actor.label,
            action: event.action,
            target_id: event.target_id,
            target_label: event.target_label,
            detail: event.detail,
            ip: &meta.ip,
            user_agent: &truncate(&meta.user_agent, 300),
            created_at: now,
        },
    )
    .await
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Tollgate {
    /// The audit log of a workspace, for its Admins (pages and API alike).
    pub async fn audit_log(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<AuditRow>, ServiceError> {
        actor.require_admin(workspace)?;
        let limit = clamp_limit(limit);
        let events = storage::audit::page(
            self.db.pool(),
            workspace.0,
            before.unwrap_or(i64::MAX),
            limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(events, limit, |e| e.id))
    }
}
