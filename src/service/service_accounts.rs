//! Service accounts: accounts that belong to a workspace, not to a person.
//! Its Admins create them with a name and a role, generate and revoke their
//! tokens, and delete them. An account's tokens follow the rules of every
//! token (format, scope at most the account's role, the cache, revocation)
//! but authenticate with Bearer only. Removing the Admin who created one
//! changes nothing: the account is the workspace's.

use rand::distr::{Alphanumeric, SampleString};

use crate::domain::{
    AccountKind, PlainToken, Role, ServiceAccountName, TokenId, TokenName, UserId, ValidationError,
    WorkspaceId,
};
use crate::service::audit::{self, Event};
use crate::service::tokens::{
    GenerateRequest, Holder, IssuedToken, NewTokenFor, choose_scope, insert_token, lock_user_tokens,
};
use crate::service::{Actor, RequestMeta, ServiceError, Tollgate};
use crate::storage::service_accounts::ServiceAccountRow;
use crate::storage::tokens::TokenRow;
use crate::storage::{self, Tx};

/// A service account and its tokens, newest first.
pub struct ServiceAccountDetail {
    pub account: ServiceAccountRow,
    pub tokens: Vec<TokenRow>,
}

async fn find_account(
    tx: &mut Tx,
    workspace: WorkspaceId,
    id: UserId,
) -> Result<ServiceAccountRow, ServiceError> {
    storage::service_accounts::find_in_workspace(&mut **tx, workspace.0, id.0)
        .await?
        .ok_or(ServiceError::NotFound)
}

impl Tollgate {
    /// Opens the transaction of a change to one service account of the
    /// workspace: the actor is confirmed an Admin there, the account is
    /// found (another workspace's is "not found") and its tokens are locked.
    async fn begin_on_account(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        now: i64,
    ) -> Result<(Tx, ServiceAccountRow), ServiceError> {
        actor.require_admin(workspace)?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let account = find_account(&mut tx, workspace, id).await?;
        lock_user_tokens(&mut tx, id).await?;
        Ok((tx, account))
    }

    /// The service accounts of a workspace the user administers.
    pub async fn service_accounts(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
    ) -> Result<Vec<ServiceAccountRow>, ServiceError> {
        actor.require_admin(workspace)?;
        Ok(storage::service_accounts::list_in_workspace(self.db.pool(), workspace.0).await?)
    }

    /// One service account of the workspace, with its tokens; an account of
    /// another workspace is "not found".
    pub async fn service_account(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
    ) -> Result<ServiceAccountDetail, ServiceError> {
        actor.require_admin(workspace)?;
        let account =
            storage::service_accounts::find_in_workspace(self.db.pool(), workspace.0, id.0)
                .await?
                .ok_or(ServiceError::NotFound)?;
        let tokens = storage::tokens::list_for_user(self.db.pool(), id.0).await?;
        Ok(ServiceAccountDetail { account, tokens })
    }

