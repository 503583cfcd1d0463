//! Invitations: the link a new member follows to join.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::service::members::AcceptInput;
use crate::service::{ServiceError, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentUser};
use crate::web::{Layout, flash, ok, render, see_other, urls};

use super::{App, start_session};

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    layout: Layout,
    code: String,
    email: String,
    workspace_role: String,
    name: String,
    error: Option<String>,
}

pub async fn invitation_form(
    app: App,
    session: Session,
    ClientMeta(meta): ClientMeta,
    code: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    ok(&invitation_page(
        &app,
        &session,
        &meta.ip,
        code.into_inner(),
        String::new(),
        None,
    )
    .await?)
}

/// The invitation form, for an invitation that is still open.
async fn invitation_page(
    app: &Tollgate,
    session: &Session,
    ip: &str,
    code: String,
    name: String,
    error: Option<String>,
) -> Result<InvitationPage, PageError> {
    let invitation = app.open_invitation(&code, ip, app.now()).await?;
    Ok(InvitationPage {
        layout: Layout::new(session, None, "Join the workspace", "")?,
        code,
        workspace_role: invitation.role.label().to_owned(),
        email: invitation.email,
        name,
        error,
    })
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub async fn invitation_accept(
    app: App,
    session: Session,
    signed_in: Option<CurrentUser>,
    code: web::Path<String>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<AcceptForm>,
) -> Result<HttpResponse, PageError> {
    match app
        .accept_invitation(
            &code,
            AcceptInput {
                name: &form.name,
                password: &form.password,
                signed_in: signed_in.map(|CurrentUser(user)| user.id),
            },
            &meta,
            app.now(),
        )
        .await
    {
        Ok(user_id) => {
            start_session(&session, user_id.0, app.now())?;
            flash(
                &session,
                "success",
                "Welcome! You are now a member of the workspace.",
            )?;
            Ok(see_other(urls::PROFILE))
        }
        Err(err @ (ServiceError::Invalid { .. } | ServiceError::Conflict { .. })) => {
            let status = match err {
                ServiceError::Conflict { .. } => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let page = invitation_page(
                &app,
                &session,
                &meta.ip,
                code.into_inner(),
                form.name,
                Some(err.to_string()),
            )
            .await?;
            render(status, &page)
        }
        Err(err) => Err(err.into()),
    }
}
