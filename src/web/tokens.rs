//! The Personal Access Tokens tab: list, generate, show once, delete, revoke
//! all. Dialogs are progressive enhancement: each action also has its own
//! page and works without JavaScript.
//!
//! The show-once hand-over of the secret is in `reveal`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::{AccountKind, Role, TokenId, TokenPolicy, WorkspaceId, display_hint};
use crate::service::notices::{EXPIRY_NOTICE_DAYS, expires_soon};
use crate::service::tokens::{GenerateRequest, IssuedToken};
use crate::service::{Actor, ServiceError, SignedInUser, Tollgate};
use crate::storage::tokens::TokenRow;
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor};
use crate::web::pages::EmptyForm;
use crate::web::reveal::{self, RevealKey, Revealed};
use crate::web::{Layout, flash, format_date, format_time, ok, render, see_other, urls};

type App = web::Data<Tollgate>;

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
            id: row.id,
            name: row.name.clone(),
            hint: display_hint(&row.last4),
            scope: row.scope().label(),
            workspace: row.workspace_name.clone(),
            owner: match row.owner_kind() {
                AccountKind::Member => row.owner_email.clone(),
                AccountKind::ServiceAccount => row.owner_name.clone(),
            },
            service_account: row.owner_kind() == AccountKind::ServiceAccount,
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
            delete_url: urls::token_delete(row.id),
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
fn chosen_workspace(user: &SignedInUser, typed: &GenerateRequest) -> Option<WorkspaceId> {
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
async fn generate_view(
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
            scopes: highest
                .grantable_scopes()
                .into_iter()
                .map(|s| Choice {
                    value: s.as_str().to_owned(),
                    label: s.label().to_owned(),
                    selected: s.as_str() == scope,
                })
                .collect(),
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
            expiries: policy
                .allowed_expiries()
                .into_iter()
                .map(|e| Choice {
                    value: e.as_str().to_owned(),
                    label: e.label().to_owned(),
                    selected: e.as_str() == expiry,
                })
                .collect(),
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
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenView>,
    /// Which tokens expire within the notice window, when any do.
    expiring: Option<String>,
    /// `None` for members who may not generate tokens.
    generate: Option<GenerateView>,
    open_generate: bool,
    issued: Option<IssuedView>,
    read_only_workspaces: Vec<String>,
    admins: Vec<(String, String)>,
    support: Option<String>,
    support_is_url: bool,
    leaks: Vec<LeakNoticeView>,
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

async fn tokens_page(
    app: &Tollgate,
    session: &Session,
    actor: &Actor,
    user: &SignedInUser,
    typed: &GenerateRequest,
    error: Option<(&'static str, String)>,
    issued: Option<IssuedView>,
) -> Result<TokensPage, PageError> {
    let now = app.now();
    let rows = app.own_tokens(actor).await?;
    let open_generate = error.is_some();
    let admins = match user.memberships.first() {
        Some(m) => app.admin_contacts(actor, m.workspace_id).await?,
        None => Vec::new(),
    };
    let support = app.support_contact.clone();
    let leaks = app.leak_notices_for_member(user, now).await?;
    let tokens: Vec<TokenView> = rows.iter().map(|r| TokenView::new(r, now)).collect();
    Ok(TokensPage {
        leaks: leaks
            .iter()
            .map(|r| LeakNoticeView::new(r, false))
            .collect(),
        layout: Layout::new(session, Some(user), "Personal Access Tokens", "profile")?,
        expiring: expiring_notice(&tokens),
        tokens,
        generate: generate_view(app, user, typed, error).await?,
        open_generate,
        issued,
        read_only_workspaces: user
            .memberships
            .iter()
            .filter(|m| !m.role.may_use_tokens())
            .map(|m| m.workspace_name.clone())
            .collect(),
        admins,
        support_is_url: support
            .as_deref()
            .is_some_and(|s| s.starts_with("https://") || s.starts_with("http://")),
        support,
    })
}

pub async fn list(
    app: App,
    session: Session,
    current: CurrentActor,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    ok(&tokens_page(
        &app,
        &session,
        actor,
        user,
        &GenerateRequest::default(),
        None,
        None,
    )
    .await?)
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewTokenPage {
    layout: Layout,
    generate: GenerateView,
}

/// The generate form on a page of its own (the dialog without JavaScript).
pub async fn new_form(
    app: App,
    session: Session,
    current: CurrentActor,
) -> Result<HttpResponse, PageError> {
    let user = current.user()?;
    let generate = generate_view(&app, user, &GenerateRequest::default(), None)
        .await?
        .ok_or_else(|| {
            PageError::Forbidden(
                "Only members with the Read-Write or Admin role can generate access tokens."
                    .to_owned(),
            )
        })?;
    ok(&NewTokenPage {
        layout: Layout::new(&session, Some(user), "New Personal Access Token", "profile")?,
        generate,
    })
}

#[derive(Deserialize)]
pub struct GenerateForm {
    #[serde(default)]
    name: String,
    scope: Option<String>,
    workspace: Option<String>,
    expiry: Option<String>,
}

pub async fn generate(
    app: App,
    config: web::Data<Config>,
    key: web::Data<RevealKey>,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<GenerateForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let request = GenerateRequest {
        name: form.name,
        scope: form.scope,
        workspace: form.workspace,
        expiry: form.expiry,
    };
    match app.generate_token(actor, &request, &meta, app.now()).await {
        Ok(IssuedToken { name, token, .. }) => {
            let revealed = Revealed {
                name,
                token: token.expose().to_owned(),
            };
            let cookie = reveal::seal(&key, &session, user.id, revealed, config.secure_cookies())?;
            let mut response = see_other(urls::TOKENS_CREATED);
            response
                .add_cookie(&cookie)
                .map_err(|e| PageError::Internal(e.into()))?;
            Ok(response)
        }
        Err(ServiceError::Invalid { field, message }) => {
            let error = Some((field, message));
            let page = tokens_page(&app, &session, actor, user, &request, error, None).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(ServiceError::Conflict { field, message }) => {
            let error = Some((field, message));
            let page = tokens_page(&app, &session, actor, user, &request, error, None).await?;
            render(StatusCode::CONFLICT, &page)
        }
        Err(err) => Err(err.into()),
    }
}

/// The show-once view. Reloading it finds nothing to show.
pub async fn created(
    app: App,
    key: web::Data<RevealKey>,
    req: HttpRequest,
    session: Session,
    current: CurrentActor,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let revealed = reveal::open(&key, &session, &req, user.id).map(|r| IssuedView {
        name: r.name,
        token: r.token,
    });
    let Some(issued) = revealed else {
        flash(
            &session,
            "info",
            "A token is shown only once, right after it is generated. Generate a new one if you lost it.",
        )?;
        return Ok(see_other(urls::TOKENS));
    };
    let page = tokens_page(
        &app,
        &session,
        actor,
        user,
        &GenerateRequest::default(),
        None,
        Some(issued),
    )
    .await?;
    let mut response = ok(&page)?;
    response
        .add_cookie(&reveal::removal())
        .map_err(|e| PageError::Internal(e.into()))?;
    Ok(response)
}

/// A confirmation page: what the dialogs say, for browsers without script.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
    pub action: String,
    pub confirm: &'static str,
    pub cancel: &'static str,
}

pub async fn delete_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let token = app.own_token(actor, TokenId(*id)).await?;
    ok(&ConfirmPage {
        layout: Layout::new(&session, Some(user), "Delete token", "profile")?,
        heading: format!("Delete “{}”?", token.name),
        message: "Any script or service using this token will stop working at once. This can not be undone.".to_owned(),
        action: urls::token_delete(token.id),
        confirm: "Yes, delete",
        cancel: urls::TOKENS,
    })
}

pub async fn delete(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    id: web::Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let token = app
        .delete_own_token(actor, TokenId(*id), &meta, app.now())
        .await?;
    flash(
        &session,
        "success",
        format!("Token “{}” deleted. It no longer works.", token.name),
    )?;
    Ok(see_other(urls::TOKENS))
}

pub async fn revoke_all_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let count = app.own_tokens(actor).await?.len();
    if count == 0 {
        flash(&session, "info", "You have no tokens to revoke.")?;
        return Ok(see_other(urls::TOKENS));
    }
    ok(&ConfirmPage {
        layout: Layout::new(&session, Some(user), "Revoke all tokens", "profile")?,
        heading: "Revoke all your tokens?".to_owned(),
        message: revoke_all_message(count),
        action: urls::TOKENS_REVOKE_ALL.to_owned(),
        confirm: "Yes, revoke all",
        cancel: urls::TOKENS,
    })
}

pub fn revoke_all_message(count: usize) -> String {
    match count {
        1 => "1 token will stop working at once. This can not be undone.".to_owned(),
        n => format!("{n} tokens will stop working at once. This can not be undone."),
    }
}

pub async fn revoke_all(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let count = app.revoke_all_own(actor, &meta, app.now()).await?;
    let text = match count {
        0 => "You had no tokens to revoke.".to_owned(),
        1 => "1 token revoked. It no longer works.".to_owned(),
        n => format!("{n} tokens revoked. They no longer work."),
    };
    flash(&session, "success", text)?;
    Ok(see_other(urls::TOKENS))
}
