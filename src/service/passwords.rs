//! Password hashing with argon2id and OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1). Hashing takes tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on the async workers.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::domain::{NewPassword, Password};

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub async fn hash(password: &NewPassword) -> anyhow::Result<String> {
    let password = password.expose().to_owned();
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .context("password hashing task")?
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
    tokio::task::spawn_blocking(move || {
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
    .context("password verification task")?
}

fn dummy_hash() -> anyhow::Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let hash = hash_now("tollgate dummy password, never valid")?;
    Ok(DUMMY.get_or_init(|| hash).clone())
}
