//! The API's handlers: read the request, call one service function, answer
//! JSON. Permission checks live in the services.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::dto::{
    AuditEventDto, AuditExportQuery, AuditLogQuery, CreateServiceAccountRequest,
    CreateServiceTokenRequest, IssuedTokenDto, LeakLabelDto, LeakReportDto, MeDto, MemberDto, Page,
    PageQuery, RevokeAllRequest, RevokeOutsideRequest, RevokedDto, ServiceAccountDto, TokenDto,
    TokenPolicyDto, TokenPolicyStateDto, WorkspaceDto, WorkspaceNameRequest,
};
use crate::api::responses::{
    BadBody, BadQuery, Conflict, Forbidden, Invalid, NotFound, ReportTooLarge, TooLarge,
    TooManyEntries, TooManyRequests, Unauthorized,
};
use crate::api::{ApiCaller, ApiError};
use crate::domain::{TokenId, UserId, WorkspaceId};
use crate::request::request_meta;
use crate::service::audit::{AuditFilter, AuditFilterInput};
use crate::service::export::ExportFormat;
use crate::service::leaks::{self, LeakReport};
use crate::service::policy::PolicyRequest;
use crate::service::tokens::GenerateRequest;
use crate::service::{Actor, ServiceError, Tollgate};

type App = web::Data<Tollgate>;

/// Reads paging parameters; a cursor is the opaque position of the last item.
fn paging(query: &PageQuery) -> Result<(Option<i64>, Option<i64>), ApiError> {
    if let Some(limit) = query.limit
        && !(1..=200).contains(&limit)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "`limit` must be between 1 and 200.",
        ));
    }
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`cursor` is not a cursor this API gave out.",
            )
        })?),
    };
    Ok((cursor, query.limit))
}

/// The largest JSON body the API reads.
const MAX_JSON_BODY: usize = 16 * 1024;

/// Reads a request body, answering a JSON 413 past `MAX_JSON_BODY` (the
/// `Bytes` extractor's own refusal would not be JSON).
async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    read_body_limited(payload, MAX_JSON_BODY).await
}

async fn read_body_limited(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(err)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("The request body could not be read: {err}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is over {} KiB.", limit / 1024),
        )),
    }
}

