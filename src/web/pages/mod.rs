//! Signing in and out, first-run setup, invitations and the Profile tab:
//! one file per page, and what they share.

mod invitation;
mod login;
mod profile;
mod setup;

pub use invitation::*;
pub use login::*;
pub use profile::*;
pub use setup::*;

use actix_session::Session;
use actix_web::{HttpResponse, web};

use crate::service::Tollgate;
use crate::web::errors::PageError;
use crate::web::extractors::{SEEN_AT, SIGNED_IN_AT};
use crate::web::session::USER_ID;
use crate::web::{see_other, urls};

pub(super) type App = web::Data<Tollgate>;

pub async fn home(session: Session) -> HttpResponse {
    let signed_in = session.get::<i64>(USER_ID).ok().flatten().is_some();
    see_other(if signed_in {
        urls::PROFILE
    } else {
        urls::LOGIN
    })
}

/// Starts a signed-in session: empty (nothing of whoever used this browser
/// before survives: no flash, no token waiting to be shown), under a new
/// session id (so an id planted before sign-in is worthless), with the user
/// and the sign-in time for the absolute expiry. The CSRF token changes
/// with the sign-in time.
pub(super) fn start_session(session: &Session, user_id: i64, now: i64) -> Result<(), PageError> {
    session.clear();
    session.renew();
    session.insert(USER_ID, user_id)?;
    session.insert(SIGNED_IN_AT, now)?;
    session.insert(SEEN_AT, now)?;
    Ok(())
}
