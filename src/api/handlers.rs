//! The API's handlers: read the request, call one service function, answer
//! JSON. Permission checks live in the services.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::dto::{
    AuditEventDto, IssuedTokenDto, MeDto, MemberDto, Page, PageQuery, RevokeAllRequest, RevokedDto,
    TokenDto,
};
use crate::api::{ApiCaller, ApiError};
use crate::domain::{TokenId, UserId};
use crate::service::Tollgate;
use crate::startup::now;
use crate::web::extractors::request_meta;

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

fn page<T, R>(rows: &[R], next: Option<i64>, map: impl Fn(&R) -> T) -> Page<T> {
    Page {
        data: rows.iter().map(map).collect(),
        next_cursor: next.map(|c| c.to_string()),
    }
}

pub async fn me(ApiCaller(caller): ApiCaller) -> HttpResponse {
    HttpResponse::Ok().json(MeDto::from(&caller))
}

pub async fn list_tokens(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let result = app.api_own_tokens(&caller, cursor, limit).await?;
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |t| {
            TokenDto::from(t)
        })),
    )
}

pub async fn delete_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    app.api_delete_token(&caller, TokenId(id), &request_meta(&req), now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate_token(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let issued = app
        .rotate_token(&caller, &request_meta(&req), now())
        .await?;
    let body = IssuedTokenDto {
        token: issued.token.expose().to_owned(),
        metadata: TokenDto::from(&issued.row),
    };
    Ok(HttpResponse::Ok().json(body))
}

pub async fn members(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let result = app.api_members(&caller, cursor, limit).await?;
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |m| {
            MemberDto::from(m)
        })),
    )
}

pub async fn workspace_tokens(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let result = app.api_workspace_tokens(&caller, cursor, limit).await?;
    Ok(
        HttpResponse::Ok().json(page(&result.items, result.next_cursor, |t| {
            TokenDto::from(t)
        })),
    )
}

pub async fn revoke_workspace_tokens(
    app: App,
    req: HttpRequest,
    ApiCaller(caller): ApiCaller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // An unreadable body must never widen "revoke one member" into "revoke
    // everyone": only an empty body (or `{}`) means the whole workspace.
    let member = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // serde also reads a struct from an array, so `[]` would pass as
        // "no member given": only an object is accepted.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The request body must be a JSON object, such as {\"user_id\": 42}, or empty.",
            ));
        }
        serde_json::from_slice::<RevokeAllRequest>(&body)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The request body could not be read: {e}"),
                )
            })?
            .user_id
    };
    let member = member.map(UserId);
    let revoked = app
        .api_revoke_workspace_tokens(&caller, member, &request_meta(&req), now())
        .await?;
    Ok(HttpResponse::Ok().json(RevokedDto { revoked }))
}

pub async fn audit_log(
    app: App,
    ApiCaller(caller): ApiCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = paging(&query)?;
    let result = app.api_audit_log(&caller, cursor, limit).await?;
    let next_cursor = result.next_cursor.map(|c| c.to_string());
    Ok(HttpResponse::Ok().json(Page {
        data: result.items.into_iter().map(AuditEventDto::from).collect(),
        next_cursor,
    }))
}

/// Any unknown path under `/api`.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found())
}
