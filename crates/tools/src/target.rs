//! A target database: the configured SQLite file users ask questions about, its sandboxed pool,
//! and its cached schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use serde::{Deserialize, Serialize};
use sqlmatic_models::{
    DatabaseMetadata, DatabaseSchema, DatabaseSummary, QueryParams, QueryResult, SqlQuery,
    TableSummary, ThreadId,
};

use crate::{QueryLimits, ToolError, ToolErrorCode, ToolsConfig, introspect, sandbox};

/// Descriptions an operator gives a table and its columns; the schema tool returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableDescription {
    pub description: Option<String>,
    pub columns: BTreeMap<String, String>,
}

/// One entry of `database.targets` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    pub path: PathBuf,
    /// Queries always run read-only; `false` is reserved for approved writes.
    #[serde(default = "yes")]
    pub read_only: bool,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableDescription>,
    /// `table.column`s that read as NULL through every query (schema marks them `masked`).
    #[serde(default)]
    pub masked_columns: Vec<String>,
}

fn yes() -> bool {
    true
}

impl TargetSpec {
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
        if self.path.as_os_str().is_empty() {
            return Err(format!("database.targets[{}].path must not be empty", self.name));
        }
        if let Some(bad) =
            self.masked_columns.iter().find(|c| c.split('.').filter(|p| !p.is_empty()).count() != 2)
        {
            return Err(format!(
                "database.targets[{}].masked_columns: `{bad}` must be table.column",
                self.name
            ));
        }
        Ok(())
    }

    /// The masked columns as lower-case (table, column) pairs.
    pub fn mask_set(&self) -> sandbox::MaskSet {
        std::sync::Arc::new(
            self.masked_columns
                .iter()
                .filter_map(|c| c.split_once('.'))
                .map(|(t, c)| (t.trim().to_lowercase(), c.trim().to_lowercase()))
                .collect(),
        )
    }
}

/// How a query ended, for the query log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    Ok,
    Blocked,
    Failed,
    TimedOut,
}

impl QueryOutcome {
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
    pub database: &'a str,
    pub sql: &'a str,
    pub user: &'a str,
    pub thread_id: Option<ThreadId>,
    pub source: &'a str,
    pub outcome: QueryOutcome,
    pub rows: u64,
    pub elapsed_ms: f64,
    pub error_code: Option<&'static str>,
}

/// Receives every query a tool ran: the app's query log and metrics implement it.
/// Called on the blocking thread that ran the query.
pub trait QueryObserver: Send + Sync {
    fn on_query(&self, event: &QueryEvent<'_>);
}

/// Stamp of what the cached schema was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemaStamp {
    schema_version: i64,
    files: [Option<(SystemTime, u64)>; 2],
}

pub struct TargetDatabase {
    spec: TargetSpec,
    config: ToolsConfig,
    /// Rebuilt when the file is replaced (a new inode): pooled connections keep the old one open.
    pool: std::sync::RwLock<Pool<SqliteConnectionManager>>,
    identity: Mutex<Option<(u64, u64)>>,
    schema_cache: Mutex<Option<(SchemaStamp, Arc<DatabaseSchema>)>>,
}

/// (device, inode) of a file: which file a path names right now.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| m.modified().ok())
            .map(|t| (0, t.elapsed().map(|d| d.as_secs()).unwrap_or(0)))
    }
}

