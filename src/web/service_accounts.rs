//! The Service accounts pages (Admins): the list with **New service
//! account**, and each account's page with its token table, **Generate new
//! token**, the show-once view, **Delete**, **Revoke all** and **Delete
//! service account**. Every page and form names its workspace with
//! `?workspace=`; dialogs fall back to pages of their own without script.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::{Role, TokenId, UserId};
use crate::service::service_accounts::ServiceAccountDetail;
use crate::service::tokens::{GenerateRequest, IssuedToken};
use crate::service::{Membership, ServiceError, SignedInUser, Tollgate};
use crate::storage::service_accounts::ServiceAccountRow;
use crate::web::admin::workspace_of;
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor};
use crate::web::pages::EmptyForm;
use crate::web::reveal::{self, RevealKey, Revealed};
use crate::web::tokens::{Choice, ConfirmPage, IssuedView, TokenView, revoke_all_message};
use crate::web::{Layout, flash, format_time, ok, render, see_other, urls};

type App = web::Data<Tollgate>;

const NAV: &str = "service-accounts";

#[derive(Deserialize)]
pub struct WorkspaceQuery {
    workspace: Option<i64>,
}

/// One row of the list.
pub struct AccountView {
    pub name: String,
    pub role: &'static str,
    pub tokens: i64,
    pub created_by: String,
    pub created: String,
    pub url: String,
}

fn account_url(ws: &Membership, id: i64, rest: &str) -> String {
    format!(
        "{}?workspace={}",
        urls::service_account(id, rest),
        ws.workspace_id
    )
}

fn created_by(row: &ServiceAccountRow) -> String {
    row.created_by
        .clone()
        .unwrap_or_else(|| "(account removed)".to_owned())
}

fn role_choices(selected: &str) -> Vec<Choice> {
    Role::ALL
        .iter()
        .map(|r| Choice {
            value: r.as_str().to_owned(),
            label: r.label().to_owned(),
            selected: r.as_str() == selected,
        })
        .collect()
}

// ---- The list ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "service_accounts.html")]
struct ListPage {
    layout: Layout,
    workspace: Membership,
    accounts: Vec<AccountView>,
    name: String,
    roles: Vec<Choice>,
    error: Option<String>,
    field: &'static str,
}

async fn list_page(
    app: &Tollgate,
    session: &Session,
    current: &CurrentActor,
    ws: Membership,
    typed: (&str, &str),
    error: Option<(&'static str, String)>,
) -> Result<ListPage, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let accounts = app.service_accounts(actor, ws.workspace_id).await?;
    let (field, error) = match error {
        Some((field, message)) => (field, Some(message)),
        None => ("", None),
    };
    Ok(ListPage {
        layout: Layout::new(session, Some(user), "Service accounts", NAV)?.in_workspace(
            user,
            &ws,
            urls::SERVICE_ACCOUNTS,
        ),
        accounts: accounts
            .iter()
            .map(|a| AccountView {
                name: a.name.clone(),
                role: a.role.label(),
                tokens: a.tokens,
                created_by: created_by(a),
                created: format_time(a.created_at),
                url: account_url(&ws, a.id.0, ""),
            })
            .collect(),
        name: typed.0.to_owned(),
        roles: role_choices(typed.1),
        error,
        field,
        workspace: ws,
    })
}

pub async fn list(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let typed = ("", Role::ReadOnly.as_str());
    ok(&list_page(&app, &session, &current, ws, typed, None).await?)
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

pub async fn create(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let result = app
        .create_service_account(
            actor,
            ws.workspace_id,
            &form.name,
            &form.role,
            &meta,
            app.now(),
        )
        .await;
    let (status, error) = match result {
        Ok(account) => {
            flash(
                &session,
                "success",
                format!(
                    "Service account “{}” created. Generate a token for it below.",
                    account.name
                ),
            )?;
            return Ok(see_other(&account_url(&ws, account.id.0, "")));
        }
        Err(ServiceError::Invalid { field, message }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, (field, message))
        }
        Err(ServiceError::Conflict { field, message }) => (StatusCode::CONFLICT, (field, message)),
        Err(err) => return Err(err.into()),
    };
    let typed = (form.name.as_str(), form.role.as_str());
    let page = list_page(&app, &session, &current, ws, typed, Some(error)).await?;
    render(status, &page)
}

// ---- One account ---------------------------------------------------------------

/// The generate form of an account's page, with what was typed.
pub struct GenerateView {
    pub name: String,
    pub scopes: Vec<Choice>,
    pub expiries: Vec<Choice>,
    pub error: Option<String>,
    pub field: &'static str,
}

