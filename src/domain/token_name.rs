//! Token names: trimmed, 1–100 characters, no control characters and no
//! invisible or direction-changing ones. Also the rule every other name
//! (people, organizations, workspaces) follows: `is_spoofing`.

use super::ValidationError;

/// Control characters (Cc), line and paragraph separators, and the Unicode
/// format characters (Cf): bidi overrides and isolates (U+202A–202E,
/// U+2066–2069, U+200E/F, U+061C), zero-width characters (U+200B–200D,
/// U+2060–2064, U+FEFF), the soft hyphen and the like. They render as
/// nothing or reorder what follows, so a name holding one can pass for
/// another (`evil\u{202E}txt.exe` shows as `evilexe.txt`). The table is the
/// whole Cf category of Unicode 16, small and stable enough to keep here.
pub fn is_spoofing(c: char) -> bool {
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x2028, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let code = c as u32;
    c.is_control() || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

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
        if value.chars().any(is_spoofing) {
            return Err(ValidationError::new(
                "The token name can not contain control characters or invisible (zero-width, text-direction) characters.",
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
        for spoof in [
            "evil\u{202E}txt.exe",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "a\u{2066}b",
            "a\u{200F}b",
            "a\u{E0041}b",
        ] {
            assert!(TokenName::parse(spoof).is_err(), "{spoof:?}");
        }
        // Letters of every script, emoji and their joiners' neighbours are fine.
        for fine in ["déploiement", "デプロイ", "نشر", "ci 🚀", "Ünïcödé"] {
            assert!(TokenName::parse(fine).is_ok(), "{fine:?}");
        }
    }

    proptest! {
        #[test]
        fn parsed_names_always_hold_the_rules(raw in "\\PC{0,120}|[\\x00-\\x1f a-z]{0,20}|[a-z\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}\u{FEFF}]{0,20}") {
            if let Ok(name) = TokenName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!((1..=100).contains(&s.chars().count()));
                prop_assert!(!s.chars().any(is_spoofing));
            }
        }
    }
}
