//! The engine seam: what a database engine must do for sqlmatic, and the two engines there are.
//!
//! [`Engine`] is the one trait the tools, the agent, the core and the server reach a target
//! database through (via [`crate::TargetDatabase`], which adds what is the same for every
//! engine: per-user query slots, logging, the query log and metrics). An engine owns how it
//! connects, how it enforces read-only (by the engine itself, not by string checks), how it
//! introspects, and how it turns values into JSON. Adding an engine (MySQL, DuckDB) is one
//! module here implementing [`Engine`], plus one arm in `TargetDatabase::new`; see
//! `docs/architecture.md`.

mod blocking;
pub mod postgres;
pub mod sqlite;

use std::any::Any;
use std::sync::Arc;

use sqlmatic_models::{DatabaseMetadata, DatabaseSchema, QueryParams, QueryResult, SqlQuery};

pub use crate::tool::BoxFuture;
use crate::{QueryLimits, ToolError, WriteOutput};

/// How an engine's SQL differs, told to the model (tool descriptions and the schema prompt).
#[derive(Debug)]
pub struct Dialect {
    /// Stable id (`sqlite`, `postgresql`), also the `engine` of the metadata.
    pub id: &'static str,
    /// Its name for people and models.
    pub name: &'static str,
    /// A few lines for the model: quoting, dates, what differs from standard SQL.
    pub hints: &'static str,
}

impl Dialect {
    /// SQLite.
    pub const SQLITE: Dialect = Dialect {
        id: "sqlite",
        name: "SQLite",
        hints: "Quote identifiers with double quotes. Dates are usually TEXT in ISO 8601: use \
                date(), strftime('%Y', col), julianday(); there is no EXTRACT or INTERVAL. \
                Integer division truncates: multiply by 1.0 for ratios. LIMIT n OFFSET m.",
    };
    /// PostgreSQL.
    pub const POSTGRES: Dialect = Dialect {
        id: "postgresql",
        name: "PostgreSQL",
        hints: "Quote identifiers with double quotes; names are case-sensitive when quoted. \
                Tables outside the `public` schema are named schema.table. Dates: \
                date_trunc('month', col), EXTRACT(YEAR FROM col), col - INTERVAL '30 days', \
                now(); to_char for formatting. Integer division truncates: cast to numeric for \
                ratios; round(x::numeric, 2). String concatenation with ||, ILIKE for \
                case-insensitive matching. LIMIT n OFFSET m.",
    };
}

/// How a target is open, for readiness (`/readyz`).
pub use crate::sandbox::OpenMode;

/// What a database engine does for sqlmatic. Every method is async; an engine whose client
/// blocks (SQLite) runs each call on the blocking pool in one hop.
///
/// Contract, for every engine:
/// - `query` runs exactly one statement that only reads, and the *engine* refuses anything
///   else (a read-only connection or transaction, not a keyword check alone); it stops at
///   `limits.timeout`, `max_rows` and `max_result_bytes` and says `truncated`; masked columns
///   never yield their values.
/// - values become typed JSON: integers stay integers, exact decimals never pass through a
///   float, blobs are `{"$blob": base64}`, times are ISO 8601.
/// - failures are [`ToolError`]s whose message a model can act on.
pub trait Engine: Send + Sync + 'static {
    /// The SQL dialect, for prompts and metadata.
    fn dialect(&self) -> &'static Dialect;

    /// Whether the database can be used now, and how it is open; the error says why not.
    fn health(&self) -> BoxFuture<'_, Result<OpenMode, ToolError>>;

    /// Start-up checks that must hold before any query runs (PostgreSQL: the role cannot
    /// write or escape, masked columns are unreadable). An error here is a configuration
    /// error.
    fn verify(&self) -> BoxFuture<'_, Result<(), ToolError>> {
        Box::pin(async { Ok(()) })
    }

    /// Runs one read-only statement within `limits` (cost gate included).
    fn query(
        &self,
        sql: SqlQuery,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<QueryResult, ToolError>>;

    /// The whole structure, cached until the schema (or the data, for row counts) changes.
    fn schema(&self, limits: QueryLimits) -> BoxFuture<'_, Result<Arc<DatabaseSchema>, ToolError>>;

    /// The structure of some tables, with up to `sample_rows` rows each.
    fn schema_with(
        &self,
        tables: Vec<String>,
        sample_rows: usize,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<DatabaseSchema, ToolError>>;

    /// Engine- and file-level facts.
    fn metadata(&self, limits: QueryLimits) -> BoxFuture<'_, Result<DatabaseMetadata, ToolError>>;

    /// A cheap number that changes when the schema does (polled by the schema watcher).
    fn fingerprint(&self) -> BoxFuture<'_, Result<i64, ToolError>>;

    /// A cheap number that changes when the data may have changed (the value index behind
    /// `find_values` is rebuilt when it does). False alarms cost a rebuild, never a wrong answer.
    fn data_stamp(&self) -> BoxFuture<'_, Result<i64, ToolError>>;

    /// Validates a proposed write without running it.
    fn check_write(&self, sql: String) -> BoxFuture<'_, Result<(), ToolError>>;

    /// Runs an approved write in its own read-write transaction.
    fn write(
        &self,
        sql: String,
        params: QueryParams,
        limits: QueryLimits,
    ) -> BoxFuture<'_, Result<WriteOutput, ToolError>>;

    /// The engine as `Any`, for engine-specific APIs (tests, benchmarks).
    fn as_any(&self) -> &dyn Any;
}
