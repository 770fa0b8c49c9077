//! The query log: every SQL statement a tool ran (or refused), who ran it, where and how it ended.

use rusqlite::params;
use serde::Serialize;
use sqlmatic_tools::{QueryEvent, QueryObserver};

use crate::app_db::now;
use crate::{AppDb, Result};

/// The query log. Entries go to one writer thread that stores everything queued within
/// `LINGER` of the first in one transaction (group commit): logging costs a channel send on
/// the query's thread, not a transaction. Readers flush first, so they see every query that
/// finished; a crash loses at most the last few milliseconds of log lines.
#[derive(Clone, Debug)]
pub struct QueryLog {
    db: AppDb,
    writer: std::sync::mpsc::Sender<Command>,
}

#[derive(Debug)]
enum Command {
    Record(Entry),
    /// Answered once everything queued before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// An entry waiting for the writer.
#[derive(Debug)]
struct Entry {
    user: String,
    thread_id: Option<String>,
    database: String,
    source: String,
    sql: String,
    outcome: &'static str,
    error_code: Option<&'static str>,
    rows: i64,
    duration_ms: f64,
    created_at: String,
}

/// Entries stored per transaction at most (bounds one commit's latency).
const BATCH: usize = 512;
/// How long the writer gathers entries after the first before it commits (unless a reader is
/// waiting): one commit then serves the queries of several turns.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

fn write_batch(c: &rusqlite::Connection, entries: &[Entry]) -> Result<()> {
    let mut insert = c.prepare_cached(
        "INSERT INTO query_log(user, thread_id, database, source, sql, outcome, error_code, rows, duration_ms, created_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    )?;
    for e in entries {
        insert.execute(params![
            e.user,
            e.thread_id,
            e.database,
            e.source,
            e.sql,
            e.outcome,
            e.error_code,
            e.rows,
            e.duration_ms,
            e.created_at
        ])?;
    }
    Ok(())
}

fn run_writer(db: AppDb, commands: std::sync::mpsc::Receiver<Command>) {
    let mut entries = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    // blocks for the first command; after a first entry, sleeps through the linger (senders do
    // not wake it entry by entry), then takes everything queued
    while let Ok(first) = commands.recv() {
        let mut next = Some(first);
        let mut lingered = false;
        while let Some(command) = next.take() {
            match command {
                Command::Record(e) => entries.push(e),
                Command::Flush(done) => flushes.push(done),
            }
            if entries.len() >= BATCH {
                break;
            }
            next = commands.try_recv().ok();
            if next.is_none() && !lingered && flushes.is_empty() {
                std::thread::sleep(LINGER);
                lingered = true;
                next = commands.try_recv().ok();
            }
        }
        if !entries.is_empty() {
            // through the app database's single writer, blocking this thread until committed
            let batch = std::mem::take(&mut entries);
            let n = batch.len();
            let stored = db.write_blocking(move |c| write_batch(c, &batch));
            if let Err(e) = stored {
                // the queries already ran; losing their log lines must be loud, not fatal
                log::error!("could not write {n} query log entries: {e}");
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One row of the query log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryLogEntry {
    /// Its id.
    pub id: i64,
    /// Who ran it.
    pub user: String,
    /// The thread it ran for, if any.
    pub thread_id: Option<String>,
    /// The target database.
    pub database: String,
    /// `agent`, `api`, `mcp` or `context`.
    pub source: String,
    /// The statement.
    pub sql: String,
    /// `ok`, `blocked`, `failed` or `timed_out`.
    pub outcome: String,
    /// The registry code when it failed.
    pub error_code: Option<String>,
    /// Rows returned.
    pub rows: u64,
    /// How long it took.
    pub duration_ms: f64,
    /// When it ran (RFC 3339).
    pub created_at: String,
}

impl QueryLog {
    /// Starts the writer thread; it ends when the last clone of this log is dropped.
    pub fn new(db: AppDb) -> Self {
        let (writer, commands) = std::sync::mpsc::channel();
        let thread_db = db.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("query-log".into())
            .spawn(move || run_writer(thread_db, commands))
        {
            log::error!("cannot start the query log writer, queries will not be logged: {e}");
        }
        Self { db, writer }
    }

    /// Queues one query for the log. Never blocks on the database.
    pub fn record(&self, e: &QueryEvent<'_>) {
        let entry = Entry {
            user: e.user.to_owned(),
            thread_id: e.thread_id.map(|t| t.to_string()),
            database: e.database.to_owned(),
            source: e.source.to_owned(),
            sql: e.sql.to_owned(),
            outcome: e.outcome.as_str(),
            error_code: e.error_code,
            rows: i64::try_from(e.rows).unwrap_or(i64::MAX),
            duration_ms: e.elapsed_ms,
            created_at: now(),
        };
        if self.writer.send(Command::Record(entry)).is_err() {
            log::error!("the query log writer has stopped; a query was not logged");
        }
    }

    /// Waits until every entry queued so far is stored.
    pub async fn flush(&self) {
        let (done, stored) = tokio::sync::oneshot::channel();
        if self.writer.send(Command::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }

    /// The newest entries first; `user: None` means everyone's (admins).
    pub async fn recent(&self, user: Option<&str>, limit: u32) -> Result<Vec<QueryLogEntry>> {
        self.flush().await;
        let user = user.map(str::to_owned);
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, user, thread_id, database, source, sql, outcome, error_code, rows, duration_ms, created_at \
                     FROM query_log WHERE ?1 IS NULL OR user = ?1 ORDER BY id DESC LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![user, limit], |r| {
                    Ok(QueryLogEntry {
                        id: r.get(0)?,
                        user: r.get(1)?,
                        thread_id: r.get(2)?,
                        database: r.get(3)?,
                        source: r.get(4)?,
                        sql: r.get(5)?,
                        outcome: r.get(6)?,
                        error_code: r.get(7)?,
                        rows: r.get::<_, i64>(8)?.try_into().unwrap_or(0),
                        duration_ms: r.get(9)?,
                        created_at: r.get(10)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }
}

impl QueryObserver for QueryLog {
    fn on_query(&self, event: &QueryEvent<'_>) {
        self.record(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_from_many_threads_are_all_stored_and_readers_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = QueryLog::new(AppDb::open_path(&dir.path().join("app.db")).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        log.record(&QueryEvent {
                            database: "demo",
                            sql: &format!("SELECT {t}, {i}"),
                            user: "local",
                            thread_id: None,
                            source: "api",
                            outcome: sqlmatic_tools::QueryOutcome::Ok,
                            rows: 1,
                            elapsed_ms: 0.1,
                            error_code: None,
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let recent = log.recent(None, 1000).await.unwrap();
        assert_eq!(recent.len(), 1000, "every entry is stored before a reader reads");
        assert!(recent.iter().any(|e| e.sql == "SELECT 3, 249"));
    }
}
