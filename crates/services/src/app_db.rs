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
    // 5: business context: verified queries (and the candidates feedback proposes) with their
    // lexical index, feedback on answers, which verified query an answer reused, and the index
    // of stored text values behind find_values
    "ALTER TABLE messages ADD COLUMN verified_query TEXT;
    CREATE TABLE verified_queries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        database TEXT NOT NULL,
        question TEXT NOT NULL,
        sql TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('candidate','verified')),
        source TEXT NOT NULL CHECK (source IN ('file','feedback','api')),
        verified_by TEXT,
        verified_at TEXT,
        onboarding INTEGER NOT NULL DEFAULT 0,
        proposed_by TEXT,
        message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX verified_queries_database ON verified_queries(database, status);
    CREATE INDEX verified_queries_message ON verified_queries(message_id);
    CREATE VIRTUAL TABLE verified_fts USING fts5(
        question, terms, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        rating TEXT NOT NULL CHECK (rating IN ('up','down')),
        comment TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (message_id, user)
    );
    CREATE TABLE value_index_state (
        database TEXT PRIMARY KEY,
        stamp INTEGER NOT NULL,
        value_count INTEGER NOT NULL,
        column_count INTEGER NOT NULL,
        built_at TEXT NOT NULL
    );
    CREATE VIRTUAL TABLE value_index USING fts5(
        value, database UNINDEXED, table_name UNINDEXED, column_name UNINDEXED,
        tokenize = 'trigram remove_diacritics 1'
    );",
    // 6: an answer keeps what its turn produced, as clients saw it: the queries with their
    // results (bounded) and the charts, so a stored thread renders like a live one
    "ALTER TABLE messages ADD COLUMN turn TEXT;",
];

/// The app database; cheap to clone. Reads use the pool; writes go to one writer thread
/// ([`AppDb::write`]) that commits whatever is queued together (group commit), so concurrent
/// turns never wait on SQLite's busy handler and a burst of writes costs one commit.
#[derive(Clone)]
pub struct AppDb {
    pool: Pool<SqliteConnectionManager>,
    writer: std::sync::mpsc::Sender<Job>,
}

/// A queued write: runs inside the batch's transaction (in its own savepoint) and returns how
/// to tell its caller, once the batch's commit succeeded or failed.
/// Given the error instead of a connection when the batch's transaction could not begin.
type Job = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// Writes committed together at most.
const WRITE_BATCH: usize = 256;

/// A copy of a commit error for each waiting caller (`rusqlite::Error` is not `Clone`).
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

fn writer_gone(what: &str) -> Error {
    Error::Io {
        path: "app database writer".into(),
        source: std::io::Error::other(format!("the writer thread {what}")),
    }
}

/// Runs a transaction-control statement the writer runs for every job or batch, parsed once.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_writer(conn: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut open = false;
        for job in batch {
            if !open {
                if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
                    job(Err(&e))(None);
                    continue;
                }
                open = true;
            }
            replies.push(job(Ok(&conn)));
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O error): the writes
                // before it in this batch are gone too; they fail, the rest start afresh
                let lost = rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("rolled back with a later write of the same batch".into()),
                );
                for reply in replies.drain(..) {
                    reply(Some(&lost));
                }
                open = false;
            }
        }
        if !open {
            continue;
        }
        let committed = run_cached(&conn, "COMMIT");
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.as_ref().err());
        }
    }
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
    // every turn runs a dozen distinct statements on the writer; keep them all parsed
    conn.set_prepared_statement_cache_capacity(64);
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
            // a connection to a local file does not go stale: no test query per checkout
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        let writer_conn = Connection::open(path)?;
        configure(&writer_conn, busy, max_pages)?;
        let (writer, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("app-db-writer".into())
            .spawn(move || run_writer(writer_conn, jobs))
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        log::info!("app database ready at {}", path.display());
        Ok(Self { pool, writer })
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

    /// Runs `work` on the writer connection, inside a transaction shared with the other writes
    /// queued at the same time (its own savepoint: a failing job rolls back alone). Answers once
    /// the batch is committed. `work` must not begin or end transactions.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let answer = self.submit(work)?;
        answer.await.map_err(|_| writer_gone("dropped a write"))?
    }

    /// [`AppDb::write`] for a thread outside the async runtime; blocks until committed.
    pub fn write_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let answer = self.submit(work)?;
        answer.blocking_recv().map_err(|_| writer_gone("dropped a write"))?
    }

    fn submit<T, F>(&self, work: F) -> Result<tokio::sync::oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let savepoint =
                conn.map_err(copy_error).and_then(|c| run_cached(c, "SAVEPOINT job").map(|()| c));
            let result = match savepoint {
                Err(e) => Err(Error::from(e)),
                Ok(conn) => match work(conn) {
                    Ok(value) => {
                        run_cached(conn, "RELEASE job").map(|()| value).map_err(Error::from)
                    }
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                        Err(e)
                    }
                },
            };
            Box::new(move |commit: Option<&rusqlite::Error>| {
                // a job's own failure says more than the batch's
                let result = match (result, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(e)) => Err(Error::from(copy_error(e))),
                    (ok, None) => ok,
                };
                let _ = done.send(result);
            })
        });
        self.writer.send(job).map_err(|_| writer_gone("has stopped"))?;
        Ok(answer)
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

    #[tokio::test]
    async fn concurrent_writes_are_committed_together_and_a_failure_stays_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
        let writes = (0..200).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| {
                    if i % 50 == 7 {
                        // fails after writing: its savepoint is rolled back, nobody else's
                        c.execute(
                            "INSERT INTO users(name, created_at) VALUES (?1, 'x')",
                            [format!("u{i}")],
                        )?;
                        c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                    } else {
                        c.execute(
                            "INSERT INTO users(name, created_at) VALUES (?1, 'x')",
                            [format!("u{i}")],
                        )?;
                    }
                    Ok(i)
                })
                .await
            })
        });
        let results = futures_util::future::join_all(writes).await;
        let failed = results.iter().filter(|r| r.as_ref().unwrap().is_err()).count();
        assert_eq!(failed, 4);
        let users: i64 = db
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM users WHERE name LIKE 'u%'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 196, "every write that succeeded is stored, no failed one is");
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
