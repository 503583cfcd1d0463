//! The verdict on a token: what its row (token, owner, membership) allows at
//! a given moment. A pure function, so a cached row is judged exactly as a
//! fresh one, and expiry is checked against `now` at every request.

use std::sync::Arc;

use crate::domain::{AccountKind, Role, Scope, TokenDigest, TokenId, UserId, WorkspaceId};
use crate::storage::tokens::AuthRow;

/// The caller of an API request, as its token and owner are *now*.
#[derive(Clone)]
pub struct Principal {
    pub token_id: TokenId,
    pub token_name: Arc<str>,
    pub scope: Scope,
    pub expires_at: Option<i64>,
    pub user_id: UserId,
    pub email: Arc<str>,
    pub user_name: Arc<str>,
    /// A member's token, or a service account's.
    pub kind: AccountKind,
    pub workspace_id: WorkspaceId,
    pub workspace_name: Arc<str>,
    /// The owner's current role in the token's workspace.
    pub role: Role,
    /// The digest of the secret this request presented: rotation replaces
    /// exactly this secret, so that one of many concurrent rotations wins.
    pub digest: TokenDigest,
}

impl std::fmt::Debug for Principal {
    // Leaves the digest out: logs never carry one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("token_id", &self.token_id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("workspace_id", &self.workspace_id)
            .field("scope", &self.scope)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// What the token may do: the lower of its scope and its owner's role.
    pub fn effective(&self) -> Role {
        self.scope.cap(self.role)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown, deleted, rotated out, or its owner no longer exists: 401.
    Unknown,
    /// Past its expiry: 401.
    Expired,
    /// The owner's account is disabled: 403.
    OwnerDisabled,
    /// The owner is no longer a member of the token's workspace: 403.
    NotAMember,
    /// The owner is now Read-Only, and Read-Only members can not use tokens: 403.
    OwnerReadOnly,
}

/// Judges a token's row at unix second `now`.
pub fn judge(row: &AuthRow, digest: &TokenDigest, now: i64) -> Result<Principal, AuthFailure> {
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(AuthFailure::Expired);
    }
    if row.disabled_at.is_some() {
        return Err(AuthFailure::OwnerDisabled);
    }
    let role = row.role.0.ok_or(AuthFailure::NotAMember)?;
    let kind = row.kind;
    // A Read-Only service account is an account made to read: its tokens
    // work within that role. Read-Only *members* can not use tokens.
    if kind == AccountKind::Member && !role.may_use_tokens() {
        return Err(AuthFailure::OwnerReadOnly);
    }
    Ok(Principal {
        token_id: row.token_id,
        token_name: row.token_name.clone(),
        scope: row.scope,
        expires_at: row.expires_at,
        user_id: row.user_id,
        email: row.email.clone(),
        user_name: row.user_name.clone(),
        kind,
        workspace_id: row.workspace_id,
        workspace_name: row.workspace_name.clone(),
        role,
        digest: digest.clone(),
    })
}

#[cfg(test)]
use crate::storage::tokens::RoleIfMember;

#[cfg(test)]
pub(crate) fn row(role: Option<&str>, scope: &str) -> AuthRow {
    AuthRow {
        token_id: TokenId(7),
        token_name: "ci".into(),
        scope: Scope::try_from(scope.to_owned()).expect("a stored scope"),
        expires_at: None,
        last_used_at: None,
        user_id: UserId(3),
        email: "w@example.com".into(),
        user_name: "W".into(),
        kind: AccountKind::Member,
        disabled_at: None,
        workspace_id: WorkspaceId(1),
        workspace_name: "Default".into(),
        role: RoleIfMember::try_from(role.map(str::to_owned)).expect("a stored role"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn verdict(adjust: impl FnOnce(&mut AuthRow)) -> Result<Role, AuthFailure> {
        let mut r = row(Some("read-write"), "read-write");
        adjust(&mut r);
        judge(&r, &TokenDigest::from_stored("d".repeat(64)), NOW).map(|p| p.effective())
    }

    #[test]
    fn each_row_state_gets_its_verdict() {
        type Case = (
            &'static str,
            Box<dyn FnOnce(&mut AuthRow)>,
            Result<Role, AuthFailure>,
        );
        let table: Vec<Case> = vec![
            ("live, no expiry", Box::new(|_| {}), Ok(Role::ReadWrite)),
            (
                "expires one second later",
                Box::new(|r| r.expires_at = Some(NOW + 1)),
                Ok(Role::ReadWrite),
            ),
            (
                "expires this very second",
                Box::new(|r| r.expires_at = Some(NOW)),
                Err(AuthFailure::Expired),
            ),
            (
                "expired",
                Box::new(|r| r.expires_at = Some(NOW - 60)),
                Err(AuthFailure::Expired),
            ),
            (
                "owner disabled",
                Box::new(|r| r.disabled_at = Some(NOW - 5)),
                Err(AuthFailure::OwnerDisabled),
            ),
            (
                "owner left the workspace",
                Box::new(|r| r.role = RoleIfMember(None)),
                Err(AuthFailure::NotAMember),
            ),
            (
                "owner now Read-Only",
                Box::new(|r| r.role = RoleIfMember(Some(Role::ReadOnly))),
                Err(AuthFailure::OwnerReadOnly),
            ),
            (
                "Admin token of a Read-Write owner acts as Read-Write",
                Box::new(|r| r.scope = Scope::ADMIN),
                Ok(Role::ReadWrite),
            ),
            (
                "Read-Only token of an Admin",
                Box::new(|r| {
                    r.scope = Scope::READ_ONLY;
                    r.role = RoleIfMember(Some(Role::Admin));
                }),
                Ok(Role::ReadOnly),
            ),
            (
                "Read-Only service account: its tokens read",
                Box::new(|r| {
                    r.kind = AccountKind::ServiceAccount;
                    r.role = RoleIfMember(Some(Role::ReadOnly));
                }),
                Ok(Role::ReadOnly),
            ),
            (
                "service account removed from its workspace",
                Box::new(|r| {
                    r.kind = AccountKind::ServiceAccount;
                    r.role = RoleIfMember(None);
                }),
                Err(AuthFailure::NotAMember),
            ),
            (
                "expired beats disabled",
                Box::new(|r| {
                    r.expires_at = Some(NOW);
                    r.disabled_at = Some(1);
                }),
                Err(AuthFailure::Expired),
            ),
        ];
        for (case, adjust, expected) in table {
            assert_eq!(verdict(adjust), expected, "{case}");
        }
    }

    #[test]
    fn the_principal_keeps_the_presented_digest_out_of_debug_output() {
        let digest = TokenDigest::from_stored("ab".repeat(32));
        let p = judge(&row(Some("admin"), "admin"), &digest, NOW).unwrap();
        assert_eq!(p.digest, digest);
        assert!(!format!("{p:?}").contains("abab"));
    }
}
