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
        if checksum_bytes(head) != sum.as_bytes() {
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
        let digest = Sha256::digest(secret.as_bytes());
        // Checked on every API request: `hex` writes into a buffer on the
        // stack, one allocation for the string, instead of `hex::encode`'s
        // char-by-char collect.
        let mut out = [0u8; 64];
        hex::encode_to_slice(digest, &mut out).expect("a SHA-256 digest is 64 hex digits");
        let hex = std::str::from_utf8(&out).expect("hex digits are ASCII");
        Self(hex.to_owned())
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
    checksum_bytes(head).iter().map(|&b| b as char).collect()
}

/// The checksum as bytes: checked on every API request, so no allocation.
fn checksum_bytes(head: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(head.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
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
            // Nothing is discarded: a string of the right shape passes only
            // with a matching checksum, one chance in 2^32.
            prop_assert!(PlainToken::parse(&raw).is_err());
        }

        /// The right prefix, the right length, base62 throughout: only the
        /// checksum decides. A random one is right about once in 2^32.
        #[test]
        fn well_shaped_tokens_parse_exactly_when_their_checksum_matches(
            body in "[0-9A-Za-z]{32}",
            sum in "[0-9A-Za-z]{6}",
        ) {
            let head = format!("tgp_{body}");
            let raw = format!("{head}{sum}");
            prop_assert_eq!(raw.len(), PlainToken::LEN);
            prop_assert_eq!(PlainToken::parse(&raw).is_ok(), checksum(&head) == sum);
        }

        /// Any byte string at all, valid UTF-8 or not, shaped like a token
        /// or not: parsing never panics and accepts only the exact format.
        #[test]
        fn arbitrary_bytes_never_panic(
            prefix in prop::sample::select(vec!["", "tgp_", "tgp", "TGP_", "ghp_"]),
            bytes in prop::collection::vec(any::<u8>(), 0..50),
        ) {
            let mut raw = prefix.as_bytes().to_vec();
            raw.extend(bytes);
            let text = String::from_utf8_lossy(&raw);
            if let Ok(token) = PlainToken::parse(&text) {
                prop_assert_eq!(token.expose(), &*text);
                prop_assert!(text.starts_with(PREFIX) && text.len() == PlainToken::LEN);
            }
        }

        /// One character changed anywhere (to any other base62 character, or
        /// to any other byte) is always caught: CRC32 detects every error
        /// within 32 bits, and the base62 form of a CRC is one-to-one.
        #[test]
        fn a_changed_character_is_detected(
            body in "[0-9A-Za-z]{32}",
            pos in 0usize..PlainToken::LEN,
            shift in 1usize..BASE62.len(),
            other in any::<u8>(),
            use_any_byte in any::<bool>(),
        ) {
            let head = format!("tgp_{body}");
            let token = format!("{head}{}", checksum(&head));
            let mut bytes = token.clone().into_bytes();
            let original = bytes[pos];
            bytes[pos] = if use_any_byte && other != original {
                other
            } else {
                // Another base62 character, never the original one.
                let index = BASE62.iter().position(|&b| b == original).unwrap_or(0);
                let replacement = BASE62[(index + shift) % BASE62.len()];
                if replacement == original { BASE62[(index + 1) % BASE62.len()] } else { replacement }
            };
            prop_assert_ne!(bytes[pos], original);
            let changed = String::from_utf8_lossy(&bytes);
            prop_assert!(PlainToken::parse(&changed).is_err(), "{changed}");
        }
    }
}
