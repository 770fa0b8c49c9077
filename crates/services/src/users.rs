//! Users and their API tokens.
//!
//! A token is `sqm_<id>_<secret>`: `id` (public, 12 hex characters) finds the row, `secret` is
//! 32 random bytes. Only a salted SHA-256 of the secret is stored: the secret is high-entropy, so
//! a slow password hash would add latency to every request without adding strength. A token is
//! shown once, when issued.

use base64::Engine as _;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sqlmatic_models::Principal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::app_db::now;
use crate::{AppDb, Error, Result};
use sqlmatic_agent::AgentOverrides;

/// Users, their API tokens (salted hashes only) and stored agent settings.
#[derive(Clone, Debug)]
pub struct UserService {
    db: AppDb,
    /// Stored agent settings of the users read so far (every turn needs them; only
    /// [`UserService::set_agent_settings`] changes them). Users not found are not kept: the
    /// CLI may add them from another process.
    settings: Arc<Mutex<HashMap<String, Option<AgentOverrides>>>>,
}

/// A user as `sqlmatic user list` and `GET /api/users` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserInfo {
    /// The user's name.
    pub name: String,
    /// Admins manage users and see everyone's query log and metrics.
    pub admin: bool,
    /// Databases granted (`None`: all).
    pub databases: Option<Vec<String>>,
    /// A disabled user's tokens are refused.
    pub disabled: bool,
    /// Tokens not revoked.
    pub active_tokens: u64,
    /// When the user was added (RFC 3339).
    pub created_at: String,
}

const TOKEN_PREFIX: &str = "sqm_";

/// salt, hash, user name, admin, databases JSON, disabled
type TokenRow = (Vec<u8>, Vec<u8>, String, bool, Option<String>, bool);

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::InvalidInput("the system random generator failed".into()))?;
    Ok(buf)
}

fn hash(salt: &[u8], secret: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(salt.len() + secret.len());
    input.extend_from_slice(salt);
    input.extend_from_slice(secret.as_bytes());
    digest(&SHA256, &input).as_ref().to_vec()
}

/// Compares without an early exit, so timing tells nothing about where hashes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a user name: 1-64 characters of `a-z A-Z 0-9 _ - .`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "user name `{name}` must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'"
        )))
    }
}

