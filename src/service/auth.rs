//! Accounts: first-run setup, sign-in, the signed-in user, password changes
//! and the CLI's `users create`.

use crate::domain::{
    Email, NewPassword, Password, Role, UserId, ValidationError, WorkspaceId, is_spoofing,
};
use crate::service::audit::{self, AuditActor, Event};
use crate::service::{
    Actor, Membership, RequestMeta, ServiceError, SignedInUser, Tollgate, passwords, throttle,
};
use crate::storage::{self, Tx};

pub const DEFAULT_WORKSPACE: &str = "Default";
const SIGN_IN_FAILED: &str = "Incorrect email or password.";

/// What the first person types at `/setup`.
pub struct SetupInput<'a> {
    /// The one-time code from the link the server printed.
    pub code: &'a str,
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
    if name.chars().any(is_spoofing) || name.chars().count() > 100 {
        return Err(ServiceError::invalid(
            "name",
            ValidationError::new(
                "The name must be at most 100 characters, without control characters or invisible (zero-width, text-direction) characters.",
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
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(is_spoofing) {
        return Err(ServiceError::invalid(
            "organization",
            ValidationError::new(
                "Enter an organization name of 1 to 100 characters, without control characters or invisible (zero-width, text-direction) characters.",
            ),
        ));
    }
    Ok(name.to_owned())
}

impl Tollgate {
    /// True while nobody has an account: only then does `/setup` work.
    pub async fn needs_setup(&self) -> Result<bool, ServiceError> {
        Ok(storage::users::count(self.db.pool()).await? == 0)
    }

    /// Whether `given` is the setup code, while setup is still to be done
    /// (refused once someone has an account). Each wrong code counts against
    /// the address first: the code is long and random, and guessing it must
    /// stay hopeless.
    pub async fn check_setup_code(
        &self,
        expected: &SetupCode,
        given: &str,
        ip: &str,
    ) -> Result<bool, ServiceError> {
        if !self.needs_setup().await? {
            return Err(setup_done());
        }
        let key = throttle::Key::new(throttle::Kind::SetupCode, ip, "");
        self.throttle
            .attempt(key, self.now())
            .map_err(|retry_after| {
                too_many(
                    retry_after,
                    "Too many wrong codes from your address. Try again in {} minute(s).",
                )
            })?;
        let valid = expected.matches(given);
        if valid {
            self.throttle.refund(key);
        }
        Ok(valid)
    }

    /// Creates the organization, its default workspace and the first Admin,
    /// for whoever holds the setup code.
    pub async fn complete_setup(
        &self,
        expected: &SetupCode,
        input: SetupInput<'_>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<UserId, ServiceError> {
        if !self
            .check_setup_code(expected, input.code, &meta.ip)
            .await?
        {
            return Err(ServiceError::forbidden(
                "setup_code",
                "This setup link is not valid. Use the link the server printed when it started.",
            ));
        }
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
            return Err(setup_done());
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
    /// The attempt is counted before the password is checked, so parallel
    /// guesses can not outrun the throttle; every failure is counted into
    /// one audit event per address, account and window.
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
        let key = throttle::Key::new(throttle::Kind::SignIn, &meta.ip, email);
        let user = match Email::parse(email) {
            Ok(email) => storage::users::find_by_email(self.db.pool(), email.as_str()).await?,
            Err(_) => None,
        };
        if let Err(retry_after) = self.throttle.attempt(key, now) {
            crate::service::measure::throttled("sign_in");
            self.record_failed_sign_in(user.as_ref(), meta, now).await?;
            return Err(too_many(
                retry_after,
                "Too many failed sign-ins. Try again in {} minute(s).",
            ));
        }
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let matches = passwords::verify(stored, &password).await?;
        let user = match user {
            Some(user) if matches && user.disabled_at.is_none() => user,
            other => {
                self.record_failed_sign_in(other.as_ref(), meta, now)
                    .await?;
                return Err(failed());
            }
        };
        self.throttle.clear(key);
        let mut tx = self.db.begin().await?;
        let actor = AuditActor::account(user.id.0, &user.email);
        let event = Event {
            workspace_id: None,
            action: "user.signed_in",
            target_id: Some(user.id.0),
            target_label: &user.email,
            detail: "",
        };
        audit::record(&mut tx, &actor, meta, event, now).await?;
        tx.commit().await?;
        Ok(user.id)
    }

    /// Counts a failed sign-in into the audit event of its address, account
    /// (all unknown emails share one) and throttle window. What was typed
    /// as an unknown email is not stored.
    async fn record_failed_sign_in(
        &self,
        user: Option<&storage::users::UserRow>,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        let (id, label) = match user {
            Some(u) => (Some(u.id), u.email.as_str()),
            None => (None, "(unknown email)"),
        };
        let window = now.div_euclid(throttle::WINDOW_SECONDS);
        let key = crate::domain::sha256_hex(&format!(
            "user.sign_in_failed|{}|{}|{window}",
            meta.ip,
            id.map_or_else(|| "unknown".to_owned(), |id| id.to_string())
        ));
        let event = storage::audit::NewAuditEvent {
            workspace_id: None,
            actor_user_id: None,
            actor_token_id: None,
            actor_label: "anonymous",
            action: "user.sign_in_failed",
            target_id: id.map(|id| id.0),
            target_label: label,
            detail: "",
            ip: &meta.ip,
            user_agent: &meta.user_agent.chars().take(300).collect::<String>(),
            created_at: now,
        };
        storage::audit::count_failed_sign_in(self.db.pool(), &key, &event).await?;
        Ok(())
    }

    /// The signed-in user as they are now; `None` when the account is gone or
    /// disabled (the session then counts as signed out).
    pub async fn signed_in_user(&self, id: UserId) -> Result<Option<SignedInUser>, ServiceError> {
        let Some(user) = storage::users::find_by_id(self.db.pool(), id.0).await? else {
            return Ok(None);
        };
        // Service accounts never sign in; a session naming one is no session.
        if user.disabled_at.is_some() || user.kind != crate::domain::AccountKind::Member {
            return Ok(None);
        }
        let memberships = storage::organizations::memberships_of_user(self.db.pool(), id.0)
            .await?
            .into_iter()
            .map(|m| Membership {
                workspace_id: m.workspace_id,
                role: m.role,
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
        actor: &Actor,
        current: &str,
        new: &str,
        confirm: &str,
        meta: &RequestMeta,
        now: i64,
    ) -> Result<(), ServiceError> {
        let user = actor.signed_in().ok_or_else(|| {
            ServiceError::forbidden(
                "members_only",
                "Only a member signed in to the dashboard can change their password.",
            )
        })?;
        let current =
            Password::parse(current).map_err(|e| ServiceError::invalid("current_password", e))?;
        let new = NewPassword::parse(new).map_err(|e| ServiceError::invalid("new_password", e))?;
        if new.expose() != confirm {
            return Err(ServiceError::invalid(
                "confirm_password",
                ValidationError::new("The two new passwords do not match."),
            ));
        }
        let key = throttle::Key::new(
            throttle::Kind::CurrentPassword,
            &meta.ip,
            &user.id.0.to_string(),
        );
        if let Err(retry_after) = self.throttle.attempt(key, now) {
            crate::service::measure::throttled("current_password");
            return Err(too_many(
                retry_after,
                "Too many wrong current passwords. Try again in {} minute(s).",
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
        self.throttle.clear(key);
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
        audit::record(&mut tx, &actor.audit(), meta, event, now).await?;
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
        let workspace_name =
            crate::domain::WorkspaceName::parse(input.workspace.unwrap_or(DEFAULT_WORKSPACE))
                .map_err(|e| ServiceError::invalid("workspace", e))?;
        let workspace_name = workspace_name.as_str();
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
                Some(w) => w.id.0,
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

fn setup_done() -> ServiceError {
    ServiceError::forbidden("setup_done", "Tollgate is already set up. Sign in instead.")
}

/// The one-time code that guards first-run setup, present only while no
/// user exists (the server prints the link with it at start).
pub struct SetupCode(pub Option<String>);

impl SetupCode {
    /// Compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0
            .as_deref()
            .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
    }
}

/// "Too many attempts", with the wait in minutes put into `template`'s `{}`.
pub(crate) fn too_many(retry_after: i64, template: &str) -> ServiceError {
    let minutes = (retry_after + 59) / 60;
    ServiceError::TooManyAttempts {
        retry_after,
        message: template.replacen("{}", &minutes.to_string(), 1),
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
            if err.is_unique_violation() {
                duplicate_email(email)
            } else {
                err.into()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::SetupCode;

    #[test]
    fn only_the_exact_setup_code_matches() {
        let code = SetupCode(Some("a1B2c3D4e5".to_owned()));
        assert!(code.matches("a1B2c3D4e5"));
        for wrong in ["", "a1B2c3D4e", "a1B2c3D4e5x", "A1B2c3D4e5", "a1B2c3D4e6"] {
            assert!(!code.matches(wrong), "{wrong:?}");
        }
        // Once set up, no code opens setup again.
        assert!(!SetupCode(None).matches(""));
        assert!(!SetupCode(None).matches("a1B2c3D4e5"));
    }
}
