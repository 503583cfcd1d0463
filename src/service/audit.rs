//! Writing and reading the audit log. Events are written inside the same
//! transaction as the change they describe.

use futures_util::Stream;

use crate::domain::{AccountKind, ValidationError, WorkspaceId};
use crate::service::{
    Actor, Page, Principal, RequestMeta, ServiceError, SignedInUser, Tollgate, clamp_limit,
};
use crate::storage::audit::{AuditQuery, AuditRow, NewAuditEvent};
use crate::storage::{self, Tx};

/// Who did something: a signed-in person, or a script holding a token.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub label: String,
}

impl AuditActor {
    pub fn user(user: &SignedInUser) -> Self {
        Self {
            user_id: Some(user.id.0),
            token_id: None,
            label: user.email.clone(),
        }
    }

    pub fn token(principal: &Principal) -> Self {
        let label = match principal.kind {
            AccountKind::Member => {
                format!("{} (token “{}”)", principal.email, principal.token_name)
            }
            AccountKind::ServiceAccount => format!(
                "service account {} (token “{}”)",
                principal.user_name, principal.token_name
            ),
        };
        Self {
            user_id: Some(principal.user_id.0),
            token_id: Some(principal.token_id.0),
            label,
        }
    }

    /// A person acting on their own account (signing in, joining).
    pub fn account(user_id: i64, email: &str) -> Self {
        Self {
            user_id: Some(user_id),
            token_id: None,
            label: email.to_owned(),
        }
    }

    pub fn system(label: &str) -> Self {
        Self {
            user_id: None,
            token_id: None,
            label: label.to_owned(),
        }
    }
}

/// One thing to record.
pub struct Event<'a> {
    pub workspace_id: Option<WorkspaceId>,
    pub action: &'a str,
    pub target_id: Option<i64>,
    pub target_label: &'a str,
    pub detail: &'a str,
}

