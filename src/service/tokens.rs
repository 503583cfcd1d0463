//! Personal access tokens: generate, list, delete, revoke all, rotate.
//!
//! Permission rules live here: only Read-Write and Admin members create
//! tokens; a token's scope never exceeds its owner's role; members see and
//! delete only their own tokens (anything else is "not found"); Admins may
//! list and revoke every token of a workspace they administer. A token acting
//! on the API sees and changes only what is in its own workspace.

use crate::domain::{
    Expiry, PlainToken, Role, Scope, TokenId, TokenName, UserId, ValidationError, WorkspaceId,
};
use crate::service::audit::{self, Event};
use crate::service::{Actor, Page, RequestMeta, ServiceError, Tollgate, clamp_limit};
use crate::storage::tokens::{NewToken, TokenRow};
use crate::storage::{self, Tx};

/// A member may hold this many live tokens.
pub const MAX_LIVE_TOKENS: i64 = 50;

/// The generate form, as typed.
#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    pub name: String,
    /// `None`: the member's default scope.
    pub scope: Option<String>,
    /// `None`: the member's only (or first) workspace where they may create tokens.
    pub workspace: Option<String>,
    /// `None`: the default expiry.
    pub expiry: Option<String>,
}

/// A token just created: the only moment its plaintext exists.
#[derive(Debug)]
pub struct IssuedToken {
    pub id: TokenId,
    pub name: String,
    pub token: PlainToken,
    pub row: TokenRow,
}

fn page_of(tokens: Vec<TokenRow>, limit: i64) -> Page<TokenRow> {
    Page::from_overfetch(tokens, limit, |t| t.id.0)
}

fn cannot_create() -> ServiceError {
    ServiceError::forbidden(
        "role_cannot_create_tokens",
        "Only members with the Read-Write or Admin role can generate access tokens.",
    )
}

fn members_only() -> ServiceError {
    ServiceError::forbidden(
        "members_only",
        "Only a member signed in to the dashboard can do this.",
    )
}

/// Whose tokens the actor sees as its own, and in which workspace: a member
/// all of theirs, a token its owner's in its own workspace.
fn own_view(actor: &Actor) -> Result<(UserId, Option<WorkspaceId>), ServiceError> {
    if let Some(workspace) = actor.token_workspace() {
        actor.require(workspace, Role::ReadOnly)?;
    }
    Ok((actor.user_id(), actor.token_workspace()))
}

impl Tollgate {
    /// Every token the actor owns (a token: in its workspace), newest first:
    /// the tokens tab lists them all.
    pub async fn own_tokens(&self, actor: &Actor) -> Result<Vec<TokenRow>, ServiceError> {
        let (owner, workspace) = own_view(actor)?;
        let mut rows = storage::tokens::list_for_user(self.db.pool(), owner.0).await?;
        rows.retain(|t| workspace.is_none_or(|w| w == t.workspace_id));
        Ok(rows)
    }

