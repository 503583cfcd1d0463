//! Members of a workspace: listing, invitations, roles and removal. Every
//! function here is for Admins of the workspace: the actor is checked when
//! the request starts, and again inside the transaction of every change.

use rand::distr::{Alphanumeric, SampleString};

use crate::domain::{Email, NewPassword, Role, UserId, WorkspaceId, sha256_hex};
use crate::service::audit::{self, AuditActor, Event};
use crate::service::auth::{parse_display_name, too_many};
use crate::service::notices::InvitationEmail;
use crate::service::{
    Actor, Page, RequestMeta, ServiceError, Tollgate, clamp_limit, passwords, throttle,
};
use crate::storage::invitations::{InvitationRow, NewInvitation};
use crate::storage::organizations::MemberRow;
use crate::storage::{self};

/// Invitation links work for 7 days.
const INVITATION_DAYS: i64 = 7;

/// An invitation just made; the code exists only in this value and the link.
pub struct Invitation {
    pub code: String,
    /// The link the invited person opens: `origin` + `/invitations/` + code.
    pub link: String,
    pub email: String,
    pub role: Role,
    /// When the link stops working.
    pub expires_at: i64,
    /// `None` when no email was asked for (or none can be sent);
    /// `Some(false)` when sending it failed and the link must be passed on
    /// by hand.
    pub emailed: Option<bool>,
}

/// The Members page's content.
pub struct MembersOverview {
    pub members: Page<MemberRow>,
    pub invitations: Vec<InvitationRow>,
}

/// How an invitation reaches the invited person.
pub struct Delivery<'a> {
    /// The dashboard's public address, for the link.
    pub origin: &'a str,
    /// Email the link too, when email is configured.
    pub by_email: bool,
}

/// What the invited person types.
pub struct AcceptInput<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// Who is signed in on the accepting browser, if anyone.
    pub signed_in: Option<UserId>,
}

fn already_a_member(email: &Email) -> ServiceError {
    ServiceError::Conflict {
        field: "email",
        message: format!(
            "{email} is already a member of this workspace: this invitation is not needed. Open your profile to see your workspaces."
        ),
    }
}

