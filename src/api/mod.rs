//! The JSON API that tokens unlock. The route table below is the single
//! source of truth: it registers the handlers, answers 405 with `Allow` for
//! a method a path does not have, and lists the routes that the OpenAPI
//! document (generated from the handlers in `openapi`) must describe — a
//! test holds the two together.

pub mod auth;
pub mod dto;
pub mod errors;
pub mod handlers;
pub mod openapi;
pub mod responses;

use actix_web::web;

pub use auth::ApiCaller;
pub use errors::ApiError;

macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every API route as (method, path), as registered.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            // One resource per path, so that a method the path does not have
            // is a 405 naming the ones it has, not a 404.
            let mut resources: Vec<(&'static str, actix_web::Resource)> = Vec::new();
            $(
                let route = web::$method().to($handler);
                match resources.iter().position(|(path, _)| *path == $path) {
                    Some(at) => {
                        let (path, resource) = resources.remove(at);
                        resources.insert(at, (path, resource.route(route)));
                    }
                    None => resources.push(($path, web::resource($path).route(route))),
                }
            )*
            for (path, resource) in resources {
                let allow = allowed_methods(path);
                cfg.service(resource.default_service(web::to(move || {
                    let allow = allow.clone();
                    async move {
                        actix_web::ResponseError::error_response(&ApiError::method_not_allowed(allow))
                    }
                })));
            }
        }
    };
}

api_routes! {
    get "/api/openapi.json" => openapi::openapi_document,
    get "/api/v1/me" => handlers::me,
    get "/api/v1/tokens" => handlers::list_tokens,
    delete "/api/v1/tokens/{id}" => handlers::delete_token,
    post "/api/v1/tokens/self/rotate" => handlers::rotate_token,
    get "/api/v1/members" => handlers::members,
    get "/api/v1/workspace/tokens" => handlers::workspace_tokens,
    post "/api/v1/workspace/tokens/revoke-all" => handlers::revoke_workspace_tokens,
    get "/api/v1/audit-log" => handlers::audit_log,
    get "/api/v1/audit-log/export" => handlers::export_audit_log,
    post "/api/v1/leaked-tokens" => handlers::report_leaked_tokens,
    get "/api/v1/service-accounts" => handlers::list_service_accounts,
    post "/api/v1/service-accounts" => handlers::create_service_account,
    delete "/api/v1/service-accounts/{id}" => handlers::delete_service_account,
    get "/api/v1/service-accounts/{id}/tokens" => handlers::list_service_tokens,
    post "/api/v1/service-accounts/{id}/tokens" => handlers::create_service_token,
    // Before `{token_id}`: a path matches the first resource whose pattern
    // fits, whatever the method.
    post "/api/v1/service-accounts/{id}/tokens/revoke-all" => handlers::revoke_service_tokens,
    delete "/api/v1/service-accounts/{id}/tokens/{token_id}" => handlers::delete_service_token,
    get "/api/v1/workspace/token-policy" => handlers::get_token_policy,
    put "/api/v1/workspace/token-policy" => handlers::put_token_policy,
    post "/api/v1/workspace/token-policy/revoke-outside" => handlers::revoke_tokens_outside_policy,
    get "/api/v1/workspaces" => handlers::list_workspaces,
    post "/api/v1/workspaces" => handlers::create_workspace,
    patch "/api/v1/workspaces/{id}" => handlers::rename_workspace,
}

/// The `Allow` header of a path: its methods, as the route table has them.
fn allowed_methods(path: &str) -> String {
    ROUTES
        .iter()
        .filter(|(_, p)| *p == path)
        .map(|(method, _)| method.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ")
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
