//! Leaked-token reports: secret scanners (GitHub secret scanning, gitleaks,
//! trufflehog, a person who found a token in a paste) send the tokens they
//! found; every one that is a live Tollgate token is revoked at once,
//! recorded in the audit log with where it was found, and noticed to its
//! owner and the workspace's Admins.
//!
//! Reporting needs no credentials — whoever holds a secret may always kill
//! it — so the answer must reveal nothing beyond what the reporter already
//! knows: each entry is labelled `true_positive` (it was a live token, and
//! now is not) or `false_positive` (anything else: malformed, unknown,
//! expired, already revoked). Never whose token it was or in which workspace.

use std::collections::HashMap;

use crate::domain::{PlainToken, WorkspaceId};
use crate::service::audit::{self, AuditActor, Event};
use crate::service::throttle::{self, Throttle};
use crate::service::tokens::lock_user_tokens;
use crate::service::{Actor, RequestMeta, ServiceError, SignedInUser, Tollgate};
use crate::storage;
use crate::storage::leaks::{LeakReportRow, NewLeakReport};

/// The most entries one report may hold (GitHub sends at most 1,000).
pub const MAX_ENTRIES: usize = 1_000;
/// Reports one address may send per window.
pub const REPORTS_PER_WINDOW: usize = 60;
/// The largest report body (1,000 entries with long URLs fit).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
/// A report that declares at most this many bytes (some 50 entries, what a
/// scanner sends for one push) is *small*.
pub const SMALL_REPORT_BYTES: usize = 16 * 1024;
/// Small reports the whole instance accepts per window, from all addresses
/// together. Past it reports are refused before their body is read.
pub const INSTANCE_REPORTS_PER_WINDOW: usize = 300;
/// Large reports (up to 1,000 tokens to look up each) the whole instance
/// accepts per window. A lane of their own: a flood of large reports can
/// not keep the instance verifying tokens and nothing else, nor crowd out
/// the small reports a scanner sends when it finds a token.
pub const INSTANCE_LARGE_REPORTS_PER_WINDOW: usize = 60;
pub const WINDOW_SECONDS: i64 = 60;
/// How long a report stays on the tokens tab and the Workspace tokens page.
pub const NOTICE_SECONDS: i64 = 30 * 86_400;
/// Longest kept `url`, `source` and `type` (longer ones are cut, not refused:
/// a long URL must not cost the revocation of the tokens beside it).
const MAX_URL: usize = 2_000;
const MAX_LABEL: usize = 200;
/// Address keys the report throttle holds at most.
const MAX_KEYS: usize = 20_000;

pub fn report_throttle() -> Throttle {
    Throttle::new(REPORTS_PER_WINDOW, WINDOW_SECONDS, MAX_KEYS)
}

/// The instance-wide count of small reports: one key, in a throttle of its
/// own.
pub fn instance_report_throttle() -> Throttle {
    Throttle::new(INSTANCE_REPORTS_PER_WINDOW, WINDOW_SECONDS, 1)
}

/// The instance-wide count of large reports.
pub fn instance_large_report_throttle() -> Throttle {
    Throttle::new(INSTANCE_LARGE_REPORTS_PER_WINDOW, WINDOW_SECONDS, 1)
}

