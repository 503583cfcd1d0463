//! API errors: `{"error": {"code": "...", "message": "..."}}` with the right
//! status, and `WWW-Authenticate` on every 401.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The `Allow` header of a 405.
    allow: Option<String>,
    /// The `Retry-After` header of a 429, in seconds.
    retry_after: Option<i64>,
}

/// The body of every error answer, as the OpenAPI document describes it.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable, stable: `invalid_token`, `insufficient_scope`, …
    pub code: &'a str,
    /// For people; may change.
    pub message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
            retry_after: None,
        }
    }

    /// 405 for a method the path does not have; `allow` lists the ones it has.
    pub fn method_not_allowed(allow: String) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This path does not answer this method: see the Allow header.",
            )
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => Self::not_found(),
            ServiceError::Unauthenticated { code, message } => Self::unauthorized(code, message),
            ServiceError::Forbidden { code, message } => {
                Self::new(StatusCode::FORBIDDEN, code, message)
            }
            ServiceError::Invalid { field, message } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid_code(field),
                message,
            ),
            ServiceError::Conflict { message, .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            ServiceError::TooManyAttempts {
                message,
                retry_after,
            } => Self {
                retry_after: Some(retry_after.max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
            },
            ServiceError::Unexpected(err) => {
                tracing::error!(error = ?err, "API request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "The server could not finish this request.",
                )
            }
        }
    }
}

/// The code of a 422: which value was refused.
fn invalid_code(field: &str) -> &'static str {
    match field {
        "name" => "invalid_name",
        "role" => "invalid_role",
        "scope" => "invalid_scope",
        "expiry" => "invalid_expiry",
        "policy" => "invalid_policy",
        _ => "invalid_request",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = match self.code {
                // No Basic challenge: a browser would prompt for and then
                // cache credentials, which cross-site pages could ride on.
                "missing_token" => r#"Bearer realm="tollgate""#.to_owned(),
                code => format!(
                    r#"Bearer realm="tollgate", error="invalid_token", error_description="{code}""#
                ),
            };
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if self.status == StatusCode::FORBIDDEN && self.code == "insufficient_scope" {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="tollgate", error="insufficient_scope""#,
            ));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        })
    }
}
