//! Roles of members and scopes of tokens. Both use the same three ordered
//! levels: a token's scope is a ceiling expressed in the words of roles, and
//! what a token may do is the lower of its scope and its owner's current role.

use std::str::FromStr;

use super::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

/// A token's scope: see the module comment for why it is the same type.
pub type Scope = Role;

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
        Role::ALL.into_iter().filter(|s| *s <= self).collect()
    }

    /// The scope preselected in the generate dialog: the highest the member
    /// may have, but never Admin (an Admin token must be a deliberate choice).
    pub fn default_scope(self) -> Scope {
        self.min(Role::ReadWrite)
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
            vec![Role::ReadOnly, Role::ReadWrite]
        );
        assert_eq!(Role::Admin.default_scope(), Role::ReadWrite);
        assert_eq!(Role::ReadOnly.default_scope(), Role::ReadOnly);
        assert!(!Role::ReadOnly.may_use_tokens());
    }
}
