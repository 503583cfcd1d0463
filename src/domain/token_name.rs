//! Token names: trimmed, 1–100 characters, no control characters.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(ValidationError::new("Enter a token name."));
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "The token name must be at most 100 characters long.",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "The token name can not contain control characters.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TokenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            TokenName::parse("  deploy bot ").unwrap().as_str(),
            "deploy bot"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse("a\u{7}b").is_err());
        assert!(TokenName::parse("line\nbreak").is_err());
        assert!(TokenName::parse(&"x".repeat(101)).is_err());
        assert!(TokenName::parse(&"é".repeat(100)).is_ok());
    }

    proptest! {
        #[test]
        fn parsed_names_always_hold_the_rules(raw in "\\PC{0,120}|[\\x00-\\x1f a-z]{0,20}") {
            if let Ok(name) = TokenName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!((1..=100).contains(&s.chars().count()));
                prop_assert!(!s.chars().any(char::is_control));
            }
        }
    }
}
