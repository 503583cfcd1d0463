//! The token format and its digest.
//!
//! A token is `tgp_` + 32 random base62 characters + 6 base62 characters of
//! the CRC32 of everything before them (GitHub's scheme). The checksum lets
//! secret scanners recognise our tokens and lets the server refuse typos and
//! garbage before it touches the database.
//!
//! Only a SHA-256 digest of a token is ever stored. The secret carries about
//! 190 bits of entropy from a CSPRNG, so a fast hash is as safe as a slow one
//! here: there is nothing to brute-force. Slow hashes (argon2, PBKDF2) are
//! for low-entropy passwords and would only slow every API request down.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use super::ValidationError;

const PREFIX: &str = "tgp_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The plaintext of a token. It exists only while a token is being issued or
/// checked; `Debug` prints `tgp_…last4`, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

/// The hex SHA-256 digest of a token: what the database stores and indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(String);

impl PlainToken {
    pub const LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

    /// A fresh token from the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        let mut value = String::with_capacity(Self::LEN);
        value.push_str(PREFIX);
        value.push_str(&Alphanumeric.sample_string(&mut rand::rng(), RANDOM_LEN));
        let checksum = checksum(&value);
        value.push_str(&checksum);
        Self(value)
    }

    /// Checks the shape and checksum only; whether the token exists is the
    /// database's business.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("This is not a Tollgate token.");
        if raw.len() != Self::LEN || !raw.starts_with(PREFIX) {
            return Err(invalid());
        }
        let body = &raw[PREFIX.len()..];
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid());
        }
        let (head, sum) = raw.split_at(Self::LEN - CHECKSUM_LEN);
        if checksum(head) != sum {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[Self::LEN - 4..]
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}…{}", self.last4())
    }
}

impl TokenDigest {
    fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// A digest read back from the database.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the list shows a token: its prefix and its last four characters.
pub fn display_hint(last4: &str) -> String {
    format!("{PREFIX}…{last4}")
}

/// SHA-256 of any secret (session keys, invitation codes), as hex.
pub fn sha256_hex(secret: &str) -> String {
    TokenDigest::of(secret).0
}

fn checksum(head: &str) -> String {
    let mut n = crc32fast::hash(head.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = PlainToken::generate();
        let s = token.expose();
        assert_eq!(s.len(), 42);
        assert!(s.starts_with("tgp_"));
        assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(PlainToken::parse(s).unwrap(), token);
    }

    #[test]
    fn generated_tokens_differ() {
        assert_ne!(PlainToken::generate(), PlainToken::generate());
    }

    #[test]
    fn a_single_typo_is_caught_by_the_checksum() {
        let token = PlainToken::generate();
        let mut bytes = token.expose().as_bytes().to_vec();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert!(PlainToken::parse(&typo).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "tgp_",
            "ghp_0123456789abcdefghijklmnopqrstuv012345",
            "tgp_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "tgp_ääääääääääääääääääää",
        ] {
            assert!(PlainToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_only_the_hint() {
        let token = PlainToken::generate();
        let shown = format!("{token:?}");
        assert_eq!(shown, format!("tgp_…{}", token.last4()));
        assert!(!shown.contains(&token.expose()[4..36]));
    }

    #[test]
    fn digest_is_hex_sha256() {
        let token = PlainToken::parse(&{
            let head = format!("tgp_{}", "a".repeat(32));
            let sum = checksum(&head);
            format!("{head}{sum}")
        })
        .unwrap();
        assert_eq!(token.digest().as_str().len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        #[test]
        fn any_body_with_its_checksum_parses(body in "[0-9A-Za-z]{32}") {
            let head = format!("tgp_{body}");
            let token = format!("{head}{}", checksum(&head));
            prop_assert!(PlainToken::parse(&token).is_ok());
        }

        #[test]
        fn random_strings_never_parse(raw in "\\PC{0,60}") {
            // A random string passes only with a matching checksum (1 in 2^32).
            prop_assume!(!(raw.len() == 42 && raw.starts_with("tgp_")));
            prop_assert!(PlainToken::parse(&raw).is_err());
        }

        #[test]
        fn a_changed_character_is_detected(body in "[0-9A-Za-z]{32}", pos in 4usize..42, replacement in "[0-9A-Za-z]") {
            let head = format!("tgp_{body}");
            let token = format!("{head}{}", checksum(&head));
            let mut bytes = token.clone().into_bytes();
            prop_assume!(bytes[pos] != replacement.as_bytes()[0]);
            bytes[pos] = replacement.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(PlainToken::parse(&changed).is_err());
        }
    }
}