fn page<T, R>(rows: &[R], next: Option<i64>, map: impl Fn(&R) -> T) -> Page<T> {
    Page {
        data: rows.iter().map(map).collect(),
        next_cursor: next.map(|c| c.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/me", tag = "caller", operation_id = "me",
    summary = "The caller: what it is (`kind`: member or service account), user, workspace, role and token",
    description = "Needs any valid token.",
    responses((status = 200, description = "The caller", body = MeDto), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn me(ApiCaller(caller): ApiCaller) -> Result<HttpResponse, ApiError> {
    let Actor::Token(principal) = &caller else {
        return Err(ApiError::unauthorized(
            "missing_token",
            "Send a token: `Authorization: Bearer <token>`.",
        ));
    };
    // Written into a buffer big enough for the usual answer: `json`
    // starts small and grows it twice on every request.
    let mut body = Vec::with_capacity(512);
    serde_json::to_writer(&mut body, &MeDto::from(principal))
        .map_err(|e| ServiceError::Unexpected(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "listTokens",
    summary = "The caller's tokens in the calling token's workspace (metadata only, never a secret or digest)",
    description = "Needs the Read-Only scope.", params(PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<TokenDto>),
        (status = 400, response = BadQuery), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn list_tokens(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let result = app.own_tokens_page(&caller, cursor, limit).await?;
    let now = app.now();
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |t| {
            TokenDto::new(t, now)
        })),
    )
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "deleteToken",
    summary = "Delete one of the caller's tokens (possibly the calling one)",
    description = "Needs the Read-Write scope. Another member's token, or one of another workspace, is 404.",
    params(("id" = i64, Path, description = "The token's id")),
    responses((status = 204, description = "Deleted; it stops working at once on every instance"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn delete_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    app.delete_own_token(&caller, TokenId(id), &request_meta(&req), app.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/tokens/self/rotate", tag = "tokens", operation_id = "rotateToken",
    summary = "Replace the calling token's secret",
    description = "Needs the Read-Write scope. Same id, name, scope and expiry; the old secret stops working at once. Of concurrent rotations with one secret, exactly one succeeds.",
    responses((status = 200, description = "The new secret, shown this once", body = IssuedTokenDto),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn rotate_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let issued = app
        .rotate_token(&caller, &request_meta(&req), app.now())
        .await?;
    let body = IssuedTokenDto {
        token: issued.token.expose().to_owned(),
        metadata: TokenDto::new(&issued.row, app.now()),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/members", tag = "workspace", operation_id = "listMembers",
    summary = "Members of the token's workspace and their roles",
    description = "Needs the Admin scope.", params(PageQuery),
    responses((status = 200, description = "A page of members", body = Page<MemberDto>),
        (status = 400, response = BadQuery), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn members(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let ws = caller.admin_workspace(None)?;
    let result = app.members(&caller, ws.workspace_id, cursor, limit).await?;
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |m| {
            MemberDto::from(m)
        })),
    )
}

#[utoipa::path(get, path = "/api/v1/workspace/tokens", tag = "workspace", operation_id = "listWorkspaceTokens",
    summary = "Every token of the workspace (metadata only)",
    description = "Needs the Admin scope.", params(PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<TokenDto>),
        (status = 400, response = BadQuery), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn workspace_tokens(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let ws = caller.admin_workspace(None)?;
    let result = app
        .workspace_tokens(&caller, ws.workspace_id, cursor, limit)
        .await?;
    let now = app.now();
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |t| {
            TokenDto::new(t, now)
        })),
    )
}

#[utoipa::path(post, path = "/api/v1/workspace/tokens/revoke-all", tag = "workspace", operation_id = "revokeWorkspaceTokens",
    summary = "Revoke every token of the workspace, or of one member",
    description = "Needs the Admin scope. An empty body or `{}` revokes every token of the workspace, the calling one included; `{\"user_id\": 7}` only that member's.",
    request_body(content = RevokeAllRequest, content_type = "application/json", description = "Optional: empty for the whole workspace."),
    responses((status = 200, description = "How many tokens stopped working", body = RevokedDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 413, response = TooLarge)))]
pub async fn revoke_workspace_tokens(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(body).await?;
    // An unreadable body must never widen "revoke one member" into "revoke
    // everyone": only an empty body (or `{}`) means the whole workspace.
    // Only a JSON object is a request: serde would also build the struct
    // from `[]`, and `null`, `1` or `"x"` mean nothing here.
    let member = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let invalid =
            |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
        let value = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| invalid(format!("The request body could not be read: {e}")))?;
        if !value.is_object() {
            return Err(invalid(
                "The request body must be a JSON object, like {} or {\"user_id\": 42}.".to_owned(),
            ));
        }
        serde_json::from_value::<RevokeAllRequest>(value)
            .map_err(|e| invalid(format!("The request body could not be read: {e}")))?
            .user_id
    };
    let member = member.map(UserId);
    let ws = caller.admin_workspace(None)?;
    let revoked = app
        .revoke_workspace_tokens(
            &caller,
            ws.workspace_id,
            member,
            &request_meta(&req),
            app.now(),
        )
        .await?
        .count;
    Ok(HttpResponse::Ok().json(RevokedDto { revoked }))
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// Reads the audit-log filters; a bad one is 400 `invalid_query` naming it.
fn audit_filter(input: AuditFilterInput) -> Result<AuditFilter, ApiError> {
    AuditFilter::parse(&input).map_err(|err| match err {
        ServiceError::Invalid { field, message } => invalid_query(format!("`{field}`: {message}")),
        other => other.into(),
    })
}

#[utoipa::path(get, path = "/api/v1/audit-log", tag = "workspace", operation_id = "auditLog",
    summary = "Audit events of the workspace, newest first, optionally filtered",
    description = "Needs the Admin scope. `actor`, `action`, `from` and `to` narrow the list; paging keeps them (pass them again with `cursor`).",
    params(AuditLogQuery),
    responses((status = 200, description = "A page of events", body = Page<AuditEventDto>),
        (status = 400, response = BadQuery), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn audit_log(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<AuditLogQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (cursor, limit) = paging(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let filter = audit_filter(AuditFilterInput {
        actor: query.actor,
        action: query.action,
        from: query.from,
        to: query.to,
    })?;
    let ws = caller.admin_workspace(None)?;
    let result = app
        .audit_log(&caller, ws.workspace_id, &filter, cursor, limit)
        .await?;
    let next_cursor = result.next_cursor.map(|c| c.to_string());
    Ok(HttpResponse::Ok().json(Page {
        data: result.items.into_iter().map(AuditEventDto::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/audit-log/export", tag = "workspace", operation_id = "exportAuditLog",
    summary = "The whole audit log of the workspace (or the filtered part) as one download",
    description = "Needs the Admin scope. Newest first, streamed: JSON lines (each line an event as in `GET /api/v1/audit-log`) or CSV (RFC 4180, with a header line; text a spreadsheet would run as a formula starts with `'`). Same filters as the list.",
    params(AuditExportQuery),
    responses((status = 200, description = "The events", headers(("Content-Disposition" = String, description = "attachment, with a file name")),
            content(("application/x-ndjson"), ("text/csv"))),
        (status = 400, response = BadQuery), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn export_audit_log(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<AuditExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let format = match query.format.as_deref() {
        None | Some("") => ExportFormat::JsonLines,
        Some(raw) => ExportFormat::parse(raw).map_err(|e| invalid_query(e.0))?,
    };
    let filter = audit_filter(AuditFilterInput {
        actor: query.actor,
        action: query.action,
        from: query.from,
        to: query.to,
    })?;
    let ws = caller.admin_workspace(None)?;
    let pages = app.audit_export(&caller, ws.workspace_id, &filter)?;
    Ok(crate::download::audit_export(format, pages))
}

#[utoipa::path(post, path = "/api/v1/leaked-tokens", tag = "leaks", operation_id = "reportLeakedTokens",
    summary = "Report tokens found where they should not be; live ones are revoked at once",
    description = "For secret scanners (GitHub secret scanning, gitleaks, trufflehog) and anyone who found a token: needs no authentication. Send a JSON array of at most 1,000 entries `{\"token\", \"type\", \"url\", \"source\"}` (only `token` is required). Every live Tollgate token among them is revoked at once, recorded in the audit log with its URL and source, and shown to its owner and the workspace's Admins. The answer labels each entry, in order: `true_positive` (it was live and is revoked now) or `false_positive` (malformed, unknown, expired or already revoked); it reveals nothing else. A request that can not be read revokes nothing. Limited to 60 reports a minute per client address, and 300 a minute from all addresses together.",
    security(()),
    request_body(content = Vec<LeakReportDto>, content_type = "application/json", description = "The tokens found."),
    responses((status = 200, description = "One label per entry, in order", body = Vec<LeakLabelDto>),
        (status = 400, response = BadBody), (status = 413, response = ReportTooLarge),
        (status = 422, response = TooManyEntries), (status = 429, response = TooManyRequests)))]
pub async fn report_leaked_tokens(
    app: App,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let meta = request_meta(&req);
    let now = app.now();
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = app.admit_leak_report(&meta.ip, declared, now)?;
    let body = read_body_limited(body, limit).await?;
    let reports = parse_leak_report(&body)?;
    let verdicts = app.report_leaked_tokens(&reports, &meta, now).await?;
    let labels: Vec<LeakLabelDto> = reports
        .into_iter()
        .zip(verdicts)
        .map(|(report, verdict)| LeakLabelDto {
            token_raw: report.token,
            token_type: report.kind,
            label: verdict.label(),
        })
        .collect();
    // The answer repeats the secrets it was sent.
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(labels))
}

/// Reads a whole report before anything is revoked: one unreadable entry
/// refuses the request, naming the entry.
fn parse_leak_report(body: &[u8]) -> Result<Vec<LeakReport>, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
    let value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| invalid(format!("The request body is not JSON: {e}")))?;
    let serde_json::Value::Array(entries) = value else {
        return Err(invalid(
            "The request body must be a JSON array like [{\"token\": \"tgp_…\", \"type\": \"tollgate_pat\", \"url\": \"…\", \"source\": \"…\"}].".to_owned(),
        ));
    };
    if entries.len() > leaks::MAX_ENTRIES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_entries",
            format!(
                "A report holds at most {} entries; this one has {}. Send it in parts.",
                leaks::MAX_ENTRIES,
                entries.len()
            ),
        ));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            // Only an object is an entry: serde would also build one from
            // an array of strings.
            if !entry.is_object() {
                return Err(invalid(format!(
                    "Entry {i} must be an object like {{\"token\": \"tgp_…\"}}."
                )));
            }
            serde_json::from_value::<LeakReportDto>(entry)
                .map(|dto| LeakReport {
                    token: dto.token,
                    kind: dto.kind.unwrap_or_default(),
                    url: dto.url.unwrap_or_default(),
                    source: dto.source.unwrap_or_default(),
                })
                .map_err(|e| {
                    invalid(format!(
                        "Entry {i} must be an object with a string `token` (and optional string `type`, `url`, `source`): {e}."
                    ))
                })
        })
        .collect()
}

/// Reads a body that must be one JSON object of shape `T`; anything else is
/// 400 `invalid_json` (serde would also build a struct from an array).
async fn json_object<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
    example: &str,
) -> Result<T, ApiError> {
    let body = read_body(payload).await?;
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
    let value = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| invalid(format!("The request body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid(format!(
            "The request body must be a JSON object like {example}."
        )));
    }
    serde_json::from_value::<T>(value).map_err(|e| {
        invalid(format!(
            "The request body must be a JSON object like {example}: {e}."
        ))
    })
}

