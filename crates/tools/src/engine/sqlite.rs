//! The SQLite engine: a configured SQLite file, its sandboxed pool, its health, its cached
//! schema and row counts. Every method here blocks; the [`Engine`] impl at the bottom runs each
//! on the blocking pool (one hop per operation, never per statement).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use sqlmatic_models::{DatabaseMetadata, DatabaseSchema, QueryParams, QueryResult, SqlQuery};

use crate::engine::blocking::BlockingQueue;
use crate::engine::{BoxFuture, Dialect, Engine};
use crate::{QueryLimits, TargetSpec, ToolError, ToolErrorCode, ToolsConfig, introspect, sandbox};

/// Stamp of what the cached schema was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemaStamp {
    schema_version: i64,
    files: FileStamps,
}

/// Modification time and length of the database file and its `-wal`: data changed when they do.
type FileStamps = [Option<(SystemTime, u64)>; 2];

/// What the last look at the file found, and the pool opened for it.
struct FileState {
    /// (device, inode, length, mtime) when last checked; `None`: never, or missing.
    key: Option<(u64, u64, u64, SystemTime)>,
    /// How the file opens, or why it does not.
    health: Result<sandbox::OpenMode, ToolError>,
    /// (device, inode) and mode the pool was opened with.
    pool_for: Option<((u64, u64), sandbox::OpenMode)>,
}

/// A target database: its spec, a pool of sandboxed read-only connections, the cached structure and row counts, and its health.
pub struct SqliteDatabase {
    spec: TargetSpec,
    path: PathBuf,
    /// `path` with `-wal` appended.
    wal: PathBuf,
    config: ToolsConfig,
    /// Rebuilt when the file is replaced (a new inode) or must open another way (immutable).
    pool: std::sync::RwLock<Pool<SqliteConnectionManager>>,
    file: Mutex<FileState>,
    schema_cache: Mutex<Option<(SchemaStamp, Arc<DatabaseSchema>)>>,
    /// Exact row counts and the file stamps they were taken at.
    counts: Mutex<(FileStamps, HashMap<String, u64>)>,
    /// A background count is running.
    counting: AtomicBool,
    /// Where the blocking work runs: one wake-up per burst of statements.
    jobs: Arc<BlockingQueue>,
    me: Weak<SqliteDatabase>,
}

/// Runners beyond `pool_size` (see `SqliteDatabase::jobs`).
const SPARE_RUNNERS: usize = 16;

/// (device, inode) of a file: which file a path names right now.
fn file_key(meta: &std::fs::Metadata) -> (u64, u64, u64, SystemTime) {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino(), meta.len(), modified)
    }
    #[cfg(not(unix))]
    {
        (0, 0, meta.len(), modified)
    }
}

impl std::fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDatabase").field("spec", &self.spec).finish_non_exhaustive()
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    stamp_of(&std::fs::metadata(path).ok()?)
}

fn stamp_of(meta: &std::fs::Metadata) -> Option<(SystemTime, u64)> {
    Some((meta.modified().ok()?, meta.len()))
}

/// Why SQLite could not open or read a file, in words an operator can act on.
fn open_failure(err: rusqlite::Error) -> ToolError {
    use rusqlite::ErrorCode as C;
    let (code, text) = match &err {
        rusqlite::Error::SqliteFailure(e, msg) => {
            (Some(e.code), msg.clone().unwrap_or_else(|| e.to_string()))
        }
        other => (None, other.to_string()),
    };
    let message = match code {
        Some(C::NotADatabase) => {
            "its file is not a SQLite database, or it is encrypted (SQLCipher, SEE)".to_owned()
        }
        Some(C::DatabaseCorrupt) => format!("its file is corrupt ({text})"),
        Some(C::CannotOpen) => format!("its file cannot be opened ({text})"),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            return ToolError::new(ToolErrorCode::DatabaseUnavailable, "the database is busy")
                .retryable();
        }
        _ => format!("its file cannot be read ({text})"),
    };
    ToolError::new(ToolErrorCode::DatabaseUnavailable, message).with_detail(err)
}

