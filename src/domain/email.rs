//! Email addresses, normalised to lower case so that uniqueness and sign-in
//! compare them case-insensitively.
//!
//! Only ASCII addresses are accepted. Non-ASCII letters would make
//! look-alike accounts possible (`аdmin@` with a Cyrillic `а` beside
//! `admin@`) and lower-casing them is locale-dependent; an international
//! domain is entered in its ASCII (`xn--`) form.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim().to_lowercase();
        let invalid =
            || ValidationError::new("Enter a valid email address, like name@example.com.");
        if value.is_empty() || value.len() > 254 {
            return Err(invalid());
        }
        if !value.is_ascii() {
            return Err(ValidationError::new(
                "Enter the email address in plain ASCII letters; for an international domain, use its xn-- form.",
            ));
        }
        // Besides whitespace, refuse characters that would change the
        // meaning of a `mailto:` link or a header the address ends up in.
        if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?&#%/\\,;:<>\"()[]".contains(c))
        {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "a?cc=eve@evil.example",
            "a&b@example.com",
            "a,b@example.com",
            "<a>@example.com",
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@example..com",
            "ada@.example.com",
            "аdmin@example.com",
            "ada@exämple.com",
            "ada\u{200B}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
