//! Telling people by email: invitations, and the one notice a token's owner
//! gets a week before the token expires. Without a configured `Mailer`
//! nothing is sent and every function here says so instead of failing.
//!
//! The expiry notice is claimed in the database before it is sent, so
//! neither a restart nor a second instance sends it again; a delivery that
//! fails gives the claim back for the next run.

use crate::domain::{Role, display_hint};
use crate::service::{ServiceError, Tollgate};
use crate::storage;

/// Tokens expiring within this many days are flagged on the pages, and
/// their owners get an email.
pub const EXPIRY_NOTICE_DAYS: i64 = 7;

/// Whether a token is live at `now` and expires within the notice window.
pub fn expires_soon(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| at > now && at <= now + EXPIRY_NOTICE_DAYS * 86_400)
}

/// An invitation to send by email.
pub struct InvitationEmail<'a> {
    pub email: &'a str,
    pub role: Role,
    pub link: &'a str,
    pub workspace_name: &'a str,
    pub inviter_name: &'a str,
    pub expires_at: i64,
}

impl Tollgate {
    /// True when email can be sent.
    pub fn mail_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Emails an invitation link. Without a mailer this is refused as a
    /// conflict (the form offers it only when mail is configured).
    pub async fn email_invitation(
        &self,
        invitation: &InvitationEmail<'_>,
    ) -> Result<(), ServiceError> {
        let Some(mailer) = &self.mailer else {
            return Err(ServiceError::Conflict {
                field: "email",
                message: "Email is not configured on this server: copy the link instead."
                    .to_owned(),
            });
        };
        let subject = format!(
            "{} invites you to {} on Tollgate",
            invitation.inviter_name, invitation.workspace_name
        );
        let body = format!(
            "Hello,\n\n\
             {inviter} invites you to join the workspace {workspace} on Tollgate, with the {role} role.\n\n\
             Open this link to accept the invitation:\n\n{link}\n\n\
             The link works once, until {expires}. If you did not expect this invitation, ignore this email.\n",
            inviter = invitation.inviter_name,
            workspace = invitation.workspace_name,
            role = invitation.role.label(),
            link = invitation.link,
            expires = utc_time(invitation.expires_at),
        );
        mailer
            .send(invitation.email, &subject, body)
            .await
            .map_err(|err| err.context("emailing an invitation"))?;
        Ok(())
    }

    /// Sends the expiry notice of every token that expires within
    /// `EXPIRY_NOTICE_DAYS` of `now` and has not had one yet. `origin` is
    /// the dashboard's public address, for the link in the email. Returns
    /// how many were sent.
    pub async fn send_expiry_notices(&self, origin: &str, now: i64) -> Result<usize, ServiceError> {
        let Some(mailer) = &self.mailer else {
            return Ok(0);
        };
        let lead = EXPIRY_NOTICE_DAYS * 86_400;
        let due = storage::expiry_notices::due(self.db.pool(), now, now + lead, lead).await?;
        let mut sent = 0;
        for notice in due {
            if !storage::expiry_notices::claim(
                self.db.pool(),
                notice.token_id,
                notice.expires_at,
                now,
            )
            .await?
            {
                continue;
            }
            let subject = format!(
                "Your Tollgate token “{}” expires on {}",
                notice.token_name,
                utc_date(notice.expires_at)
            );
            let days = (notice.expires_at - now + 86_399) / 86_400;
            let body = format!(
                "Hello {owner},\n\n\
                 your personal access token “{name}” ({hint}) in the workspace {workspace} expires on {date}, in {days} day(s). \
                 Any script or service using it will be refused from then on.\n\n\
                 If it is still needed, generate a new token and replace it where it is used:\n\n\
                 {origin}/profile/tokens\n\n\
                 This is the only reminder for this token.\n",
                owner = notice.owner_name,
                name = notice.token_name,
                hint = display_hint(&notice.last4),
                workspace = notice.workspace_name,
                date = utc_time(notice.expires_at),
            );
            match mailer.send(&notice.owner_email, &subject, body).await {
                Ok(()) => {
                    sent += 1;
                    tracing::info!(token_id = notice.token_id, "expiry notice sent");
                }
                Err(err) => {
                    tracing::warn!(token_id = notice.token_id, error = %format!("{err:#}"), "sending an expiry notice failed; it will be tried again");
                    storage::expiry_notices::release(self.db.pool(), notice.token_id).await?;
                }
            }
        }
        Ok(sent)
    }
}

/// `2026-12-07 14:03 UTC`, as the pages show times.
fn utc_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// `2026-12-07`.
fn utc_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_live_tokens_expiring_within_the_window_expire_soon() {
        let now = 1_000_000;
        let day = 86_400;
        assert!(expires_soon(Some(now + 1), now));
        assert!(expires_soon(Some(now + 7 * day), now));
        assert!(!expires_soon(Some(now + 7 * day + 1), now));
        assert!(!expires_soon(Some(now), now), "already expired");
        assert!(!expires_soon(None, now));
    }
}
