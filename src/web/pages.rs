//! Signing in and out, first-run setup, invitations and the Profile tab.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::service::auth::SetupInput;
use crate::service::members::AcceptInput;
use crate::service::throttle;
use crate::service::{ServiceError, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{
    ClientMeta, CsrfForm, CurrentActor, CurrentUser, SEEN_AT, SIGNED_IN_AT,
};
use crate::web::session::USER_ID;
use crate::web::{Layout, flash, ok, render, see_other, urls};

/// The one-time code that guards `/setup`, present only while no user exists.
pub struct SetupCode(pub Option<String>);

type App = web::Data<Tollgate>;

pub async fn home(session: Session) -> HttpResponse {
    let signed_in = session.get::<i64>(USER_ID).ok().flatten().is_some();
    see_other(if signed_in {
        urls::PROFILE
    } else {
        urls::LOGIN
    })
}

/// Starts a signed-in session: empty (nothing of whoever used this browser
/// before survives: no flash, no token waiting to be shown), under a new
/// session id (so an id planted before sign-in is worthless), with the user
/// and the sign-in time for the absolute expiry. The CSRF token changes
/// with the sign-in time.
fn start_session(session: &Session, user_id: i64, now: i64) -> Result<(), PageError> {
    session.clear();
    session.renew();
    session.insert(USER_ID, user_id)?;
    session.insert(SIGNED_IN_AT, now)?;
    session.insert(SEEN_AT, now)?;
    Ok(())
}

// ---- sign in / sign out ----------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<String>,
}

pub async fn login_form(app: App, session: Session) -> Result<HttpResponse, PageError> {
    if app.needs_setup().await? {
        let layout = Layout::new(&session, None, "Set up Tollgate", "")?;
        return ok(&SetupPage {
            layout,
            code: String::new(),
            organization: String::new(),
            name: String::new(),
            email: String::new(),
            error: None,
            field: "",
            waiting: true,
        });
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

// ---- first-run setup -------------------------------------------------------

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

// ---- invitations -----------------------------------------------------------

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
        workspace_role: invitation.role().label().to_owned(),
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

// ---- profile ---------------------------------------------------------------

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
