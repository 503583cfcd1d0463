//! What a change to token rights concerns, as database triggers report it,
//! and how an instance reads those reports.
//!
//! A change names the rows it touched: a token, a member of a workspace, a
//! user, a workspace. On PostgreSQL the triggers send them in the
//! notification payload (`token:12,member:1:3`, or `*` for "too many to
//! name"); on SQLite they append them to the `auth_changes` log, which every
//! instance reads from the last sequence number it has seen.
//!
//! Whatever can not be read completely and exactly (an unknown kind, a
//! malformed id, `*`, rows missing from the log, more rows than one read
//! takes) means: forget everything. That only costs cache misses.

use crate::storage::auth_changes::ChangeRow;

/// One thing a change concerns; cached tokens it covers are evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A token row changed or was deleted.
    Token(i64),
    /// A member's role or membership changed: their tokens in that workspace.
    Member { workspace: i64, user: i64 },
    /// A user's status or identity changed, or the user was deleted.
    User(i64),
    /// A workspace was renamed or deleted.
    Workspace(i64),
}

impl Change {
    /// Reads one `kind:id` key (`member:<workspace>:<user>`).
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split(':');
        let kind = parts.next()?;
        let mut id = || parts.next()?.parse::<i64>().ok();
        let change = match kind {
            "token" => Self::Token(id()?),
            "member" => Self::Member {
                workspace: id()?,
                user: id()?,
            },
            "user" => Self::User(id()?),
            "workspace" => Self::Workspace(id()?),
            _ => return None,
        };
        parts.next().is_none().then_some(change)
    }

    /// A row of the SQLite change log: its kind and ids.
    pub fn from_row(kind: &str, a: i64, b: Option<i64>) -> Option<Self> {
        match (kind, b) {
            ("token", None) => Some(Self::Token(a)),
            ("member", Some(user)) => Some(Self::Member { workspace: a, user }),
            ("user", None) => Some(Self::User(a)),
            ("workspace", None) => Some(Self::Workspace(a)),
            _ => None,
        }
    }
}

/// What to do about a batch of reported changes.
#[derive(Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Evict the entries these changes concern.
    Some(Vec<Change>),
    /// The report can not be read exactly: forget everything.
    All,
}

/// Reads a notification's key list (`token:1,user:3`).
pub fn parse_keys(keys: &str) -> Eviction {
    let mut changes = Vec::new();
    for key in keys.split(',') {
        match Change::parse(key) {
            Some(change) => changes.push(change),
            None => return Eviction::All,
        }
    }
    Eviction::Some(changes)
}

/// What one read of the change log found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// Nothing new since `seen`.
    Nothing,
    /// Every row after `seen` up to `upto`, read completely.
    Changes { changes: Vec<Change>, upto: i64 },
    /// Rows are missing (pruned before this instance read them), or there
    /// were more than one read takes, or a row is unreadable.
    Incomplete,
}

/// Judges `rows`, read as "the first `limit` + 1 rows after `seen`, in
/// order". Sequence numbers are consecutive (SQLite's `AUTOINCREMENT` in
/// one writer at a time), so a row that does not follow its predecessor
/// means rows were pruned unread.
pub fn read_log(seen: i64, rows: &[ChangeRow], limit: usize) -> Reading {
    if rows.is_empty() {
        return Reading::Nothing;
    }
    if rows.len() > limit {
        return Reading::Incomplete;
    }
    let mut expected = seen + 1;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        if row.seq != expected {
            return Reading::Incomplete;
        }
        match Change::from_row(&row.kind, row.a, row.b) {
            Some(change) => changes.push(change),
            None => return Reading::Incomplete,
        }
        expected += 1;
    }
    Reading::Changes {
        changes,
        upto: expected - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, kind: &str, a: i64, b: Option<i64>) -> ChangeRow {
        ChangeRow {
            seq,
            kind: kind.to_owned(),
            a,
            b,
        }
    }

    #[test]
    fn keys_are_read_or_the_whole_list_is_distrusted() {
        assert_eq!(
            parse_keys("token:12,member:1:3,user:4,workspace:2"),
            Eviction::Some(vec![
                Change::Token(12),
                Change::Member {
                    workspace: 1,
                    user: 3
                },
                Change::User(4),
                Change::Workspace(2),
            ])
        );
        for bad in [
            "*",
            "",
            "token:12,session:3",
            "token:x",
            "token:1:2",
            "member:1",
            "token:12,",
        ] {
            assert_eq!(parse_keys(bad), Eviction::All, "{bad:?}");
        }
    }

    #[test]
    fn consecutive_rows_are_read_as_changes() {
        let rows = [
            row(11, "token", 7, None),
            row(12, "member", 1, Some(3)),
            row(13, "workspace", 1, None),
        ];
        assert_eq!(
            read_log(10, &rows, 100),
            Reading::Changes {
                changes: vec![
                    Change::Token(7),
                    Change::Member {
                        workspace: 1,
                        user: 3
                    },
                    Change::Workspace(1),
                ],
                upto: 13
            }
        );
        assert_eq!(read_log(13, &[], 100), Reading::Nothing);
    }

    #[test]
    fn a_gap_an_overflow_or_an_unknown_row_reads_as_incomplete() {
        // Row 11 was pruned before this instance read it.
        let gap = [row(12, "token", 7, None)];
        assert_eq!(read_log(10, &gap, 100), Reading::Incomplete);
        let gap_inside = [row(11, "token", 7, None), row(13, "token", 8, None)];
        assert_eq!(read_log(10, &gap_inside, 100), Reading::Incomplete);
        let too_many: Vec<ChangeRow> = (11..=13).map(|s| row(s, "token", s, None)).collect();
        assert_eq!(read_log(10, &too_many, 2), Reading::Incomplete);
        assert!(matches!(
            read_log(10, &too_many, 3),
            Reading::Changes { upto: 13, .. }
        ));
        let unknown = [row(11, "session", 7, None)];
        assert_eq!(read_log(10, &unknown, 100), Reading::Incomplete);
        let member_without_user = [row(11, "member", 1, None)];
        assert_eq!(read_log(10, &member_without_user, 100), Reading::Incomplete);
    }
}
