//! Passwords in memory. `Debug` never prints them.

use super::ValidationError;

/// A password as typed at sign-in: anything non-empty, bounded so that a huge
/// body can not make the server hash megabytes.
#[derive(Clone)]
pub struct Password(String);

/// A password someone is choosing: at least 8 characters (NIST SP 800-63B).
#[derive(Clone)]
pub struct NewPassword(String);

const MAX_LEN: usize = 1024;

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("Enter your password."));
        }
        if raw.len() > MAX_LEN {
            return Err(ValidationError::new("That password is too long."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.trim().is_empty() {
            return Err(ValidationError::new("The password can not be empty."));
        }
        if raw.chars().count() < 8 {
            return Err(ValidationError::new(
                "The password must be at least 8 characters long.",
            ));
        }
        if raw.len() > MAX_LEN {
            return Err(ValidationError::new(
                "The password must be at most 1024 bytes long.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_password() {
        let p = Password::parse("hunter2-secret").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let n = NewPassword::parse("hunter2-secret").unwrap();
        assert!(!format!("{n:?}").contains("hunter2"));
    }

    #[test]
    fn new_passwords_must_be_long_enough() {
        assert!(NewPassword::parse("").is_err());
        assert!(NewPassword::parse("       ").is_err());
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("long enough").is_ok());
    }
}
