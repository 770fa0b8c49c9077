//! A target database as every layer above sees it, whatever its engine: its configuration
//! ([`TargetSpec`]), what is the same for every engine (per-user query slots, logging, the
//! query log and metrics through [`QueryObserver`]), and the [`Engine`] that does the rest.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlmatic_models::{
    DatabaseMetadata, DatabaseSchema, DatabaseSummary, QueryParams, QueryResult, SqlQuery,
    TableSummary, ThreadId,
};
use tokio::sync::Semaphore;

use crate::engine::{
    Dialect, Engine, OpenMode, postgres::PostgresDatabase, sqlite::SqliteDatabase,
};
use crate::{QueryLimits, ToolError, ToolErrorCode, ToolsConfig, WriteOutput, sandbox};

/// Descriptions an operator gives a table and its columns; the schema tool returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableDescription {
    /// What the table holds, for the model.
    pub description: Option<String>,
    /// Column descriptions by name.
    pub columns: BTreeMap<String, String>,
}

/// One entry of `database.targets` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The name clients and the model use.
    pub name: String,
    /// A SQLite file (one of `path` and `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A PostgreSQL server: `postgres://user[:password]@host:port/dbname[?sslmode=…]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name of an environment variable holding the PostgreSQL password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The PostgreSQL password, set from `SQLMATIC_DATABASE__TARGETS__<N>__PASSWORD` by the
    /// configuration loader (never written out).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// PostgreSQL schemas to show and query (default: every schema the role can read, except
    /// the system ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// PostgreSQL: start even when the role could write or escape the sandbox (superuser,
    /// `pg_read_server_files`, write privileges…). Only the SQL parser then stands between
    /// the model and the data; a loud warning is logged.
    #[serde(default)]
    pub allow_privileged_role: bool,
    /// Queries always run read-only; `false` is reserved for approved writes.
    #[serde(default = "yes")]
    pub read_only: bool,
    /// The database used when none is named.
    #[serde(default)]
    pub default: bool,
    /// What the database holds, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// Table descriptions by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableDescription>,
    /// `table.column`s (PostgreSQL: also `schema.table.column`) the model never reads: SQLite
    /// returns NULL for them; PostgreSQL must deny the role their `SELECT` privilege (checked
    /// at start-up). The schema marks them `masked`.
    #[serde(default)]
    pub masked_columns: Vec<String>,
    /// The business-context file (`docs/context.md`): descriptions, synonyms, metrics, rules and
    /// verified queries, reloaded when it changes.
    #[serde(default)]
    pub context: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl TargetSpec {
    /// A read-only target named `name` over the SQLite file at `path`, with nothing else set.
    pub fn read_only(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: Some(path.into()),
            url: None,
            password_env: None,
            password: None,
            schemas: Vec::new(),
            allow_privileged_role: false,
            read_only: true,
            default: false,
            description: None,
            tables: BTreeMap::new(),
            masked_columns: Vec::new(),
            context: None,
        }
    }

    /// Checks the name and the masked columns; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "database.targets: name `{}` must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                self.name
            ));
        }
        let parts = match (&self.path, &self.url) {
            (Some(p), None) if !p.as_os_str().is_empty() => 2..=2,
            (None, Some(u)) => {
                crate::engine::postgres::parse_url(u)
                    .map_err(|e| format!("database.targets[{}].url: {e}", self.name))?;
                2..=3
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "database.targets[{}]: give either `path` (SQLite) or `url` (PostgreSQL), not both",
                    self.name
                ));
            }
            _ => {
                return Err(format!(
                    "database.targets[{}]: give `path` (a SQLite file) or `url` (postgres://…)",
                    self.name
                ));
            }
        };
        if let Some(bad) = self
            .masked_columns
            .iter()
            .find(|c| !parts.contains(&c.split('.').filter(|p| !p.is_empty()).count()))
        {
            let shape = if *parts.end() == 3 {
                "table.column or schema.table.column"
            } else {
                "table.column"
            };
            return Err(format!(
                "database.targets[{}].masked_columns: `{bad}` must be {shape}",
                self.name
            ));
        }
        if self.url.is_none() && (!self.schemas.is_empty() || self.password_env.is_some()) {
            return Err(format!(
                "database.targets[{}]: `schemas` and `password_env` are for PostgreSQL targets (`url`)",
                self.name
            ));
        }
        Ok(())
    }

    /// `read_only` targets accept no writes; the error says where that is configured.
    pub fn refuse_writes_if_read_only(&self) -> Result<(), ToolError> {
        if self.read_only {
            return Err(ToolError::new(
                ToolErrorCode::ReadOnly,
                format!(
                    "database `{}` is read-only; it accepts no writes (database.targets[].read_only)",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The masked columns as lower-case (table, column) pairs (SQLite).
    pub fn mask_set(&self) -> sandbox::MaskSet {
        std::sync::Arc::new(
            self.masked_columns
                .iter()
                .filter_map(|c| c.split_once('.'))
                .map(|(t, c)| (t.trim().to_ascii_lowercase(), c.trim().to_ascii_lowercase()))
                .collect(),
        )
    }
}

/// How a query ended, for the query log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// It ran.
    Ok,
    /// The sandbox refused it.
    Blocked,
    /// SQLite rejected it.
    Failed,
    /// It ran past its time limit.
    TimedOut,
}

impl QueryOutcome {
    /// The outcome's name in the query log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
        }
    }

    fn of(result: &Result<QueryResult, ToolError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e)
                if matches!(e.code, ToolErrorCode::ReadOnly | ToolErrorCode::QueryTooExpensive) =>
            {
                Self::Blocked
            }
            Err(e) if e.code == ToolErrorCode::QueryTimeout => Self::TimedOut,
            Err(_) => Self::Failed,
        }
    }
}