/// Issues a token for `user` inside `tx`.
fn issue(c: &rusqlite::Connection, user: &str) -> Result<String> {
    let id = hex(&random_bytes::<6>()?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let salt = random_bytes::<16>()?;
    c.execute(
        "INSERT INTO api_tokens(id, user, salt, hash, created_at) VALUES (?1,?2,?3,?4,?5)",
        params![id, user, salt.to_vec(), hash(&salt, &secret), now()],
    )?;
    Ok(format!("{TOKEN_PREFIX}{id}_{secret}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl UserService {
    /// Over the app database.
    pub fn new(db: AppDb) -> Self {
        Self { db, settings: Arc::default() }
    }

    /// Creates a user and returns its first token (shown once). Blocking.
    pub fn add(&self, name: &str, admin: bool, databases: Option<Vec<String>>) -> Result<String> {
        validate_name(name)?;
        let mut conn = self.db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool =
            tx.query_row("SELECT count(*) FROM users WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })? > 0;
        if exists {
            return Err(Error::InvalidInput(format!(
                "user `{name}` already exists; use `user rotate` for a new token"
            )));
        }
        let dbs = databases.map(|d| serde_json::to_string(&d).unwrap_or_default());
        tx.execute(
            "INSERT INTO users(name, is_admin, databases, created_at) VALUES (?1,?2,?3,?4)",
            params![name, admin, dbs, now()],
        )?;
        let token = issue(&tx, name)?;
        tx.commit()?;
        log::info!("user `{name}` added (admin: {admin})");
        Ok(token)
    }

    /// Revokes every token of a user and disables it. Blocking.
    pub fn revoke(&self, name: &str) -> Result<usize> {
        let mut conn = self.db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute("UPDATE users SET disabled = 1 WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::NotFound { what: "user" });
        }
        let revoked = tx.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE user = ?2 AND revoked_at IS NULL",
            params![now(), name],
        )?;
        tx.execute(
            "INSERT INTO credential_events(user, at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        tx.commit()?;
        log::info!("user `{name}` revoked ({revoked} token(s))");
        Ok(revoked)
    }

    /// Revokes a user's tokens and issues a new one (re-enabling the user). Blocking.
    pub fn rotate(&self, name: &str) -> Result<String> {
        let mut conn = self.db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute("UPDATE users SET disabled = 0 WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::NotFound { what: "user" });
        }
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE user = ?2 AND revoked_at IS NULL",
            params![now(), name],
        )?;
        let token = issue(&tx, name)?;
        tx.execute(
            "INSERT INTO credential_events(user, at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        tx.commit()?;
        log::info!("user `{name}` token rotated");
        Ok(token)
    }

    /// Every user. Blocking.
    pub fn list(&self) -> Result<Vec<UserInfo>> {
        let conn = self.db.conn()?;
        let mut stmt = conn.prepare(
            "SELECT u.name, u.is_admin, u.databases, u.disabled, u.created_at, \
             (SELECT count(*) FROM api_tokens t WHERE t.user = u.name AND t.revoked_at IS NULL) FROM users u ORDER BY u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            let dbs: Option<String> = r.get(2)?;
            Ok(UserInfo {
                name: r.get(0)?,
                admin: r.get(1)?,
                databases: dbs.and_then(|d| serde_json::from_str(&d).ok()),
                disabled: r.get(3)?,
                created_at: r.get(4)?,
                active_tokens: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The user a token belongs to, if the token is valid and the user enabled.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        let Some((id, secret)) = token.strip_prefix(TOKEN_PREFIX).and_then(|t| t.split_once('_'))
        else {
            return Ok(None);
        };
        if id.len() != 12 || secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let (id, secret) = (id.to_owned(), secret.to_owned());
        self.db
            .run(move |c| {
                let row: Option<TokenRow> = c
                    .prepare_cached(
                        "SELECT t.salt, t.hash, u.name, u.is_admin, u.databases, u.disabled FROM api_tokens t \
                         JOIN users u ON u.name = t.user WHERE t.id = ?1 AND t.revoked_at IS NULL",
                    )?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                    .optional()?;
                let Some((salt, stored, name, admin, dbs, disabled)) = row else { return Ok(None) };
                if disabled || !constant_time_eq(&hash(&salt, &secret), &stored) {
                    return Ok(None);
                }
                Ok(Some(Principal { name, admin, databases: dbs.and_then(|d| serde_json::from_str(&d).ok()) }))
            })
            .await
    }

    /// Users whose credentials changed (revoked, rotated) after event `after`, and the last
    /// event's id. Cheap when nothing changed: one indexed read.
    pub async fn credential_changes(&self, after: i64) -> Result<(Vec<String>, i64)> {
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, user FROM credential_events WHERE id > ?1 ORDER BY id",
                )?;
                let rows = stmt
                    .query_map([after], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let last = rows.last().map_or(after, |(id, _)| *id);
                let mut users: Vec<String> = rows.into_iter().map(|(_, u)| u).collect();
                users.dedup();
                Ok((users, last))
            })
            .await
    }

    /// The user's stored agent settings, if any.
    pub async fn agent_settings(&self, name: &str) -> Result<Option<AgentOverrides>> {
        if let Some(known) = self.settings.lock().unwrap_or_else(PoisonError::into_inner).get(name)
        {
            return Ok(known.clone());
        }
        let name = name.to_owned();
        let key = name.clone();
        let stored = self
            .db
            .run(move |c| {
                let row: Option<Option<String>> = c
                    .query_row("SELECT agent_settings FROM users WHERE name = ?1", [&name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                match row {
                    None => Err(Error::NotFound { what: "user" }),
                    Some(s) => Ok(s.and_then(|s| serde_json::from_str(&s).ok())),
                }
            })
            .await?;
        // a `set_agent_settings` that finished while this read ran keeps its newer value
        let mut known = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(known.entry(key).or_insert(stored).clone())
    }

    /// Stores the user's agent settings (they override the configuration's).
    pub async fn set_agent_settings(&self, name: &str, settings: &AgentOverrides) -> Result<()> {
        let (key, json) = (name.to_owned(), serde_json::to_string(settings).unwrap_or_default());
        // exactly what the next read of the row would give
        let stored: Option<AgentOverrides> = serde_json::from_str(&json).ok();
        let name = key.clone();
        self.db
            .run(move |c| {
                let n = c.execute(
                    "UPDATE users SET agent_settings = ?1 WHERE name = ?2",
                    params![json, name],
                )?;
                if n == 0 { Err(Error::NotFound { what: "user" }) } else { Ok(()) }
            })
            .await?;
        self.settings.lock().unwrap_or_else(PoisonError::into_inner).insert(key, stored);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (tempfile::TempDir, UserService) {
        let dir = tempfile::tempdir().unwrap();
        let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
        (dir, UserService::new(db))
    }

    #[tokio::test]
    async fn tokens_authenticate_until_revoked_and_rotate() {
        let (_dir, users) = service();
        let token = users.add("alice", false, Some(vec!["demo".into()])).unwrap();
        assert!(token.starts_with("sqm_"));
        let p = users.authenticate(&token).await.unwrap().unwrap();
        assert_eq!(
            p,
            Principal { name: "alice".into(), admin: false, databases: Some(vec!["demo".into()]) }
        );
        assert!(users.authenticate(&format!("{token}x")).await.unwrap().is_none());
        assert!(users.authenticate("sqm_000000000000_nope").await.unwrap().is_none());
        assert!(users.authenticate("garbage").await.unwrap().is_none());
        let new = users.rotate("alice").unwrap();
        assert!(users.authenticate(&token).await.unwrap().is_none(), "the old token is revoked");
        assert!(users.authenticate(&new).await.unwrap().is_some());
        users.revoke("alice").unwrap();
        assert!(users.authenticate(&new).await.unwrap().is_none());
        assert!(users.add("alice", false, None).is_err(), "names are unique");
        assert!(users.add("bad name", false, None).is_err());
        let list = users.list().unwrap();
        let alice = list.iter().find(|u| u.name == "alice").unwrap();
        assert!(alice.disabled);
        assert_eq!(alice.active_tokens, 0);
    }

    #[tokio::test]
    async fn only_a_salted_hash_is_stored() {
        let (_dir, users) = service();
        let token = users.add("bob", true, None).unwrap();
        let secret = token.strip_prefix("sqm_").unwrap().split_once('_').unwrap().1.to_owned();
        let conn = users.db.conn().unwrap();
        let (salt, stored): (Vec<u8>, Vec<u8>) = conn
            .query_row("SELECT salt, hash FROM api_tokens", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(stored, hash(&salt, &secret));
        let dump: String = conn
            .query_row("SELECT group_concat(quote(salt) || quote(hash)) FROM api_tokens", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!dump.contains(&secret));
    }

    #[tokio::test]
    async fn agent_settings_are_read_once_and_follow_their_writes() {
        let (_dir, users) = service();
        users.add("carol", false, None).unwrap();
        assert_eq!(users.agent_settings("carol").await.unwrap(), None);
        let set = AgentOverrides { model: Some("m2".into()), ..AgentOverrides::default() };
        users.set_agent_settings("carol", &set).await.unwrap();
        assert_eq!(users.agent_settings("carol").await.unwrap(), Some(set.clone()));
        // a second service over the same file reads the stored row: the cache matches it
        let fresh = UserService::new(users.db.clone());
        assert_eq!(fresh.agent_settings("carol").await.unwrap(), Some(set.clone()));
        // read once: a row changed behind the service's back is not read again
        users.db.conn().unwrap().execute("UPDATE users SET agent_settings = NULL", []).unwrap();
        assert_eq!(users.agent_settings("carol").await.unwrap(), Some(set));
        // a missing user is not remembered: added later (the CLI, another process), it is found
        assert!(matches!(users.agent_settings("dave").await, Err(Error::NotFound { .. })));
        users.add("dave", false, None).unwrap();
        assert_eq!(users.agent_settings("dave").await.unwrap(), None);
        assert!(users.set_agent_settings("nobody", &AgentOverrides::default()).await.is_err());
        assert!(matches!(users.agent_settings("nobody").await, Err(Error::NotFound { .. })));
    }
}
