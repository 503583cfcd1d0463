//! The error responses that operations share, described once for the
//! OpenAPI document: each names its status's error codes.

use utoipa::ToResponse;

use crate::api::errors::ErrorBody;

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