/// One SQL statement a tool ran (or refused), as observers see it.
#[derive(Debug, Clone)]
pub struct QueryEvent<'a> {
    /// The target database's name.
    pub database: &'a str,
    /// The statement (or `-- tool …` for other tool calls).
    pub sql: &'a str,
    /// Who ran it.
    pub user: &'a str,
    /// The thread it ran for, if any.
    pub thread_id: Option<ThreadId>,
    /// `agent` or `api`.
    pub source: &'a str,
    /// How it ended.
    pub outcome: QueryOutcome,
    /// Rows returned.
    pub rows: u64,
    /// How long it ran.
    pub elapsed_ms: f64,
    /// The error's code, when it failed.
    pub error_code: Option<&'static str>,
}

/// Receives every query a tool ran: the app's query log and metrics implement it.
/// Called on the blocking thread that ran the query.
pub trait QueryObserver: Send + Sync {
    /// Called once per statement, on the thread that ran it.
    fn on_query(&self, event: &QueryEvent<'_>);
}

/// Who runs a query and who hears about it; never chosen by the model.
#[derive(Clone, Copy)]
pub struct QueryAudit<'a> {
    /// The user the query runs for.
    pub user: &'a str,
    /// The thread it runs for, if any.
    pub thread_id: Option<ThreadId>,
    /// `agent` or `api`.
    pub source: &'a str,
    /// Who hears about it (query log, metrics).
    pub observer: Option<&'a dyn QueryObserver>,
}

/// A target database: its spec, its engine, and the per-user cap on concurrent queries.
pub struct TargetDatabase {
    spec: TargetSpec,
    config: ToolsConfig,
    engine: Arc<dyn Engine>,
    /// Each user's running queries: a semaphore of `max_queries_per_user` permits, present
    /// while the user runs or waits for a query. A freed slot wakes one waiter, first come
    /// first served (waking every waiter to re-check cost one wake-up per waiter per query).
    running: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for TargetDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetDatabase")
            .field("name", &self.spec.name)
            .field("engine", &self.engine.dialect().id)
            .finish_non_exhaustive()
    }
}

