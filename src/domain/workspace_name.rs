//! Workspace names: trimmed, 1–100 characters, no control or invisible
//! characters (the rule of every name, see `is_spoofing`).

use super::{ValidationError, is_spoofing};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        if value.is_empty() || value.chars().count() > 100 || value.chars().any(is_spoofing) {
            return Err(ValidationError::new(
                "The workspace name must be 1 to 100 characters, without control characters or invisible (zero-width, text-direction) characters.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names_are_trimmed_and_checked() {
        assert_eq!(WorkspaceName::parse(" Ops ").unwrap().as_str(), "Ops");
        for bad in ["", "   ", "a\u{7}b", "a\u{202E}b", &"w".repeat(101)] {
            assert!(WorkspaceName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(WorkspaceName::parse(&"é".repeat(100)).is_ok());
    }
}
