//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the DTOs' schemas, so that what the API answers and what
//! the document says can not drift apart; and the route that serves it. The
//! error responses every operation shares are in `responses`.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::dto;
use actix_web::HttpResponse;

use crate::api::errors::ErrorBody;
use crate::api::handlers;
use crate::api::responses::{
    BadBody, BadQuery, Conflict, Forbidden, Invalid, NotFound, ReportTooLarge, TooLarge,
    TooManyEntries, TooManyRequests, Unauthorized,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate API",
        version = "1.0.0",
        description = "The JSON API unlocked by Tollgate personal access tokens. Authenticate with `Authorization: Bearer <token>`, or HTTP Basic with the token owner's email as user name and the token as password (members' tokens only: service account tokens use Bearer). What a token may do is the lower of its scope and its owner's current role, decided at every request; only Read-Write and Admin members can use tokens. Errors are `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`. A method a path does not have answers 405 `method_not_allowed` with an `Allow` header; an unknown path answers 404 `not_found`."
    ),
    servers((url = "/")),
    paths(
        openapi_document,
        handlers::me,
        handlers::list_tokens,
        handlers::delete_token,
        handlers::rotate_token,
        handlers::members,
        handlers::workspace_tokens,
        handlers::revoke_workspace_tokens,
        handlers::audit_log,
        handlers::export_audit_log,
        handlers::report_leaked_tokens,
        handlers::list_service_accounts,
        handlers::create_service_account,
        handlers::delete_service_account,
        handlers::list_service_tokens,
        handlers::create_service_token,
        handlers::delete_service_token,
        handlers::revoke_service_tokens,
        handlers::get_token_policy,
        handlers::put_token_policy,
        handlers::revoke_tokens_outside_policy,
        handlers::list_workspaces,
        handlers::create_workspace,
        handlers::rename_workspace,
    ),
    components(
        schemas(
            ErrorBody,
            dto::RevokeAllRequest,
            dto::LeakReportDto,
            dto::LeakLabelDto,
            dto::CreateServiceAccountRequest,
            dto::CreateServiceTokenRequest,
            dto::TokenPolicyDto,
            dto::RevokeOutsideRequest,
            dto::WorkspaceNameRequest
        ),
        responses(
            Unauthorized,
            Forbidden,
            NotFound,
            BadQuery,
            BadBody,
            TooLarge,
            ReportTooLarge,
            TooManyEntries,
            TooManyRequests,
            Invalid,
            Conflict
        )
    ),
    security(("bearerAuth" = []), ("basicAuth" = [])),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description =
            Some("A personal access token: `tgp_` followed by 38 base62 characters.".to_owned());
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("The token owner's email as user name, the token as password.".to_owned());
        components.add_security_scheme("basicAuth", SecurityScheme::Http(basic));
    }
}

/// The document as a value, for tools and tests.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
    // Revoke-all takes an empty body as "the whole workspace".
    if let Some(body) = doc
        .paths
        .paths
        .get_mut("/api/v1/workspace/tokens/revoke-all")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    // So does revoking the tokens outside the policy: it needs none.
    if let Some(body) = doc
        .paths
        .paths
        .get_mut("/api/v1/workspace/token-policy/revoke-outside")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    doc
}

/// The document as served, rendered once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_default())
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "document", operation_id = "openapi",
    summary = "This document", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