/// One running query of a user; the slot frees when it drops.
struct QuerySlot<'a> {
    target: &'a TargetDatabase,
    user: &'a str,
    permits: Arc<Semaphore>,
}

impl Drop for QuerySlot<'_> {
    fn drop(&mut self) {
        self.permits.add_permits(1);
        self.target.forget_idle(self.user, &self.permits);
    }
}

impl TargetDatabase {
    /// The target `spec` names: PostgreSQL for a `url`, else the SQLite file at `path`.
    /// Connections open lazily, so this never fails: a missing file or an unreachable server
    /// is reported by `health` and by queries, which recover when it is back.
    pub fn new(spec: TargetSpec, config: &ToolsConfig) -> Arc<Self> {
        let engine: Arc<dyn Engine> = if spec.url.is_some() {
            PostgresDatabase::new(spec.clone(), config)
        } else {
            SqliteDatabase::new(spec.clone(), config)
        };
        Self::with_engine(spec, config, engine)
    }

    /// A target over an engine built elsewhere (a third engine, or a test double).
    pub fn with_engine(
        spec: TargetSpec,
        config: &ToolsConfig,
        engine: Arc<dyn Engine>,
    ) -> Arc<Self> {
        Arc::new(Self { spec, config: config.clone(), engine, running: Mutex::new(HashMap::new()) })
    }