impl SqliteDatabase {
    /// Builds the sandboxed pool; connections open lazily, so this never fails on a missing or
    /// broken file (queries report it, and recover when the file is fixed).
    pub fn new(spec: TargetSpec, config: &ToolsConfig) -> Arc<Self> {
        let path = spec.path.clone().unwrap_or_default();
        let pool = sandbox::open_pool(
            &path,
            sandbox::OpenMode::ReadOnly,
            config.pool_size,
            Duration::from_millis(config.pool_wait_ms),
            config.max_value_bytes,
            spec.mask_set(),
        );
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        Arc::new_cyclic(|me| Self {
            spec,
            path,
            wal,
            config: config.clone(),
            pool: std::sync::RwLock::new(pool),
            file: Mutex::new(FileState {
                key: None,
                health: Err(ToolError::new(ToolErrorCode::DatabaseUnavailable, "not checked")),
                pool_for: None,
            }),
            schema_cache: Mutex::new(None),
            counts: Mutex::new(([None, None], HashMap::new())),
            counting: AtomicBool::new(false),
            // more runners than connections: a job that finds every connection busy must wait
            // on the pool (and fail with `target_busy` after `pool_wait_ms`), not for a runner
            jobs: BlockingQueue::new(config.pool_size as usize + SPARE_RUNNERS),
            me: me.clone(),
        })
    }

