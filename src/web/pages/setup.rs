//! First-run setup: the one-time code and the first Admin.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::service::auth::SetupInput;
use crate::service::throttle;
use crate::service::{ServiceError, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm};
use crate::web::{Layout, flash, ok, render, see_other, urls};

use super::{App, SetupCode, start_session};

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

fn code_matches(expected: &SetupCode, given: Option<&str>) -> bool {
    match (expected.0.as_deref(), given) {
        (Some(expected), Some(given)) => {
            expected.len() == given.len()
                && expected
                    .bytes()
                    .zip(given.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0
        }
        _ => false,
    }
}

/// Checks a setup code, counting the attempt against the address first
/// (the code is long and random, but guessing it must stay hopeless).
fn check_setup_code(
    app: &Tollgate,
    expected: &SetupCode,
    given: &str,
    ip: &str,
) -> Result<bool, PageError> {
    let key = throttle::Key::new(throttle::Kind::SetupCode, ip, "");
    app.throttle
        .attempt(key, app.now())
        .map_err(too_many_codes)?;
    let valid = code_matches(expected, Some(given));
    if valid {
        app.throttle.refund(key);
    }
    Ok(valid)
}

fn too_many_codes(retry_after: i64) -> PageError {
    PageError::TooManyAttempts(
        retry_after,
        format!(
            "Too many wrong codes from your address. Try again in {} minute(s).",
            (retry_after + 59) / 60
        ),
    )
}

pub async fn setup_form(
    app: App,
    code: web::Data<SetupCode>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    query: web::Query<CodeQuery>,
) -> Result<HttpResponse, PageError> {
    if !app.needs_setup().await? {
        return Err(PageError::Forbidden(
            "Tollgate is already set up. Sign in instead.".to_owned(),
        ));
    }
    let given = query.code.as_deref();
    let valid = match given {
        Some(given) => check_setup_code(&app, &code, given, &meta.ip)?,
        None => false,
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
    if !app.needs_setup().await? {
        return Err(PageError::Forbidden(
            "Tollgate is already set up. Sign in instead.".to_owned(),
        ));
    }
    if !check_setup_code(&app, &code, &form.code, &meta.ip)? {
        return Err(PageError::Forbidden(
            "This setup link is not valid. Use the link the server printed when it started."
                .to_owned(),
        ));
    }
    let input = SetupInput {
        organization: &form.organization,
        name: &form.name,
        email: &form.email,
        password: &form.password,
    };
    match app.complete_setup(input, &meta, app.now()).await {
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