    /// The name clients and the model use.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// How it was configured.
    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// Its engine.
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// Its SQL dialect.
    pub fn dialect(&self) -> &'static Dialect {
        self.engine.dialect()
    }

    /// The SQLite engine, when it is one (for SQLite-specific tests and benchmarks).
    pub fn sqlite(&self) -> Option<&SqliteDatabase> {
        self.engine.as_any().downcast_ref()
    }

    /// The PostgreSQL engine, when it is one.
    pub fn postgres(&self) -> Option<&PostgresDatabase> {
        self.engine.as_any().downcast_ref()
    }

    /// Its summary for `GET /api/databases`.
    pub fn summary(&self, is_default: bool) -> DatabaseSummary {
        DatabaseSummary {
            name: self.spec.name.clone(),
            read_only: self.spec.read_only,
            is_default,
            description: self.spec.description.clone(),
            engine: self.engine.dialect().id.to_owned(),
        }
    }

    /// Whether the database can be used now, and how it is open; the error says why not.
    pub async fn health(&self) -> Result<OpenMode, ToolError> {
        self.engine.health().await
    }

    /// The engine's start-up checks (PostgreSQL: the role's privileges, masked columns).
    pub async fn verify(&self) -> Result<(), ToolError> {
        self.engine.verify().await
    }

    /// A slot among the user's concurrent queries on this target, waiting up to
    /// `tools.pool_wait_ms` for one to free.
    async fn query_slot<'a>(&'a self, user: &'a str) -> Result<QuerySlot<'a>, ToolError> {
        let cap = self.config.max_queries_per_user.max(1);
        let permits = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            // the user's name is copied only when they had nothing running or waiting
            match running.get(user) {
                Some(permits) => permits.clone(),
                None => running
                    .entry(user.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(cap)))
                    .clone(),
            }
        };
        let wait = Duration::from_millis(self.config.pool_wait_ms);
        // the permit is given back by the slot's drop (which also forgets an idle user); the
        // semaphore is never closed
        let acquired = tokio::time::timeout(wait, permits.acquire())
            .await
            .is_ok_and(|permit| permit.map(tokio::sync::SemaphorePermit::forget).is_ok());
        if acquired {
            return Ok(QuerySlot { target: self, user, permits });
        }
        self.forget_idle(user, &permits);
        Err(ToolError::new(
            ToolErrorCode::TooManyQueries,
            format!(
                "you already run {cap} queries on `{}` (tools.max_queries_per_user); wait for \
                 one to finish",
                self.spec.name
            ),
        )
        .retryable())
    }

    /// Drops `user`'s semaphore when nobody runs or waits for a query with it: `permits`
    /// (the caller's) and the map's are then its only references, and a new query clones it
    /// only under the same lock.
    fn forget_idle(&self, user: &str, permits: &Arc<Semaphore>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(permits) == 2
            && running.get(user).is_some_and(|p| Arc::ptr_eq(p, permits))
        {
            running.remove(user);
        }
    }

    /// Runs one read-only query, logs it and tells the observer.
    pub async fn query(
        &self,
        sql: &str,
        params: &QueryParams,
        limits: &QueryLimits,
        audit: &QueryAudit<'_>,
    ) -> Result<QueryResult, ToolError> {
        let started = Instant::now();
        let result = match SqlQuery::parse(sql) {
            Err(e) => Err(ToolError::new(ToolErrorCode::SqlError, e.to_string())),
            Ok(q) => match self.query_slot(audit.user).await {
                Err(e) => Err(e),
                Ok(_slot) => self.engine.query(q, params.clone(), *limits).await,
            },
        };
        let outcome = QueryOutcome::of(&result);
        let elapsed_ms = match &result {
            Ok(r) => r.elapsed_ms,
            Err(_) => started.elapsed().as_secs_f64() * 1000.0,
        };
        let rows = result.as_ref().map_or(0, |r| r.row_count);
        match &result {
            Ok(_) => log::debug!(
                "query ok db={} rows={rows} elapsed_ms={elapsed_ms:.2} sql={sql}",
                self.spec.name
            ),
            Err(e) if matches!(outcome, QueryOutcome::Blocked | QueryOutcome::TimedOut) => {
                log::warn!(
                    "query {} db={} user={} elapsed_ms={elapsed_ms:.2} sql={sql} ({e})",
                    outcome.as_str(),
                    self.spec.name,
                    audit.user
                )
            }
            Err(e) => log::debug!("query failed db={} sql={sql} ({e})", self.spec.name),
        }
        self.report(audit, sql, audit.source, outcome, rows, elapsed_ms, result.as_ref().err());
        result
    }

    /// Validates a proposed write without running it.
    pub async fn check_write(&self, sql: &str) -> Result<(), ToolError> {
        self.spec.refuse_writes_if_read_only()?;
        self.engine.check_write(sql.to_owned()).await
    }

    /// Runs an approved write in its own transaction, logs it and tells the observer.
    pub async fn write(
        &self,
        sql: &str,
        params: &QueryParams,
        limits: &QueryLimits,
        audit: &QueryAudit<'_>,
    ) -> Result<WriteOutput, ToolError> {
        let started = Instant::now();
        let result = match self.spec.refuse_writes_if_read_only() {
            Err(e) => Err(e),
            Ok(()) => self.engine.write(sql.to_owned(), params.clone(), *limits).await,
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(w) => log::warn!(
                "approved write ran db={} user={} rows={} sql={sql}",
                self.spec.name,
                audit.user,
                w.rows_affected
            ),
            Err(e) => log::warn!(
                "approved write failed db={} user={} sql={sql} ({e})",
                self.spec.name,
                audit.user
            ),
        }
        let outcome = if result.is_ok() { QueryOutcome::Ok } else { QueryOutcome::Failed };
        let rows = result.as_ref().map_or(0, |w| w.rows_affected as u64);
        self.report(audit, sql, "agent:write", outcome, rows, elapsed_ms, result.as_ref().err());
        result
    }

    /// Tells the audit's observer (query log, metrics) about one statement.
    #[allow(clippy::too_many_arguments)] // one query-log row's fields
    fn report(
        &self,
        audit: &QueryAudit<'_>,
        sql: &str,
        source: &str,
        outcome: QueryOutcome,
        rows: u64,
        elapsed_ms: f64,
        error: Option<&ToolError>,
    ) {
        if let Some(observer) = audit.observer {
            observer.on_query(&QueryEvent {
                database: &self.spec.name,
                sql,
                user: audit.user,
                thread_id: audit.thread_id,
                source,
                outcome,
                rows,
                elapsed_ms,
                error_code: error.map(|e| e.code.as_str()),
            });
        }
    }

    /// The full structure, from cache unless the schema or data changed.
    pub async fn schema(&self, limits: &QueryLimits) -> Result<Arc<DatabaseSchema>, ToolError> {
        self.engine.schema(*limits).await
    }

    /// The structure of `tables` (all when empty), optionally with sample rows.
    pub async fn schema_with(
        &self,
        tables: &[String],
        sample_rows: usize,
        limits: &QueryLimits,
    ) -> Result<DatabaseSchema, ToolError> {
        self.engine.schema_with(tables.to_vec(), sample_rows, *limits).await
    }

    /// Engine- and file-level facts (`get_metadata`).
    pub async fn metadata(&self, limits: &QueryLimits) -> Result<DatabaseMetadata, ToolError> {
        self.engine.metadata(*limits).await
    }

    /// A number that changes when the schema does (cheap; the schema watcher polls it).
    pub async fn schema_version(&self) -> Result<i64, ToolError> {
        self.engine.fingerprint().await
    }

    /// A number that changes when the data may have changed ([`Engine::data_stamp`]).
    pub async fn data_stamp(&self) -> Result<i64, ToolError> {
        self.engine.data_stamp().await
    }

    /// Tables and views with row counts (`list_tables`).
    pub async fn list_tables(&self, limits: &QueryLimits) -> Result<Vec<TableSummary>, ToolError> {
        let schema = self.schema(limits).await?;
        Ok(schema
            .tables
            .iter()
            .map(|t| TableSummary {
                name: t.name.clone(),
                kind: t.kind,
                row_count: t.row_count,
                row_count_exact: t.row_count_exact,
                error: t.error.clone(),
                description: t.description.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target whose file is never opened: only its query slots are used.
    fn slots(max_queries_per_user: usize, pool_wait_ms: u64) -> Arc<TargetDatabase> {
        let config = ToolsConfig { max_queries_per_user, pool_wait_ms, ..ToolsConfig::default() };
        TargetDatabase::new(TargetSpec::read_only("t", "/nonexistent.db"), &config)
    }

    #[tokio::test]
    async fn a_user_at_the_cap_waits_in_line_and_idle_users_are_forgotten() {
        let target = slots(2, 5_000);
        let first = target.query_slot("ann").await.unwrap();
        let second = target.query_slot("ann").await.unwrap();
        // another user is not held up by ann's queries
        drop(target.query_slot("bob").await.unwrap());
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let (target, order_tx) = (target.clone(), order_tx.clone());
                tokio::spawn(async move {
                    let slot = target.query_slot("ann").await.unwrap();
                    order_tx.send(i).unwrap();
                    drop(slot);
                })
            })
            .collect();
        // every waiter is queued (in spawn order) before a slot frees
        tokio::task::yield_now().await;
        assert!(order.try_recv().is_err(), "nobody got a third slot");
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        let mut got = Vec::new();
        while let Ok(i) = order.try_recv() {
            got.push(i);
        }
        assert_eq!(got, [0, 1, 2], "first come, first served");
        assert_eq!(target.running.lock().unwrap().len(), 1, "only ann's semaphore is left");
        drop(second);
        assert!(target.running.lock().unwrap().is_empty(), "an idle user is forgotten");
    }

    #[tokio::test]
    async fn a_user_waiting_too_long_is_told_and_forgotten() {
        let target = slots(1, 50);
        let held = target.query_slot("ann").await.unwrap();
        let err = target.query_slot("ann").await.err().unwrap();
        assert_eq!(err.code, ToolErrorCode::TooManyQueries, "{err:?}");
        assert!(err.retryable);
        drop(held);
        assert!(target.running.lock().unwrap().is_empty());
    }
}