pub async fn record(
    tx: &mut Tx,
    actor: &AuditActor,
    meta: &RequestMeta,
    event: Event<'_>,
    now: i64,
) -> Result<(), storage::Error> {
    storage::audit::insert(
        &mut **tx,
        &NewAuditEvent {
            workspace_id: event.workspace_id.map(|w| w.0),
            actor_user_id: actor.user_id,
            actor_token_id: actor.token_id,
            actor_label: &actor.label,
            action: event.action,
            target_id: event.target_id,
            target_label: event.target_label,
            detail: event.detail,
            ip: &meta.ip,
            user_agent: &truncate(&meta.user_agent, 300),
            created_at: now,
        },
    )
    .await
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The audit-log filter as typed (page form or API query); empty fields
/// filter nothing.
#[derive(Debug, Clone, Default)]
pub struct AuditFilterInput {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A checked audit-log filter: who acted (part of the actor's label, any
/// case), which action exactly, and from which day to which day (UTC, both
/// included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    actor: Option<String>,
    action: Option<String>,
    /// Unix seconds, inclusive.
    from: Option<i64>,
    /// Unix seconds, exclusive.
    until: Option<i64>,
}

const MAX_ACTOR_FILTER: usize = 200;

impl AuditFilter {
    /// Reads a filter; a bad field is `Invalid` naming the field (`actor`,
    /// `action`, `from`, `to`).
    pub fn parse(input: &AuditFilterInput) -> Result<Self, ServiceError> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let actor = given(&input.actor);
        if let Some(actor) = &actor
            && (actor.chars().count() > MAX_ACTOR_FILTER || actor.chars().any(char::is_control))
        {
            return Err(ServiceError::invalid(
                "actor",
                ValidationError::new(format!(
                    "Who: at most {MAX_ACTOR_FILTER} characters, without control characters."
                )),
            ));
        }
        let action = given(&input.action);
        if let Some(action) = &action
            && (action.len() > 64
                || !action
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'))
        {
            return Err(ServiceError::invalid(
                "action",
                ValidationError::new(
                    "Action: a name like token.created (lower-case letters, dots and underscores).",
                ),
            ));
        }
        let from = given(&input.from)
            .map(|v| parse_instant(&v, false))
            .transpose()
            .map_err(|e| ServiceError::invalid("from", e))?;
        let until = given(&input.to)
            .map(|v| parse_instant(&v, true))
            .transpose()
            .map_err(|e| ServiceError::invalid("to", e))?;
        if let (Some(from), Some(until)) = (from, until)
            && until <= from
        {
            return Err(ServiceError::invalid(
                "to",
                ValidationError::new("The end date is before the start date."),
            ));
        }
        Ok(Self {
            actor,
            action,
            from,
            until,
        })
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The query storage runs.
    pub fn query(&self) -> AuditQuery {
        let actor_pattern = match &self.actor {
            Some(actor) => {
                let mut pattern = String::from("%");
                for c in actor.to_lowercase().chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                pattern
            }
            None => "%".to_owned(),
        };
        AuditQuery {
            actor_pattern,
            action: self.action.clone().unwrap_or_default(),
            from: self.from.unwrap_or(i64::MIN),
            until: self.until.unwrap_or(i64::MAX),
        }
    }
}

/// `YYYY-MM-DD` (a whole UTC day: its start, or with `end` the start of the
/// next day) or `YYYY-MM-DDTHH:MM:SSZ` (that second; with `end`, included).
fn parse_instant(raw: &str, end: bool) -> Result<i64, ValidationError> {
    let invalid = || {
        ValidationError::new(format!(
            "“{}” is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SSZ).",
            raw.chars().take(40).collect::<String>()
        ))
    };
    let (day, time) = match raw.split_once('T') {
        Some((day, time)) => (day, Some(time.strip_suffix('Z').ok_or_else(invalid)?)),
        None => (raw, None),
    };
    let number = |s: &str, len: usize| -> Result<i64, ValidationError> {
        if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    let parts: Vec<&str> = day.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(invalid());
    };
    let month = time::Month::try_from(u8::try_from(number(m, 2)?).map_err(|_| invalid())?)
        .map_err(|_| invalid())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(y, 4)?).map_err(|_| invalid())?,
        month,
        u8::try_from(number(d, 2)?).map_err(|_| invalid())?,
    )
    .map_err(|_| invalid())?;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    match time {
        None => Ok(if end { midnight + 86_400 } else { midnight }),
        Some(time) => {
            let parts: Vec<&str> = time.split(':').collect();
            let [h, min, sec] = parts[..] else {
                return Err(invalid());
            };
            let (h, min, sec) = (number(h, 2)?, number(min, 2)?, number(sec, 2)?);
            if h > 23 || min > 59 || sec > 59 {
                return Err(invalid());
            }
            let at = midnight + h * 3600 + min * 60 + sec;
            Ok(if end { at + 1 } else { at })
        }
    }
}

/// Rows per storage query while exporting.
const EXPORT_PAGE: i64 = 500;

impl Tollgate {
    /// The audit log of a workspace, for its Admins (pages and API alike).
    pub async fn audit_log(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<AuditRow>, ServiceError> {
        actor.require_admin(workspace)?;
        let limit = clamp_limit(limit);
        let events = storage::audit::page(
            self.db.pool(),
            workspace.0,
            &filter.query(),
            before.unwrap_or(i64::MAX),
            limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(events, limit, |e| e.id))
    }

    /// The actions recorded in a workspace's log, for the filter form.
    pub async fn audit_actions(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
    ) -> Result<Vec<String>, ServiceError> {
        actor.require_admin(workspace)?;
        Ok(storage::audit::actions(self.db.pool(), workspace.0).await?)
    }

    /// Every event of a workspace's log that `filter` lets through, newest
    /// first, as a stream of pages read one at a time (keyset paging), so an
    /// export never holds the whole log in memory. Events recorded after the
    /// export began are not in it. For the workspace's Admins.
    pub fn audit_export(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<impl Stream<Item = Result<Vec<AuditRow>, ServiceError>> + use<>, ServiceError> {
        actor.require_admin(workspace)?;
        let db = self.db.clone();
        let query = filter.query();
        Ok(futures_util::stream::try_unfold(
            Some(i64::MAX),
            move |before| {
                let (db, query) = (db.clone(), query.clone());
                async move {
                    let Some(before) = before else {
                        return Ok::<_, ServiceError>(None);
                    };
                    let rows =
                        storage::audit::page(db.pool(), workspace.0, &query, before, EXPORT_PAGE)
                            .await?;
                    if rows.is_empty() {
                        return Ok(None);
                    }
                    let next = if rows.len() as i64 == EXPORT_PAGE {
                        rows.last().map(|r| r.id)
                    } else {
                        None
                    };
                    Ok(Some((rows, next)))
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(actor: &str, action: &str, from: &str, to: &str) -> AuditFilterInput {
        AuditFilterInput {
            actor: Some(actor.to_owned()),
            action: Some(action.to_owned()),
            from: Some(from.to_owned()),
            to: Some(to.to_owned()),
        }
    }

    fn field_of(err: ServiceError) -> &'static str {
        match err {
            ServiceError::Invalid { field, .. } => field,
            other => panic!("not Invalid: {other:?}"),
        }
    }

    #[test]
    fn an_empty_filter_lets_everything_through() {
        let filter = AuditFilter::parse(&input(" ", "", "", "")).unwrap();
        assert!(filter.is_empty());
        let query = filter.query();
        assert_eq!(
            (query.actor_pattern.as_str(), query.action.as_str()),
            ("%", "")
        );
        assert_eq!((query.from, query.until), (i64::MIN, i64::MAX));
    }

    #[test]
    fn days_cover_whole_utc_days_and_times_are_exact() {
        let filter = AuditFilter::parse(&input("", "", "2026-11-30", "2026-11-30")).unwrap();
        let query = filter.query();
        assert_eq!(query.from, 1_795_996_800);
        assert_eq!(query.until, 1_795_996_800 + 86_400);
        let filter = AuditFilter::parse(&input(
            "",
            "",
            "2026-11-30T10:00:00Z",
            "2026-11-30T10:00:59Z",
        ))
        .unwrap();
        let query = filter.query();
        assert_eq!(query.from, 1_795_996_800 + 36_000);
        assert_eq!(query.until, 1_795_996_800 + 36_060);
    }

    #[test]
    fn bad_dates_and_actions_name_their_field() {
        for (bad, field) in [
            (input("", "", "30/11/2026", ""), "from"),
            (input("", "", "2026-02-30", ""), "from"),
            (input("", "", "2026-1-05", ""), "from"),
            (input("", "", "", "2026-11-30T25:00:00Z"), "to"),
            (input("", "", "", "2026-11-30T10:00:00"), "to"),
            (input("", "", "2026-12-01", "2026-11-30"), "to"),
            (input("", "Token.Created", "", ""), "action"),
            (input("", "token created", "", ""), "action"),
            (input(&"x".repeat(201), "", "", ""), "actor"),
            (input("a\u{0}b", "", "", ""), "actor"),
        ] {
            assert_eq!(
                field_of(AuditFilter::parse(&bad).unwrap_err()),
                field,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_actor_is_matched_as_text_not_as_a_pattern() {
        let filter = AuditFilter::parse(&input("Ada_100%", "", "", "")).unwrap();
        assert_eq!(filter.query().actor_pattern, "%ada\\_100\\%%");
    }
}
