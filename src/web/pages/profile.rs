//! The Profile tab: memberships and the password.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use serde::Deserialize;

use crate::service::ServiceError;
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor, CurrentUser};
use crate::web::{Layout, flash, ok, render, see_other, urls};

use super::{App, start_session};

pub struct MembershipView {
    pub workspace: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    name: String,
    email: String,
    memberships: Vec<MembershipView>,
    error: Option<String>,
    field: &'static str,
}

fn profile_page(
    session: &Session,
    user: &crate::service::SignedInUser,
    error: Option<(&'static str, String)>,
) -> Result<ProfilePage, PageError> {
    let (field, error) = match error {
        Some((field, message)) => (field, Some(message)),
        None => ("", None),
    };
    Ok(ProfilePage {
        layout: Layout::new(session, Some(user), "Profile", "profile")?,
        name: user.name.clone(),
        email: user.email.clone(),
        memberships: user
            .memberships
            .iter()
            .map(|m| MembershipView {
                workspace: m.workspace_name.clone(),
                role: m.role.label(),
            })
            .collect(),
        error,
        field,
    })
}

pub async fn profile(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    ok(&profile_page(&session, &user, None)?)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn change_password(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    match app
        .change_password(
            actor,
            &form.current_password,
            &form.new_password,
            &form.confirm_password,
            &meta,
            app.now(),
        )
        .await
    {
        Ok(()) => {
            // Every session of the user was deleted; this one continues
            // under a new id.
            start_session(&session, user.id.0, app.now())?;
            flash(
                &session,
                "success",
                "Password changed. Every other session has been signed out.",
            )?;
            Ok(see_other(urls::PROFILE))
        }
        Err(ServiceError::Invalid { field, message }) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &profile_page(&session, user, Some((field, message)))?,
        ),
        Err(ServiceError::TooManyAttempts {
            retry_after,
            message,
        }) => {
            let page = profile_page(&session, user, Some(("current_password", message)))?;
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after),
            );
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}
