//! `ApiCaller`: the extractor that makes a handler token-authenticated.
//!
//! Accepts `Authorization: Bearer <token>` and HTTP Basic with the owner's
//! email as user name and the token as password (members' tokens only: a
//! service account has no email, its tokens use Bearer). The header is parsed and
//! the token's shape and checksum verified before anything touches the
//! database; whatever the header holds, the answer is a 401, never a 5xx.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::LocalBoxFuture;

use crate::api::errors::ApiError;
use crate::domain::{AccountKind, PlainToken};
use crate::service::token_cache::AuthFailure;
use crate::service::{Actor, Tollgate};

/// The token-authenticated caller of an API request, as the actor of the
/// services its handler calls.
pub struct ApiCaller(pub Actor);

/// The credentials an `Authorization` header carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    Basic { email: String, token: String },
}

/// Reads an `Authorization` header; `Err` holds a client-facing message.
pub fn parse_authorization(value: &[u8]) -> Result<Credentials, &'static str> {
    const MALFORMED: &str = "The Authorization header is malformed: use `Bearer <token>` or HTTP Basic with your email and token.";
    if value.len() > 1024 {
        return Err(MALFORMED);
    }
    let value = std::str::from_utf8(value).map_err(|_| MALFORMED)?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(MALFORMED)?;
    let credentials = rest.trim();
    if credentials.is_empty() || credentials.contains(char::is_whitespace) {
        return Err(MALFORMED);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(credentials.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(credentials).map_err(|_| MALFORMED)?;
        let decoded = String::from_utf8(decoded).map_err(|_| MALFORMED)?;
        let (email, token) = decoded.split_once(':').ok_or(MALFORMED)?;
        return Ok(Credentials::Basic {
            email: email.to_owned(),
            token: token.to_owned(),
        });
    }
    Err(MALFORMED)
}

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The header is read here, before the future, so that the future
        // owns only what it needs.
        let credentials = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| parse_authorization(v.as_bytes()));
        // Browsers attach remembered Basic credentials on their own; a page
        // of another site must not be able to use them. Fetch Metadata or a
        // foreign `Origin` gives such a request away. (Bearer tokens are
        // never attached by a browser on its own.)
        let from_another_site = matches!(credentials, Some(Ok(Credentials::Basic { .. })))
            && req
                .app_data::<Data<crate::config::Config>>()
                .is_none_or(|config| crate::request::from_another_site(req, config));
        let app = req.app_data::<Data<Tollgate>>().cloned();
        Box::pin(async move {
            let app = app.ok_or_else(|| {
                ApiError::from(crate::service::ServiceError::Unexpected(anyhow::anyhow!(
                    "missing app state"
                )))
            })?;
            let credentials = credentials.ok_or_else(|| {
                crate::metrics::token_check("missing");
                ApiError::unauthorized(
                    "missing_token",
                    "Send a token: `Authorization: Bearer <token>`.",
                )
            })?;
            let credentials = credentials.map_err(|m| {
                crate::metrics::token_check("malformed");
                ApiError::unauthorized("malformed_authorization", m)
            })?;
            let (raw, basic_email) = match credentials {
                Credentials::Bearer(token) => (token, None),
                Credentials::Basic { .. } if from_another_site => {
                    return Err(ApiError::unauthorized(
                        "cross_site_request",
                        "Basic credentials are not accepted from pages of other sites.",
                    ));
                }
                Credentials::Basic { email, token } => (token, Some(email)),
            };
            let token = PlainToken::parse(&raw).map_err(|_| {
                crate::metrics::token_check("malformed");
                ApiError::unauthorized("invalid_token", "This is not a valid Tollgate token.")
            })?;
            let verdict = app
                .tokens
                .authenticate(&app.db, &token, app.now())
                .await
                .map_err(|e| {
                    crate::metrics::token_check("error");
                    crate::service::ServiceError::from(e)
                })?;
            crate::metrics::token_verified(verdict.as_ref().map(|_| ()).map_err(|f| *f));
            let principal = verdict.map_err(refusal)?;
            // A service account has no email and no password: its tokens
            // authenticate with Bearer only.
            if basic_email.is_some() && principal.kind == AccountKind::ServiceAccount {
                return Err(ApiError::unauthorized(
                    "bearer_only",
                    "Service account tokens authenticate with `Authorization: Bearer <token>` only.",
                ));
            }
            if let Some(email) = basic_email
                && !email.trim().eq_ignore_ascii_case(&principal.email)
            {
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "The user name must be the email of the token's owner.",
                ));
            }
            Ok(ApiCaller(Actor::Token(principal)))
        })
    }
}