#[derive(Template)]
#[template(path = "service_account.html")]
struct AccountPage {
    layout: Layout,
    workspace: Membership,
    account: AccountView,
    tokens: Vec<TokenView>,
    generate: GenerateView,
    open_generate: bool,
    issued: Option<IssuedView>,
    revoke_message: String,
    delete_message: String,
    /// The base of this account's URLs (`/service-accounts/7`).
    base: String,
}

/// What an account's page shows besides the account: the generate form as
/// typed (open when asked, or when it has an error) and a token to show once.
#[derive(Default)]
struct Shown {
    typed: GenerateRequest,
    error: Option<(&'static str, String)>,
    open: bool,
    issued: Option<IssuedView>,
}

async fn account_page(
    app: &Tollgate,
    session: &Session,
    current: &CurrentActor,
    ws: Membership,
    id: UserId,
    shown: Shown,
) -> Result<AccountPage, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let Shown {
        typed,
        error,
        open,
        issued,
    } = shown;
    let ServiceAccountDetail { account, tokens } =
        app.service_account(actor, ws.workspace_id, id).await?;
    let now = app.now();
    // The workspace's token policy narrows the expiry choices, as on the
    // tokens tab.
    let policy = app.token_policy(ws.workspace_id).await?;
    let role = account.role;
    let scope = typed
        .scope
        .clone()
        .unwrap_or_else(|| role.default_scope().as_str().to_owned());
    let expiry = typed
        .expiry
        .clone()
        .unwrap_or_else(|| policy.default_expiry().as_str().to_owned());
    let open_generate = open || error.is_some();
    let (field, error) = match error {
        Some((field, message)) => (field, Some(message)),
        None => ("", None),
    };
    let base = urls::service_account(account.id.0, "");
    let views: Vec<TokenView> = tokens
        .iter()
        .map(|t| {
            let mut view = TokenView::new(t, now);
            view.delete_url = account_url(&ws, account.id.0, &format!("/tokens/{}/delete", t.id));
            view
        })
        .collect();
    Ok(AccountPage {
        layout: Layout::new(session, Some(user), &account.name, NAV)?.in_workspace(
            user,
            &ws,
            urls::SERVICE_ACCOUNTS,
        ),
        revoke_message: revoke_all_message(views.len()),
        delete_message: delete_account_message(views.len()),
        tokens: views,
        generate: GenerateView {
            name: typed.name.clone(),
            scopes: Choice::scopes(role, &scope),
            expiries: Choice::expiries(&policy, &expiry),
            error,
            field,
        },
        open_generate,
        issued,
        account: AccountView {
            name: account.name.clone(),
            role: role.label(),
            tokens: account.tokens,
            created_by: created_by(&account),
            created: format_time(account.created_at),
            url: account_url(&ws, account.id.0, ""),
        },
        base,
        workspace: ws,
    })
}

pub async fn show(
    app: App,
    session: Session,
    current: CurrentActor,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let page = account_page(
        &app,
        &session,
        &current,
        ws,
        UserId(*path),
        Shown::default(),
    )
    .await?;
    ok(&page)
}

/// The generate dialog, open, for browsers without script.
pub async fn new_token(
    app: App,
    session: Session,
    current: CurrentActor,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let shown = Shown {
        open: true,
        ..Default::default()
    };
    let page = account_page(&app, &session, &current, ws, UserId(*path), shown).await?;
    ok(&page)
}

#[derive(Deserialize)]
pub struct GenerateForm {
    #[serde(default)]
    name: String,
    scope: Option<String>,
    expiry: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn generate(
    app: App,
    config: web::Data<Config>,
    key: web::Data<RevealKey>,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(form): CsrfForm<GenerateForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let id = UserId(*path);
    let request = GenerateRequest {
        name: form.name,
        scope: form.scope,
        workspace: None,
        expiry: form.expiry,
    };
    let result = app
        .generate_service_token(actor, ws.workspace_id, id, &request, &meta, app.now())
        .await;
    let (status, error) = match result {
        Ok(IssuedToken { name, token, .. }) => {
            let revealed = Revealed {
                name,
                token: token.expose().to_owned(),
            };
            let shown_at = urls::service_account(id.0, "/tokens/created");
            let cookie = reveal::seal_for(
                &key,
                &session,
                user.id,
                revealed,
                config.secure_cookies(),
                &shown_at,
            )?;
            let mut response = see_other(&account_url(&ws, id.0, "/tokens/created"));
            response
                .add_cookie(&cookie)
                .map_err(|e| PageError::Internal(e.into()))?;
            return Ok(response);
        }
        Err(ServiceError::Invalid { field, message }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, (field, message))
        }
        Err(ServiceError::Conflict { field, message }) => (StatusCode::CONFLICT, (field, message)),
        Err(err) => return Err(err.into()),
    };
    let shown = Shown {
        typed: request,
        error: Some(error),
        ..Default::default()
    };
    let page = account_page(&app, &session, &current, ws, id, shown).await?;
    render(status, &page)
}

