//! Workspace token policies: reading and changing one, and finding and
//! revoking the tokens that a new policy leaves outside. Generation itself
//! checks the policy in `tokens`.
//!
//! Every function here is for the workspace's Admins; the handlers pass the
//! workspace the acting Admin administers.

use crate::domain::{Role, TokenPolicy, WorkspaceId};
use crate::service::audit::{self, Event};
use crate::service::{Actor, RequestMeta, ServiceError, Tollgate};
use crate::storage;
use crate::storage::tokens::TokenRow;

/// The policy form, as typed.
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest {
    pub max_lifetime: String,
    /// The checkbox: absent when unticked.
    pub require_expiry: Option<String>,
}

impl PolicyRequest {
    /// The same request in numbers (the API's shape): `None` for no
    /// maximum lifetime. Checked like the form by `set_token_policy`.
    pub fn from_days(max_lifetime_days: Option<i64>, require_expiry: bool) -> Self {
        Self {
            max_lifetime: max_lifetime_days.map_or_else(|| "none".to_owned(), |d| d.to_string()),
            require_expiry: require_expiry.then(|| "on".to_owned()),
        }
    }
}

/// A saved token policy and the live tokens of the workspace it leaves
/// outside (they keep working until revoked).
pub struct PolicySaved {
    pub policy: TokenPolicy,
    pub outside: Vec<TokenRow>,
}

impl Tollgate {
    /// The workspace's policy, for its Admins.
    pub async fn workspace_token_policy(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
    ) -> Result<TokenPolicy, ServiceError> {
        actor.require_admin(workspace)?;
        self.token_policy(workspace).await
    }

    /// The policy that applies to tokens made in a workspace (anyone
    /// generating a token there must see it).
    pub async fn token_policy(&self, workspace: WorkspaceId) -> Result<TokenPolicy, ServiceError> {
        Ok(storage::token_policies::get(self.db.pool(), workspace.0).await?)
    }

    /// Sets the workspace's policy. An unchanged policy records nothing.
    /// Tokens already outside it keep working until revoked (see
    /// `revoke_tokens_outside_policy`).
    pub async fn set_token_policy(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        request: &PolicyRequest,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<PolicySaved, ServiceError> {
        actor.require_admin(workspace)?;
        let policy = TokenPolicy::parse(&request.max_lifetime, request.require_expiry.as_deref())
            .map_err(|e| ServiceError::invalid("policy", e))?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let before = storage::token_policies::get(&mut *tx, workspace.0).await?;
        // The tokens the saved policy leaves outside, read in the same
        // transaction: what the answer lists is what the policy sees.
        let outside = if policy.is_set() {
            storage::token_policies::tokens_outside(&mut *tx, workspace.0, policy, now).await?
        } else {
            Vec::new()
        };
        if before == policy {
            return Ok(PolicySaved { policy, outside });
        }
        storage::token_policies::upsert(&mut *tx, workspace.0, policy, now).await?;
        let detail = format!("{} → {}", before.summary(), policy.summary());
        let event = Event {
            workspace_id: Some(workspace),
            action: "workspace.token_policy_changed",
            target_id: Some(workspace.0),
            target_label: "token policy",
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        tx.commit().await?;
        Ok(PolicySaved { policy, outside })
    }

    /// Live tokens of the workspace that its current policy would not allow
    /// today, oldest first.
    pub async fn tokens_outside_policy(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        now: i64,
    ) -> Result<Vec<TokenRow>, ServiceError> {
        actor.require_admin(workspace)?;
        let policy = self.token_policy(workspace).await?;
        if !policy.is_set() {
            return Ok(Vec::new());
        }
        Ok(
            storage::token_policies::tokens_outside(self.db.pool(), workspace.0, policy, now)
                .await?,
        )
    }

    /// Revokes every live token of the workspace outside its current
    /// policy (read again here, not taken from the confirmation the Admin
    /// saw). Returns how many were revoked.
    pub async fn revoke_tokens_outside_policy(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<usize, ServiceError> {
        actor.require_admin(workspace)?;
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        let policy = storage::token_policies::get(&mut *tx, workspace.0).await?;
        if !policy.is_set() {
            return Ok(0);
        }
        let revoked =
            storage::token_policies::delete_tokens_outside(&mut *tx, workspace.0, policy, now)
                .await?;
        if revoked.is_empty() {
            return Ok(0);
        }
        // Which ones, so an incident review can tell: names and ids, the
        // first 50.
        let mut named: Vec<String> = revoked
            .iter()
            .take(50)
            .map(|(id, name)| format!("“{name}” (#{id})"))
            .collect();
        if revoked.len() > named.len() {
            named.push(format!("and {} more", revoked.len() - named.len()));
        }
        let detail = format!(
            "{} token(s) outside the token policy ({}): {}",
            revoked.len(),
            policy.summary(),
            named.join(", ")
        );
        let event = Event {
            workspace_id: Some(workspace),
            action: "workspace.tokens_revoked",
            target_id: None,
            target_label: "tokens outside the token policy",
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(revoked.len())
    }
}
