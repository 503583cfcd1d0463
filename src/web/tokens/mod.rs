//! The Personal Access Tokens tab: list, generate, show once, delete, revoke
//! all. Dialogs are progressive enhancement: each action also has its own
//! page and works without JavaScript.
//!
//! The show-once hand-over of the secret is in `reveal`.

mod views;

pub use views::*;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::TokenId;
use crate::service::tokens::{GenerateRequest, IssuedToken};
use crate::service::{Actor, ServiceError, SignedInUser, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor};
use crate::web::pages::EmptyForm;
use crate::web::reveal::{self, RevealKey, Revealed};
use crate::web::{Layout, flash, ok, render, see_other, urls};

type App = web::Data<Tollgate>;

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
        action: urls::token_delete(token.id.0),
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
