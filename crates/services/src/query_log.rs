//! The query log: every SQL statement a tool ran (or refused), who ran it, where and how it ended.

use rusqlite::params;
use serde::Serialize;
use sqlmatic_tools::{QueryEvent, QueryObserver};

use crate::app_db::now;
use crate::{AppDb, Result};

#[derive(Clone, Debug)]
pub struct QueryLog {
    db: AppDb,
}

/// One row of the query log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryLogEntry {
    pub id: i64,
    pub user: String,
    pub thread_id: Option<String>,
    pub database: String,
    pub source: String,
    pub sql: String,
    pub outcome: String,
    pub error_code: Option<String>,
    pub rows: u64,
    pub duration_ms: f64,
    pub created_at: String,
}

impl QueryLog {
    pub fn new(db: AppDb) -> Self {
        Self { db }
    }

    /// Records one query. Blocking: called on the thread that ran the query.
    pub fn record(&self, e: &QueryEvent<'_>) -> Result<()> {
        let conn = self.db.conn()?;
        conn.prepare_cached(
            "INSERT INTO query_log(user, thread_id, database, source, sql, outcome, error_code, rows, duration_ms, created_at) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        )?
        .execute(params![
            e.user,
            e.thread_id.map(|t| t.to_string()),
            e.database,
            e.source,
            e.sql,
            e.outcome.as_str(),
            e.error_code,
            i64::try_from(e.rows).unwrap_or(i64::MAX),
            e.elapsed_ms,
            now()
        ])?;
        Ok(())
    }

    /// The newest entries first; `user: None` means everyone's (admins).
    pub async fn recent(&self, user: Option<&str>, limit: u32) -> Result<Vec<QueryLogEntry>> {
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
        // The query already ran; failing to log it must not fail the caller, but is loud.
        if let Err(e) = self.record(event) {
            log::error!("could not write the query log: {e}");
        }
    }
}