/// The show-once view of a service account's new token.
pub async fn created(
    app: App,
    key: web::Data<RevealKey>,
    req: HttpRequest,
    session: Session,
    current: CurrentActor,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let id = UserId(*path);
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
        return Ok(see_other(&account_url(&ws, id.0, "")));
    };
    let shown = Shown {
        issued: Some(issued),
        ..Default::default()
    };
    let page = account_page(&app, &session, &current, ws, id, shown).await?;
    let mut response = ok(&page)?;
    response
        .add_cookie(&reveal::removal_for(&urls::service_account(
            id.0,
            "/tokens/created",
        )))
        .map_err(|e| PageError::Internal(e.into()))?;
    Ok(response)
}

// ---- Confirmations and their actions -------------------------------------------

fn confirm_page(
    session: &Session,
    user: &SignedInUser,
    heading: String,
    message: String,
    action: String,
    confirm: &'static str,
) -> Result<HttpResponse, PageError> {
    ok(&ConfirmPage {
        layout: Layout::new(session, Some(user), "Service accounts", NAV)?,
        heading,
        message,
        action,
        confirm,
        cancel: urls::SERVICE_ACCOUNTS,
    })
}

pub async fn delete_token_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    path: web::Path<(i64, i64)>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let (id, token) = path.into_inner();
    let row = app
        .service_token(actor, ws.workspace_id, UserId(id), TokenId(token))
        .await?;
    confirm_page(
        &session,
        &user,
        format!("Delete “{}”?", row.name),
        "Any script or service using this token will stop working at once. This can not be undone."
            .to_owned(),
        account_url(&ws, id, &format!("/tokens/{token}/delete")),
        "Yes, delete",
    )
}

pub async fn delete_token(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    path: web::Path<(i64, i64)>,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let (id, token) = path.into_inner();
    let row = app
        .delete_service_token(
            actor,
            ws.workspace_id,
            UserId(id),
            TokenId(token),
            &meta,
            app.now(),
        )
        .await?;
    flash(
        &session,
        "success",
        format!("Token “{}” deleted. It no longer works.", row.name),
    )?;
    Ok(see_other(&account_url(&ws, id, "")))
}

pub async fn revoke_all_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let detail = app
        .service_account(actor, ws.workspace_id, UserId(*path))
        .await?;
    confirm_page(
        &session,
        &user,
        format!("Revoke every token of {}?", detail.account.name),
        revoke_all_message(detail.tokens.len()),
        account_url(&ws, *path, "/revoke-all"),
        "Yes, revoke all",
    )
}

pub async fn revoke_all(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let count = app
        .revoke_service_tokens(actor, ws.workspace_id, UserId(*path), &meta, app.now())
        .await?;
    let text = match count {
        1 => "1 token revoked. It no longer works.".to_owned(),
        n => format!("{n} tokens revoked. They no longer work."),
    };
    flash(&session, "success", text)?;
    Ok(see_other(&account_url(&ws, *path, "")))
}

/// What deleting an account means, in words.
pub fn delete_account_message(tokens: usize) -> String {
    match tokens {
        0 => "It holds no tokens. This can not be undone.".to_owned(),
        1 => "Its 1 token will stop working at once. This can not be undone.".to_owned(),
        n => format!("Its {n} tokens will stop working at once. This can not be undone."),
    }
}

pub async fn delete_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let detail = app
        .service_account(actor, ws.workspace_id, UserId(*path))
        .await?;
    confirm_page(
        &session,
        &user,
        format!("Delete the service account {}?", detail.account.name),
        delete_account_message(detail.tokens.len()),
        account_url(&ws, *path, "/delete"),
        "Yes, delete service account",
    )
}

pub async fn delete(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    path: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let (account, revoked) = app
        .delete_service_account(actor, ws.workspace_id, UserId(*path), &meta, app.now())
        .await?;
    flash(
        &session,
        "success",
        format!(
            "Service account “{}” deleted; {revoked} token(s) stopped working.",
            account.name
        ),
    )?;
    Ok(see_other(&format!(
        "{}?workspace={}",
        urls::SERVICE_ACCOUNTS,
        ws.workspace_id
    )))
}