    /// How it was configured.
    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// Whether the file can be read, and how it opens; the error says why not. Blocking (a
    /// `stat`, plus a header check and a trial open when the file changed).
    pub fn health(&self) -> Result<sandbox::OpenMode, ToolError> {
        let meta = std::fs::metadata(&self.path).ok();
        let key = meta.as_ref().map(file_key);
        let mut state = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if key.is_some() && state.key == key {
            return state.health.clone();
        }
        // A file that was healthy and is still the same file (only written to) gets the cheap
        // header check; a new, replaced or unhealthy file is opened for real.
        let same_file = matches!((state.key, key), (Some(a), Some(b)) if (a.0, a.1) == (b.0, b.1));
        let health = match (key, &state.health) {
            (None, _) => Err(ToolError::new(
                ToolErrorCode::DatabaseUnavailable,
                "its file is missing".to_owned(),
            )
            .retryable()),
            (Some(_), Ok(mode)) if same_file => {
                crate::file::check_header(&self.path).map(|_| *mode)
            }
            (Some(_), _) => self.probe(),
        }
        .map_err(|mut e| {
            e.model_message =
                format!("database `{}` is unavailable: {}", self.spec.name, e.model_message);
            e
        });
        if let (Some((dev, ino, ..)), Ok(mode)) = (key, &health) {
            let wanted = ((dev, ino), *mode);
            if state.pool_for.is_some_and(|p| p != wanted) {
                log::warn!(
                    "target database `{}` was replaced on disk; reopening it",
                    self.spec.name
                );
                *self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
            if state.pool_for != Some(wanted) {
                *self.pool.write().unwrap_or_else(PoisonError::into_inner) = sandbox::open_pool(
                    &self.path,
                    *mode,
                    self.config.pool_size,
                    Duration::from_millis(self.config.pool_wait_ms),
                    self.config.max_value_bytes,
                    self.spec.mask_set(),
                );
                state.pool_for = Some(wanted);
            }
        }
        if let Err(e) = &health
            && state.health.as_ref().err() != Some(e)
        {
            log::warn!("{}", e.model_message);
        }
        state.key = key;
        state.health = health.clone();
        health
    }

    /// Checks the header, then opens the file read-only and reads its schema. A WAL database
    /// whose `-shm` cannot be created (read-only directory or file system) opens immutable.
    fn probe(&self) -> Result<sandbox::OpenMode, ToolError> {
        let header = crate::file::check_header(&self.path)?;
        let try_open = |mode| -> rusqlite::Result<()> {
            let conn = sandbox::open_connection(
                &self.path,
                mode,
                self.config.max_value_bytes,
                self.spec.mask_set(),
            )?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        };
        match try_open(sandbox::OpenMode::ReadOnly) {
            Ok(()) => Ok(sandbox::OpenMode::ReadOnly),
            // a database another process is writing: healthy, the query waits its turn
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                Ok(sandbox::OpenMode::ReadOnly)
            }
            Err(e)
                if header.wal && e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                try_open(sandbox::OpenMode::Immutable).map_err(open_failure)?;
                log::warn!(
                    "target database `{}` is in WAL mode and its -wal/-shm files cannot be \
                     created ({e}); opened it immutable: changes by other processes are not seen",
                    self.spec.name
                );
                Ok(sandbox::OpenMode::Immutable)
            }
            Err(e) => Err(open_failure(e)),
        }
    }

    /// A sandboxed connection. Blocking: call from `spawn_blocking`.
    pub fn connection(&self) -> Result<PooledConnection<SqliteConnectionManager>, ToolError> {
        self.health()?;
        let pool = self.pool.read().unwrap_or_else(PoisonError::into_inner).clone();
        pool.get().map_err(|e| {
            // the file was checked just now, so a time-out here means every connection is busy
            ToolError::new(
                ToolErrorCode::TargetBusy,
                format!(
                    "database `{}` is busy: all {} connections stayed in use for {} ms; try again shortly",
                    self.spec.name, self.config.pool_size, self.config.pool_wait_ms
                ),
            )
            .with_detail(e)
            .retryable()
        })
    }

    /// Runs one read-only query: the cost gate, the sandbox, and names added to "no such …"
    /// errors. Blocking.
    pub fn run(
        &self,
        q: &SqlQuery,
        params: &QueryParams,
        limits: &QueryLimits,
    ) -> Result<QueryResult, ToolError> {
        let conn = self.connection()?;
        if limits.max_scan_rows > 0 {
            self.check_cost(&conn, q, limits)?;
        }
        sandbox::run_query(&conn, q, params, limits)
            .map_err(|e| self.explain_error(&conn, q.as_str(), e))
    }

    /// A writable connection for an approved write (never pooled: writes are rare and deliberate).
    fn write_connection(&self) -> Result<rusqlite::Connection, ToolError> {
        // `TargetDatabase` refuses first; this holds for callers of the engine itself
        self.spec.refuse_writes_if_read_only()?;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
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
    ) -> Result<crate::WriteOutput, ToolError> {
        let started = std::time::Instant::now();
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
    }

    /// Refuses a query whose plan would scan more than `limits.max_scan_rows` rows.
    /// Row counts for estimates: from the cached schema when there is one (an estimate does not
    /// need fresh counts, and re-stamping the cache on every query cost 40 % of point-lookup
    /// throughput in `cargo xtask bench`).
    fn row_counts(
        &self,
        conn: &rusqlite::Connection,
        limits: &QueryLimits,
    ) -> Result<std::collections::HashMap<String, u64>, ToolError> {
        let cached = self.cached_schema();
        let schema = match cached {
            Some(s) => s,
            // on the query's own connection: a second one could wait for itself (pool of one)
            None => self.schema_on(conn, limits)?,
        };
        Ok(schema
            .tables
            .iter()
            .filter_map(|t| Some((t.name.to_ascii_lowercase(), t.row_count?)))
            .collect())
    }

    fn check_cost(
        &self,
        conn: &rusqlite::Connection,
        sql: &SqlQuery,
        limits: &QueryLimits,
    ) -> Result<(), ToolError> {
        let counts = self.row_counts(conn, limits)?;
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

    /// Adds the valid names to "no such table/column" errors so a model can correct itself, and
    /// says when the query touched an object that is known to be broken.
    fn explain_error(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        mut err: ToolError,
    ) -> ToolError {
        if err.code != ToolErrorCode::SqlError {
            return err;
        }
        // Names the statement mentions, as SQLite compares them (ASCII case-insensitively).
        let mentioned: std::collections::HashSet<String> = introspect::sql_tokens(sql)
            .iter()
            .map(|t| introspect::unquote(t).to_ascii_lowercase())
            .collect();
        let cached = self.cached_schema();
        if let Some(schema) = cached {
            let broken: Vec<String> = schema
                .tables
                .iter()
                .filter(|t| mentioned.contains(&t.name.to_ascii_lowercase()))
                .filter_map(|t| {
                    let e = t.error.as_ref()?;
                    Some(format!("`{}` is broken and cannot be queried ({})", t.name, e.message))
                })
                .collect();
            if !broken.is_empty() {
                err.model_message = format!("{}; {}", err.model_message, broken.join("; "));
                return err;
            }
        }
        let Ok(tables) = introspect::table_names(conn) else { return err };
        if err.model_message.starts_with("no such table") {
            err.model_message = format!("{}; tables are: {}", err.model_message, tables.join(", "));
        } else if err.model_message.starts_with("no such column") {
            let described: Vec<String> = tables
                .iter()
                .filter(|t| mentioned.contains(&t.to_ascii_lowercase()))
                .filter_map(|t| {
                    let cols = introspect::column_names(conn, t).ok()?;
                    Some(format!("{t}({})", cols.join(", ")))
                })
                .collect();
            if !described.is_empty() {
                err.model_message =
                    format!("{}; columns are: {}", err.model_message, described.join("; "));
            }
        }
        err
    }

    fn stamp(&self, conn: &rusqlite::Connection) -> Result<SchemaStamp, ToolError> {
        let schema_version = introspect::schema_version(conn)?;
        Ok(SchemaStamp { schema_version, files: self.file_stamps() })
    }

    /// The file's and its `-wal`'s stamps: two `stat`s, cheap enough for the async side (a
    /// blocking-pool hop costs more than both).
    fn file_stamps(&self) -> FileStamps {
        [file_stamp(&self.path), file_stamp(&self.wal)]
    }

    /// The cached structure, when the file is the healthy one last checked and neither it nor
    /// its `-wal` changed since the structure was built: every commit changes one's length or
    /// mtime (the rule [`Engine::data_stamp`] relies on too). Two `stat`s, no connection, so
    /// the async side asks this before paying a blocking-pool hop for [`Self::schema`].
    fn unchanged_schema(&self) -> Option<Arc<DatabaseSchema>> {
        let main = std::fs::metadata(&self.path).ok()?;
        {
            let state = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            if state.key != Some(file_key(&main)) || state.health.is_err() {
                return None;
            }
        }
        let files = [stamp_of(&main), file_stamp(&self.wal)];
        let cache = self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref().filter(|(stamp, _)| stamp.files == files).map(|(_, schema)| schema.clone())
    }

    /// The last structure built, whatever changed since (for estimates and error hints).
    fn cached_schema(&self) -> Option<Arc<DatabaseSchema>> {
        self.schema_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, s)| s.clone())
    }

    /// The current `schema_version` (cheap: reads the file header). Blocking.
    pub fn schema_version(&self) -> Result<i64, ToolError> {
        let conn = self.connection()?;
        introspect::schema_version(&conn)
    }

    /// Introspects the file, with exact counts where cheap and estimates elsewhere; tables left
    /// with an estimate are counted in the background.
    fn build_schema(
        &self,
        conn: &rusqlite::Connection,
        files: FileStamps,
        limits: &QueryLimits,
        only: &[String],
        sample_rows: usize,
    ) -> Result<DatabaseSchema, ToolError> {
        let known = {
            let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if counts.0 == files { counts.1.clone() } else { HashMap::new() }
        };
        let mut counts = introspect::RowCounts {
            known: &known,
            budget: Duration::from_millis(self.config.count_budget_ms),
            pending: Vec::new(),
        };
        let mut schema =
            introspect::schema(conn, &self.spec, limits, only, sample_rows, &mut counts)?;
        if self.health().is_ok_and(|m| m == sandbox::OpenMode::Immutable) {
            schema.warnings.push(
                "the file is opened immutable (its -wal/-shm files cannot be created here): \
                 changes made by other processes are not seen until a restart"
                    .into(),
            );
        }
        self.count_in_background(counts.pending, files);
        Ok(schema)
    }

    /// Counts `tables` exactly on a thread of its own (one at a time per target), then puts the
    /// counts into the cached schema if the data has not changed meanwhile.
    fn count_in_background(&self, tables: Vec<String>, files: FileStamps) {
        if tables.is_empty() || self.counting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        let spawned = std::thread::Builder::new().name("sqlmatic-count".into()).spawn(move || {
            me.run_counts(&tables, files);
            me.counting.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a background count: {e}");
            self.counting.store(false, Ordering::Release);
        }
    }

    fn run_counts(&self, tables: &[String], files: FileStamps) {
        let Ok(mode) = self.health() else { return };
        let conn = match sandbox::open_connection(
            &self.path,
            mode,
            self.config.max_value_bytes,
            self.spec.mask_set(),
        ) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("background count of `{}` cannot open: {e}", self.spec.name);
                return;
            }
        };
        let timeout = Duration::from_millis(self.config.background_count_timeout_ms.max(1));
        let mut counted = HashMap::new();
        for table in tables {
            let started = std::time::Instant::now();
            match introspect::exact_count(&conn, table, timeout) {
                Ok(n) => {
                    log::debug!(
                        "counted `{}`.`{table}`: {n} rows in {:.0} ms",
                        self.spec.name,
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                    counted.insert(table.clone(), n);
                }
                Err(e) => log::info!("cannot count `{}`.`{table}` exactly: {e}", self.spec.name),
            }
        }
        {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if counts.0 != files {
                *counts = (files, HashMap::new());
            }
            counts.1.extend(counted.iter().map(|(k, v)| (k.clone(), *v)));
        }
        // after `counts`: a build cached meanwhile either merged them or is updated here
        let mut cache = self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, schema)) = cache.as_mut().filter(|(stamp, _)| stamp.files == files) {
            let mut fresh = (**schema).clone();
            if with_exact_counts(&mut fresh, &counted) {
                *schema = Arc::new(fresh);
            }
        }
    }

    /// The full schema, rebuilt only when the schema or data changed since the last call. Blocking.
    pub fn schema(&self, limits: &QueryLimits) -> Result<Arc<DatabaseSchema>, ToolError> {
        let conn = self.connection()?;
        self.schema_on(&conn, limits)
    }

    fn schema_on(
        &self,
        conn: &rusqlite::Connection,
        limits: &QueryLimits,
    ) -> Result<Arc<DatabaseSchema>, ToolError> {
        let stamp = self.stamp(conn)?;
        {
            let cache = self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, schema)) = cache.as_ref().filter(|(cached, _)| *cached == stamp) {
                return Ok(schema.clone());
            }
        }
        let mut schema = self.build_schema(conn, stamp.files, limits, &[], 0)?;
        // The stamp is re-read so a change during the build is picked up next time.
        let stamp = SchemaStamp { schema_version: schema.schema_version, ..stamp };
        let mut cache = self.schema_cache.lock().unwrap_or_else(PoisonError::into_inner);
        // A background count that finished before this structure was cached could not put its
        // counts into it (the estimates would have stayed until the file changed): merge them
        // now, under the cache lock that a later count takes too.
        {
            let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if counts.0 == stamp.files {
                with_exact_counts(&mut schema, &counts.1);
            }
        }
        let schema = Arc::new(schema);
        *cache = Some((stamp, schema.clone()));
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
        let stamp = self.stamp(&conn)?;
        self.build_schema(
            &conn,
            stamp.files,
            limits,
            tables,
            sample_rows.min(limits.max_sample_rows),
        )
    }

    /// Facts about the file (`get_metadata`). Blocking.
    pub fn metadata(&self, limits: &QueryLimits) -> Result<DatabaseMetadata, ToolError> {
        let schema = self.schema(limits)?;
        let conn = self.connection()?;
        introspect::metadata(&conn, &self.spec, &schema)
    }
}