impl std::fmt::Debug for TargetDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetDatabase").field("spec", &self.spec).finish_non_exhaustive()
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl TargetDatabase {
    /// Builds the sandboxed pool; connections open lazily, so this never fails on a missing file.
    pub fn new(spec: TargetSpec, config: &ToolsConfig) -> Arc<Self> {
        let pool = sandbox::open_pool(
            &spec.path,
            config.pool_size,
            config.max_value_bytes,
            spec.mask_set(),
        );
        Arc::new(Self {
            identity: Mutex::new(file_identity(&spec.path)),
            spec,
            config: config.clone(),
            pool: std::sync::RwLock::new(pool),
            schema_cache: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    pub fn summary(&self, is_default: bool) -> DatabaseSummary {
        DatabaseSummary {
            name: self.spec.name.clone(),
            read_only: self.spec.read_only,
            is_default,
            description: self.spec.description.clone(),
        }
    }

    /// A sandboxed connection. Blocking: call from `spawn_blocking`.
    pub fn connection(&self) -> Result<PooledConnection<SqliteConnectionManager>, ToolError> {
        let identity = file_identity(&self.spec.path);
        if identity.is_none() {
            return Err(ToolError::new(
                ToolErrorCode::DatabaseUnavailable,
                format!("database `{}` is not available: its file is missing", self.spec.name),
            )
            .with_detail(self.spec.path.display())
            .retryable());
        }
        {
            let mut known = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
            if *known != identity {
                log::warn!(
                    "target database `{}` was replaced on disk; reopening it",
                    self.spec.name
                );
                let fresh = sandbox::open_pool(
                    &self.spec.path,
                    self.config.pool_size,
                    self.config.max_value_bytes,
                    self.spec.mask_set(),
                );
                *self.pool.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                *self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
                *known = identity;
            }
        }
        let pool = self.pool.read().unwrap_or_else(PoisonError::into_inner).clone();
        pool.get().map_err(|e| {
            ToolError::new(
                ToolErrorCode::DatabaseUnavailable,
                format!("database `{}` cannot be opened right now", self.spec.name),
            )
            .with_detail(e)
            .retryable()
        })
    }

    /// Runs one read-only query, logs it and tells the observer. Blocking.
    pub fn query(
        &self,
        sql: &str,
        params: &QueryParams,
        limits: &QueryLimits,
        audit: &QueryAudit<'_>,
    ) -> Result<QueryResult, ToolError> {
        let started = std::time::Instant::now();
        let result = SqlQuery::parse(sql)
            .map_err(|e| ToolError::new(ToolErrorCode::SqlError, e.to_string()))
            .and_then(|q| {
                let conn = self.connection()?;
                if limits.max_scan_rows > 0 {
                    self.check_cost(&conn, &q, limits)?;
                }
                sandbox::run_query(&conn, &q, params, limits)
                    .map_err(|e| self.explain_error(&conn, sql, e))
            });
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

    /// A writable connection for an approved write (never pooled: writes are rare and deliberate).
    fn write_connection(&self) -> Result<rusqlite::Connection, ToolError> {
        if self.spec.read_only {
            return Err(ToolError::new(
                ToolErrorCode::ReadOnly,
                format!(
                    "database `{}` is read-only; it accepts no writes (database.targets[].read_only)",
                    self.spec.name
                ),
            ));
        }
        let conn = rusqlite::Connection::open_with_flags(
            &self.spec.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            ToolError::new(
                ToolErrorCode::DatabaseUnavailable,
                format!("database `{}` cannot be opened for writing", self.spec.name),
            )
            .with_detail(e)
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(ToolError::internal)?;
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(ToolError::internal)?;
        conn.authorizer(Some(sandbox::write_authorizer(self.spec.mask_set())))
            .map_err(ToolError::internal)?;
        Ok(conn)
    }

    fn prepare_write<'c>(
        conn: &'c rusqlite::Connection,
        sql: &str,
    ) -> Result<rusqlite::Statement<'c>, ToolError> {
        let q = SqlQuery::parse(sql)
            .map_err(|e| ToolError::new(ToolErrorCode::SqlError, e.to_string()))?;
        let stmt = conn.prepare(q.as_str()).map_err(sandbox::classify)?;
        let keyword = sandbox::leading_keyword(q.as_str());
        if !sandbox::WRITE_KEYWORDS.contains(&keyword.as_str()) {
            return Err(ToolError::new(
                ToolErrorCode::ReadOnly,
                format!(
                    "`{keyword}` cannot be proposed; execute_write takes INSERT, UPDATE, DELETE, REPLACE, CREATE, ALTER or DROP"
                ),
            ));
        }
        if stmt.readonly() {
            return Err(ToolError::invalid_args(
                "this statement only reads; use execute_query for reads",
            ));
        }
        Ok(stmt)
    }

    /// Validates a proposed write without running it. Blocking.
    pub fn check_write(&self, sql: &str) -> Result<(), ToolError> {
        let conn = self.write_connection()?;
        Self::prepare_write(&conn, sql).map(drop)
    }

    /// Runs an approved write. Blocking.
    pub fn write(
        &self,
        sql: &str,
        params: &QueryParams,
        limits: &QueryLimits,
        audit: &QueryAudit<'_>,
    ) -> Result<crate::WriteOutput, ToolError> {
        let started = std::time::Instant::now();
        let result = (|| -> Result<crate::WriteOutput, ToolError> {
            let conn = self.write_connection()?;
            let _deadline =
                sandbox::Deadline::set(&conn, limits.timeout).map_err(ToolError::internal)?;
            let mut stmt = Self::prepare_write(&conn, sql)?;
            sandbox::bind(&mut stmt, params)?;
            let rows_affected = stmt.raw_execute().map_err(sandbox::classify)?;
            let keyword = sandbox::leading_keyword(sql);
            Ok(crate::WriteOutput {
                sql: sql.to_owned(),
                rows_affected,
                ddl: matches!(keyword.as_str(), "create" | "alter" | "drop"),
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            })
        })();
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

    /// Refuses a query whose plan would scan more than `limits.max_scan_rows` rows.
    /// Row counts for estimates: from the cached schema when there is one (an estimate does not
    /// need fresh counts, and re-stamping the cache on every query cost 40 % of point-lookup
    /// throughput in `cargo xtask bench`).
    fn row_counts(
        &self,
        limits: &QueryLimits,
    ) -> Result<std::collections::HashMap<String, u64>, ToolError> {
        let cached = self
            .schema_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, s)| s.clone());
        let schema = match cached {
            Some(s) => s,
            None => self.schema(limits)?,
        };
        Ok(schema
            .tables
            .iter()
            .filter_map(|t| Some((t.name.to_lowercase(), t.row_count?)))
            .collect())
    }

    fn check_cost(
        &self,
        conn: &rusqlite::Connection,
        sql: &SqlQuery,
        limits: &QueryLimits,
    ) -> Result<(), ToolError> {
        let counts = self.row_counts(limits)?;
        let Some((estimate, plan)) = sandbox::estimate_scan(conn, sql, &counts) else {
            return Ok(());
        };
        if estimate > limits.max_scan_rows {
            return Err(ToolError::new(
                ToolErrorCode::QueryTooExpensive,
                format!(
                    "refused: the plan would scan about {estimate} rows (limit {}): {plan}. Filter on an indexed \
                     column, avoid cross joins, or aggregate a smaller set",
                    limits.max_scan_rows
                ),
            ));
        }
        Ok(())
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

    /// Adds the valid names to "no such table/column" errors so a model can correct itself.
    fn explain_error(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        mut err: ToolError,
    ) -> ToolError {
        if err.code != ToolErrorCode::SqlError {
            return err;
        }
        let Ok(tables) = introspect::table_names(conn) else { return err };
        if err.model_message.starts_with("no such table") {
            err.model_message = format!("{}; tables are: {}", err.model_message, tables.join(", "));
        } else if err.model_message.starts_with("no such column") {
            let lower = sql.to_ascii_lowercase();
            let mentioned: Vec<String> = tables
                .iter()
                .filter(|t| lower.contains(&t.to_ascii_lowercase()))
                .filter_map(|t| {
                    let cols = introspect::column_names(conn, t).ok()?;
                    Some(format!("{t}({})", cols.join(", ")))
                })
                .collect();
            if !mentioned.is_empty() {
                err.model_message =
                    format!("{}; columns are: {}", err.model_message, mentioned.join("; "));
            }
        }
        err
    }

    fn stamp(&self, conn: &rusqlite::Connection) -> Result<SchemaStamp, ToolError> {
        let schema_version = introspect::schema_version(conn)?;
        let wal = PathBuf::from(format!("{}-wal", self.spec.path.display()));
        Ok(SchemaStamp { schema_version, files: [file_stamp(&self.spec.path), file_stamp(&wal)] })
    }

    /// The current `schema_version` (cheap: reads the file header). Blocking.
    pub fn schema_version(&self) -> Result<i64, ToolError> {
        let conn = self.connection()?;
        introspect::schema_version(&conn)
    }

    /// The full schema, rebuilt only when the schema or data changed since the last call. Blocking.
    pub fn schema(&self, limits: &QueryLimits) -> Result<Arc<DatabaseSchema>, ToolError> {
        let conn = self.connection()?;
        let stamp = self.stamp(&conn)?;
        {
            let cache = self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, schema)) = cache.as_ref().filter(|(cached, _)| *cached == stamp) {
                return Ok(schema.clone());
            }
        }
        let schema = Arc::new(introspect::schema(&conn, &self.spec, limits, &[], 0)?);
        // The stamp is re-read so a change during the build is picked up next time.
        let stamp = SchemaStamp { schema_version: schema.schema_version, ..stamp };
        *self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((stamp, schema.clone()));
        Ok(schema)
    }

    /// The schema filtered to `tables`, optionally with sample rows. Blocking.
    pub fn schema_with(
        &self,
        tables: &[String],
        sample_rows: usize,
        limits: &QueryLimits,
    ) -> Result<DatabaseSchema, ToolError> {
        if sample_rows == 0 {
            let full = self.schema(limits)?;
            return introspect::filter_schema(&full, tables);
        }
        let conn = self.connection()?;
        introspect::schema(
            &conn,
            &self.spec,
            limits,
            tables,
            sample_rows.min(limits.max_sample_rows),
        )
    }

    pub fn metadata(&self, limits: &QueryLimits) -> Result<DatabaseMetadata, ToolError> {
        let schema = self.schema(limits)?;
        let conn = self.connection()?;
        introspect::metadata(&conn, &self.spec, &schema)
    }

    pub fn list_tables(&self, limits: &QueryLimits) -> Result<Vec<TableSummary>, ToolError> {
        let schema = self.schema(limits)?;
        Ok(schema
            .tables
            .iter()
            .map(|t| TableSummary {
                name: t.name.clone(),
                kind: t.kind,
                row_count: t.row_count,
                description: t.description.clone(),
            })
            .collect())
    }
}

/// Who runs a query and who hears about it; never chosen by the model.
#[derive(Clone, Copy)]
pub struct QueryAudit<'a> {
    pub user: &'a str,
    pub thread_id: Option<ThreadId>,
    pub source: &'a str,
    pub observer: Option<&'a dyn QueryObserver>,
}
