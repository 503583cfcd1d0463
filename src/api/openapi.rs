//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the DTOs' schemas, so that what the API answers and what
//! the document says can not drift apart. The error responses every
//! operation shares are defined once here.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use crate::api::dto;
use crate::api::errors::ErrorBody;
use crate::api::handlers;

/// No token, or one that does not work.
#[derive(ToResponse)]
#[response(
    description = "Missing, malformed, unknown, revoked, rotated-out or expired token. Codes: `missing_token`, `malformed_authorization`, `invalid_token`, `token_expired`, `invalid_credentials`, `bearer_only` (Basic with a service account's token), `cross_site_request`. Comes with a `WWW-Authenticate: Bearer` challenge.",
    headers(("WWW-Authenticate" = String, description = "The Bearer challenge, with the reason when a token was sent."))
)]
pub struct Unauthorized<'a>(#[to_schema] pub ErrorBody<'a>);

/// A valid token that may not do this.
#[derive(ToResponse)]
#[response(
    description = "A valid token that may not do this. Codes: `insufficient_scope`, `owner_read_only`, `owner_disabled`, `owner_not_a_member`, `not_admin`, `members_only` (a service account's token where a person must act), `permission_changed`."
)]
pub struct Forbidden<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(description = "No such resource, or not the caller's. Code: `not_found`.")]
pub struct NotFound<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(
    description = "A query that can not be read: `limit` outside 1–200, or a `cursor` this API did not give out. Code: `invalid_query`."
)]
pub struct BadQuery<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(description = "A body that is not the JSON object described. Code: `invalid_json`.")]
pub struct BadBody<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(description = "A body over 16 KiB. Code: `payload_too_large`.")]
pub struct TooLarge<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(description = "A leaked-token report over 1 MiB. Code: `payload_too_large`.")]
pub struct ReportTooLarge<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(
    description = "A leaked-token report of more than 1,000 entries; nothing was revoked. Code: `too_many_entries`."
)]
pub struct TooManyEntries<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(
    description = "Too many requests from this address, or (leaked-token reports) from everyone together. Code: `too_many_attempts`. Comes with `Retry-After`.",
    headers(("Retry-After" = i64, description = "Seconds to wait before trying again."))
)]
pub struct TooManyRequests<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(
    description = "A value outside what is allowed; nothing was stored. Codes: `invalid_name`, `invalid_role`, `invalid_scope` (unknown, or above the owner's role), `invalid_expiry` (not offered, or outside the workspace's token policy), `invalid_policy`."
)]
pub struct Invalid<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(ToResponse)]
#[response(
    description = "Taken: a name already in use, or an account already holding 50 live tokens; nothing was stored. Code: `conflict`."
)]
pub struct Conflict<'a>(#[to_schema] pub ErrorBody<'a>);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate API",
        version = "1.0.0",
        description = "The JSON API unlocked by Tollgate personal access tokens. Authenticate with `Authorization: Bearer <token>`, or HTTP Basic with the token owner's email as user name and the token as password (members' tokens only: service account tokens use Bearer). What a token may do is the lower of its scope and its owner's current role, decided at every request; only Read-Write and Admin members can use tokens. Errors are `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`. A method a path does not have answers 405 `method_not_allowed` with an `Allow` header; an unknown path answers 404 `not_found`."
    ),
    servers((url = "/")),
    paths(
        handlers::openapi_document,
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
