//! Accounts: first-run setup, sign-in, the signed-in user, password changes
//! and the CLI's `users create`.

use crate::domain::{Email, NewPassword, Password, Role, UserId, ValidationError, WorkspaceId};
use crate::service::audit::{self, AuditActor, Event};
use crate::service::{Membership, RequestMeta, ServiceError, SignedInUser, Tollgate, passwords};
use crate::storage::{self, Tx};

pub const DEFAULT_WORKSPACE: &str = "Default";
const SIGN_IN_FAILED: &str = "Incorrect email or password.";

/// What the first person types at `/setup`.
pub struct SetupInput<'a> {
    pub organization: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub password: &'a str,
}

/// What `tollgate users create` asks for.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub role: &'a str,
    pub workspace: Option<&'a str>,
    pub password: &'a str,
}

/// A display name: trimmed, at most 100 characters; empty means the
/// email's local part.
pub(crate) fn parse_display_name(raw: &str, email: &Email) -> Result<String, ServiceError> {
    let name = raw.trim();
    if name.chars().any(char::is_control) || name.chars().count() > 100 {
        return Err(ServiceError::invalid(
            "name",
            ValidationError::new(
                "The name must be at most 100 characters, without control characters.",
            ),
        ));
    }
    Ok(if name.is_empty() {
        email
            .as_str()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned()
    } else {
        name.to_owned()
    })
}

fn parse_org_name(raw: &str) -> Result<String, ServiceError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "organization",
            ValidationError::new("Enter an organization name of 1 to 100 characters."),
        ));
    }
    Ok(name.to_owned())
}

impl Tollgate {
    /// True while nobody has an account: only then does `/setup` work.
    pub async fn needs_setup(&self) -> Result<bool, ServiceError> {
        Ok(storage::users::count(self.db.pool()).await? == 0)
    }

    /// Creates the organization, its default workspace and the first Admin.
    pub async fn complete_setup(
        &self,
        input: SetupInput<'_>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<UserId, ServiceError> {
        let organization = parse_org_name(input.organization)?;
        let email = Email::parse(input.email).map_err(|e| ServiceError::invalid("email", e))?;
        let name = parse_display_name(input.name, &email)?;
        let password =
            NewPassword::parse(input.password).map_err(|e| ServiceError::invalid("password", e))?;
        let hash = passwords::hash(&password).await?;

        let mut tx = self.db.begin().await?;
        // Checked again inside the transaction: two people racing through
        // setup must not both become Admin.
        if storage::users::count(&mut *tx).await? > 0 {
            return Err(ServiceError::forbidden(
                "setup_done",
                "Tollgate is already set up. Sign in instead.",
            ));
        }
        let org_id =
            storage::organizations::insert_organization(&mut *tx, &organization, now).await?;
        let workspace =
            storage::organizations::insert_workspace(&mut *tx, org_id, DEFAULT_WORKSPACE, now)
                .await?;
        let user_id = insert_user(&mut tx, &email, &name, &hash, now).await?;
        storage::organizations::insert_membership(&mut *tx, workspace, user_id, Role::Admin, now)
            .await?;
        let actor = AuditActor::account(user_id, email.as_str());
        let event = Event {
            workspace_id: Some(WorkspaceId(workspace)),
            action: "setup.completed",
            target_id: Some(user_id),
            target_label: &organization,
            detail: "",
        };
        audit::record(&mut tx, &actor, meta, event, now).await?;
        tx.commit().await?;
        Ok(UserId(user_id))
    }

    /// Checks an email and password. Unknown emails, wrong passwords and
    /// disabled accounts get the same answer after the same amount of work.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<UserId, ServiceError> {
        let failed = || ServiceError::Invalid {
            field: "password",
            message: SIGN_IN_FAILED.to_owned(),
        };
        let password =
            Password::parse(password).map_err(|e| ServiceError::invalid("password", e))?;
        if let Some(retry_after) = self
            .sign_in_throttle
            .retry_after(&meta.ip, email.trim(), now)
        {
            let minutes = (retry_after + 59) / 60;
            return Err(ServiceError::TooManyAttempts {
                retry_after,
                message: format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
            });
        }
        let user = match Email::parse(email) {
            Ok(email) => storage::users::find_by_email(self.db.pool(), email.as_str()).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let matches = passwords::verify(stored, &password).await?;
        let Some(user) = user.filter(|u| matches && u.disabled_at.is_none()) else {
            self.sign_in_throttle.failed(&meta.ip, email.trim(), now);
            return Err(failed());
        };
        self.sign_in_throttle.succeeded(&meta.ip, email.trim());
        let mut tx = self.db.begin().await?;
        let actor = AuditActor::account(user.id, &user.email);
        let event = Event {
            workspace_id: None,
            action: "user.signed_in",
            target_id: Some(user.id),
            target_label: &user.email,
            detail: "",
        };
        audit::record(&mut tx, &actor, meta, event, now).await?;
        tx.commit().await?;
        Ok(UserId(user.id))
    }

