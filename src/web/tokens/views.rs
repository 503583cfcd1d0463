//! What the tokens tab shows: rows, the generate dialog's choices, the
//! show-once view and leak notices, built from what the services answer.

use askama::Template;

use crate::domain::{AccountKind, Role, TokenPolicy, WorkspaceId, display_hint};
use crate::service::notices::{EXPIRY_NOTICE_DAYS, expires_soon};
use crate::service::tokens::GenerateRequest;
use crate::service::{SignedInUser, Tollgate};
use crate::storage::tokens::TokenRow;
use crate::web::errors::PageError;
use crate::web::{Layout, format_date, format_time, urls};

/// One row of the token table.
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub hint: String,
    pub scope: &'static str,
    pub workspace: String,
    pub owner: String,
    /// A service account's token (its owner is the account's name).
    pub service_account: bool,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub expired: bool,
    /// Live, and expires within `EXPIRY_NOTICE_DAYS`.
    pub expiring_soon: bool,
    pub delete_url: String,
}

impl TokenView {
    pub fn new(row: &TokenRow, now: i64) -> Self {
        Self {
            id: row.id.0,
            name: row.name.clone(),
            hint: display_hint(&row.last4),
            scope: row.scope.label(),
            workspace: row.workspace_name.clone(),
            owner: match row.owner_kind {
                AccountKind::Member => row.owner_email.clone(),
                AccountKind::ServiceAccount => row.owner_name.clone(),
            },
            service_account: row.owner_kind == AccountKind::ServiceAccount,
            created: format_time(row.created_at),
            last_used: row
                .last_used_at
                .map(format_time)
                .unwrap_or_else(|| "Never".to_owned()),
            expires: row
                .expires_at
                .map(format_date)
                .unwrap_or_else(|| "Never".to_owned()),
            expired: row.expires_at.is_some_and(|at| at <= now),
            expiring_soon: expires_soon(row.expires_at, now),
            delete_url: urls::token_delete(row.id.0),
        }
    }
}

/// The notice above a token table: how many tokens expire within
/// `EXPIRY_NOTICE_DAYS`, and which.
pub fn expiring_notice(tokens: &[TokenView]) -> Option<String> {
    let soon: Vec<String> = tokens
        .iter()
        .filter(|t| t.expiring_soon)
        .map(|t| format!("“{}” ({})", t.name, t.expires))
        .collect();
    match soon.len() {
        0 => None,
        1 => Some(format!(
            "1 token expires within {EXPIRY_NOTICE_DAYS} days: {}.",
            soon[0]
        )),
        n => Some(format!(
            "{n} tokens expire within {EXPIRY_NOTICE_DAYS} days: {}.",
            soon.join(", ")
        )),
    }
}

/// An entry of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    /// The scopes a member (or account) with `role` may give, `selected`
    /// chosen.
    pub fn scopes(role: Role, selected: &str) -> Vec<Choice> {
        role.grantable_scopes()
            .into_iter()
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.label().to_owned(),
                selected: s.as_str() == selected,
            })
            .collect()
    }

    /// The expiries `policy` allows, `selected` chosen.
    pub fn expiries(policy: &TokenPolicy, selected: &str) -> Vec<Choice> {
        policy
            .allowed_expiries()
            .into_iter()
            .map(|e| Choice {
                value: e.as_str().to_owned(),
                label: e.label().to_owned(),
                selected: e.as_str() == selected,
            })
            .collect()
    }
}

/// The generate form, with what was typed and what went wrong.
pub struct GenerateView {
    pub name: String,
    pub scopes: Vec<Choice>,
    pub workspaces: Vec<Choice>,
    pub expiries: Vec<Choice>,
    /// What the workspace's token policy allows, when it has one.
    pub policy_note: Option<String>,
    pub error: Option<String>,
    pub field: &'static str,
}

/// The workspace the generate form is about: the one typed, else the
/// member's first where they may create tokens.
pub(super) fn chosen_workspace(
    user: &SignedInUser,
    typed: &GenerateRequest,
) -> Option<WorkspaceId> {
    let workspaces: Vec<_> = user.token_workspaces().collect();
    typed
        .workspace
        .as_deref()
        .and_then(|w| {
            workspaces
                .iter()
                .find(|m| m.workspace_id.0.to_string() == w)
        })
        .or_else(|| workspaces.first())
        .map(|m| m.workspace_id)
}

