//! The JSON API that tokens unlock. The route table below is the single
//! source of truth: it registers the handlers and lists the routes that the
//! OpenAPI document must describe (a test holds the two together).

pub mod auth;
pub mod dto;
pub mod errors;
pub mod handlers;

use actix_web::{HttpResponse, web};

pub use auth::ApiCaller;
pub use errors::ApiError;

macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every API route as (method, path), as registered.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

api_routes! {
    get "/api/openapi.json" => openapi,
    get "/api/v1/me" => handlers::me,
    get "/api/v1/tokens" => handlers::list_tokens,
    delete "/api/v1/tokens/{id}" => handlers::delete_token,
    post "/api/v1/tokens/self/rotate" => handlers::rotate_token,
    get "/api/v1/members" => handlers::members,
    get "/api/v1/workspace/tokens" => handlers::workspace_tokens,
    post "/api/v1/workspace/tokens/revoke-all" => handlers::revoke_workspace_tokens,
    get "/api/v1/audit-log" => handlers::audit_log,
}

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// JSON answers for what the route table does not know, and for bodies and
/// queries that can not be read.
pub fn error_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _| {
                let (status, code) = match &err {
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => (
                        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                    ),
                    actix_web::error::JsonPayloadError::ContentType => (
                        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                    ),
                    _ => (actix_web::http::StatusCode::BAD_REQUEST, "invalid_json"),
                };
                ApiError::new(
                    status,
                    code,
                    format!("The request body could not be read: {err}"),
                )
                .into()
            }),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("The query string could not be read: {err}"),
        )
        .into()
    }));
}