impl Tollgate {
    /// The members of a workspace, for its Admins (pages and API alike).
    pub async fn members(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<MemberRow>, ServiceError> {
        actor.require_admin(workspace)?;
        let limit = clamp_limit(limit);
        let members = storage::organizations::members_of_workspace(
            self.db.pool(),
            workspace.0,
            after.unwrap_or(0),
            limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(members, limit, |m| m.user_id.0))
    }

    /// What the Members page shows: one page of members and the open
    /// invitations.
    pub async fn members_overview(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        after: Option<i64>,
        now: i64,
    ) -> Result<MembersOverview, ServiceError> {
        Ok(MembersOverview {
            members: self.members(actor, workspace, after, Some(100)).await?,
            invitations: self.pending_invitations(actor, workspace, now).await?,
        })
    }

    pub async fn pending_invitations(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        now: i64,
    ) -> Result<Vec<InvitationRow>, ServiceError> {
        actor.require_admin(workspace)?;
        Ok(storage::invitations::pending_for_workspace(self.db.pool(), workspace.0, now).await?)
    }

    /// Admins of a workspace, for the "ask your Admin" help line of its
    /// members.
    pub async fn admin_contacts(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        actor.require(workspace, Role::ReadOnly)?;
        Ok(storage::organizations::admin_contacts(self.db.pool(), workspace.0).await?)
    }

    pub async fn invite_member(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        email: &str,
        role: &str,
        delivery: &Delivery<'_>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Invitation, ServiceError> {
        actor.require_admin(workspace)?;
        let email = Email::parse(email).map_err(|e| ServiceError::invalid("email", e))?;
        let role: Role = role.parse().map_err(|e| ServiceError::invalid("role", e))?;
        if let Some(user) = storage::users::find_by_email(self.db.pool(), email.as_str()).await?
            && storage::organizations::find_member(self.db.pool(), workspace.0, user.id.0)
                .await?
                .is_some()
        {
            return Err(ServiceError::Conflict {
                field: "email",
                message: format!("{email} is already a member of this workspace."),
            });
        }
        let code = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let invitation = NewInvitation {
            workspace_id: workspace.0,
            email: email.as_str(),
            role,
            code_digest: &sha256_hex(&code),
            invited_by: actor.user_id().0,
            created_at: now,
            expires_at: now + INVITATION_DAYS * 86_400,
        };
        let id = storage::invitations::insert(&mut *tx, &invitation).await?;
        let event = Event {
            workspace_id: Some(workspace),
            action: "member.invited",
            target_id: Some(id),
            target_label: email.as_str(),
            detail: role.label(),
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        tx.commit().await?;
        let link = format!("{}/invitations/{code}", delivery.origin);
        // The invitation stands whether or not the email goes out: a
        // failed delivery is reported, and the link is shown instead.
        let emailed = if delivery.by_email && self.mail_enabled() {
            let sent = self
                .email_invitation(&InvitationEmail {
                    email: email.as_str(),
                    role,
                    link: &link,
                    workspace_name: actor.workspace_name(workspace).unwrap_or_default(),
                    inviter_name: actor.name(),
                    expires_at: invitation.expires_at,
                })
                .await;
            if let Err(err) = &sent {
                tracing::warn!(error = %format!("{err:#}"), "emailing an invitation failed");
            }
            Some(sent.is_ok())
        } else {
            None
        };
        Ok(Invitation {
            code,
            link,
            email: email.to_string(),
            role,
            expires_at: invitation.expires_at,
            emailed,
        })
    }

    /// The open invitation of a code. Each unknown code counts against the
    /// address (codes are long and random, but guessing must stay hopeless).
    pub async fn open_invitation(
        &self,
        code: &str,
        ip: &str,
        now: i64,
    ) -> Result<InvitationRow, ServiceError> {
        let key = throttle::Key::new(throttle::Kind::InvitationCode, ip, "");
        if let Err(retry_after) = self.throttle.attempt(key, now) {
            return Err(too_many(
                retry_after,
                "Too many unknown invitation links from your address. Try again in {} minute(s).",
            ));
        }
        let invitation =
            storage::invitations::find_open_by_code(self.db.pool(), &sha256_hex(code), now)
                .await?
                .ok_or(ServiceError::NotFound)?;
        self.throttle.refund(key);
        Ok(invitation)
    }

    /// A pending invitation of the workspace, for the cancel confirmation.
    pub async fn pending_invitation(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: i64,
        now: i64,
    ) -> Result<InvitationRow, ServiceError> {
        actor.require_admin(workspace)?;
        storage::invitations::find_pending(self.db.pool(), workspace.0, id, now)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Cancels a pending invitation: its link stops working at once.
    pub async fn cancel_invitation(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: i64,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<InvitationRow, ServiceError> {
        let invitation = self.pending_invitation(actor, workspace, id, now).await?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        if !storage::invitations::delete_pending(&mut *tx, workspace.0, id).await? {
            return Err(ServiceError::NotFound);
        }
        let role = invitation.role;
        let event = Event {
            workspace_id: Some(workspace),
            action: "member.invitation_cancelled",
            target_id: Some(id),
            target_label: &invitation.email,
            detail: role.label(),
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        tx.commit().await?;
        Ok(invitation)
    }

    /// Accepts an invitation: creates the account (or adds an existing one to
    /// the workspace) with the invited role.
    pub async fn accept_invitation(
        &self,
        code: &str,
        input: AcceptInput<'_>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<UserId, ServiceError> {
        let invitation = self.open_invitation(code, &meta.ip, now).await?;
        let email =
            Email::parse(&invitation.email).map_err(|e| ServiceError::invalid("email", e))?;
        let existing = storage::users::find_by_email(self.db.pool(), email.as_str()).await?;
        // An invitation adds an existing account to the workspace only when
        // that account's owner accepts it signed in: the link alone must
        // never open someone's account.
        if let Some(user) = &existing
            && input.signed_in != Some(user.id)
        {
            return Err(ServiceError::forbidden(
                "sign_in_to_accept",
                format!(
                    "{email} already has an account: sign in as {email}, then open this invitation link again."
                ),
            ));
        }
        let hash = match &existing {
            Some(_) => None,
            None => {
                let password = NewPassword::parse(input.password)
                    .map_err(|e| ServiceError::invalid("password", e))?;
                Some(passwords::hash(&password).await?)
            }
        };
        let name = parse_display_name(input.name, &email)?;
        if let Some(user) = &existing
            && storage::organizations::find_member(
                self.db.pool(),
                invitation.workspace_id.0,
                user.id.0,
            )
            .await?
            .is_some()
        {
            return Err(already_a_member(&email));
        }

        let mut tx = self.db.begin().await?;
        if !storage::invitations::accept(&mut *tx, invitation.id, now).await? {
            return Err(ServiceError::NotFound);
        }
        let user_id = match (existing, hash) {
            (Some(user), _) => user.id.0,
            (None, Some(hash)) => {
                crate::service::auth::insert_user(&mut tx, &email, &name, &hash, now).await?
            }
            (None, None) => return Err(ServiceError::NotFound),
        };
        let role = invitation.role;
        storage::organizations::insert_membership(
            &mut *tx,
            invitation.workspace_id.0,
            user_id,
            role,
            now,
        )
        .await
        .map_err(|err| {
            // Joined meanwhile by another invitation.
            if err.is_unique_violation() {
                already_a_member(&email)
            } else {
                err.into()
            }
        })?;
        let actor = AuditActor::account(user_id, email.as_str());
        let event = Event {
            workspace_id: Some(invitation.workspace_id),
            action: "member.joined",
            target_id: Some(user_id),
            target_label: email.as_str(),
            detail: role.label(),
        };
        audit::record(&mut tx, &actor, meta, event, now).await?;
        tx.commit().await?;
        Ok(UserId(user_id))
    }

    /// Changes a member's role. Their tokens follow at once: a Read-Only
    /// member's tokens stop working, and scopes above the new role are capped.
    pub async fn set_member_role(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        member: UserId,
        role: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        actor.require_admin(workspace)?;
        let role: Role = role.parse().map_err(|e| ServiceError::invalid("role", e))?;
        let mut tx = self.db.begin().await?;
        // Still an Admin now, under the lock every role change takes: of two
        // Admins demoting each other at once, the second finds itself demoted.
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let target = storage::organizations::find_member(&mut *tx, workspace.0, member.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if target.role == Role::Admin
            && role != Role::Admin
            && storage::organizations::count_admins(&mut *tx, workspace.0).await? <= 1
        {
            return Err(ServiceError::Conflict {
                field: "role",
                message: "A workspace needs at least one Admin.".to_owned(),
            });
        }
        storage::organizations::set_role(&mut *tx, workspace.0, member.0, role).await?;
        let detail = format!("{} → {}", target.role.label(), role.label());
        let event = Event {
            workspace_id: Some(workspace),
            action: "member.role_changed",
            target_id: Some(member.0),
            target_label: &target.email,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await
    }

    /// Removes a member from a workspace and deletes their tokens there.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        member: UserId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        actor.require_admin(workspace)?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let target = storage::organizations::find_member(&mut *tx, workspace.0, member.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if target.role == Role::Admin
            && storage::organizations::count_admins(&mut *tx, workspace.0).await? <= 1
        {
            return Err(ServiceError::Conflict {
                field: "member",
                message: "A workspace needs at least one Admin.".to_owned(),
            });
        }
        storage::users::lock_tokens(&mut *tx, member.0).await?;
        storage::tokens::delete_member_tokens_in_workspace(&mut *tx, workspace.0, member.0).await?;
        storage::organizations::remove_membership(&mut *tx, workspace.0, member.0).await?;
        let event = Event {
            workspace_id: Some(workspace),
            action: "member.removed",
            target_id: Some(member.0),
            target_label: &target.email,
            detail: "",
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await
    }

    /// Disables or re-enables a member's account. A disabled member can not
    /// sign in, their sessions end, and their tokens are refused.
    pub async fn set_member_disabled(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        member: UserId,
        disabled: bool,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        actor.require_admin(workspace)?;
        if actor.user_id() == member {
            return Err(ServiceError::Conflict {
                field: "member",
                message: "You can not disable your own account.".to_owned(),
            });
        }
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let target = storage::organizations::find_member(&mut *tx, workspace.0, member.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        // An account spans workspaces: only someone who administers every
        // workspace the member belongs to may switch it off or on, and no
        // workspace may lose its last active Admin.
        // A token acts in its own workspace only.
        let actor_memberships =
            storage::organizations::memberships_of_user(&mut *tx, actor.user_id().0).await?;
        for membership in storage::organizations::memberships_of_user(&mut *tx, member.0).await? {
            let administers = actor_memberships.iter().any(|m| {
                m.workspace_id == membership.workspace_id
                    && m.role == Role::Admin
                    && actor.token_workspace().is_none_or(|w| w == m.workspace_id)
            });
            if !administers {
                return Err(ServiceError::forbidden(
                    "not_admin_of_every_workspace",
                    format!(
                        "{} also belongs to {}, which you do not administer: ask its Admins.",
                        target.email, membership.workspace_name
                    ),
                ));
            }
            if disabled
                && membership.role == Role::Admin
                && storage::organizations::count_admins(&mut *tx, membership.workspace_id.0).await?
                    <= 1
            {
                return Err(ServiceError::Conflict {
                    field: "member",
                    message: format!("{} needs at least one Admin.", membership.workspace_name),
                });
            }
        }
        storage::users::set_disabled(&mut *tx, member.0, disabled.then_some(now)).await?;
        if disabled {
            storage::sessions::delete_for_user(&mut *tx, member.0).await?;
        }
        let action = if disabled {
            "member.disabled"
        } else {
            "member.enabled"
        };
        let event = Event {
            workspace_id: Some(workspace),
            action,
            target_id: Some(member.0),
            target_label: &target.email,
            detail: "",
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await
    }
}
