//! First-run setup: the one-time code and the first Admin.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::service::ServiceError;
use crate::service::auth::{SetupCode, SetupInput};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm};
use crate::web::{Layout, flash, ok, render, see_other, urls};

use super::{App, start_session};

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    code: String,
    organization: String,
    name: String,
    email: String,
    error: Option<String>,
    field: &'static str,
    /// No valid code in the link: explain where to find it.
    waiting: bool,
}

/// The setup page for a visitor without a valid code: it explains where to
/// find one.
pub(super) fn waiting_for_code(session: &Session) -> Result<HttpResponse, PageError> {
    let layout = Layout::new(session, None, "Set up Tollgate", "")?;
    ok(&SetupPage {
        layout,
        code: String::new(),
        organization: String::new(),
        name: String::new(),
        email: String::new(),
        error: None,
        field: "",
        waiting: true,
    })
}

#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

pub async fn setup_form(
    app: App,
    code: web::Data<SetupCode>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    query: web::Query<CodeQuery>,
) -> Result<HttpResponse, PageError> {
    let given = query.code.as_deref();
    let valid = match given {
        Some(given) => app.check_setup_code(&code, given, &meta.ip).await?,
        None if app.needs_setup().await? => false,
        None => {
            return Err(PageError::Forbidden(
                "Tollgate is already set up. Sign in instead.".to_owned(),
            ));
        }
    };
    let page = SetupPage {
        layout: Layout::new(&session, None, "Set up Tollgate", "")?,
        code: if valid {
            given.unwrap_or_default().to_owned()
        } else {
            String::new()
        },
        organization: String::new(),
        name: String::new(),
        email: String::new(),
        error: (given.is_some() && !valid).then(|| {
            "This setup link is not valid. Use the link the server printed when it started."
                .to_owned()
        }),
        field: "",
        waiting: !valid,
    };
    render(
        if valid || given.is_none() {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        },
        &page,
    )
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn setup_submit(
    app: App,
    code: web::Data<SetupCode>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<HttpResponse, PageError> {
    let input = SetupInput {
        code: &form.code,
        organization: &form.organization,
        name: &form.name,
        email: &form.email,
        password: &form.password,
    };
    match app.complete_setup(&code, input, &meta, app.now()).await {
        Ok(user_id) => {
            start_session(&session, user_id.0, app.now())?;
            flash(
                &session,
                "success",
                "Tollgate is ready. You are its first Admin.",
            )?;
            Ok(see_other(urls::PROFILE))
        }
        Err(ServiceError::Invalid { field, message }) => {
            let page = SetupPage {
                layout: Layout::new(&session, None, "Set up Tollgate", "")?,
                code: form.code,
                organization: form.organization,
                name: form.name,
                email: form.email,
                error: Some(message),
                field,
                waiting: false,
            };
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(err) => Err(err.into()),
    }
}
