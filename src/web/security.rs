//! Headers every response carries, and the request log with its request id.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use rand::RngExt;
use tracing::Instrument;

/// No inline script or style anywhere, nothing loaded from elsewhere, and no
/// framing: the CSP forbids what the templates never need.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Set on every response unless a handler set its own (static files allow
/// caching). Behind https (`strict_transport`), browsers are also told to
/// use nothing else for a year.
pub fn default_headers(strict_transport: bool) -> DefaultHeaders {
    let headers = if strict_transport {
        DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        DefaultHeaders::new()
    };
    headers
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ))
        .add(("Cache-Control", "no-store"))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives each request an id (kept from `X-Request-Id` when it is short and
/// plain), logs method, route pattern (never the path or query: they may
/// carry a setup or invitation code), status and duration, and echoes the
/// id back.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}", rand::rng().random::<u64>()));
    let method = req.method().clone();
    let span =
        tracing::info_span!("request", id = %id, method = %method, route = tracing::field::Empty);
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let status = res.status().as_u16();
    // The route pattern (`/invitations/{code}`), never the path itself:
    // paths and queries can carry invitation and setup codes.
    let route = res.request().match_pattern();
    span.record("route", route.as_deref().unwrap_or("(no route)"));
    crate::metrics::request_answered(method.as_str(), route.as_deref(), status, started.elapsed());
    span.in_scope(|| {
        tracing::info!(
            status,
            micros = started.elapsed().as_micros() as u64,
            "answered"
        )
    });
    Ok(res)
}
