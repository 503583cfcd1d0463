//! The show-once hand-over of a new token's secret.
//!
//! After a POST generates a token, the browser is redirected
//! (Post/Redirect/Get) to a page that shows it. The secret must not travel
//! in the URL and must never be stored, not even in the session table. So it
//! rides in a *private* cookie — encrypted and authenticated with AES-256-GCM
//! under the server's cookie key by the `cookie` crate, a reviewed primitive
//! — that is HttpOnly, SameSite=Strict, scoped to the one page that reads it
//! and lives ten minutes. The session keeps only a random nonce: the page
//! shows the secret when the cookie's nonce matches the session's and the
//! cookie was made for the signed-in member, then drops both, so a replayed
//! cookie shows nothing.

use actix_session::Session;
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time::Duration};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::web::errors::PageError;
use crate::web::urls;

const COOKIE: &str = "tollgate_reveal";
const NONCE: &str = "reveal_nonce";

/// The key that encrypts the hand-over cookie (the server's cookie key).
#[derive(Clone)]
pub struct RevealKey(pub Key);

/// A secret to show once, with the name of its token.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revealed {
    pub name: String,
    pub token: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    user_id: i64,
    #[serde(flatten)]
    revealed: Revealed,
}

/// Seals `revealed` for `user`: stores a fresh nonce in the session and
/// returns the encrypted cookie to send with the redirect.
pub fn seal(
    key: &RevealKey,
    session: &Session,
    user: UserId,
    revealed: Revealed,
    secure: bool,
) -> Result<Cookie<'static>, PageError> {
    seal_for(key, session, user, revealed, secure, urls::TOKENS_CREATED)
}

/// `seal` for the show-once page at `path` (a service account's, say).
pub fn seal_for(
    key: &RevealKey,
    session: &Session,
    user: UserId,
    revealed: Revealed,
    secure: bool,
    path: &str,
) -> Result<Cookie<'static>, PageError> {
    let nonce = Alphanumeric.sample_string(&mut rand::rng(), 22);
    session.insert(NONCE, &nonce)?;
    let value = serde_json::to_string(&Sealed {
        nonce,
        user_id: user.0,
        revealed,
    })
    .map_err(|e| PageError::Internal(e.into()))?;
    Ok(encrypt(key, value, secure, path))
}

fn encrypt(key: &RevealKey, value: String, secure: bool, path: &str) -> Cookie<'static> {
    let cookie = Cookie::build(COOKIE, value)
        .path(path.to_owned())
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(Duration::minutes(10))
        .finish();
    let mut jar = CookieJar::new();
    jar.private_mut(&key.0).add(cookie);
    jar.get(COOKIE)
        .cloned()
        .unwrap_or_else(|| Cookie::new(COOKIE, ""))
}

/// Opens the hand-over once: the session's nonce is taken whatever happens,
/// so the secret can be shown at most once.
pub fn open(
    key: &RevealKey,
    session: &Session,
    req: &HttpRequest,
    user: UserId,
) -> Option<Revealed> {
    let nonce = session.remove_as::<String>(NONCE).and_then(Result::ok)?;
    let mut jar = CookieJar::new();
    jar.add_original(req.cookie(COOKIE)?);
    let sealed: Sealed = serde_json::from_str(jar.private(&key.0).get(COOKIE)?.value()).ok()?;
    (sealed.nonce == nonce && sealed.user_id == user.0).then_some(sealed.revealed)
}

/// The cookie that removes the hand-over cookie from the browser.
pub fn removal() -> Cookie<'static> {
    removal_for(urls::TOKENS_CREATED)
}

/// `removal` for the show-once page at `path`.
pub fn removal_for(path: &str) -> Cookie<'static> {
    let mut gone = Cookie::build(COOKIE, "").path(path.to_owned()).finish();
    gone.make_removal();
    gone
}

#[cfg(test)]
mod tests {
    use actix_session::SessionExt;
    use actix_web::cookie::Key;
    use actix_web::test::TestRequest;

    use super::*;

    const SECRET: &str = "tgp_abcdefghijklmnopqrstuvwxyz012345ABCDEF";

    fn revealed() -> Revealed {
        Revealed {
            name: "ci".to_owned(),
            token: SECRET.to_owned(),
        }
    }

    /// A request whose session holds `nonce` and that carries `cookie`.
    fn request(nonce: Option<&str>, cookie: Option<Cookie<'static>>) -> HttpRequest {
        let mut req = TestRequest::default();
        if let Some(cookie) = cookie {
            req = req.cookie(cookie);
        }
        let req = req.to_http_request();
        if let Some(nonce) = nonce {
            req.get_session().insert(NONCE, nonce).unwrap();
        }
        req
    }

    fn sealed(key: &RevealKey, user: i64) -> (String, Cookie<'static>) {
        let req = request(None, None);
        let session = req.get_session();
        let cookie = seal(key, &session, UserId(user), revealed(), true).unwrap();
        let nonce = session.get::<String>(NONCE).unwrap().unwrap();
        (nonce, cookie)
    }

    #[test]
    fn the_cookie_is_encrypted_and_opens_once_for_its_member() {
        let key = RevealKey(Key::generate());
        let (nonce, cookie) = sealed(&key, 7);
        // What the browser holds says nothing of the secret, in any encoding.
        let value = cookie.value();
        assert!(!value.contains(SECRET) && !value.contains(&SECRET[4..20]));
        assert!(!value.contains(&hex::encode(SECRET)[..16]));
        assert!(cookie.http_only().unwrap_or(false));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some(urls::TOKENS_CREATED));

        let req = request(Some(&nonce), Some(cookie.clone()));
        let session = req.get_session();
        assert_eq!(open(&key, &session, &req, UserId(7)), Some(revealed()));
        // The nonce is gone: the same cookie shows nothing a second time.
        assert_eq!(open(&key, &session, &req, UserId(7)), None);
    }

    #[test]
    fn another_member_another_session_or_another_key_sees_nothing() {
        let key = RevealKey(Key::generate());
        let (nonce, cookie) = sealed(&key, 7);
        let req = request(Some(&nonce), Some(cookie.clone()));
        assert_eq!(open(&key, &req.get_session(), &req, UserId(8)), None);
        let req = request(Some("another session's nonce"), Some(cookie.clone()));
        assert_eq!(open(&key, &req.get_session(), &req, UserId(7)), None);
        let req = request(Some(&nonce), Some(cookie.clone()));
        let other = RevealKey(Key::generate());
        assert_eq!(open(&other, &req.get_session(), &req, UserId(7)), None);
        let req = request(Some(&nonce), None);
        assert_eq!(open(&key, &req.get_session(), &req, UserId(7)), None);
    }
}
