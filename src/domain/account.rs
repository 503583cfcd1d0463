//! Accounts are of two kinds: people (members, who sign in) and service
//! accounts (which belong to a workspace, never sign in, and hold tokens).

use super::{ValidationError, is_spoofing};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    Member,
    ServiceAccount,
}

impl AccountKind {
    /// The stored and machine-readable form.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Member => "member",
            AccountKind::ServiceAccount => "service_account",
        }
    }
}

/// Rows decode the `users.kind` column through this: anything but the two
/// stored forms is an error, never quietly one of the kinds.
impl TryFrom<String> for AccountKind {
    type Error = ValidationError;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        [AccountKind::Member, AccountKind::ServiceAccount]
            .into_iter()
            .find(|k| k.as_str() == stored)
            .ok_or_else(|| ValidationError::new(format!("stored kind {stored:?} is not a kind")))
    }
}

/// A service account's name: the rules of token names (trimmed, 1–100
/// characters, no control or invisible characters), with its own messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountName(String);

impl ServiceAccountName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(ValidationError::new(
                "Enter a name for the service account.",
            ));
        }
        if value.chars().count() > 100 {
            return Err(ValidationError::new(
                "The service account name must be at most 100 characters long.",
            ));
        }
        if value.chars().any(is_spoofing) {
            return Err(ValidationError::new(
                "The service account name can not contain control characters or invisible (zero-width, text-direction) characters.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceAccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_follow_the_token_name_rules() {
        assert_eq!(
            ServiceAccountName::parse("  deploy bot ").unwrap().as_str(),
            "deploy bot"
        );
        for bad in [
            "",
            "  ",
            "a\u{7}b",
            "evil\u{202E}txt",
            "zero\u{200B}width",
            &"x".repeat(101),
        ] {
            assert!(ServiceAccountName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ServiceAccountName::parse("デプロイ 🚀").is_ok());
    }

    #[test]
    fn kinds_read_back_and_unknown_ones_are_refused() {
        for kind in [AccountKind::Member, AccountKind::ServiceAccount] {
            assert_eq!(AccountKind::try_from(kind.as_str().to_owned()), Ok(kind));
        }
        assert!(AccountKind::try_from("Member".to_owned()).is_err());
        assert!(AccountKind::try_from(String::new()).is_err());
    }

    proptest! {
        #[test]
        fn parsed_names_always_hold_the_rules(raw in "\\PC{0,120}|[a-z\u{200B}-\u{200F}\u{202A}-\u{202E}\u{FEFF}\\x00-\\x1f]{0,20}") {
            if let Ok(name) = ServiceAccountName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!((1..=100).contains(&s.chars().count()));
                prop_assert!(!s.chars().any(is_spoofing));
            }
        }
    }
}
