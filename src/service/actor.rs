//! Who acts: the one place where "may this actor do that here" is decided.
//!
//! An `Actor` is resolved once per request (from the session on pages, from
//! the token on the API) and handed to every service function that acts on
//! someone's behalf. Services ask it for permission (`require`) before they
//! read, and again inside the transaction that changes anything
//! (`confirm`), so that a decision never rests on a role or an account
//! status that changed while the request was under way.
//!
//! Another kind of actor (a service account acting through its token) joins
//! as one more variant; every permission question is answered here.

use crate::domain::{Role, UserId, WorkspaceId};
use crate::service::audit::AuditActor;
use crate::service::token_cache::judge;
use crate::service::{Membership, Principal, ServiceError, SignedInUser};
use crate::storage::{self, Tx};

/// Someone acting on Tollgate.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A person signed in to the dashboard, acting in any workspace they
    /// belong to, with their role there.
    Member(SignedInUser),
    /// A script holding a token: acts only in the token's workspace, with
    /// the lower of the token's scope and its owner's role.
    Token(Principal),
}

fn not_admin() -> ServiceError {
    ServiceError::forbidden("not_admin", "Only workspace Admins can do this.")
}

fn changed_meanwhile() -> ServiceError {
    ServiceError::forbidden(
        "permission_changed",
        "Your role or account changed while this request was under way: it is no longer allowed. Reload the page to see what you may do now.",
    )
}

/// The secret a request presented was deleted or rotated out meanwhile.
fn token_gone() -> ServiceError {
    ServiceError::Unauthenticated {
        code: "invalid_token",
        message: "This token does not exist or has been revoked.".to_owned(),
    }
}

impl Actor {
    /// The person on whose behalf the actor acts.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::Member(user) => user.id,
            Self::Token(principal) => principal.user_id,
        }
    }

    /// The name of the person on whose behalf the actor acts.
    pub fn name(&self) -> &str {
        match self {
            Self::Member(user) => &user.name,
            Self::Token(principal) => &principal.user_name,
        }
    }

    /// The name of `workspace` as the actor knows it, when it may act there.
    pub fn workspace_name(&self, workspace: WorkspaceId) -> Option<&str> {
        match self {
            Self::Member(user) => user
                .membership(workspace)
                .map(|m| m.workspace_name.as_str()),
            Self::Token(principal) => {
                (principal.workspace_id == workspace).then_some(&*principal.workspace_name)
            }
        }
    }

    /// The signed-in person, when the actor is one.
    pub fn signed_in(&self) -> Option<&SignedInUser> {
        match self {
            Self::Member(user) => Some(user),
            Self::Token(_) => None,
        }
    }

    /// How the audit log names the actor.
    pub fn audit(&self) -> AuditActor {
        match self {
            Self::Member(user) => AuditActor::user(user),
            Self::Token(principal) => AuditActor::token(principal),
        }
    }

    /// The workspace a token is bound to; a member is bound to none.
    pub fn token_workspace(&self) -> Option<WorkspaceId> {
        match self {
            Self::Member(_) => None,
            Self::Token(principal) => Some(principal.workspace_id),
        }
    }

    /// What the actor may do in `workspace`, as of the request's start;
    /// `None` when it may not act there at all.
    pub fn role_in(&self, workspace: WorkspaceId) -> Option<Role> {
        match self {
            Self::Member(user) => user.membership(workspace).map(|m| m.role),
            Self::Token(principal) => {
                (principal.workspace_id == workspace).then(|| principal.effective())
            }
        }
    }

    /// Refuses unless the actor may act in `workspace` with at least `needed`.
    pub fn require(&self, workspace: WorkspaceId, needed: Role) -> Result<(), ServiceError> {
        match self {
            Self::Token(principal) if principal.workspace_id != workspace => {
                Err(ServiceError::NotFound)
            }
            Self::Token(principal) => require_scope(principal, needed),
            Self::Member(_) if self.role_in(workspace).is_some_and(|r| r >= needed) => Ok(()),
            Self::Member(_) if needed == Role::Admin => Err(not_admin()),
            Self::Member(_) => Err(ServiceError::forbidden(
                "role_too_low",
                format!("This needs the {} role in this workspace.", needed.label()),
            )),
        }
    }

    pub fn require_admin(&self, workspace: WorkspaceId) -> Result<(), ServiceError> {
        self.require(workspace, Role::Admin)
    }

    /// The workspace an Admin page or endpoint is about: for a member the one
    /// asked for if they administer it, else the first they administer; for
    /// a token its own workspace, when its scope and owner allow Admin work.
    pub fn admin_workspace(&self, wanted: Option<WorkspaceId>) -> Result<Membership, ServiceError> {
        match self {
            Self::Member(user) => user
                .admin_workspace(wanted.map(|w| w.0))
                .cloned()
                .ok_or_else(not_admin),
            Self::Token(principal) => {
                if wanted.is_some_and(|w| w != principal.workspace_id) {
                    return Err(ServiceError::NotFound);
                }
                require_scope(principal, Role::Admin)?;
                Ok(Membership {
                    workspace_id: principal.workspace_id,
                    workspace_name: principal.workspace_name.to_string(),
                    role: principal.effective(),
                })
            }
        }
    }

    /// Re-decides inside `tx`, on what is committed now, that the actor may
    /// still act in `workspace` with at least `needed`: a member must still
    /// be an enabled member with that role; a token must still exist with
    /// the secret the request presented, and its owner's role and status
    /// must still allow it.
    ///
    /// Takes the membership lock first (see `lock_memberships`): every change
    /// of a role, a membership or an account's status holds it until commit,
    /// so what is read here stays true until this transaction commits. It
    /// must be the transaction's first statement: SQLite then takes its write
    /// lock before reading anything, and PostgreSQL always locks the
    /// organization row before any user or token row (one order, no
    /// deadlock).
    pub async fn confirm(
        &self,
        tx: &mut Tx,
        workspace: WorkspaceId,
        needed: Role,
        now: i64,
    ) -> Result<(), ServiceError> {
        storage::organizations::lock_memberships(&mut **tx).await?;
        let allowed = match self {
            Self::Member(user) => {
                storage::organizations::find_member(&mut **tx, workspace.0, user.id.0)
                    .await?
                    .is_some_and(|m| m.disabled_at.is_none() && m.role >= needed)
            }
            Self::Token(principal) => {
                let row =
                    storage::tokens::find_auth_by_digest(&mut **tx, principal.digest.as_str())
                        .await?
                        .filter(|row| row.token_id == principal.token_id)
                        .ok_or_else(token_gone)?;
                judge(&row, &principal.digest, now).is_ok_and(|now_is| {
                    now_is.workspace_id == workspace && now_is.effective() >= needed
                })
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(changed_meanwhile())
        }
    }

    /// Like `confirm`, for what an actor does to their own account rather
    /// than in a workspace: the account must still be enabled (and a token
    /// still valid).
    pub async fn confirm_account(&self, tx: &mut Tx, now: i64) -> Result<(), ServiceError> {
        match self {
            Self::Member(user) => {
                storage::organizations::lock_memberships(&mut **tx).await?;
                let enabled = storage::users::find_by_id(&mut **tx, user.id.0)
                    .await?
                    .is_some_and(|u| u.disabled_at.is_none());
                if enabled {
                    Ok(())
                } else {
                    Err(changed_meanwhile())
                }
            }
            Self::Token(principal) => {
                self.confirm(tx, principal.workspace_id, Role::ReadOnly, now)
                    .await
            }
        }
    }
}