    pub async fn create_service_account(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        name: &str,
        role: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<ServiceAccountRow, ServiceError> {
        actor.require_admin(workspace)?;
        // A service account is made by a person: its list names who, and
        // an account made by another account would name nobody.
        if let Actor::Token(principal) = actor
            && principal.kind == AccountKind::ServiceAccount
        {
            return Err(ServiceError::forbidden(
                "members_only",
                "Only a member's token can create service accounts.",
            ));
        }
        let name = ServiceAccountName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let role: Role = role.parse().map_err(|_| {
            ServiceError::invalid("role", ValidationError::new("Choose a role from the list."))
        })?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        // `confirm` took the membership lock: creations are serialised, so
        // two Admins can not both take one name.
        if storage::service_accounts::name_taken(&mut *tx, workspace.0, name.as_str()).await? {
            return Err(ServiceError::Conflict {
                field: "name",
                message: format!(
                    "This workspace already has a service account named “{name}”. Choose another name."
                ),
            });
        }
        // The email column is unique and required: a random placeholder
        // without `@` fills it, which no sign-in or invitation can match.
        let placeholder = format!(
            "service-account-{}",
            Alphanumeric.sample_string(&mut rand::rng(), 24)
        );
        let id = storage::service_accounts::insert(
            &mut *tx,
            &placeholder,
            name.as_str(),
            actor.user_id().0,
            now,
        )
        .await?;
        storage::organizations::insert_membership(&mut *tx, workspace.0, id, role, now).await?;
        let event = Event {
            workspace_id: Some(workspace),
            action: "service_account.created",
            target_id: Some(id),
            target_label: name.as_str(),
            detail: role.label(),
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        let row = find_account(&mut tx, workspace, UserId(id)).await?;
        self.commit_token_change(tx).await?;
        Ok(row)
    }

    /// Deletes a service account: every token it holds stops working at
    /// once. Returns the account as it was and how many tokens were revoked.
    pub async fn delete_service_account(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(ServiceAccountRow, usize), ServiceError> {
        let (mut tx, account) = self.begin_on_account(actor, workspace, id, now).await?;
        let revoked = storage::tokens::delete_all_for_user(&mut *tx, id.0).await?;
        if storage::service_accounts::delete(&mut *tx, id.0).await? != 1 {
            return Err(ServiceError::NotFound);
        }
        let detail = format!("{} token(s) revoked", revoked.len());
        let event = Event {
            workspace_id: Some(workspace),
            action: "service_account.deleted",
            target_id: Some(id.0),
            target_label: &account.name,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok((account, revoked.len()))
    }

    /// Generates a token for a service account; its scope may not exceed
    /// the account's role. `request.workspace` is ignored: the token belongs
    /// to the account's workspace.
    pub async fn generate_service_token(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        request: &GenerateRequest,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<IssuedToken, ServiceError> {
        actor.require_admin(workspace)?;
        // A token of a service account can not mint more tokens: a leaked
        // one would otherwise outlive its own revocation through a sibling.
        if let Actor::Token(principal) = actor
            && principal.kind == AccountKind::ServiceAccount
        {
            return Err(ServiceError::forbidden(
                "members_only",
                "Only a member's token can generate tokens for service accounts.",
            ));
        }
        let name = TokenName::parse(&request.name).map_err(|e| ServiceError::invalid("name", e))?;
        let token = PlainToken::generate();
        let (mut tx, account) = self.begin_on_account(actor, workspace, id, now).await?;
        // Service tokens keep to the workspace's token policy like any other.
        let expiry = Tollgate::choose_expiry(&mut tx, workspace, request.expiry.as_deref()).await?;
        let scope = choose_scope(
            request.scope.as_deref(),
            account.role,
            Holder::ServiceAccount,
        )?;
        let detail = format!(
            "service account {}, scope {}, expires {}",
            account.name,
            scope.label(),
            expiry.label().to_lowercase()
        );
        let new = NewTokenFor {
            holder: Holder::ServiceAccount,
            owner: id,
            workspace,
            name: &name,
            scope,
            expiry,
            action: "service_account.token_created",
            detail: &detail,
        };
        let row = insert_token(&mut tx, actor, &new, &token, meta, now).await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id: row.id,
            name: name.to_string(),
            token,
            row,
        })
    }

    /// One token of a service account, for the delete confirmation.
    pub async fn service_token(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        token: TokenId,
    ) -> Result<TokenRow, ServiceError> {
        let detail = self.service_account(actor, workspace, id).await?;
        detail
            .tokens
            .into_iter()
            .find(|t| t.id == token)
            .ok_or(ServiceError::NotFound)
    }

    /// Deletes one token of a service account.
    pub async fn delete_service_token(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        token: TokenId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<TokenRow, ServiceError> {
        let (mut tx, account) = self.begin_on_account(actor, workspace, id, now).await?;
        let row = storage::tokens::find_for_user(&mut *tx, id.0, token.0)
            .await?
            .ok_or(ServiceError::NotFound)?;
        storage::tokens::delete(&mut *tx, token.0).await?;
        let detail = format!("service account {}", account.name);
        let event = Event {
            workspace_id: Some(workspace),
            action: "service_account.token_deleted",
            target_id: Some(row.id.0),
            target_label: &row.name,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(row)
    }

    /// "Revoke all" on a service account's page. Returns how many stopped working.
    pub async fn revoke_service_tokens(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        id: UserId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<usize, ServiceError> {
        let (mut tx, account) = self.begin_on_account(actor, workspace, id, now).await?;
        let revoked = storage::tokens::delete_all_for_user(&mut *tx, id.0).await?;
        let detail = format!("{} token(s)", revoked.len());
        let event = Event {
            workspace_id: Some(workspace),
            action: "service_account.tokens_revoked",
            target_id: Some(id.0),
            target_label: &account.name,
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(revoked.len())
    }
}
