//! Signing in and out.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use serde::Deserialize;

use crate::service::ServiceError;
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm};
use crate::web::{Layout, ok, render, see_other, urls};

use super::{App, start_session};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<String>,
}

pub async fn login_form(app: App, session: Session) -> Result<HttpResponse, PageError> {
    if app.needs_setup().await? {
        return super::setup::waiting_for_code(&session);
    }
    ok(&LoginPage {
        layout: Layout::new(&session, None, "Sign in", "")?,
        email: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login_submit(
    app: App,
    session: Session,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<HttpResponse, PageError> {
    match app
        .sign_in(&form.email, &form.password, &meta, app.now())
        .await
    {
        Ok(user_id) => {
            start_session(&session, user_id.0, app.now())?;
            Ok(see_other(urls::PROFILE))
        }
        Err(ServiceError::Invalid { message, .. }) => {
            let page = LoginPage {
                layout: Layout::new(&session, None, "Sign in", "")?,
                email: form.email.trim().to_owned(),
                error: Some(message),
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
        Err(ServiceError::TooManyAttempts {
            retry_after,
            message,
        }) => {
            let page = LoginPage {
                layout: Layout::new(&session, None, "Sign in", "")?,
                email: form.email.trim().to_owned(),
                error: Some(message),
            };
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            if let Ok(value) =
                actix_web::http::header::HeaderValue::from_str(&retry_after.to_string())
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize)]
pub struct EmptyForm {}

pub async fn logout(session: Session, CsrfForm(_): CsrfForm<EmptyForm>) -> HttpResponse {
    session.purge();
    see_other(urls::LOGIN)
}
