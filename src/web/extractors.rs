//! How a handler states what it needs. A handler that takes `CurrentUser`
//! only runs for a signed-in, enabled member; one that takes `CsrfForm<T>`
//! only runs for a same-origin form carrying the session's CSRF token.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::domain::UserId;
use crate::service::{RequestMeta, SignedInUser, Tollgate};
use crate::startup::now;
use crate::web::errors::PageError;
use crate::web::session::USER_ID;

const CSRF: &str = "csrf";
pub const SIGNED_IN_AT: &str = "signed_in_at";

/// The signed-in member, loaded fresh for each request (a disabled or deleted
/// account stops working at once).
pub struct CurrentUser(pub SignedInUser);

impl FromRequest for CurrentUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let session = req.get_session();
            let app = app_data::<Tollgate>(&req)?;
            let config = app_data::<Config>(&req)?;
            let user_id = session
                .get::<i64>(USER_ID)
                .ok()
                .flatten()
                .ok_or(PageError::SignInRequired)?;
            let signed_in_at = session.get::<i64>(SIGNED_IN_AT).ok().flatten().unwrap_or(0);
            // Idle expiry is the store's TTL; this is the absolute limit.
            if now() - signed_in_at > config.session_max_hours * 3600 {
                session.purge();
                return Err(PageError::SignInRequired);
            }
            match app.signed_in_user(UserId(user_id)).await? {
                Some(user) => Ok(CurrentUser(user)),
                None => {
                    session.purge();
                    Err(PageError::SignInRequired)
                }
            }
        })
    }
}

fn app_data<T: 'static>(req: &HttpRequest) -> Result<Data<T>, PageError> {
    req.app_data::<Data<T>>().cloned().ok_or_else(|| {
        PageError::Internal(anyhow::anyhow!(
            "missing app data {}",
            std::any::type_name::<T>()
        ))
    })
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session.get::<String>(CSRF).ok().flatten() {
        return Ok(token);
    }
    let token = Alphanumeric.sample_string(&mut rand::rng(), 43);
    session.insert(CSRF, &token)?;
    Ok(token)
}

/// A url-encoded form that passed the CSRF checks: the `Origin` (or
/// `Sec-Fetch-Site`) says it comes from this site, and its `csrf_token`
/// field matches the session's.
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        // Bytes honours the PayloadConfig limit: too large a body is a 413.
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            let config = app_data::<Config>(&req)?;
            if !same_origin(&req, &config) {
                return Err(PageError::Csrf.into());
            }
            let sent = serde_urlencoded::from_bytes::<CsrfField>(&body)
                .ok()
                .and_then(|f| f.csrf_token);
            let expected = req.get_session().get::<String>(CSRF).ok().flatten();
            match (sent, expected) {
                (Some(sent), Some(expected))
                    if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {}
                _ => return Err(PageError::Csrf.into()),
            }
            let form = serde_urlencoded::from_bytes::<T>(&body)
                .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}.")))?;
            Ok(CsrfForm(form))
        })
    }
}

fn same_origin(req: &HttpRequest, config: &Config) -> bool {
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let expected = config.public_origin().unwrap_or_else(|| {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        });
        return origin.as_bytes() == expected.as_bytes();
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(site) => site == b"same-origin" || site == b"none",
        // Neither header: not a browser (browsers send Origin on POST); the
        // CSRF token alone decides.
        None => true,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's address: the peer, or, when the peer is the trusted reverse
/// proxy, the last address it appended to `X-Forwarded-For`.
fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = req.app_data::<Data<Config>>().and_then(|c| c.trusted_proxy);
    if trusted != Some(peer) {
        return Some(peer);
    }
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .or(Some(peer))
}

/// Where a request came from, for the audit log.
pub struct ClientMeta(pub RequestMeta);

impl FromRequest for ClientMeta {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientMeta(request_meta(req))))
    }
}

pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta {
        ip: client_ip(req).map(|ip| ip.to_string()).unwrap_or_default(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect(),
    }
}