fn require_scope(principal: &Principal, needed: Role) -> Result<(), ServiceError> {
    if principal.effective() >= needed {
        return Ok(());
    }
    Err(ServiceError::forbidden(
        "insufficient_scope",
        format!(
            "This needs a token with the {} scope; this token has {}.",
            needed.label(),
            principal.effective().label()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PlainToken, Scope, TokenId};

    fn member(roles: &[(i64, Role)]) -> Actor {
        Actor::Member(SignedInUser {
            id: UserId(3),
            email: "m@example.com".to_owned(),
            name: "M".to_owned(),
            memberships: roles
                .iter()
                .map(|(id, role)| Membership {
                    workspace_id: WorkspaceId(*id),
                    workspace_name: format!("W{id}"),
                    role: *role,
                })
                .collect(),
        })
    }

    fn token(scope: Scope, role: Role) -> Actor {
        Actor::Token(Principal {
            token_id: TokenId(7),
            token_name: "ci".into(),
            scope,
            expires_at: None,
            user_id: UserId(3),
            email: "m@example.com".into(),
            user_name: "M".into(),
            workspace_id: WorkspaceId(1),
            workspace_name: "W1".into(),
            role,
            digest: PlainToken::generate().digest(),
            kind: crate::domain::AccountKind::Member,
        })
    }

    fn code(result: Result<impl std::fmt::Debug, ServiceError>) -> &'static str {
        match result {
            Err(ServiceError::Forbidden { code, .. }) => code,
            Err(ServiceError::NotFound) => "not_found",
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_member_acts_with_their_role_in_each_workspace() {
        let actor = member(&[(1, Role::ReadWrite), (2, Role::Admin)]);
        assert!(actor.require_admin(WorkspaceId(2)).is_ok());
        assert_eq!(code(actor.require_admin(WorkspaceId(1))), "not_admin");
        assert!(actor.require(WorkspaceId(1), Role::ReadWrite).is_ok());
        assert_eq!(
            code(actor.require(WorkspaceId(9), Role::ReadOnly)),
            "role_too_low"
        );
        assert_eq!(
            actor.admin_workspace(None).unwrap().workspace_id,
            WorkspaceId(2)
        );
        assert_eq!(
            code(actor.admin_workspace(Some(WorkspaceId(1)))),
            "not_admin"
        );
    }

    #[test]
    fn a_token_acts_with_the_lower_of_scope_and_role_in_its_workspace_only() {
        let capped = token(Scope::ADMIN, Role::ReadWrite);
        assert_eq!(
            code(capped.require_admin(WorkspaceId(1))),
            "insufficient_scope"
        );
        assert_eq!(code(capped.admin_workspace(None)), "insufficient_scope");
        assert!(capped.require(WorkspaceId(1), Role::ReadWrite).is_ok());
        let admin = token(Scope::ADMIN, Role::Admin);
        assert_eq!(
            admin.admin_workspace(None).unwrap().workspace_id,
            WorkspaceId(1)
        );
        assert_eq!(code(admin.require_admin(WorkspaceId(2))), "not_found");
        assert_eq!(
            code(admin.admin_workspace(Some(WorkspaceId(2)))),
            "not_found"
        );
        assert_eq!(admin.audit().token_id, Some(7));
    }
}
