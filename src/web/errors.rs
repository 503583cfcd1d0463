//! How a failure looks in the browser: one mapping from service errors to
//! pages with the right status. Causes go to the log, not to the page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("sign-in required")]
    SignInRequired,
    #[error("the form's security check failed")]
    Csrf,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("busy")]
    Busy,
    /// Too many attempts: try again after this many seconds.
    #[error("{1}")]
    TooManyAttempts(i64, String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<ServiceError> for PageError {
    fn from(err: ServiceError) -> Self {
        if err.is_busy() {
            return Self::Busy;
        }
        match err {
            ServiceError::NotFound => Self::NotFound,
            ServiceError::Forbidden { message, .. } => Self::Forbidden(message),
            ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. } => {
                Self::BadRequest(message)
            }
            ServiceError::TooManyAttempts {
                retry_after,
                message,
            } => Self::TooManyAttempts(retry_after, message),
            ServiceError::Unexpected(err) => Self::Internal(err),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("rendering a template"))
    }
}

impl From<actix_session::SessionInsertError> for PageError {
    fn from(err: actix_session::SessionInsertError) -> Self {
        Self::Internal(anyhow::Error::new(err).context("writing the session"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignInRequired => StatusCode::SEE_OTHER,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyAttempts(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignInRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let (title, message) = match self {
            Self::Csrf => (
                "Request refused",
                "This form expired or was sent from another site. Go back, reload the page and try again.",
            ),
            Self::Forbidden(message) => ("Not allowed", message.as_str()),
            Self::NotFound => (
                "Not found",
                "There is nothing here, or it is not yours to see.",
            ),
            Self::BadRequest(message) => ("Something is not right", message.as_str()),
            Self::TooManyAttempts(_, message) => ("Too many attempts", message.as_str()),
            Self::Busy => (
                "Busy",
                "The server is busy right now. Try again in a few seconds.",
            ),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                (
                    "Something went wrong",
                    "The server could not finish this request. Try again in a moment.",
                )
            }
            Self::SignInRequired => ("", ""),
        };
        let body = ErrorPage { title, message }
            .render()
            .unwrap_or_else(|_| message.to_owned());
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ));
        if let Self::TooManyAttempts(retry_after, _) = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        response.body(body)
    }
}