/// Whose count a report goes to: its address, or for IPv6 its /64 (one
/// host usually holds a whole /64, and could otherwise send from a fresh
/// address every time).
fn sender(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

/// One entry of a report, as the scanner sent it.
#[derive(Debug, Clone, Default)]
pub struct LeakReport {
    pub token: String,
    /// The scanner's name for the kind of secret (`tollgate_pat`).
    pub kind: String,
    /// Where the token was found.
    pub url: String,
    /// What found it (`content`, `commit`, a scanner's name …).
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A live token: revoked now.
    TruePositive,
    /// Malformed, unknown, expired or already revoked.
    FalsePositive,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::TruePositive => "true_positive",
            Verdict::FalsePositive => "false_positive",
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl Tollgate {
    /// Counts a report from `ip` that declares `declared` bytes (`None`
    /// when it does not say) and answers how many bytes of body to read at
    /// most. Refuses once the address (an IPv6 /64) has sent
    /// `REPORTS_PER_WINDOW` within the window, or the instance has accepted
    /// its ceiling of small or of large reports from everyone. Counted
    /// before the body is read, so a flood of garbage is refused as cheaply
    /// as a flood of tokens. An address already over its own limit does not
    /// use up the instance's, and a report the instance refuses does not
    /// count against its address.
    pub fn admit_leak_report(
        &self,
        ip: &str,
        declared: Option<usize>,
        now: i64,
    ) -> Result<usize, ServiceError> {
        let key = throttle::Key::new(throttle::Kind::LeakReport, &sender(ip), "");
        self.leak_reports.attempt(key, now).map_err(|retry_after| {
            ServiceError::TooManyAttempts {
                retry_after,
                message: format!(
                    "Too many leaked-token reports from this address. Try again in {retry_after} seconds."
                ),
            }
        })?;
        let small = declared.is_some_and(|bytes| bytes <= SMALL_REPORT_BYTES);
        let (lane, limit) = if small {
            (&self.leak_reports_instance, SMALL_REPORT_BYTES)
        } else {
            (&self.leak_reports_instance_large, MAX_REPORT_BYTES)
        };
        let instance = throttle::Key::new(throttle::Kind::LeakReport, "", "instance");
        match lane.attempt(instance, now) {
            Ok(()) => Ok(limit),
            Err(retry_after) => {
                self.leak_reports.refund(key);
                Err(ServiceError::TooManyAttempts {
                    retry_after,
                    message: format!(
                        "This server is receiving too many leaked-token reports. Try again in {retry_after} seconds."
                    ),
                })
            }
        }
    }

    /// Revokes every live token among `reports` and labels each entry, in
    /// order. The caller has checked the report's size.
    pub async fn report_leaked_tokens(
        &self,
        reports: &[LeakReport],
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Vec<Verdict>, ServiceError> {
        // A token reported twice in one report gets one verdict, so the
        // second copy is not labelled "already revoked".
        let mut decided: HashMap<&str, Verdict> = HashMap::new();
        let mut verdicts = Vec::with_capacity(reports.len());
        for report in reports {
            let verdict = match decided.get(report.token.as_str()) {
                Some(verdict) => *verdict,
                None => {
                    let verdict = self.judge_report(report, meta, now).await?;
                    decided.insert(report.token.as_str(), verdict);
                    verdict
                }
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// One entry. A malformed token (bad shape or checksum) is answered
    /// without touching the database: telling it apart from an unknown one
    /// reveals nothing, since anyone can compute the checksum. Every
    /// well-formed token costs one indexed lookup, whether it exists or not;
    /// only a live one costs the revocation, and its label says so anyway.
    async fn judge_report(
        &self,
        report: &LeakReport,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Verdict, ServiceError> {
        let Ok(token) = PlainToken::parse(report.token.trim()) else {
            return Ok(Verdict::FalsePositive);
        };
        let digest = token.digest();
        let Some(found) = storage::tokens::find_by_digest(self.db.pool(), digest.as_str()).await?
        else {
            return Ok(Verdict::FalsePositive);
        };
        let mut tx = self.db.begin().await?;
        lock_user_tokens(&mut tx, found.user_id).await?;
        // Read again under the owner's lock: a concurrent delete or rotation
        // may have taken this secret away in between.
        let Some(row) = storage::tokens::find_by_digest(&mut *tx, digest.as_str()).await? else {
            return Ok(Verdict::FalsePositive);
        };
        if row.expires_at.is_some_and(|at| at <= now) {
            return Ok(Verdict::FalsePositive);
        }
        storage::tokens::delete(&mut *tx, row.id.0).await?;
        let url = cut(&report.url, MAX_URL);
        let source = cut(&report.source, MAX_LABEL);
        let kind = cut(&report.kind, MAX_LABEL);
        storage::leaks::insert(
            &mut *tx,
            &NewLeakReport {
                workspace_id: row.workspace_id.0,
                user_id: row.user_id.0,
                token_id: row.id.0,
                token_name: &row.name,
                last4: &row.last4,
                url: &url,
                source: &source,
                reported_at: now,
            },
        )
        .await?;
        let detail = format!(
            "owner {}; found at {}; source {}; type {}",
            row.owner_email,
            if url.is_empty() { "(no URL)" } else { &url },
            if source.is_empty() { "(none)" } else { &source },
            if kind.is_empty() { "(none)" } else { &kind },
        );
        let event = Event {
            workspace_id: Some(row.workspace_id),
            action: "token.leak_reported",
            target_id: Some(row.id.0),
            target_label: &row.name,
            detail: &detail,
        };
        let actor = AuditActor::system("secret scanning report");
        audit::record(&mut tx, &actor, meta, event, now).await?;
        self.commit_token_change(tx).await?;
        tracing::warn!(
            token_id = row.id.0,
            user_id = row.user_id.0,
            "token reported as leaked and revoked"
        );
        Ok(Verdict::TruePositive)
    }

    /// The member's tokens reported as leaked in the last `NOTICE_SECONDS`.
    pub async fn leak_notices_for_member(
        &self,
        user: &SignedInUser,
        now: i64,
    ) -> Result<Vec<LeakReportRow>, ServiceError> {
        Ok(
            storage::leaks::for_user_since(self.db.pool(), user.id.0, now - NOTICE_SECONDS, 20)
                .await?,
        )
    }

    /// A workspace's tokens reported as leaked in the last `NOTICE_SECONDS`,
    /// for its Admins.
    pub async fn leak_notices_for_workspace(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        now: i64,
    ) -> Result<Vec<LeakReportRow>, ServiceError> {
        actor.require_admin(workspace)?;
        Ok(storage::leaks::for_workspace_since(
            self.db.pool(),
            workspace.0,
            now - NOTICE_SECONDS,
            20,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_text_is_cut_and_loses_control_characters() {
        assert_eq!(cut("a\nb\u{7}c", 10), "abc");
        assert_eq!(cut(&"é".repeat(300), MAX_LABEL).chars().count(), MAX_LABEL);
    }
}
