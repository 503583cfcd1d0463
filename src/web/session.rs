//! The session store behind actix-session: state lives in the `sessions`
//! table, so sessions survive restarts and are shared by every instance that
//! shares the database. The table holds the SHA-256 of each session key and
//! the signed-in user's id (so that a password change can end every session
//! of that user).
//!
//! A row exists only while there is something to keep (a signed-in user, a
//! flash message, a token waiting to be shown once): actix-session saves no
//! empty new session, and the CSRF protection needs no stored state.

use std::collections::HashMap;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

use crate::clock::Clock;
use crate::domain::sha256_hex;
use crate::storage::{self, Db};

/// The session key under which the signed-in user's id is kept.
pub const USER_ID: &str = "user_id";

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl DbSessionStore {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// The unix second a session saved now with `ttl` expires at.
    fn expiry(&self, ttl: &Duration) -> i64 {
        self.clock.unix() + ttl.whole_seconds()
    }
}

type State = HashMap<String, String>;

fn user_of(state: &State) -> Option<i64> {
    state.get(USER_ID).and_then(|v| v.parse().ok())
}

fn new_key() -> Result<SessionKey, anyhow::Error> {
    SessionKey::try_from(Alphanumeric.sample_string(&mut rand::rng(), 64))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let digest = sha256_hex(key.as_ref());
        let stored = storage::sessions::load(self.db.pool(), &digest, self.clock.unix())
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        stored
            .map(|s| serde_json::from_str(&s).context("reading session state"))
            .transpose()
            .map_err(LoadError::Deserialization)
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let body = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let key = new_key().map_err(SaveError::Other)?;
        storage::sessions::insert(
            self.db.pool(),
            &sha256_hex(key.as_ref()),
            user_of(&state),
            &body,
            self.expiry(ttl),
        )
        .await
        .map_err(|e| SaveError::Other(e.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let body =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let digest = sha256_hex(key.as_ref());
        let changed = storage::sessions::update(
            self.db.pool(),
            &digest,
            user_of(&state),
            &body,
            self.expiry(ttl),
        )
        .await
        .map_err(|e| UpdateError::Other(e.into()))?;
        if changed == 1 {
            return Ok(key);
        }
        // The session was ended meanwhile (sign-out elsewhere, password
        // change): never bring it back. A fresh key with no row behind it
        // is an empty, signed-out session that stores nothing until it has
        // something to keep.
        new_key().map_err(UpdateError::Other)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        storage::sessions::update_expiry(
            self.db.pool(),
            &sha256_hex(key.as_ref()),
            self.expiry(ttl),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        storage::sessions::delete(self.db.pool(), &sha256_hex(key.as_ref())).await?;
        Ok(())
    }
}
