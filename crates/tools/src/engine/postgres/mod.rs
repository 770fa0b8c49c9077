//! The PostgreSQL engine: a pool of `tokio-postgres` connections (deadpool, rustls for TLS),
//! where PostgreSQL itself enforces read-only.
//!
//! Every query runs in `START TRANSACTION READ ONLY` with `SET LOCAL statement_timeout`,
//! `lock_timeout` and `idle_in_transaction_session_timeout`, on sessions that default to
//! `default_transaction_read_only = on`; exactly one statement (the extended protocol refuses
//! several); rows come through a portal in chunks, so the row and byte caps stop the transfer.
//! At start-up [`PostgresDatabase::verify`] refuses a role that could write or escape (unless
//! `allow_privileged_role`) and checks that masked columns are unreadable to it. The
//! [`guard`] parses each statement as defence in depth. Values become JSON through PostgreSQL's
//! own `row_to_json`, read back without loss (`value`).

pub mod guard;
mod introspect;
mod value;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use sqlmatic_models::{DatabaseMetadata, DatabaseSchema, QueryParams, QueryResult, SqlQuery};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use crate::engine::{BoxFuture, Dialect, Engine, OpenMode};
use crate::{QueryLimits, TargetSpec, ToolError, ToolErrorCode, ToolsConfig, WriteOutput};

pub use value::TextParam;

/// Parses a `postgres://` URL into a client configuration; the error says what is wrong.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    let config: tokio_postgres::Config =
        url.parse().map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
    if config.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    if config.get_dbname().is_none() {
        return Err("names no database (postgres://user@host:5432/dbname)".into());
    }
    Ok(config)
}

/// How long a schema built from the catalogue is reused while the catalogue fingerprint is the
/// same (row estimates move with `ANALYZE`, not with DDL).
const SCHEMA_TTL: Duration = Duration::from_secs(30);

/// How long a fingerprint check vouches for the cached schema: a structure asked for again
/// within it costs no round trip, and DDL from another session is seen within it (or at the
/// schema watcher's next poll, which also checks).
const FINGERPRINT_FRESH: Duration = Duration::from_millis(250);

/// The structure last built, and when its fingerprint was last checked.
struct CachedSchema {
    fingerprint: i64,
    built: Instant,
    checked: Instant,
    schema: Arc<DatabaseSchema>,
}

/// A PostgreSQL target.
pub struct PostgresDatabase {
    spec: TargetSpec,
    config: ToolsConfig,
    /// The pool, or why it could not be built (a bad URL, a TLS set-up error).
    pool: Result<Pool, ToolError>,
    /// Set once the start-up checks passed.
    verified: tokio::sync::OnceCell<()>,
    cache: Mutex<Option<CachedSchema>>,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase").field("name", &self.spec.name).finish_non_exhaustive()
    }
}

fn unavailable(message: impl Into<String>) -> ToolError {
    ToolError::new(ToolErrorCode::DatabaseUnavailable, message)
}

impl PostgresDatabase {
    /// The engine for `spec` (which has a `url`). Connections open lazily.
    pub fn new(spec: TargetSpec, config: &ToolsConfig) -> Arc<Self> {
        let pool = Self::pool(&spec, config);
        if let Err(e) = &pool {
            log::error!("target database `{}`: {}", spec.name, e.model_message);
        }
        Arc::new(Self {
            spec,
            config: config.clone(),
            pool,
            verified: tokio::sync::OnceCell::new(),
            cache: Mutex::new(None),
        })
    }

