//! How a handler states what it needs. A handler that takes `CurrentUser`
//! only runs for a signed-in, enabled member; one that takes `CsrfForm<T>`
//! only runs for a same-origin form carrying the request's CSRF token.
//!
//! CSRF tokens need no stored state (so an anonymous visit stores no
//! session): a browser gets a random nonce in an HttpOnly cookie, and its
//! forms carry HMAC(server key, nonce, signed-in user, sign-in time). Another
//! site can neither read the nonce nor compute the token, and a token of one
//! sign-in is worthless in the next.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::LocalBoxFuture;
use hmac::{KeyInit, Mac};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::domain::UserId;
use crate::request::{request_meta, request_origin};
use crate::service::{Actor, RequestMeta, SignedInUser, Tollgate};
use crate::web::errors::PageError;
use crate::web::session::USER_ID;

pub const SIGNED_IN_AT: &str = "signed_in_at";
/// When the session was last written; the idle expiry moves on at most once
/// a minute, so page views do not each rewrite the session.
pub const SEEN_AT: &str = "seen_at";
const SEEN_EVERY_SECONDS: i64 = 60;
const CSRF_COOKIE: &str = "tollgate_csrf";
const NONCE_LEN: usize = 43;

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
            let now = app.now();
            // Idle expiry is the store's TTL; this is the absolute limit.
            if now - signed_in_at > config.session_max_hours * 3600 {
                session.purge();
                return Err(PageError::SignInRequired);
            }
            match app.signed_in_user(UserId(user_id)).await? {
                Some(user) => {
                    let seen_at = session.get::<i64>(SEEN_AT).ok().flatten().unwrap_or(0);
                    if now - seen_at >= SEEN_EVERY_SECONDS {
                        // A change of state makes the store write the
                        // session and extend its idle expiry.
                        session.insert(SEEN_AT, now)?;
                    }
                    Ok(CurrentUser(user))
                }
                None => {
                    session.purge();
                    Err(PageError::SignInRequired)
                }
            }
        })
    }
}

/// The signed-in member as the actor of the services a page calls: the
/// same resolution as `CurrentUser`.
pub struct CurrentActor(pub Actor);

impl CurrentActor {
    /// The signed-in person (always there for an actor from a session).
    pub fn user(&self) -> Result<&SignedInUser, PageError> {
        self.0.signed_in().ok_or(PageError::SignInRequired)
    }
}

impl FromRequest for CurrentActor {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = CurrentUser::from_request(req, payload);
        Box::pin(async move {
            let CurrentUser(user) = user.await?;
            Ok(CurrentActor(Actor::Member(user)))
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

/// The key CSRF tokens are signed with, derived from the cookie key.
pub struct CsrfKey(Vec<u8>);

impl CsrfKey {
    pub fn new(cookie_key: &actix_web::cookie::Key) -> Self {
        Self(cookie_key.signing().to_vec())
    }

    /// The token for a browser's nonce and its session's sign-in.
    fn token(&self, nonce: &str, session: &Session) -> String {
        let user = session.get::<i64>(USER_ID).ok().flatten();
        let signed_in_at = session.get::<i64>(SIGNED_IN_AT).ok().flatten();
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this can not happen.
            Err(_) => return String::new(),
        };
        mac.update(b"tollgate csrf v1\0");
        mac.update(nonce.as_bytes());
        mac.update(format!("\0{user:?}\0{signed_in_at:?}").as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// The CSRF cookie's name: with the `__Host-` prefix behind https, so that
/// no other host (a sibling subdomain) can plant it.
pub fn csrf_cookie_name(config: &Config) -> &'static str {
    if config.secure_cookies() {
        "__Host-tollgate_csrf"
    } else {
        CSRF_COOKIE
    }
}

/// The browser's CSRF nonce, when its cookie holds a well-formed one.
fn nonce_of(req: &HttpRequest, config: &Config) -> Option<String> {
    req.cookie(csrf_cookie_name(config))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == NONCE_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

tokio::task_local! {
    /// The CSRF token of the request being answered, for the page layout.
    static CSRF_TOKEN: String;
}

/// Middleware of the page routes (inside the session middleware): gives a
/// browser without one a CSRF nonce cookie, and makes the request's token
/// available to the layout.
pub async fn csrf_layer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let config = app_data::<Config>(req.request())?;
    let key = app_data::<CsrfKey>(req.request())?;
    let (nonce, fresh) = match nonce_of(req.request(), &config) {
        Some(nonce) => (nonce, false),
        None => (
            Alphanumeric.sample_string(&mut rand::rng(), NONCE_LEN),
            true,
        ),
    };
    let token = key.token(&nonce, &req.get_session());
    let mut res = CSRF_TOKEN.scope(token, next.call(req)).await?;
    if fresh {
        let cookie = Cookie::build(csrf_cookie_name(&config), nonce)
            .path("/")
            .http_only(true)
            .secure(config.secure_cookies())
            .same_site(SameSite::Lax)
            .finish();
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(res)
}

/// The CSRF token for the forms of the page being rendered.
pub fn csrf_token(_session: &Session) -> Result<String, PageError> {
    CSRF_TOKEN.try_with(String::clone).map_err(|_| {
        PageError::Internal(anyhow::anyhow!(
            "a page was rendered outside the CSRF layer"
        ))
    })
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
            let key = app_data::<CsrfKey>(&req)?;
            let expected =
                nonce_of(&req, &config).map(|nonce| key.token(&nonce, &req.get_session()));
            match (sent, expected) {
                (Some(sent), Some(expected))
                    if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) => {}
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
        return origin.as_bytes() == request_origin(req, config).as_bytes();
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(site) => site == b"same-origin" || site == b"none",
        // Neither header: not a browser (browsers send Origin on POST); the
        // CSRF token alone decides.
        None => true,
    }
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
