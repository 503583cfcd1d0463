//! Roles of members and scopes of tokens. Both use the same three ordered
//! levels and the same words, but they are different things: a role is what
//! a member may do, a scope is a ceiling chosen for one token. What a token
//! may do is the lower of its scope and its owner's current role
//! ([`Scope::cap`]), the only place where the two meet.

use std::str::FromStr;

use super::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

/// A token's scope: the most its token may do, whatever its owner's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Role);

impl Scope {
    pub const READ_ONLY: Scope = Scope(Role::ReadOnly);
    pub const READ_WRITE: Scope = Scope(Role::ReadWrite);
    pub const ADMIN: Scope = Scope(Role::Admin);

    /// The stored and machine-readable form (`read-only`, …).
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// The form people read (`Read-Only`, …), as in the guide.
    pub fn label(self) -> &'static str {
        self.0.label()
    }

    /// What a token of this scope may do for an owner whose role is `role`:
    /// the lower of the two.
    pub fn cap(self, role: Role) -> Role {
        self.0.min(role)
    }

    /// True when a member whose role is `role` may give a token this scope.
    pub fn grantable_by(self, role: Role) -> bool {
        self.0 <= role
    }

    /// The least role that may give a token this scope.
    pub fn needs(self) -> Role {
        self.0
    }
}

impl FromStr for Scope {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        raw.parse::<Role>().map(Scope).map_err(|_| {
            ValidationError::new(format!(
                "Unknown scope {:?}: use admin, read-write or read-only.",
                raw.trim()
            ))
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ReadOnly, Role::ReadWrite, Role::Admin];

    /// The stored and machine-readable form (`read-only`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }

    /// The form people read (`Read-Only`, …), as in the guide.
    pub fn label(self) -> &'static str {
        match self {
            Role::ReadOnly => "Read-Only",
            Role::ReadWrite => "Read-Write",
            Role::Admin => "Admin",
        }
    }

    /// Only Read-Write and Admin members may create and use tokens.
    pub fn may_use_tokens(self) -> bool {
        self >= Role::ReadWrite
    }

    /// The scopes a member with this role may give a token, lowest first.
    pub fn grantable_scopes(self) -> Vec<Scope> {
        Role::ALL
            .into_iter()
            .map(Scope)
            .filter(|s| s.grantable_by(self))
            .collect()
    }

    /// The scope preselected in the generate dialog: the highest the member
    /// may have, but never Admin (an Admin token must be a deliberate choice).
    pub fn default_scope(self) -> Scope {
        Scope(self.min(Role::ReadWrite))
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim();
        Role::ALL
            .into_iter()
            .find(|r| {
                r.as_str().eq_ignore_ascii_case(wanted) || r.label().eq_ignore_ascii_case(wanted)
            })
            .ok_or_else(|| {
                ValidationError::new(format!(
                    "Unknown role {wanted:?}: use admin, read-write or read-only."
                ))
            })
    }
}

/// The stored form only, exactly as [`Role::as_str`] writes it: rows decode
/// their role columns through this, so a value edited by hand into something
/// else is an error, never quietly some role.
impl TryFrom<String> for Role {
    type Error = ValidationError;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == stored)
            .ok_or_else(|| ValidationError::new(format!("stored role {stored:?} is not a role")))
    }
}

impl TryFrom<String> for Scope {
    type Error = ValidationError;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        Role::try_from(stored)
            .map(Scope)
            .map_err(|e| ValidationError::new(e.0.replace("role", "scope")))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_both_spellings() {
        assert_eq!("read-write".parse::<Role>().unwrap(), Role::ReadWrite);
        assert_eq!("Read-Only".parse::<Role>().unwrap(), Role::ReadOnly);
        assert_eq!("ADMIN".parse::<Role>().unwrap(), Role::Admin);
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn scopes_never_exceed_the_role_and_never_default_to_admin() {
        assert_eq!(
            Role::ReadWrite.grantable_scopes(),
            vec![Scope::READ_ONLY, Scope::READ_WRITE]
        );
        assert_eq!(Role::Admin.default_scope(), Scope::READ_WRITE);
        assert_eq!(Role::ReadOnly.default_scope(), Scope::READ_ONLY);
        assert!(!Role::ReadOnly.may_use_tokens());
    }

    #[test]
    fn a_scope_caps_its_owners_role_and_never_lifts_it() {
        assert_eq!(Scope::ADMIN.cap(Role::ReadOnly), Role::ReadOnly);
        assert_eq!(Scope::READ_ONLY.cap(Role::Admin), Role::ReadOnly);
        assert_eq!(Scope::READ_WRITE.cap(Role::Admin), Role::ReadWrite);
        assert!("owner".parse::<Scope>().is_err());
        assert!(Scope::try_from("Admin".to_owned()).is_err());
        assert_eq!(Role::try_from("admin".to_owned()).unwrap(), Role::Admin);
        assert_eq!("Read-Write".parse::<Scope>().unwrap(), Scope::READ_WRITE);
    }
}