    fn pool(spec: &TargetSpec, config: &ToolsConfig) -> Result<Pool, ToolError> {
        let url = spec.url.as_deref().unwrap_or_default();
        let mut pg = parse_url(url)
            .map_err(|e| unavailable(format!("database `{}`: the url {e}", spec.name)))?;
        let password = match (&spec.password, &spec.password_env) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                unavailable(format!(
                    "database `{}`: the password variable `{var}` (password_env) is not set",
                    spec.name
                ))
            })?),
            (None, None) => None,
        };
        if let Some(p) = password {
            pg.password(p);
        }
        let timeout = config.query_timeout_ms.max(1);
        // the session defaults: a read-only target's sessions cannot write even outside the
        // transactions sqlmatic opens; idle transactions and lock waits end on their own
        let mut options = format!(
            "-c idle_in_transaction_session_timeout={} -c lock_timeout={} -c statement_timeout={timeout}",
            timeout * 2 + 5000,
            config.lock_timeout_ms.max(1)
        );
        if spec.read_only {
            options.push_str(" -c default_transaction_read_only=on");
        }
        pg.options(options);
        pg.application_name("sqlmatic");
        pg.connect_timeout(Duration::from_millis(config.pool_wait_ms.max(1)));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if pg.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
        } else {
            crate::install_crypto_provider();
            use rustls_platform_verifier::ConfigVerifierExt;
            let tls = rustls::ClientConfig::with_platform_verifier().map_err(|e| {
                unavailable(format!("database `{}`: TLS cannot be set up ({e})", spec.name))
            })?;
            Manager::from_config(
                pg,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        };
        let wait = Some(Duration::from_millis(config.pool_wait_ms.max(1)));
        Pool::builder(manager)
            .max_size(config.pool_size.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .recycle_timeout(wait)
            .build()
            .map_err(|e| unavailable(format!("database `{}`: {e}", spec.name)))
    }

    /// How it was configured.
    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// A pooled connection; the error says why there is none.
    async fn client(&self) -> Result<Object, ToolError> {
        let pool = self.pool.as_ref().map_err(Clone::clone)?;
        pool.get().await.map_err(|e| {
            use deadpool_postgres::PoolError;
            match e {
                PoolError::Timeout(_) if pool.status().size >= pool.status().max_size => ToolError::new(
                    ToolErrorCode::TargetBusy,
                    format!(
                        "database `{}` is busy: all {} connections stayed in use for {} ms; try again shortly",
                        self.spec.name, self.config.pool_size, self.config.pool_wait_ms
                    ),
                )
                .retryable(),
                PoolError::Backend(e) => connect_error(&self.spec.name, &e),
                other => unavailable(format!(
                    "database `{}` cannot be reached ({other})",
                    self.spec.name
                ))
                .retryable(),
            }
        })
    }

    /// Runs the start-up checks once; later calls return at once.
    async fn ensure_verified(&self) -> Result<(), ToolError> {
        self.verified.get_or_try_init(|| self.check_role()).await.map(|_| ())
    }

    /// The schemas the configuration names (empty: every schema the role can use).
    fn schemas(&self) -> Vec<String> {
        self.spec.schemas.clone()
    }

    /// Opens a read-only transaction on `client`. Statement and lock timeouts are the session's
    /// (`tools.query_timeout_ms`, `tools.lock_timeout_ms`, set when it connects); a query sets
    /// its own with `SET LOCAL`, pipelined with its first statements (`value::run`). Dropping
    /// the transaction sends ROLLBACK without waiting: a read-only one has nothing to commit.
    async fn begin<'c>(
        &self,
        client: &'c mut Object,
    ) -> Result<deadpool_postgres::Transaction<'c>, ToolError> {
        client.build_transaction().read_only(true).start().await.map_err(|e| self.error(&e))
    }

    /// Runs `work` (which begins with [`Self::begin`] on a connection of its own) within
    /// `timeout` of wall-clock time; past it the connection is closed, which also ends the
    /// backend's work.
    async fn within<T>(
        &self,
        timeout: Duration,
        work: impl AsyncFnOnce(&mut Object) -> Result<T, ToolError>,
    ) -> Result<T, ToolError> {
        let mut client = self.client().await?;
        let outcome =
            tokio::time::timeout(timeout + Duration::from_millis(250), work(&mut client)).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                // the connection is mid-statement: take it out of the pool and close it
                drop(Object::take(client));
                Err(timeout_error(timeout))
            }
        }
    }

    /// Turns a driver error into a model-facing one (`explain` adds names).
    fn error(&self, e: &tokio_postgres::Error) -> ToolError {
        let Some(db) = e.as_db_error() else {
            if e.is_closed() {
                return unavailable(format!("the connection to `{}` closed", self.spec.name))
                    .with_detail(e)
                    .retryable();
            }
            return ToolError::new(ToolErrorCode::SqlError, e.to_string());
        };
        let mut message = db.message().to_owned();
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!("; hint: {hint}"));
        }
        let code = db.code();
        if *code == SqlState::QUERY_CANCELED {
            return ToolError::new(
                ToolErrorCode::QueryTimeout,
                format!(
                    "the query ran past the time limit and PostgreSQL stopped it ({message}); \
                     filter or aggregate a smaller set"
                ),
            );
        }
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return ToolError::new(
                ToolErrorCode::ReadOnly,
                format!("refused by PostgreSQL: {message}; queries here only read"),
            );
        }
        if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            // `explain` names masked columns when the query touched one
            return ToolError::new(
                ToolErrorCode::ReadOnly,
                format!("refused by PostgreSQL: {message}"),
            );
        }
        if *code == SqlState::LOCK_NOT_AVAILABLE {
            return ToolError::new(
                ToolErrorCode::TargetBusy,
                format!("a lock was not granted in time ({message}); try again shortly"),
            )
            .retryable();
        }
        if *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
            return ToolError::new(ToolErrorCode::ValueTooLarge, message);
        }
        if code.code().starts_with("08")
            || code.code().starts_with("53")
            || code.code().starts_with("57")
        {
            return unavailable(format!("database `{}`: {message}", self.spec.name)).retryable();
        }
        ToolError::new(ToolErrorCode::SqlError, message)
    }

    /// Adds what a model needs to correct itself, from the structure (read now if need be):
    /// which masked column a refused query touched, the valid names after "does not exist".
    async fn explain(&self, mut err: ToolError, sql: &str, limits: &QueryLimits) -> ToolError {
        let refused =
            err.code == ToolErrorCode::ReadOnly && err.model_message.contains("permission denied");
        let missing =
            err.code == ToolErrorCode::SqlError && err.model_message.contains("does not exist");
        if !(refused || missing) {
            return err;
        }
        if self.cached().is_none() {
            let _ = self.schema_cached(limits).await;
        }
        if refused {
            let masked = self.masked_in(sql);
            if !masked.is_empty() {
                err.code = ToolErrorCode::ColumnMasked;
                err.model_message = format!(
                    "{}: {} masked; sqlmatic's role may not read {}. Name the other columns instead \
                     (SELECT * includes masked ones)",
                    err.model_message,
                    masked.join(", ") + if masked.len() == 1 { " is" } else { " are" },
                    if masked.len() == 1 { "it" } else { "them" }
                );
            }
        } else {
            err.model_message = self.explain_missing(err.model_message, sql);
        }
        err
    }

    /// Masked columns of the tables `sql` mentions, as `table.column`.
    fn masked_in(&self, sql: &str) -> Vec<String> {
        let Some(schema) = self.cached() else { return Vec::new() };
        let lower = sql.to_ascii_lowercase();
        schema
            .tables
            .iter()
            .filter(|t| {
                let short = t.name.rsplit('.').next().unwrap_or(&t.name).to_ascii_lowercase();
                lower.contains(&short)
            })
            .flat_map(|t| {
                t.columns.iter().filter(|c| c.masked).map(move |c| format!("{}.{}", t.name, c.name))
            })
            .collect()
    }

    /// Adds the valid names to "does not exist" errors so a model can correct itself.
    fn explain_missing(&self, message: String, sql: &str) -> String {
        let Some(schema) = self.cached() else { return message };
        if message.starts_with("relation") {
            let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
            return format!("{message}; tables are: {}", names.join(", "));
        }
        let lower = sql.to_ascii_lowercase();
        let described: Vec<String> = schema
            .tables
            .iter()
            .filter(|t| {
                lower.contains(&t.name.rsplit('.').next().unwrap_or(&t.name).to_ascii_lowercase())
            })
            .map(|t| {
                let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                format!("{}({})", t.name, cols.join(", "))
            })
            .collect();
        if described.is_empty() {
            message
        } else {
            format!("{message}; columns are: {}", described.join("; "))
        }
    }

    fn cached(&self) -> Option<Arc<DatabaseSchema>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|c| c.schema.clone())
    }

    async fn run(
        &self,
        sql: SqlQuery,
        params: QueryParams,
        limits: QueryLimits,
    ) -> Result<QueryResult, ToolError> {
        guard::check_query(sql.as_str())?;
        let params = value::text_params(&params)?;
        self.ensure_verified().await?;
        let started = Instant::now();
        let result = self
            .within(limits.timeout, async |client| {
                let tx = self.begin(client).await?;
                value::run(self, &tx, sql.as_str(), &params, &limits, started).await
            })
            .await;
        match result {
            Ok(r) => Ok(r),
            Err(e) => Err(self.explain(e, sql.as_str(), &limits).await),
        }
    }

    /// Whether `limits` ask for the `EXPLAIN` cost gate.
    pub(crate) fn gates(&self, limits: &QueryLimits) -> bool {
        limits.max_scan_rows > 0 || limits.max_plan_cost > 0.0
    }

    /// Refuses a query whose plan reads more rows or costs more than the limits.
    pub(crate) fn check_plan(
        &self,
        plan: &serde_json::Value,
        limits: &QueryLimits,
    ) -> Result<(), ToolError> {
        let Some(root) = plan.get(0).and_then(|p| p.get("Plan")) else { return Ok(()) };
        let mut most_rows = 0f64;
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            most_rows =
                most_rows.max(node.get("Plan Rows").and_then(|v| v.as_f64()).unwrap_or(0.0));
            if let Some(children) = node.get("Plans").and_then(|v| v.as_array()) {
                stack.extend(children);
            }
        }
        let cost = root.get("Total Cost").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let node = root.get("Node Type").and_then(|v| v.as_str()).unwrap_or("plan");
        if limits.max_scan_rows > 0 && most_rows > limits.max_scan_rows as f64 {
            return Err(ToolError::new(
                ToolErrorCode::QueryTooExpensive,
                format!(
                    "refused: PostgreSQL's plan ({node}) would handle about {most_rows:.0} rows in one step \
                     (limit {}). Filter on an indexed column, avoid cross joins, or aggregate a smaller set",
                    limits.max_scan_rows
                ),
            ));
        }
        if limits.max_plan_cost > 0.0 && cost > limits.max_plan_cost {
            return Err(ToolError::new(
                ToolErrorCode::QueryTooExpensive,
                format!(
                    "refused: PostgreSQL estimates this query's cost at {cost:.0} (limit {:.0}, \
                     tools.max_plan_cost). Filter on an indexed column or aggregate a smaller set",
                    limits.max_plan_cost
                ),
            ));
        }
        Ok(())
    }

    async fn schema_cached(&self, limits: &QueryLimits) -> Result<Arc<DatabaseSchema>, ToolError> {
        self.ensure_verified().await?;
        if let Some(c) = &*self.cache.lock().unwrap_or_else(PoisonError::into_inner)
            && c.checked.elapsed() < FINGERPRINT_FRESH
            && c.built.elapsed() < SCHEMA_TTL
        {
            return Ok(c.schema.clone());
        }
        let fingerprint = self.fingerprint_now().await?;
        if let Some(c) = &mut *self.cache.lock().unwrap_or_else(PoisonError::into_inner)
            && c.fingerprint == fingerprint
            && c.built.elapsed() < SCHEMA_TTL
        {
            c.checked = Instant::now();
            return Ok(c.schema.clone());
        }
        let schema = Arc::new(self.build_schema(limits, &[], 0, fingerprint).await?);
        let now = Instant::now();
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(CachedSchema { fingerprint, built: now, checked: now, schema: schema.clone() });
        Ok(schema)
    }

    async fn fingerprint_now(&self) -> Result<i64, ToolError> {
        let schemas = self.schemas();
        let timeout = Duration::from_millis(self.config.query_timeout_ms.max(1));
        // one catalogue query outside any transaction: the session is read-only and carries the
        // statement timeout already
        self.within(timeout, async |client| introspect::fingerprint(self, client, &schemas).await)
            .await
    }

    async fn write_now(
        &self,
        sql: String,
        params: QueryParams,
        limits: QueryLimits,
    ) -> Result<WriteOutput, ToolError> {
        let ddl = guard::check_write(&sql)?;
        let params = value::text_params(&params)?;
        let started = Instant::now();
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(false)
            .start()
            .await
            .map_err(|e| self.error(&e))?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
            limits.timeout.as_millis().max(1),
            self.config.lock_timeout_ms.max(1)
        ))
        .await
        .map_err(|e| self.error(&e))?;
        let refs = value::param_refs(&params);
        let rows_affected = tx.execute(sql.as_str(), &refs).await.map_err(|e| self.error(&e))?;
        tx.commit().await.map_err(|e| self.error(&e))?;
        if ddl {
            *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        Ok(WriteOutput {
            sql,
            rows_affected: rows_affected as usize,
            ddl,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

fn timeout_error(timeout: Duration) -> ToolError {
    ToolError::new(
        ToolErrorCode::QueryTimeout,
        format!(
            "the query ran past the time limit of {} ms and was stopped; filter or aggregate a smaller set",
            timeout.as_millis()
        ),
    )
}

/// Why a connection could not be opened, in words an operator can act on.
fn connect_error(name: &str, e: &tokio_postgres::Error) -> ToolError {
    let text = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    };
    unavailable(format!("database `{name}` cannot be reached ({text})")).retryable()
}

impl Engine for PostgresDatabase {
    fn dialect(&self) -> &'static Dialect {
        &Dialect::POSTGRES
    }

    fn health(&self) -> BoxFuture<'_, Result<OpenMode, ToolError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client.simple_query("").await.map_err(|e| self.error(&e))?;
            drop(client);
            self.ensure_verified().await?;
            Ok(OpenMode::ReadOnly)
        })
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), ToolError>> {
        Box::pin(self.ensure_verified())
    }

    fn query(
        &self,
        sql: SqlQuery,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<QueryResult, ToolError>> {
        Box::pin(self.run(sql, params, limits))
    }

    fn schema(&self, limits: QueryLimits) -> BoxFuture<'_, Result<Arc<DatabaseSchema>, ToolError>> {
        Box::pin(async move { self.schema_cached(&limits).await })
    }

    fn schema_with(
        &self,
        tables: Vec<String>,
        sample_rows: usize,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<DatabaseSchema, ToolError>> {
        Box::pin(async move {
            let full = self.schema_cached(&limits).await?;
            let mut schema = crate::introspect::filter_schema(&full, &tables)?;
            let n = sample_rows.min(limits.max_sample_rows);
            if n > 0 {
                for table in &mut schema.tables {
                    table.sample_rows = Some(self.sample(table, n, &limits).await?);
                }
            }
            Ok(schema)
        })
    }

    fn metadata(&self, limits: QueryLimits) -> BoxFuture<'_, Result<DatabaseMetadata, ToolError>> {
        Box::pin(async move {
            let schema = self.schema_cached(&limits).await?;
            self.within(limits.timeout, async |client| {
                let tx = self.begin(client).await?;
                introspect::metadata(self, &tx, &schema).await
            })
            .await
        })
    }

    fn fingerprint(&self) -> BoxFuture<'_, Result<i64, ToolError>> {
        Box::pin(async move {
            let fingerprint = self.fingerprint_now().await?;
            // the watcher's poll vouches for (or retires) the cached structure too
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *cache {
                Some(c) if c.fingerprint == fingerprint => c.checked = Instant::now(),
                Some(_) => *cache = None,
                None => {}
            }
            Ok(fingerprint)
        })
    }

    fn data_stamp(&self) -> BoxFuture<'_, Result<i64, ToolError>> {
        Box::pin(async move {
            let schemas = self.schemas();
            let timeout = Duration::from_millis(self.config.query_timeout_ms.max(1));
            self.within(timeout, async |client| {
                introspect::data_stamp(self, client, &schemas).await
            })
            .await
        })
    }

    fn check_write(&self, sql: String) -> BoxFuture<'_, Result<(), ToolError>> {
        Box::pin(async move { guard::check_write(&sql).map(drop) })
    }

    fn write(
        &self,
        sql: String,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<WriteOutput, ToolError>> {
        Box::pin(self.write_now(sql, params, limits))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