/// A numeric id from the path; anything else names nothing (404).
fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// Every item of a list that is not paged, in the shape of a page.
fn whole<T>(data: Vec<T>) -> Page<T> {
    Page {
        data,
        next_cursor: None,
    }
}

#[utoipa::path(get, path = "/api/v1/service-accounts", tag = "service accounts", operation_id = "listServiceAccounts",
    summary = "The workspace's service accounts",
    description = "Needs the Admin scope. All of them, by name; `next_cursor` is always `null`.",
    responses((status = 200, description = "The service accounts", body = Page<ServiceAccountDto>),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn list_service_accounts(
    app: App,
    ApiCaller(caller): ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let ws = caller.admin_workspace(None)?;
    let accounts = app.service_accounts(&caller, ws.workspace_id).await?;
    Ok(HttpResponse::Ok().json(whole(
        accounts.iter().map(ServiceAccountDto::from).collect(),
    )))
}

#[utoipa::path(post, path = "/api/v1/service-accounts", tag = "service accounts", operation_id = "createServiceAccount",
    summary = "Create a service account: an account of the workspace, not of a person",
    description = "Needs the Admin scope, on a member's token (a service account's token may not create accounts). Its tokens may have at most its role.",
    request_body(content = CreateServiceAccountRequest, content_type = "application/json"),
    responses((status = 201, description = "The new account", body = ServiceAccountDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = TooLarge), (status = 422, response = Invalid)))]