    /// The same tokens, a page at a time in the order they were made (the
    /// API's cursor paging).
    pub async fn own_tokens_page(
        &self,
        actor: &Actor,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<TokenRow>, ServiceError> {
        let (owner, workspace) = own_view(actor)?;
        let limit = clamp_limit(limit);
        let (pool, after) = (self.db.pool(), after.unwrap_or(0));
        let rows = match workspace {
            Some(w) => {
                storage::tokens::page_for_member(pool, owner.0, w.0, after, limit + 1).await?
            }
            None => storage::tokens::page_for_user(pool, owner.0, after, limit + 1).await?,
        };
        Ok(page_of(rows, limit))
    }

    pub async fn own_token(&self, actor: &Actor, id: TokenId) -> Result<TokenRow, ServiceError> {
        let (owner, workspace) = own_view(actor)?;
        storage::tokens::find_for_user(self.db.pool(), owner.0, id.0)
            .await?
            .filter(|t| workspace.is_none_or(|w| w == t.workspace_id))
            .ok_or(ServiceError::NotFound)
    }

    /// A member generates a token in one of their workspaces, with a scope
    /// up to their role there.
    pub async fn generate_token(
        &self,
        actor: &Actor,
        request: &GenerateRequest,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<IssuedToken, ServiceError> {
        let user = actor.signed_in().ok_or_else(members_only)?;
        let membership = match request.workspace.as_deref().filter(|w| !w.is_empty()) {
            Some(raw) => {
                let id: i64 = raw.parse().map_err(|_| {
                    ServiceError::invalid(
                        "workspace",
                        ValidationError::new("Choose a workspace from the list."),
                    )
                })?;
                user.membership(WorkspaceId(id)).ok_or_else(|| {
                    ServiceError::invalid(
                        "workspace",
                        ValidationError::new("Choose a workspace from the list."),
                    )
                })?
            }
            None => user.token_workspaces().next().ok_or_else(cannot_create)?,
        };
        if !membership.role.may_use_tokens() {
            return Err(cannot_create());
        }
        let name = TokenName::parse(&request.name).map_err(|e| ServiceError::invalid("name", e))?;
        let scope = choose_scope(request.scope.as_deref(), membership.role, Holder::Member)?;
        let token = PlainToken::generate();
        let mut tx = self.db.begin().await?;
        // The role the scope was checked against must still hold now.
        actor
            .confirm(
                &mut tx,
                membership.workspace_id,
                scope.needs().max(Role::ReadWrite),
                now,
            )
            .await?;
        let expiry =
            Self::choose_expiry(&mut tx, membership.workspace_id, request.expiry.as_deref())
                .await?;
        let detail = format!(
            "scope {}, expires {}",
            scope.label(),
            expiry.label().to_lowercase()
        );
        let new = NewTokenFor {
            holder: Holder::Member,
            owner: user.id,
            workspace: membership.workspace_id,
            name: &name,
            scope,
            expiry,
            action: "token.created",
            detail: &detail,
        };
        let row = insert_token(&mut tx, actor, &new, &token, meta, now).await?;
        tx.commit().await?;
        let id = row.id;
        tracing::info!(token_id = id.0, user_id = user.id.0, "token created");
        Ok(IssuedToken {
            id,
            name: name.to_string(),
            token,
            row,
        })
    }

    /// The expiry a new token of `workspace` gets: the one asked for if the
    /// workspace's token policy allows it; none asked for, the policy's
    /// default.
    /// Read inside the transaction that stores the token, after the actor is
    /// confirmed: a policy changed meanwhile (and its "revoke the tokens
    /// outside it") can not miss a token made under the old one.
    pub(crate) async fn choose_expiry(
        tx: &mut Tx,
        workspace: WorkspaceId,
        raw: Option<&str>,
    ) -> Result<Expiry, ServiceError> {
        let policy = storage::token_policies::get(&mut **tx, workspace.0).await?;
        let expiry = match raw.filter(|s| !s.is_empty()) {
            Some(raw) => Expiry::parse(raw).map_err(|e| ServiceError::invalid("expiry", e))?,
            None => policy.default_expiry(),
        };
        if !policy.allows(expiry) {
            return Err(ServiceError::Invalid {
                field: "expiry",
                message: policy.refusal(),
            });
        }
        Ok(expiry)
    }

    /// Deletes one of the actor's own tokens: a member any of theirs, a
    /// Read-Write token one of its owner's in its own workspace (possibly
    /// itself). Anything else is "not found", whether or not it exists.
    pub async fn delete_own_token(
        &self,
        actor: &Actor,
        id: TokenId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<TokenRow, ServiceError> {
        let (owner, workspace) = own_view(actor)?;
        if let Some(workspace) = workspace {
            actor.require(workspace, Role::ReadWrite)?;
        }
        let mut tx = self.db.begin().await?;
        match workspace {
            Some(workspace) => {
                actor
                    .confirm(&mut tx, workspace, Role::ReadWrite, now)
                    .await?
            }
            None => actor.confirm_account(&mut tx, now).await?,
        }
        lock_user_tokens(&mut tx, owner).await?;
        let row = storage::tokens::find_for_user(&mut *tx, owner.0, id.0)
            .await?
            .filter(|t| workspace.is_none_or(|w| w == t.workspace_id))
            .ok_or(ServiceError::NotFound)?;
        storage::tokens::delete(&mut *tx, id.0).await?;
        let event = Event {
            workspace_id: Some(row.workspace_id),
            action: "token.deleted",
            target_id: Some(row.id.0),
            target_label: &row.name,
            detail: "",
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(row)
    }

    /// An Admin revokes one token of a workspace they administer.
    pub async fn revoke_workspace_token(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: TokenId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<TokenRow, ServiceError> {
        actor.require_admin(workspace)?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let row = storage::tokens::find_in_workspace(&mut *tx, workspace.0, id.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        lock_user_tokens(&mut tx, row.user_id).await?;
        storage::tokens::delete(&mut *tx, id.0).await?;
        let detail = format!("owner {}", row.owner_label());
        let event = Event {
            workspace_id: Some(workspace),
            action: "token.revoked",
            target_id: Some(row.id.0),
            target_label: &row.name,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(row)
    }

    /// "Revoke all" on the tokens tab: deletes every token the member holds
    /// at the moment of confirmation. Returns how many were revoked.
    pub async fn revoke_all_own(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<usize, ServiceError> {
        let user = actor.signed_in().ok_or_else(members_only)?;
        let mut tx = self.db.begin().await?;
        actor.confirm_account(&mut tx, now).await?;
        lock_user_tokens(&mut tx, user.id).await?;
        // One event per workspace, with that workspace's count: each
        // workspace's Admins see only what happened in theirs.
        let mut total = 0;
        let mut counts = Vec::new();
        for membership in storage::organizations::memberships_of_user(&mut *tx, user.id.0).await? {
            let revoked = storage::tokens::delete_member_tokens_in_workspace(
                &mut *tx,
                membership.workspace_id.0,
                user.id.0,
            )
            .await?;
            counts.push((Some(membership.workspace_id), revoked.len()));
        }
        // Tokens of workspaces the user has left, should any remain.
        let rest = storage::tokens::delete_all_for_user(&mut *tx, user.id.0).await?;
        counts.push((None, rest.len()));
        for (workspace_id, count) in counts.into_iter().filter(|(_, n)| *n > 0) {
            total += count;
            let detail = format!("{count} token(s)");
            let event = Event {
                workspace_id,
                action: "token.revoked_all",
                target_id: Some(user.id.0),
                target_label: &user.email,
                detail: &detail,
            };
            audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        }
        self.commit_token_change(tx).await?;
        Ok(total)
    }

    /// `POST /api/v1/tokens/self/rotate`: the calling token gets a new secret
    /// and keeps its id, name, scope and expiry; the old secret stops working.
    pub async fn rotate_token(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<IssuedToken, ServiceError> {
        let Actor::Token(caller) = actor else {
            return Err(ServiceError::forbidden(
                "token_only",
                "Only a token can rotate itself: send it in the Authorization header.",
            ));
        };
        actor.require(caller.workspace_id, Role::ReadWrite)?;
        let token = PlainToken::generate();
        let mut tx = self.db.begin().await?;
        actor
            .confirm(&mut tx, caller.workspace_id, Role::ReadWrite, now)
            .await?;
        lock_user_tokens(&mut tx, caller.user_id).await?;
        // Only while the row still holds the secret this request presented:
        // of concurrent rotations with one secret exactly one wins, and the
        // others find their secret already gone.
        if storage::tokens::replace_secret(
            &mut *tx,
            caller.token_id.0,
            caller.digest.as_str(),
            token.digest().as_str(),
            token.last4(),
        )
        .await?
            != 1
        {
            return Err(ServiceError::Unauthenticated {
                code: "invalid_token",
                message: "This token does not exist or has been revoked.".to_owned(),
            });
        }
        let row = storage::tokens::find_for_user(&mut *tx, caller.user_id.0, caller.token_id.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let event = Event {
            workspace_id: Some(caller.workspace_id),
            action: "token.rotated",
            target_id: Some(row.id.0),
            target_label: &row.name,
            detail: "",
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(IssuedToken {
            id: row.id,
            name: row.name.clone(),
            token,
            row,
        })
    }

    /// Every token of a workspace, for its Admins.
    pub async fn workspace_tokens(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<TokenRow>, ServiceError> {
        actor.require_admin(workspace)?;
        let limit = clamp_limit(limit);
        let rows = storage::tokens::page_for_workspace(
            self.db.pool(),
            workspace.0,
            after.unwrap_or(0),
            limit + 1,
        )
        .await?;
        Ok(page_of(rows, limit))
    }

    pub async fn count_workspace_tokens(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
    ) -> Result<i64, ServiceError> {
        actor.require_admin(workspace)?;
        Ok(storage::tokens::count_for_workspace(self.db.pool(), workspace.0).await?)
    }

    /// A member of the workspace (their email) and how many tokens they hold
    /// in it, for the confirmation before revoking them all, for the
    /// workspace's Admins. Someone who is not a member is "not found".
    pub async fn member_token_count(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        member: UserId,
    ) -> Result<(String, i64), ServiceError> {
        actor.require_admin(workspace)?;
        let pool = self.db.pool();
        let row = storage::organizations::find_member(pool, workspace.0, member.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let count =
            storage::tokens::count_for_member_in_workspace(pool, workspace.0, member.0).await?;
        Ok((row.email, count))
    }

    /// An Admin (or an Admin token) revokes every token of a workspace, or
    /// of one member in it.
    pub async fn revoke_workspace_tokens(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        member: Option<UserId>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Revocation, ServiceError> {
        actor.require_admin(workspace)?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let (revoked, target_label) = match member {
            Some(member) => {
                let target = storage::organizations::find_member(&mut *tx, workspace.0, member.0)
                    .await?
                    .ok_or(ServiceError::NotFound)?;
                lock_user_tokens(&mut tx, member).await?;
                (
                    storage::tokens::delete_member_tokens_in_workspace(
                        &mut *tx,
                        workspace.0,
                        member.0,
                    )
                    .await?,
                    target.email,
                )
            }
            None => (
                storage::tokens::delete_all_in_workspace(&mut *tx, workspace.0).await?,
                "every member".to_owned(),
            ),
        };
        let detail = format!("{} token(s)", revoked.len());
        let event = Event {
            workspace_id: Some(workspace),
            action: "workspace.tokens_revoked",
            target_id: member.map(|m| m.0),
            target_label: &target_label,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(Revocation {
            count: revoked.len(),
            member_email: member.map(|_| target_label),
        })
    }

    /// Commits a transaction that changed who may use which token, and makes
    /// sure no instance keeps trusting a cached copy.
    pub(crate) async fn commit_token_change(&self, mut tx: Tx) -> Result<(), ServiceError> {
        let ticket = self.tokens.announce_change(&mut tx).await?;
        tx.commit().await?;
        self.tokens.after_commit(ticket).await;
        Ok(())
    }
}

/// What a workspace revocation did.
pub struct Revocation {
    /// How many tokens stopped working.
    pub count: usize,
    /// The member whose tokens they were; `None` for the whole workspace.
    pub member_email: Option<String>,
}

/// Whose token is being made, as refusals name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    Member,
    ServiceAccount,
}

/// The scope a new token gets: the one asked for, at most `role`; none
/// asked for, the role's default.
pub(crate) fn choose_scope(
    raw: Option<&str>,
    role: Role,
    holder: Holder,
) -> Result<Scope, ServiceError> {
    let scope = match raw.filter(|s| !s.is_empty()) {
        Some(raw) => raw.parse::<Scope>().map_err(|_| {
            ServiceError::invalid(
                "scope",
                ValidationError::new("Choose a scope from the list."),
            )
        })?,
        None => role.default_scope(),
    };
    if !scope.grantable_by(role) {
        let whose = match holder {
            Holder::Member => "your role",
            Holder::ServiceAccount => "the service account's role",
        };
        return Err(ServiceError::invalid(
            "scope",
            ValidationError::new(format!(
                "A token's scope can not exceed {whose} ({}).",
                role.label()
            )),
        ));
    }
    Ok(scope)
}

/// A token about to be stored, checked and parsed.
pub(crate) struct NewTokenFor<'a> {
    pub holder: Holder,
    pub owner: UserId,
    pub workspace: WorkspaceId,
    pub name: &'a TokenName,
    pub scope: Scope,
    pub expiry: Expiry,
    /// The audit event's action and detail.
    pub action: &'static str,
    pub detail: &'a str,
}

/// Stores a new token inside `tx` (whose actor is confirmed): under the
/// owner's token lock, refused past `MAX_LIVE_TOKENS` or with a name the
/// owner's live tokens already use; recorded in the audit log. Returns the
/// stored row.
pub(crate) async fn insert_token(
    tx: &mut Tx,
    actor: &Actor,
    new: &NewTokenFor<'_>,
    token: &PlainToken,
    meta: &RequestMeta,
    now: i64,
) -> Result<TokenRow, ServiceError> {
    let owner = new.owner;
    lock_user_tokens(tx, owner).await?;
    if storage::tokens::count_live(&mut **tx, owner.0, now).await? >= MAX_LIVE_TOKENS {
        let message = match new.holder {
            Holder::Member => format!(
                "You already have {MAX_LIVE_TOKENS} tokens, the most a member may hold. Delete one you no longer use first."
            ),
            Holder::ServiceAccount => format!(
                "This service account already has {MAX_LIVE_TOKENS} tokens, the most an account may hold. Delete one it no longer uses first."
            ),
        };
        return Err(ServiceError::Conflict {
            field: "name",
            message,
        });
    }
    let name = new.name;
    if storage::tokens::live_name_taken(&mut **tx, owner.0, name.as_str(), now).await? {
        let message = match new.holder {
            Holder::Member => {
                format!("You already have a token named “{name}”. Choose another name.")
            }
            Holder::ServiceAccount => format!(
                "This service account already has a token named “{name}”. Choose another name."
            ),
        };
        return Err(ServiceError::Conflict {
            field: "name",
            message,
        });
    }
    let digest = token.digest();
    let row = NewToken {
        user_id: owner.0,
        workspace_id: new.workspace.0,
        name: name.as_str(),
        scope: new.scope,
        digest: digest.as_str(),
        last4: token.last4(),
        created_at: now,
        expires_at: new.expiry.expires_at(now),
    };
    let id = storage::tokens::insert(&mut **tx, &row).await?;
    let event = Event {
        workspace_id: Some(new.workspace),
        action: new.action,
        target_id: Some(id),
        target_label: name.as_str(),
        detail: new.detail,
    };
    audit::record(tx, &actor.audit(), meta, event, now).await?;
    storage::tokens::find_for_user(&mut **tx, owner.0, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

pub(crate) async fn lock_user_tokens(tx: &mut Tx, user: UserId) -> Result<(), ServiceError> {
    if storage::users::lock_tokens(&mut **tx, user.0).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}
