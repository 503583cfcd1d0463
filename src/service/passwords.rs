//! Password hashing with argon2id and OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1). Hashing takes tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on the async workers, and at most one per core at a
//! time: each hash takes 19 MiB, so a flood of sign-ins must queue rather
//! than take all the memory there is.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::domain::{NewPassword, Password};

/// Raised when no hashing slot frees up in time; the caller answers "busy".
#[derive(Debug, thiserror::Error)]
#[error("the server is busy checking passwords")]
pub struct Busy;

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn with_slot<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _slot = tokio::time::timeout(Duration::from_secs(10), slots.acquire())
        .await
        .map_err(|_| anyhow::Error::new(Busy))?
        .context("hashing slots closed")?;
    tokio::task::spawn_blocking(work)
        .await
        .context("password hashing task")?
}

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub async fn hash(password: &NewPassword) -> anyhow::Result<String> {
    let password = password.expose().to_owned();
    with_slot(move || hash_now(&password)).await
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let hash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Verifies `password` against `stored`; with `None` (no such user) it
/// verifies against a fixed dummy hash, so an unknown email costs the same
/// time as a wrong password and sign-in does not reveal who has an account.
pub async fn verify(stored: Option<String>, password: &Password) -> anyhow::Result<bool> {
    let password = password.expose().to_owned();
    with_slot(move || {
        let dummy;
        let hash = match &stored {
            Some(hash) => hash.as_str(),
            None => {
                dummy = dummy_hash()?;
                dummy.as_str()
            }
        };
        let ok = hasher()?.verify_password(password.as_bytes(), hash).is_ok();
        Ok(ok && stored.is_some())
    })
    .await
}

fn dummy_hash() -> anyhow::Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let hash = hash_now("tollgate dummy password, never valid")?;
    Ok(DUMMY.get_or_init(|| hash).clone())
}