pub async fn create_service_account(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ws = caller.admin_workspace(None)?;
    let body: CreateServiceAccountRequest =
        json_object(body, r#"{"name": "Deploy bot", "role": "read-write"}"#).await?;
    let account = app
        .create_service_account(
            &caller,
            ws.workspace_id,
            &body.name,
            &body.role,
            &request_meta(&req),
            app.now(),
        )
        .await?;
    Ok(HttpResponse::Created().json(ServiceAccountDto::from(&account)))
}

#[utoipa::path(delete, path = "/api/v1/service-accounts/{id}", tag = "service accounts", operation_id = "deleteServiceAccount",
    summary = "Delete a service account; every token it holds stops working at once",
    description = "Needs the Admin scope. An account of another workspace is 404.",
    params(("id" = i64, Path, description = "The service account's id")),
    responses((status = 204, description = "Deleted, with its tokens"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn delete_service_account(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let ws = caller.admin_workspace(None)?;
    app.delete_service_account(
        &caller,
        ws.workspace_id,
        UserId(id),
        &request_meta(&req),
        app.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/service-accounts/{id}/tokens", tag = "service accounts", operation_id = "listServiceTokens",
    summary = "A service account's tokens (metadata only), newest first",
    description = "Needs the Admin scope. All of them; `next_cursor` is always `null`.",
    params(("id" = i64, Path, description = "The service account's id")),
    responses((status = 200, description = "The tokens", body = Page<TokenDto>),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn list_service_tokens(
    app: App,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let ws = caller.admin_workspace(None)?;
    let detail = app
        .service_account(&caller, ws.workspace_id, UserId(id))
        .await?;
    let now = app.now();
    Ok(HttpResponse::Ok().json(whole(
        detail
            .tokens
            .iter()
            .map(|t| TokenDto::new(t, now))
            .collect(),
    )))
}

#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/tokens", tag = "service accounts", operation_id = "createServiceToken",
    summary = "Generate a token for a service account",
    description = "Needs the Admin scope. The scope may not exceed the account's role; the expiry must keep to the workspace's token policy. The secret is in this answer only. The token authenticates with Bearer only.",
    params(("id" = i64, Path, description = "The service account's id")),
    request_body(content = CreateServiceTokenRequest, content_type = "application/json"),
    responses((status = 201, description = "The new token, with its secret shown this once", body = IssuedTokenDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 413, response = TooLarge),
        (status = 422, response = Invalid)))]
pub async fn create_service_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let ws = caller.admin_workspace(None)?;
    let body: CreateServiceTokenRequest = json_object(
        body,
        r#"{"name": "ci", "scope": "read-write", "expires_in_days": 30}"#,
    )
    .await?;
    let request = GenerateRequest {
        name: body.name,
        scope: body.scope,
        workspace: None,
        // The generate form's words: a number of days, or "never".
        expiry: body
            .expires_in_days
            .map(|days| days.map_or_else(|| "never".to_owned(), |d| d.to_string())),
    };
    let issued = app
        .generate_service_token(
            &caller,
            ws.workspace_id,
            UserId(id),
            &request,
            &request_meta(&req),
            app.now(),
        )
        .await?;
    let body = IssuedTokenDto {
        token: issued.token.expose().to_owned(),
        metadata: TokenDto::new(&issued.row, app.now()),
    };
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[utoipa::path(delete, path = "/api/v1/service-accounts/{id}/tokens/{token_id}", tag = "service accounts", operation_id = "deleteServiceToken",
    summary = "Delete one token of a service account; it stops working at once",
    description = "Needs the Admin scope.",
    params(("id" = i64, Path, description = "The service account's id"), ("token_id" = i64, Path, description = "The token's id")),
    responses((status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn delete_service_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, token) = (path_id(&path.0)?, path_id(&path.1)?);
    let ws = caller.admin_workspace(None)?;
    app.delete_service_token(
        &caller,
        ws.workspace_id,
        UserId(id),
        TokenId(token),
        &request_meta(&req),
        app.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/tokens/revoke-all", tag = "service accounts", operation_id = "revokeServiceTokens",
    summary = "Revoke every token of a service account",
    description = "Needs the Admin scope. The account stays; the body is ignored.",
    params(("id" = i64, Path, description = "The service account's id")),
    responses((status = 200, description = "How many tokens stopped working", body = RevokedDto),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn revoke_service_tokens(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let ws = caller.admin_workspace(None)?;
    let revoked = app
        .revoke_service_tokens(
            &caller,
            ws.workspace_id,
            UserId(id),
            &request_meta(&req),
            app.now(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(RevokedDto { revoked }))
}

#[utoipa::path(get, path = "/api/v1/workspace/token-policy", tag = "workspace", operation_id = "getTokenPolicy",
    summary = "The workspace's token policy, and the live tokens outside it",
    description = "Needs the Admin scope. `outside_policy` lists (oldest first) and counts the live tokens the policy would not allow today, as the Token policy section of the Workspace tokens page does; they keep working until they expire or are revoked (`POST /api/v1/workspace/token-policy/revoke-outside`).",
    responses((status = 200, description = "The policy and the tokens outside it", body = TokenPolicyStateDto),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn get_token_policy(
    app: App,
    ApiCaller(caller): ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let ws = caller.admin_workspace(None)?;
    let now = app.now();
    let policy = app.workspace_token_policy(&caller, ws.workspace_id).await?;
    let outside = app
        .tokens_outside_policy(&caller, ws.workspace_id, now)
        .await?;
    Ok(HttpResponse::Ok().json(TokenPolicyStateDto::new(policy, &outside, now)))
}

#[utoipa::path(put, path = "/api/v1/workspace/token-policy", tag = "workspace", operation_id = "setTokenPolicy",
    summary = "Set the workspace's token policy",
    description = "Needs the Admin scope. New tokens (members' and service accounts') are then refused outside it (422 `invalid_expiry`); existing tokens outside it keep working until revoked, and the answer lists them under `outside_policy`.",
    request_body(content = TokenPolicyDto, content_type = "application/json"),
    responses((status = 200, description = "The policy now, and the tokens outside it", body = TokenPolicyStateDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 413, response = TooLarge), (status = 422, response = Invalid)))]
pub async fn put_token_policy(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ws = caller.admin_workspace(None)?;
    let body: TokenPolicyDto =
        json_object(body, r#"{"max_lifetime_days": 90, "require_expiry": true}"#).await?;
    let request = PolicyRequest::from_days(body.max_lifetime_days, body.require_expiry);
    let now = app.now();
    let saved = app
        .set_token_policy(&caller, ws.workspace_id, &request, &request_meta(&req), now)
        .await?;
    Ok(HttpResponse::Ok().json(TokenPolicyStateDto::new(saved.policy, &saved.outside, now)))
}

#[utoipa::path(post, path = "/api/v1/workspace/token-policy/revoke-outside", tag = "workspace", operation_id = "revokeTokensOutsidePolicy",
    summary = "Revoke every live token outside the workspace's token policy",
    description = "Needs the Admin scope. Revokes the tokens `GET /api/v1/workspace/token-policy` lists under `outside_policy`, as the policy stands at this request (the calling token too, if it is one of them); they stop working at once on every instance, and the audit log records `workspace.tokens_revoked`. Without a policy nothing is outside it and nothing is revoked. Takes no body, or `{}`; any other body is refused and revokes nothing.",
    request_body(content = RevokeOutsideRequest, content_type = "application/json", description = "None, or `{}`."),
    responses((status = 200, description = "How many tokens stopped working", body = RevokedDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 413, response = TooLarge)))]
pub async fn revoke_tokens_outside_policy(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ws = caller.admin_workspace(None)?;
    let body = read_body(body).await?;
    // Nothing to choose here: a body that says anything is a request for
    // something this endpoint does not do, so it is refused, not ignored.
    if !body.iter().all(u8::is_ascii_whitespace) {
        let invalid =
            |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
        let value = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| invalid(format!("The request body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid(
                "This request takes no body, or the empty JSON object {}.".to_owned(),
            ));
        }
        serde_json::from_value::<RevokeOutsideRequest>(value).map_err(|e| {
            invalid(format!(
                "This request takes no body, or the empty JSON object {{}}: {e}."
            ))
        })?;
    }
    let revoked = app
        .revoke_tokens_outside_policy(&caller, ws.workspace_id, &request_meta(&req), app.now())
        .await?;
    Ok(HttpResponse::Ok().json(RevokedDto { revoked }))
}

#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspace", operation_id = "listWorkspaces",
    summary = "The caller's workspace, with what the token may do there",
    description = "Needs any valid token. A token acts in its own workspace only, so that is the one listed; `next_cursor` is always `null`.",
    responses((status = 200, description = "The workspaces", body = Page<WorkspaceDto>),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)))]
pub async fn list_workspaces(
    app: App,
    ApiCaller(caller): ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let workspaces = app.workspaces(&caller)?;
    Ok(HttpResponse::Ok().json(whole(workspaces.iter().map(WorkspaceDto::from).collect())))
}

#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspace", operation_id = "createWorkspace",
    summary = "Create a workspace; the token's owner becomes its first Admin",
    description = "Needs the Admin scope, on a member's token. Names are unique in the organization. The calling token stays bound to its own workspace.",
    request_body(content = WorkspaceNameRequest, content_type = "application/json"),
    responses((status = 201, description = "The new workspace", body = WorkspaceDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = TooLarge), (status = 422, response = Invalid)))]
pub async fn create_workspace(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: WorkspaceNameRequest = json_object(body, r#"{"name": "Platform"}"#).await?;
    let created = app
        .create_workspace(&caller, &body.name, &request_meta(&req), app.now())
        .await?;
    Ok(HttpResponse::Created().json(WorkspaceDto::from(&created)))
}

#[utoipa::path(patch, path = "/api/v1/workspaces/{id}", tag = "workspace", operation_id = "renameWorkspace",
    summary = "Rename the token's workspace",
    description = "Needs the Admin scope. Another workspace is 404 (a token acts in its own only). Tokens keep working.",
    params(("id" = i64, Path, description = "The workspace's id")),
    request_body(content = WorkspaceNameRequest, content_type = "application/json"),
    responses((status = 200, description = "The workspace as renamed", body = WorkspaceDto),
        (status = 400, response = BadBody), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 413, response = TooLarge),
        (status = 422, response = Invalid)))]
pub async fn rename_workspace(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let body: WorkspaceNameRequest = json_object(body, r#"{"name": "Platform"}"#).await?;
    let renamed = app
        .rename_workspace(
            &caller,
            WorkspaceId(id),
            &body.name,
            &request_meta(&req),
            app.now(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(WorkspaceDto::from(&renamed)))
}

/// Any unknown path under `/api`.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found())
}