    /// The signed-in user as they are now; `None` when the account is gone or
    /// disabled (the session then counts as signed out).
    pub async fn signed_in_user(&self, id: UserId) -> Result<Option<SignedInUser>, ServiceError> {
        let Some(user) = storage::users::find_by_id(self.db.pool(), id.0).await? else {
            return Ok(None);
        };
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        let memberships = storage::organizations::memberships_of_user(self.db.pool(), id.0)
            .await?
            .into_iter()
            .map(|m| Membership {
                workspace_id: WorkspaceId(m.workspace_id),
                role: m.role(),
                workspace_name: m.workspace_name,
            })
            .collect();
        Ok(Some(SignedInUser {
            id,
            email: user.email,
            name: user.name,
            memberships,
        }))
    }

    /// Changes a password after checking the current one, and signs out every
    /// session of the user (the caller renews its own session afterwards).
    pub async fn change_password(
        &self,
        user: &SignedInUser,
        current: &str,
        new: &str,
        confirm: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        let current =
            Password::parse(current).map_err(|e| ServiceError::invalid("current_password", e))?;
        let new = NewPassword::parse(new).map_err(|e| ServiceError::invalid("new_password", e))?;
        if new.expose() != confirm {
            return Err(ServiceError::invalid(
                "confirm_password",
                ValidationError::new("The two new passwords do not match."),
            ));
        }
        let stored = storage::users::find_by_id(self.db.pool(), user.id.0)
            .await?
            .map(|u| u.password_hash);
        if !passwords::verify(stored, &current).await? {
            return Err(ServiceError::invalid(
                "current_password",
                ValidationError::new("The current password is not correct."),
            ));
        }
        let hash = passwords::hash(&new).await?;
        let mut tx = self.db.begin().await?;
        storage::users::update_password(&mut *tx, user.id.0, &hash).await?;
        storage::sessions::delete_for_user(&mut *tx, user.id.0).await?;
        let event = Event {
            workspace_id: None,
            action: "user.password_changed",
            target_id: Some(user.id.0),
            target_label: &user.email,
            detail: "",
        };
        audit::record(&mut tx, &AuditActor::user(user), meta, event, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `tollgate users create`: creates the organization and the workspace
    /// when they do not exist yet.
    pub async fn create_user(&self, input: NewUser<'_>, now: i64) -> Result<UserId, ServiceError> {
        let email = Email::parse(input.email).map_err(|e| ServiceError::invalid("email", e))?;
        let role: Role = input
            .role
            .parse()
            .map_err(|e| ServiceError::invalid("role", e))?;
        let name = parse_display_name(input.name.unwrap_or_default(), &email)?;
        let password =
            NewPassword::parse(input.password).map_err(|e| ServiceError::invalid("password", e))?;
        let workspace_name = input.workspace.map(str::trim).unwrap_or(DEFAULT_WORKSPACE);
        if workspace_name.is_empty()
            || workspace_name.chars().count() > 100
            || workspace_name.chars().any(char::is_control)
        {
            return Err(ServiceError::invalid(
                "workspace",
                ValidationError::new("The workspace name must be 1 to 100 characters."),
            ));
        }
        if storage::users::find_by_email(self.db.pool(), email.as_str())
            .await?
            .is_some()
        {
            return Err(duplicate_email(&email));
        }
        let hash = passwords::hash(&password).await?;

        let mut tx = self.db.begin().await?;
        let org_id = match storage::organizations::organization_id(&mut *tx).await? {
            Some(id) => id,
            None => storage::organizations::insert_organization(&mut *tx, "Tollgate", now).await?,
        };
        let workspace =
            match storage::organizations::find_workspace_by_name(&mut *tx, workspace_name).await? {
                Some(w) => w.id,
                None => {
                    storage::organizations::insert_workspace(&mut *tx, org_id, workspace_name, now)
                        .await?
                }
            };
        let user_id = insert_user(&mut tx, &email, &name, &hash, now).await?;
        storage::organizations::insert_membership(&mut *tx, workspace, user_id, role, now).await?;
        let event = Event {
            workspace_id: Some(WorkspaceId(workspace)),
            action: "member.created",
            target_id: Some(user_id),
            target_label: email.as_str(),
            detail: role.label(),
        };
        audit::record(
            &mut tx,
            &AuditActor::system("command line"),
            &RequestMeta::default(),
            event,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(UserId(user_id))
    }
}

fn duplicate_email(email: &Email) -> ServiceError {
    ServiceError::Conflict {
        field: "email",
        message: format!("A user with the email {email} already exists."),
    }
}

/// Inserts a user, turning a unique violation (a concurrent insert of the
/// same email) into a clear conflict.
pub(crate) async fn insert_user(
    tx: &mut Tx,
    email: &Email,
    name: &str,
    hash: &str,
    now: i64,
) -> Result<i64, ServiceError> {
    storage::users::insert(&mut **tx, email.as_str(), name, hash, now)
        .await
        .map_err(|err| {
            if storage::is_unique_violation(&err) {
                duplicate_email(email)
            } else {
                err.into()
            }
        })
}
