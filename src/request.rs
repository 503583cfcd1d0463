//! Where a request comes from: the client's address, its user agent and the
//! origin it was sent to, believing forwarded headers only from the trusted
//! proxy. Shared by the dashboard and the API (neither imports the other).

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Data;

use crate::config::Config;
use crate::service::RequestMeta;

/// This server's origin as the browser sees it: `TOLLGATE_PUBLIC_URL` when
/// set; else the scheme and host the trusted proxy forwarded; else the
/// `Host` header over plain http. Forwarded headers of anyone else are
/// ignored: a client must not choose the origin it is checked against or
/// the host that invitation links point to.
pub fn request_origin(req: &HttpRequest, config: &Config) -> String {
    if let Some(origin) = config.public_origin() {
        return origin;
    }
    let headers = req.headers();
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let host = header_str(header::HOST.as_str())
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if from_trusted_proxy(req, config) {
        let scheme = header_str("x-forwarded-proto")
            .filter(|s| s == "http" || s == "https")
            .unwrap_or_else(|| "http".to_owned());
        let host = header_str("x-forwarded-host").unwrap_or(host);
        return format!("{scheme}://{host}");
    }
    format!("http://{host}")
}

pub fn from_trusted_proxy(req: &HttpRequest, config: &Config) -> bool {
    match (req.peer_addr(), config.trusted_proxy) {
        (Some(peer), Some(proxy)) => peer.ip() == proxy,
        _ => false,
    }
}

/// The client's address: the peer, or, when the peer is the trusted reverse
/// proxy, the last address it appended to `X-Forwarded-For`.
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
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

/// True when the request says it comes from a page of another origin: a
/// foreign `Origin` (including `null`), or Fetch Metadata saying so.
pub fn from_another_site(req: &HttpRequest, config: &Config) -> bool {
    let headers = req.headers();
    let fetch_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() != request_origin(req, config).as_bytes());
    fetch_site || foreign_origin
}