fn refusal(failure: AuthFailure) -> ApiError {
    use actix_web::http::StatusCode;
    match failure {
        AuthFailure::Unknown => ApiError::unauthorized(
            "invalid_token",
            "This token does not exist or has been revoked.",
        ),
        AuthFailure::Expired => ApiError::unauthorized("token_expired", "This token has expired."),
        AuthFailure::OwnerDisabled => ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_disabled",
            "The account that owns this token is disabled.",
        ),
        AuthFailure::NotAMember => ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_not_a_member",
            "The token's owner is no longer a member of its workspace.",
        ),
        AuthFailure::OwnerReadOnly => ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_read_only",
            "The token's owner now has the Read-Only role; only Read-Write and Admin members can use tokens.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_are_read() {
        assert_eq!(
            parse_authorization(b"Bearer abc"),
            Ok(Credentials::Bearer("abc".into()))
        );
        assert_eq!(
            parse_authorization(b"bearer   abc  "),
            Ok(Credentials::Bearer("abc".into()))
        );
        let basic = format!("Basic {}", STANDARD.encode("ada@example.com:tgp_x"));
        assert_eq!(
            parse_authorization(basic.as_bytes()),
            Ok(Credentials::Basic {
                email: "ada@example.com".into(),
                token: "tgp_x".into()
            })
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Token abc",
            b"Basic !!!",
            b"Basic YWRh",
            b"Bearer a b",
            b"\xff\xfe",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        assert!(parse_authorization(&vec![b'a'; 5000]).is_err());
    }

    use proptest::prelude::*;

    fn scheme() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "Bearer", "bearer", "BEARER", "Basic", "basic", "Token", "",
        ])
        .prop_map(str::to_owned)
    }

    proptest! {
        /// Any bytes at all: an answer, never a panic; and what is accepted
        /// is a credential without whitespace, from a header of at most 1 KiB.
        #[test]
        fn arbitrary_headers_never_panic(
            scheme in scheme(),
            separator in prop::sample::select(vec![" ", "  ", "\t", ""]),
            rest in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..80),
                "[ -~\t]{0,60}".prop_map(String::into_bytes),
            ],
        ) {
            let mut header = format!("{scheme}{separator}").into_bytes();
            header.extend(rest);
            match parse_authorization(&header) {
                Ok(Credentials::Bearer(token)) => {
                    prop_assert!(!token.is_empty());
                    prop_assert!(!token.contains(char::is_whitespace));
                }
                Ok(Credentials::Basic { email, .. }) => prop_assert!(!email.contains(':')),
                Err(message) => prop_assert!(message.contains("malformed")),
            }
        }

        #[test]
        fn a_bearer_token_is_read_back_exactly(
            scheme in prop::sample::select(vec!["Bearer", "bearer", "BeArEr"]),
            token in "[!-~]{1,200}",
            padding in "[ ]{0,3}",
        ) {
            let header = format!("{padding}{scheme} {padding}{token}{padding}");
            prop_assert_eq!(parse_authorization(header.as_bytes()), Ok(Credentials::Bearer(token)));
        }

        /// Base64 of any `email:token` (the token may hold colons, spaces,
        /// anything) comes back exactly; the email ends at the first colon.
        #[test]
        fn basic_credentials_are_read_back_exactly(
            email in "[^:]{0,60}",
            token in "\\PC{0,80}",
        ) {
            let header = format!("Basic {}", STANDARD.encode(format!("{email}:{token}")));
            let parsed = parse_authorization(header.as_bytes());
            if header.len() <= 1024 {
                prop_assert_eq!(parsed, Ok(Credentials::Basic { email, token }));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        /// Base64 of arbitrary bytes: no panic; bytes that are not UTF-8 or
        /// hold no colon are refused.
        #[test]
        fn basic_with_arbitrary_decoded_bytes_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            let header = format!("Basic {}", STANDARD.encode(&bytes));
            let parsed = parse_authorization(header.as_bytes());
            let readable = std::str::from_utf8(&bytes).ok().filter(|s| s.contains(':'));
            prop_assert_eq!(parsed.is_ok(), readable.is_some() && !bytes.is_empty());
        }
    }
}