/// Puts exact counts into the tables still estimated; re-renders the DDL and returns true when
/// one changed.
fn with_exact_counts(schema: &mut DatabaseSchema, counted: &HashMap<String, u64>) -> bool {
    let mut changed = false;
    for t in schema.tables.iter_mut().filter(|t| !t.row_count_exact) {
        if let Some(n) = counted.get(&t.name) {
            t.row_count = Some(*n);
            t.row_count_exact = true;
            changed = true;
        }
    }
    if changed {
        schema.ddl = introspect::render_ddl(&schema.tables);
    }
    changed
}

impl SqliteDatabase {
    /// Runs `work` with this database on its blocking queue (one hop for the whole
    /// operation, and none for work queued while a runner is busy).
    fn off_thread<T, F>(&self, work: F) -> BoxFuture<'static, Result<T, ToolError>>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDatabase) -> Result<T, ToolError> + Send + 'static,
    {
        let me = self.me.upgrade();
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let me = me.ok_or_else(|| ToolError::internal("the database was closed"))?;
            jobs.run(move || work(&me)).await.ok_or_else(|| {
                ToolError::internal(
                    "the database work stopped: it panicked or the server is stopping",
                )
            })?
        })
    }
}

impl Engine for SqliteDatabase {
    fn dialect(&self) -> &'static Dialect {
        &Dialect::SQLITE
    }

    fn health(&self) -> BoxFuture<'_, Result<sandbox::OpenMode, ToolError>> {
        self.off_thread(|db| db.health())
    }

    fn query(
        &self,
        sql: SqlQuery,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<QueryResult, ToolError>> {
        self.off_thread(move |db| db.run(&sql, &params, &limits))
    }

    fn schema(&self, limits: QueryLimits) -> BoxFuture<'_, Result<Arc<DatabaseSchema>, ToolError>> {
        if let Some(schema) = self.unchanged_schema() {
            return Box::pin(std::future::ready(Ok(schema)));
        }
        self.off_thread(move |db| db.schema(&limits))
    }

    fn schema_with(
        &self,
        tables: Vec<String>,
        sample_rows: usize,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<DatabaseSchema, ToolError>> {
        if sample_rows == 0 {
            // the whole structure, from cache when nothing changed, then filtered
            let full = Engine::schema(self, limits);
            return Box::pin(async move {
                let full = full.await?;
                introspect::filter_schema(&full, &tables)
            });
        }
        self.off_thread(move |db| db.schema_with(&tables, sample_rows, &limits))
    }

    fn metadata(&self, limits: QueryLimits) -> BoxFuture<'_, Result<DatabaseMetadata, ToolError>> {
        self.off_thread(move |db| db.metadata(&limits))
    }

    fn fingerprint(&self) -> BoxFuture<'_, Result<i64, ToolError>> {
        self.off_thread(|db| db.schema_version())
    }

    fn data_stamp(&self) -> BoxFuture<'_, Result<i64, ToolError>> {
        // every committed write changes the file's or its WAL's length or mtime
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.file_stamps().hash(&mut h);
        Box::pin(std::future::ready(Ok(h.finish() as i64)))
    }

    fn check_write(&self, sql: String) -> BoxFuture<'_, Result<(), ToolError>> {
        self.off_thread(move |db| db.check_write(&sql))
    }

    fn write(
        &self,
        sql: String,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<crate::WriteOutput, ToolError>> {
        self.off_thread(move |db| db.write(&sql, &params, &limits))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
