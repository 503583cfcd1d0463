//! Password hashing with argon2id and OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1). Hashing takes tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on the async workers, and in at most `SLOTS` places
//! at a time.
//!
//! Each hash needs 19 MiB of working memory. Allocating it per check let the
//! allocator keep every freed block in some thread's arena, so a sign-in
//! flood grew the process by 19 MiB per check and never gave it back. Each
//! slot therefore owns one block buffer, made once and reused by every hash
//! that holds the slot: hashing memory is bounded by `SLOTS × 19 MiB`,
//! however many sign-ins arrive. Verifying parses the stored PHC string,
//! recomputes the hash into the slot's buffer and compares in constant time.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::domain::{NewPassword, Password};

/// At most this many hashes run at once: three 19 MiB buffers keep the
/// whole server well under 100 MiB. Fewer on a small machine: one core is
/// always left to the API and the pages, so a sign-in flood can not starve
/// them (two cores: one slot).
const MAX_SLOTS: usize = 3;
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const OUTPUT_LEN: usize = 32;

/// Raised when no hashing slot frees up in time; the caller answers "busy".
#[derive(Debug, thiserror::Error)]
#[error("the server is busy checking passwords")]
pub struct Busy;

type Blocks = Vec<Block>;

struct Slots {
    permits: tokio::sync::Semaphore,
    /// Buffers of the slots not in use; one is taken with each permit.
    buffers: Mutex<Vec<Blocks>>,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let count = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .saturating_sub(1)
            .clamp(1, MAX_SLOTS);
        Slots {
            permits: tokio::sync::Semaphore::new(count),
            buffers: Mutex::new(Vec::with_capacity(count)),
        }
    })
}

fn params() -> anyhow::Result<Params> {
    Params::new(M_COST, T_COST, 1, Some(OUTPUT_LEN))
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))
}

/// Runs `work` on the blocking pool with a slot and its block buffer.
async fn with_slot<T: Send + 'static>(
    work: impl FnOnce(&mut Blocks) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let slots = slots();
    let queued = crate::service::measure::HashQueued::enter();
    let _permit = tokio::time::timeout(Duration::from_secs(10), slots.permits.acquire())
        .await
        .map_err(|_| anyhow::Error::new(Busy))?
        .context("hashing slots closed")?;
    queued.served();
    // Holding a permit guarantees a buffer is free or may be made: there are
    // never more buffers than permits.
    let taken = slots.buffers.lock().ok().and_then(|mut free| free.pop());
    let (buffer, result) = tokio::task::spawn_blocking(move || {
        let mut buffer = taken.unwrap_or_else(|| vec![Block::new(); params_blocks()]);
        let result = work(&mut buffer);
        (buffer, result)
    })
    .await
    .context("password hashing task")?;
    if let Ok(mut free) = slots.buffers.lock() {
        free.push(buffer);
    }
    result
}

fn params_blocks() -> usize {
    params().map_or(M_COST as usize, |p| p.block_count())
}

pub async fn hash(password: &NewPassword) -> anyhow::Result<String> {
    let password = password.expose().to_owned();
    with_slot(move |blocks| hash_with(blocks, &password)).await
}

fn hash_with(blocks: &mut Blocks, password: &str) -> anyhow::Result<String> {
    let params = params()?;
    let salt = Salt::generate();
    let mut out = [0u8; OUTPUT_LEN];
    let needed = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            &mut blocks[..needed],
        )
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.into(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| anyhow::anyhow!("encoding argon2 parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// True when `password` hashes to the stored PHC string `stored`.
fn verify_with(blocks: &mut Blocks, stored: &str, password: &str) -> anyhow::Result<bool> {
    let phc = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str())
        .map_err(|e| anyhow::anyhow!("stored hash algorithm: {e}"))?;
    let version = match phc.version {
        Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("stored hash version: {e}"))?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc.params)
        .map_err(|e| anyhow::anyhow!("stored hash parameters: {e}"))?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        anyhow::bail!("the stored hash has no salt or no output");
    };
    let needed = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    let hashed = if needed <= blocks.len() {
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            &mut blocks[..needed],
        )
    } else {
        // A hash made with more memory than the slots hold (not one this
        // version writes): pay for it once rather than refuse the account.
        argon2.hash_password_into(password.as_bytes(), salt.as_ref(), &mut out)
    };
    if hashed.is_err() {
        // Over-long passwords and the like: not this password.
        return Ok(false);
    }
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).is_ok_and(|computed| computed == expected))
}

/// Verifies `password` against `stored`; with `None` (no such user) it
/// verifies against a fixed dummy hash, so an unknown email costs the same
/// time as a wrong password and sign-in does not reveal who has an account.
pub async fn verify(stored: Option<String>, password: &Password) -> anyhow::Result<bool> {
    let password = password.expose().to_owned();
    with_slot(move |blocks| {
        let dummy;
        let hash = match &stored {
            Some(hash) => hash.as_str(),
            None => {
                dummy = dummy_hash(blocks)?;
                dummy.as_str()
            }
        };
        let ok = verify_with(blocks, hash, &password)?;
        Ok(ok && stored.is_some())
    })
    .await
}

fn dummy_hash(blocks: &mut Blocks) -> anyhow::Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let hash = hash_with(blocks, "tollgate dummy password, never valid")?;
    Ok(DUMMY.get_or_init(|| hash).clone())
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let mut blocks = vec![Block::new(); params_blocks()];
        let hash = hash_with(&mut blocks, "correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_with(&mut blocks, &hash, "correct horse").unwrap());
        assert!(!verify_with(&mut blocks, &hash, "correct horsf").unwrap());
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_still_verify() {
        // Accounts hashed before the slot buffers existed.
        let params = Params::new(M_COST, T_COST, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let stored = argon2.hash_password(b"old password").unwrap().to_string();
        let mut blocks = vec![Block::new(); params_blocks()];
        assert!(verify_with(&mut blocks, &stored, "old password").unwrap());
        assert!(!verify_with(&mut blocks, &stored, "old passwore").unwrap());
        // Smaller parameters use part of the buffer.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let stored = small.hash_password(b"tiny").unwrap().to_string();
        assert!(verify_with(&mut blocks, &stored, "tiny").unwrap());
    }
}
