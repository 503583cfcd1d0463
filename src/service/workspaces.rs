//! Workspaces from the dashboard: an organization Admin (a member who is
//! Admin of at least one workspace of the organization) creates workspaces,
//! becoming the new one's first Admin, and renames the workspaces they
//! administer. Names are unique across the organization.

use crate::domain::{AccountKind, Role, WorkspaceId, WorkspaceName};
use crate::service::audit::{self, Event};
use crate::service::{Actor, Membership, RequestMeta, ServiceError, Tollgate};
use crate::storage;

fn taken(name: &WorkspaceName) -> ServiceError {
    ServiceError::Conflict {
        field: "name",
        message: format!("A workspace named “{name}” already exists. Choose another name."),
    }
}

fn unique_or(err: storage::Error, name: &WorkspaceName) -> ServiceError {
    if err.is_unique_violation() {
        taken(name)
    } else {
        err.into()
    }
}

impl Tollgate {
    /// The workspaces the actor acts in, with its role in each: a member
    /// all of theirs; a token only its own (a token never sees beyond its
    /// workspace), with what it may do there.
    pub fn workspaces(&self, actor: &Actor) -> Result<Vec<Membership>, ServiceError> {
        match actor {
            Actor::Member(user) => Ok(user.memberships.clone()),
            Actor::Token(principal) => {
                actor.require(principal.workspace_id, Role::ReadOnly)?;
                Ok(vec![Membership {
                    workspace_id: principal.workspace_id,
                    workspace_name: principal.workspace_name.to_string(),
                    role: principal.effective(),
                }])
            }
        }
    }

    pub async fn create_workspace(
        &self,
        actor: &Actor,
        name: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Membership, ServiceError> {
        // An Admin of any workspace may create one; the first workspace they
        // administer is re-checked inside the transaction.
        let administered = actor.admin_workspace(None).map_err(|_| {
            ServiceError::forbidden("not_admin", "Only Admins can create workspaces.")
        })?;
        // The creator becomes the new workspace's first Admin: a person,
        // never a service account (which belongs to its one workspace).
        if let Actor::Token(principal) = actor
            && principal.kind == AccountKind::ServiceAccount
        {
            return Err(ServiceError::forbidden(
                "members_only",
                "Only a member's token can create workspaces.",
            ));
        }
        let name = WorkspaceName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let mut tx = self.db.begin().await?;
        actor
            .confirm(&mut tx, administered.workspace_id, Role::Admin, now)
            .await?;
        if storage::organizations::find_workspace_by_name(&mut *tx, name.as_str())
            .await?
            .is_some()
        {
            return Err(taken(&name));
        }
        let organization = storage::organizations::organization_id(&mut *tx)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let id =
            storage::organizations::insert_workspace(&mut *tx, organization, name.as_str(), now)
                .await
                .map_err(|e| unique_or(e, &name))?;
        storage::organizations::insert_membership(
            &mut *tx,
            id,
            actor.user_id().0,
            Role::Admin,
            now,
        )
        .await?;
        let event = Event {
            workspace_id: Some(WorkspaceId(id)),
            action: "workspace.created",
            target_id: Some(id),
            target_label: name.as_str(),
            detail: "",
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(Membership {
            workspace_id: WorkspaceId(id),
            workspace_name: name.to_string(),
            role: Role::Admin,
        })
    }

    /// Renames a workspace the user administers. Tokens keep working; the
    /// API shows the new name at once. Returns the workspace as renamed.
    pub async fn rename_workspace(
        &self,
        actor: &Actor,
        workspace: WorkspaceId,
        name: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<Membership, ServiceError> {
        // A token asking for another workspace than its own learns nothing
        // about it: "not found", as everywhere on the API.
        let current = actor
            .admin_workspace(Some(workspace))
            .map_err(|err| match err {
                ServiceError::NotFound => ServiceError::NotFound,
                _ => ServiceError::forbidden(
                    "not_admin",
                    "Only the workspace's Admins can rename it.",
                ),
            })?;
        let name = WorkspaceName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let renamed = Membership {
            workspace_name: name.to_string(),
            ..current.clone()
        };
        if name.as_str() == current.workspace_name {
            return Ok(renamed);
        }
        let mut tx = self.db.begin().await?;
        actor.confirm(&mut tx, workspace, Role::Admin, now).await?;
        if storage::organizations::find_workspace_by_name(&mut *tx, name.as_str())
            .await?
            .is_some_and(|w| w.id != workspace)
        {
            return Err(taken(&name));
        }
        if storage::organizations::rename_workspace(&mut *tx, workspace.0, name.as_str())
            .await
            .map_err(|e| unique_or(e, &name))?
            != 1
        {
            return Err(ServiceError::NotFound);
        }
        let detail = format!("{} → {}", current.workspace_name, name);
        let event = Event {
            workspace_id: Some(workspace),
            action: "workspace.renamed",
            target_id: Some(workspace.0),
            target_label: name.as_str(),
            detail: &detail,
        };
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
        self.commit_token_change(tx).await?;
        Ok(renamed)
    }
}
