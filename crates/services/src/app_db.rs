//! sqlmatic's own database: a WAL-mode SQLite file behind an r2d2 pool, migrated at start-up
//! with `PRAGMA user_version` steps.

use std::path::Path;
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::{DatabaseConfig, Error, Result};

/// Migrations in order; `user_version` records how many ran. Never edit a released step: add one.
const MIGRATIONS: &[&str] = &[
    // 1: users, threads, messages, memory summaries, query log
    "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    INSERT INTO users(name, is_admin, created_at) VALUES ('local', 1, strftime('%Y-%m-%dT%H:%M:%fZ','now'));
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        title TEXT NOT NULL,
        database TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX threads_owner_updated ON threads(owner, updated_at DESC);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system','user','assistant','tool')),
        content TEXT NOT NULL,
        tool_calls TEXT,
        status TEXT NOT NULL CHECK (status IN ('complete','pending','error','cancelled','interrupted')),
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_thread ON messages(thread_id, id);
    CREATE TABLE memory_summaries (
        thread_id TEXT PRIMARY KEY REFERENCES threads(id) ON DELETE CASCADE,
        summary TEXT NOT NULL,
        through_message_id INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE query_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        thread_id TEXT,
        database TEXT NOT NULL,
        source TEXT NOT NULL,
        sql TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error_code TEXT,
        rows INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX query_log_user ON query_log(user, id);",
    // 2: a turn's intermediate messages (assistant tool calls, tool results) hang under its answer
    "ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE;
    CREATE INDEX messages_parent ON messages(parent_id);",
    // 3: database grants, disabled users, per-user agent settings, API tokens (salted hashes only)
    "ALTER TABLE users ADD COLUMN databases TEXT;
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN agent_settings TEXT;
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX api_tokens_user ON api_tokens(user);",
    // 4: credential changes (revoke, rotate), so a running server ends what the old token opened
    "CREATE TABLE credential_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        at TEXT NOT NULL
    );",
];

/// The app database; cheap to clone.
#[derive(Clone)]
pub struct AppDb {
    pool: Pool<SqliteConnectionManager>,
}

impl std::fmt::Debug for AppDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppDb").finish_non_exhaustive()
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn configure(conn: &Connection, busy: Duration, max_pages: u64) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    if max_pages > 0 {
        // returns the resulting limit, so it is a query, not an update
        conn.query_row(&format!("PRAGMA max_page_count = {max_pages}"), [], |_| Ok(()))?;
    }
    Ok(())
}

impl AppDb {
    /// Opens (creating the file and its directory), switches to WAL and migrates. Blocking.
    pub fn open(config: &DatabaseConfig) -> Result<Self> {
        let path = &config.app_path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        }
        let busy = Duration::from_millis(config.busy_timeout_ms);
        {
            let conn = Connection::open(path)?;
            configure(&conn, busy, 0)?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                log::warn!("app database {} is in {mode} mode, not WAL", path.display());
            }
            migrate(&conn)?;
        }
        let max_pages = config.app_max_pages;
        let manager =
            SqliteConnectionManager::file(path).with_init(move |c| configure(c, busy, max_pages));
        let pool = Pool::builder()
            .max_size(config.app_pool_size)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        log::info!("app database ready at {}", path.display());
        Ok(Self { pool })
    }

    /// Opens a file for tests and tools.
    pub fn open_path(path: &Path) -> Result<Self> {
        Self::open(&DatabaseConfig { app_path: path.to_owned(), ..DatabaseConfig::default() })
    }

    /// A pooled connection. Blocking: use [`AppDb::run`] from async code.
    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }

    /// Runs blocking work on a pooled connection off the async executor.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await?
    }

    /// True when a connection answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<()> {
        self.run(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?.try_into().unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(Error::InvalidInput(format!(
            "the app database is at schema version {current}, newer than this sqlmatic ({}); \
             upgrade sqlmatic or use another app_path",
            MIGRATIONS.len()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {version}; COMMIT;"
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
        log::info!("app database migrated to version {version}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/app.db");
        let db = AppDb::open_path(&path).unwrap();
        let conn = db.conn().unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
        drop(conn);
        drop(db);
        AppDb::open_path(&path).unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 999").unwrap();
        let err = AppDb::open_path(&path).unwrap_err();
        assert!(err.to_string().contains("newer than this sqlmatic"), "{err}");
    }
}