/// The generate form, its expiry choices narrowed by the chosen
/// workspace's token policy.
pub(super) async fn generate_view(
    app: &Tollgate,
    user: &SignedInUser,
    typed: &GenerateRequest,
    error: Option<(&'static str, String)>,
) -> Result<Option<GenerateView>, PageError> {
    let policy = match chosen_workspace(user, typed) {
        Some(workspace) => app.token_policy(workspace).await?,
        None => return Ok(None),
    };
    Ok(GenerateView::new(user, typed, error, policy))
}

impl GenerateView {
    fn new(
        user: &SignedInUser,
        typed: &GenerateRequest,
        error: Option<(&'static str, String)>,
        policy: TokenPolicy,
    ) -> Option<Self> {
        let workspaces: Vec<_> = user.token_workspaces().collect();
        let chosen_id = chosen_workspace(user, typed)?;
        let chosen = workspaces.iter().find(|m| m.workspace_id == chosen_id)?;
        let role = chosen.role;
        let scope = typed
            .scope
            .clone()
            .unwrap_or_else(|| role.default_scope().as_str().to_owned());
        let expiry = typed
            .expiry
            .clone()
            .unwrap_or_else(|| policy.default_expiry().as_str().to_owned());
        let (field, error) = match error {
            Some((field, message)) => (field, Some(message)),
            None => ("", None),
        };
        // An Admin of one workspace may be Read-Write in another: offer the
        // highest role's scopes; the service checks the chosen workspace.
        let highest = workspaces
            .iter()
            .map(|m| m.role)
            .max()
            .unwrap_or(Role::ReadOnly);
        Some(Self {
            name: typed.name.clone(),
            scopes: Choice::scopes(highest, &scope),
            workspaces: if workspaces.len() > 1 {
                workspaces
                    .iter()
                    .map(|m| Choice {
                        value: m.workspace_id.0.to_string(),
                        label: m.workspace_name.clone(),
                        selected: m.workspace_id == chosen.workspace_id,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            expiries: Choice::expiries(&policy, &expiry),
            policy_note: policy.is_set().then(|| match policy.max_lifetime_days() {
                Some(days) => format!(
                    "{}'s token policy: tokens expire within {} at most.",
                    chosen.workspace_name,
                    crate::domain::lifetime_label(days)
                ),
                None => format!(
                    "{}'s token policy: every token needs an expiration date.",
                    chosen.workspace_name
                ),
            }),
            error,
            field,
        })
    }
}

/// The token shown once.
pub struct IssuedView {
    pub name: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub(super) struct TokensPage {
    pub(super) layout: Layout,
    pub(super) tokens: Vec<TokenView>,
    /// Which tokens expire within the notice window, when any do.
    pub(super) expiring: Option<String>,
    /// `None` for members who may not generate tokens.
    pub(super) generate: Option<GenerateView>,
    pub(super) open_generate: bool,
    pub(super) issued: Option<IssuedView>,
    pub(super) read_only_workspaces: Vec<String>,
    pub(super) admins: Vec<(String, String)>,
    pub(super) support: Option<String>,
    pub(super) support_is_url: bool,
    pub(super) leaks: Vec<LeakNoticeView>,
}

/// A token revoked because a secret scanner reported it.
pub struct LeakNoticeView {
    pub name: String,
    pub hint: String,
    /// The owner's email on the Workspace tokens page; empty on the tab.
    pub owner: String,
    pub when: String,
    pub url: String,
    pub source: String,
}

impl LeakNoticeView {
    pub fn new(row: &crate::storage::leaks::LeakReportRow, with_owner: bool) -> Self {
        Self {
            name: row.token_name.clone(),
            hint: display_hint(&row.last4),
            owner: if with_owner {
                row.owner_email.clone().unwrap_or_default()
            } else {
                String::new()
            },
            when: format_time(row.reported_at),
            url: row.url.clone(),
            source: row.source.clone(),
        }
    }
}
