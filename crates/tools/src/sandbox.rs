//! The read-only sandbox. SQLite enforces it, in layers, so that no single mistake opens a hole:
//!
//! 1. connections open the file `SQLITE_OPEN_READ_ONLY`;
//! 2. `PRAGMA query_only = ON`;
//! 3. an authorizer allows reads and functions only (no writes, DDL, ATTACH/DETACH,
//!    transactions, `load_extension`, PRAGMAs outside a read-only allow-list);
//! 4. every statement must start with SELECT/WITH/VALUES/EXPLAIN/PRAGMA and be
//!    `sqlite3_stmt_readonly` (this catches `VACUUM INTO`, which no authorizer code covers);
//! 5. exactly one statement; attached databases limited to 0;
//! 6. a progress handler stops a query at its deadline; `SQLITE_LIMIT_LENGTH` stops huge values;
//! 7. rows and bytes returned are capped, and the result says `truncated`.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::Value;
use sqlmatic_models::{ColumnMeta, QueryParams, QueryResult, SqlQuery};

use crate::{QueryLimits, ToolError, ToolErrorCode};

/// PRAGMAs that read settings; allowed only without a value (with one they would write).
const READ_PRAGMAS: &[&str] = &[
    "application_id",
    "auto_vacuum",
    "cache_size",
    "collation_list",
    "compile_options",
    "data_version",
    "encoding",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "journal_mode",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "query_only",
    "schema_version",
    "table_list",
    "user_version",
];

/// PRAGMAs whose argument names a table or index to describe; the argument never writes.
const INFO_PRAGMAS: &[&str] =
    &["foreign_key_list", "index_info", "index_list", "index_xinfo", "table_info", "table_xinfo"];

/// Functions that touch the file system or load code, denied even if compiled in.
const DENIED_FUNCTIONS: &[&str] =
    &["load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_dbpage"];

/// Suffixes of the tables virtual-table modules keep their data in (R-Tree and Geopoly, FTS3/4,
/// FTS5). A module prepares its own INSERT/UPDATE/DELETE on them when a statement first uses the
/// virtual table; those are only prepared for a read, never run, and ordinary SQL cannot write
/// them (`SQLITE_DBCONFIG_DEFENSIVE`, `query_only`, the read-only file and the statement checks).
const SHADOW_SUFFIXES: &[&str] = &[
    "_node",
    "_parent",
    "_rowid",
    "_content",
    "_segments",
    "_segdir",
    "_docsize",
    "_stat",
    "_data",
    "_idx",
    "_config",
];

/// Whether a name looks like a virtual table's shadow table.
pub fn is_shadow_name(table: &str) -> bool {
    SHADOW_SUFFIXES.iter().any(|s| table.len() > s.len() && table.to_ascii_lowercase().ends_with(s))
}

/// The authorizer's decision for one action; a pure function so it can be tested as data.
pub fn authorize(action: &AuthAction<'_>) -> Authorization {
    match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if is_shadow_name(table_name) =>
        {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(function_name)) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            let allowed = match pragma_value {
                None => {
                    READ_PRAGMAS.contains(&name.as_str()) || INFO_PRAGMAS.contains(&name.as_str())
                }
                Some(_) => INFO_PRAGMAS.contains(&name.as_str()),
            };
            if allowed { Authorization::Allow } else { Authorization::Deny }
        }
        _ => Authorization::Deny,
    }
}

/// Masked columns as lower-case (table, column).
pub type MaskSet = std::sync::Arc<std::collections::HashSet<(String, String)>>;

fn authorizer(masked: MaskSet) -> impl FnMut(AuthContext<'_>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| {
        if let AuthAction::Read { table_name, column_name } = ctx.action
            && !masked.is_empty()
            && masked.contains(&(table_name.to_ascii_lowercase(), column_name.to_ascii_lowercase()))
        {
            // SQLITE_IGNORE on a read makes the column NULL wherever the statement uses it
            return Authorization::Ignore;
        }
        let decision = authorize(&ctx.action);
        if decision == Authorization::Deny {
            log::debug!("sandbox denied {:?}", ctx.action);
        }
        decision
    }
}

/// What an approved write may do: change rows and schema, but never attach files, manage
/// transactions, set PRAGMAs or load code. Masked columns still read as NULL, so a write cannot
/// copy them somewhere readable.
pub fn write_authorizer(
    masked: MaskSet,
) -> impl FnMut(AuthContext<'_>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Read { table_name, column_name }
            if masked
                .contains(&(table_name.to_ascii_lowercase(), column_name.to_ascii_lowercase())) =>
        {
            Authorization::Ignore
        }
        AuthAction::Attach { .. }
        | AuthAction::Detach { .. }
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::CreateVtable { .. }
        | AuthAction::DropVtable { .. }
        | AuthAction::Pragma { .. } => Authorization::Deny,
        AuthAction::Function { function_name }
            if DENIED_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(function_name)) =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

/// Statements `execute_write` accepts.
pub const WRITE_KEYWORDS: &[&str] =
    &["insert", "update", "delete", "replace", "create", "alter", "drop", "with"];

/// Real files declare collations of the application that wrote them (`COLLATE app_locale`); this
/// process does not have them. Rather than failing every statement that compares such a column,
/// compare it as BINARY (the structure's `warnings` say so).
fn fallback_collation(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    log::warn!("collation `{name}` is unknown here; comparing it as BINARY");
    conn.create_collation(name, |a: &str, b: &str| a.cmp(b))
}

/// How long a read waits for another process's write lock before it answers "busy".
const BUSY_WAIT: Duration = Duration::from_secs(2);

std::thread_local! {
    /// When the current wait for a lock began (SQLite calls the handler on the waiting thread).
    static BUSY_SINCE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// SQLite's busy handler for reads: retry every millisecond for up to [`BUSY_WAIT`]. SQLite's
/// own busy timeout backs off to 100 ms sleeps, and a reader of a rollback-journal file that
/// an application commits to every few milliseconds then rarely lands in a gap between two
/// writes: it starved, and answered "busy", on a loaded machine.
fn wait_for_writer(attempt: i32) -> bool {
    let now = std::time::Instant::now();
    let since = BUSY_SINCE.with(|since| {
        // attempt 0 starts a new wait
        if attempt == 0 {
            since.set(Some(now));
        }
        since.get().unwrap_or(now)
    });
    if now.duration_since(since) >= BUSY_WAIT {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// Applies every per-connection layer of the sandbox. Used for pooled connections and tests.
pub fn harden(conn: &Connection, max_value_bytes: usize, masked: MaskSet) -> rusqlite::Result<()> {
    conn.pragma_update(None, "query_only", true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.collation_needed(fallback_collation)?;
    crate::functions::register(conn, max_value_bytes)?;
    conn.busy_handler(Some(wait_for_writer))?;
    let max_value = i32::try_from(max_value_bytes).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, max_value)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, SqlQuery::MAX_BYTES as i32 + 1)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, 500)?;
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, 200)?;
    conn.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 1000)?;
    // LIKE/GLOB cost grows with pattern length times text length, inside one function call
    conn.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 100)?;
    conn.authorizer(Some(authorizer(masked)))?;
    Ok(())
}

/// How a target file is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// Read-only, seeing other processes' commits (the normal case).
    #[default]
    ReadOnly,
    /// Read-only and `immutable=1`: for a WAL database whose `-wal`/`-shm` files cannot be
    /// created (a read-only directory or file system). SQLite takes no locks and reads no WAL,
    /// so changes made since the last checkpoint, or by other processes, are not seen.
    Immutable,
}

/// Opens a target database file strictly read-only and sandboxed.
pub fn open_connection(
    path: &Path,
    mode: OpenMode,
    max_value_bytes: usize,
    masked: MaskSet,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(location(path, mode), read_only_flags(mode))?;
    harden(&conn, max_value_bytes, masked)?;
    Ok(conn)
}

fn read_only_flags(mode: OpenMode) -> OpenFlags {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match mode {
        OpenMode::ReadOnly => flags,
        OpenMode::Immutable => flags | OpenFlags::SQLITE_OPEN_URI,
    }
}

/// The path SQLite opens: the file itself, or an `immutable=1` URI (with `?`, `#` and `%`
/// escaped so an odd file name cannot add URI parameters).
fn location(path: &Path, mode: OpenMode) -> std::path::PathBuf {
    match mode {
        OpenMode::ReadOnly => path.to_path_buf(),
        OpenMode::Immutable => {
            let escaped = path
                .display()
                .to_string()
                .replace('%', "%25")
                .replace('?', "%3f")
                .replace('#', "%23");
            format!("file:{escaped}?mode=ro&immutable=1").into()
        }
    }
}

/// A pool of sandboxed read-only connections. Connections open lazily, so a missing file
/// is reported when a query needs it, and recovers when the file comes back.
pub fn open_pool(
    path: &Path,
    mode: OpenMode,
    size: u32,
    wait: Duration,
    max_value_bytes: usize,
    masked: MaskSet,
) -> Pool<SqliteConnectionManager> {
    let manager = SqliteConnectionManager::file(location(path, mode))
        .with_flags(read_only_flags(mode))
        .with_init(move |c| harden(c, max_value_bytes, masked.clone()));
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        // a local file's connection does not go stale; `health` checks the file before each use
        .test_on_check_out(false)
        .connection_timeout(wait.max(Duration::from_millis(1)))
        .build_unchecked(manager)
}

/// Sets a deadline on a connection for as long as the guard lives.
pub struct Deadline<'c> {
    conn: &'c Connection,
}

impl<'c> Deadline<'c> {
    /// Interrupts statements on `conn` after `timeout`, until dropped.
    pub fn set(conn: &'c Connection, timeout: Duration) -> rusqlite::Result<Self> {
        let deadline = Instant::now() + timeout;
        conn.progress_handler(1000, Some(move || Instant::now() >= deadline))?;
        Ok(Self { conn })
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
    }
}

/// A SQL string literal (`'` doubled).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Skips whitespace and comments, returns the first keyword in lower case.
pub(crate) fn leading_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_lowercase()
}

const ALLOWED_KEYWORDS: &[&str] = &["select", "with", "values", "explain", "pragma"];

fn blocked(reason: &str) -> ToolError {
    ToolError::new(
        ToolErrorCode::ReadOnly,
        format!(
            "blocked ({reason}): queries are read-only; only SELECT/WITH/VALUES/EXPLAIN and \
             read-only PRAGMAs may run (no writes, DDL, ATTACH, transactions or extensions)"
        ),
    )
}

/// Maps a rusqlite error from preparing or running a statement onto the tool's error vocabulary.
pub fn classify(err: rusqlite::Error) -> ToolError {
    match &err {
        rusqlite::Error::MultipleStatement => ToolError::new(
            ToolErrorCode::MultipleStatements,
            "only one SQL statement per call; send the statements one at a time",
        ),
        rusqlite::Error::SqliteFailure(e, msg) => match e.code {
            ErrorCode::AuthorizationForStatementDenied | ErrorCode::ReadOnly => {
                blocked(msg.as_deref().unwrap_or("not authorized"))
            }
            ErrorCode::OperationInterrupted => ToolError::new(
                ToolErrorCode::QueryTimeout,
                "the query hit its time limit; add a WHERE filter, use an index, or LIMIT the rows",
            ),
            ErrorCode::TooBig => ToolError::new(
                ToolErrorCode::ValueTooLarge,
                "a string or blob in the query is larger than the configured limit",
            ),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ToolError::new(
                ToolErrorCode::DatabaseUnavailable,
                "the database is busy; try again",
            )
            .retryable(),
            ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::SystemIoFailure => {
                ToolError::new(
                    ToolErrorCode::DatabaseUnavailable,
                    "the database file cannot be read right now",
                )
                .with_detail(err.to_string())
                .retryable()
            }
            _ => {
                let text = msg.clone().unwrap_or_else(|| e.to_string());
                if text.contains("too many attached databases") {
                    return ToolError::new(
                        ToolErrorCode::ReadOnly,
                        "blocked: ATTACH is not allowed; query the configured database only",
                    );
                }
                ToolError::new(ToolErrorCode::SqlError, text)
            }
        },
        rusqlite::Error::SqlInputError { msg, .. } if msg.contains("not authorized") => {
            blocked(msg)
        }
        rusqlite::Error::SqlInputError { msg, offset, .. } => {
            ToolError::new(ToolErrorCode::SqlError, format!("{msg} (at byte {offset})"))
        }
        _ => ToolError::new(ToolErrorCode::SqlError, err.to_string()),
    }
}

fn json_to_sql(v: &Value, what: &str) -> Result<SqlValue, ToolError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => SqlValue::Integer(i),
            // past i64: exact as text rather than rounded to a float
            (None, Some(u)) => SqlValue::Text(u.to_string()),
            (None, None) => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => {
            return Err(ToolError::invalid_args(format!(
                "parameter {what} must be a string, number, boolean or null"
            )));
        }
    })
}

pub(crate) fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    params: &QueryParams,
) -> Result<(), ToolError> {
    let expected = stmt.parameter_count();
    match params {
        QueryParams::None => {
            if expected > 0 {
                return Err(ToolError::invalid_args(format!(
                    "the SQL has {expected} parameter(s) but no `params` were given"
                )));
            }
        }
        QueryParams::Positional(values) => {
            if values.len() != expected {
                return Err(ToolError::invalid_args(format!(
                    "the SQL has {expected} parameter(s) but {} were given",
                    values.len()
                )));
            }
            for (i, v) in values.iter().enumerate() {
                let value = json_to_sql(v, &format!("#{}", i + 1))?;
                stmt.raw_bind_parameter(i + 1, value).map_err(classify)?;
            }
        }
        QueryParams::Named(map) => {
            for i in 1..=expected {
                let Some(name) = stmt.parameter_name(i).map(str::to_owned) else {
                    return Err(ToolError::invalid_args(
                        "the SQL uses positional parameters; pass `params` as an array",
                    ));
                };
                let bare = name.trim_start_matches([':', '@', '$']);
                let v = map.get(bare).or_else(|| map.get(&name)).ok_or_else(|| {
                    ToolError::invalid_args(format!("missing value for parameter {name}"))
                })?;
                let value = json_to_sql(v, &name)?;
                stmt.raw_bind_parameter(i, value).map_err(classify)?;
            }
        }
    }
    Ok(())
}

/// A SQLite value as typed JSON.
pub fn to_json(v: ValueRef<'_>, inline_blob_bytes: usize) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) if b.len() <= inline_blob_bytes => serde_json::json!({
            "$blob": base64::engine::general_purpose::STANDARD.encode(b)
        }),
        ValueRef::Blob(b) => serde_json::json!({ "$blob_bytes": b.len() }),
    }
}

fn approx_json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        other => other.to_string().len(),
    }
}

/// `alias → table` for the tables a query names (`FROM orders o`, `JOIN customers AS c`): query
/// plans name tables by alias.
fn table_aliases(
    sql: &str,
    tables: &std::collections::HashMap<String, u64>,
) -> std::collections::HashMap<String, String> {
    const NOT_ALIASES: &[&str] = &[
        "where",
        "join",
        "inner",
        "left",
        "right",
        "full",
        "cross",
        "natural",
        "on",
        "using",
        "group",
        "order",
        "limit",
        "union",
        "except",
        "intersect",
        "having",
        "window",
        "as",
        "indexed",
        "not",
        "outer",
        "select",
        "from",
        "values",
    ];
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut map = std::collections::HashMap::new();
    for (i, w) in words.iter().enumerate() {
        if !tables.contains_key(w) {
            continue;
        }
        let mut next = words.get(i + 1);
        if next.is_some_and(|n| n == "as") {
            next = words.get(i + 2);
        }
        if let Some(alias) =
            next.filter(|n| !NOT_ALIASES.contains(&n.as_str()) && !tables.contains_key(*n))
        {
            map.insert(alias.clone(), w.clone());
        }
    }
    map
}

/// Estimates the rows a query's plan scans, from `EXPLAIN QUERY PLAN` and table row counts
/// (lower-case names): nested loops multiply, separate parts add. `None` when there is no plan
/// to read (the query itself will report why).
pub fn estimate_scan(
    conn: &Connection,
    sql: &SqlQuery,
    row_counts: &std::collections::HashMap<String, u64>,
) -> Option<(u64, String)> {
    let mut stmt = conn
        .prepare_cached(&format!("EXPLAIN QUERY PLAN {}", sql.as_str().trim_end_matches(';')))
        .ok()?;
    let rows: Vec<(i64, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?)))
        .ok()?
        .filter_map(Result::ok)
        .collect();
    let aliases = table_aliases(sql.as_str(), row_counts);
    let rows_of = |name: &str| {
        let name = name.to_ascii_lowercase();
        let table = aliases.get(&name).unwrap_or(&name);
        row_counts.get(table).copied().unwrap_or(1)
    };
    let mut groups: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    let mut plan = Vec::new();
    for (_, parent, detail) in &rows {
        let words: Vec<&str> = detail.split_whitespace().collect();
        let factor = match words.as_slice() {
            ["SCAN", table, ..] => rows_of(table),
            ["SEARCH", table, rest @ ..] => {
                let rows = rows_of(table);
                let unique =
                    rest.join(" ").contains("PRIMARY KEY") || rest.join(" ").contains("rowid=");
                if unique { 1 } else { rows.min(10) }
            }
            _ => continue,
        };
        plan.push(detail.clone());
        let g = groups.entry(*parent).or_insert(1);
        *g = g.saturating_mul(factor.max(1));
    }
    let total = groups.values().fold(0u64, |a, b| a.saturating_add(*b));
    Some((total, plan.join("; ")))
}

/// Checks that `sql` is one read-only statement and runs it within `limits`.
pub fn run_query(
    conn: &Connection,
    sql: &SqlQuery,
    params: &QueryParams,
    limits: &QueryLimits,
) -> Result<QueryResult, ToolError> {
    let started = Instant::now();
    let _deadline = Deadline::set(conn, limits.timeout).map_err(ToolError::internal)?;
    // Prepare first so syntax errors read as such; preparing runs the authorizer, executes nothing.
    // Cached per connection: the same SQL again (a dashboard, a point lookup with parameters)
    // is not parsed again. The authorizer is the connection's own and holds no per-statement
    // state, and SQLite prepares a cached statement again (authorizer included) when the schema
    // changed, so a cached statement is held to the same rules.
    let mut stmt = conn.prepare_cached(sql.as_str()).map_err(classify)?;
    let keyword = leading_keyword(sql.as_str());
    if keyword.is_empty() {
        return Err(ToolError::new(
            ToolErrorCode::SqlError,
            "the SQL has no statement, only comments or whitespace",
        ));
    }
    if keyword == "pragma" && !stmt.readonly() {
        // e.g. `PRAGMA journal_mode`: a read SQLite counts as a possible write
        return Err(ToolError::new(
            ToolErrorCode::SqlError,
            "this PRAGMA cannot run in the read-only sandbox; get_metadata reports the journal \
             mode, page size, encoding and schema version",
        ));
    }
    if !ALLOWED_KEYWORDS.contains(&keyword.as_str()) {
        return Err(ToolError::new(
            ToolErrorCode::ReadOnly,
            format!(
                "blocked: `{}` statements are not allowed; only SELECT, WITH, VALUES, EXPLAIN and \
                 read-only PRAGMAs may run",
                if keyword.is_empty() { "this" } else { &keyword }
            ),
        ));
    }
    if !stmt.readonly() {
        return Err(ToolError::new(
            ToolErrorCode::ReadOnly,
            "blocked: the statement would modify a database; only reads may run",
        ));
    }
    bind(&mut stmt, params)?;
    let mut out_rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut total: u64 = 0;
    let mut counted_all = true;
    let mut rows = stmt.raw_query();
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                let err = classify(e);
                // Interrupted while only counting rows past the cap: the shown rows stand.
                if truncated && err.code == ToolErrorCode::QueryTimeout {
                    counted_all = false;
                    break;
                }
                return Err(err);
            }
        };
        total += 1;
        if truncated {
            continue;
        }
        let width = row.as_ref().column_count();
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let v = row.get_ref(i).map_err(classify)?;
            let json = to_json(v, limits.inline_blob_bytes);
            bytes += approx_json_len(&json) + 1;
            values.push(json);
        }
        out_rows.push(values);
        if out_rows.len() >= limits.max_rows || bytes >= limits.max_result_bytes {
            truncated = true;
        }
    }
    drop(rows);
    // read after the first step: a cached statement whose schema changed is prepared again
    // there, and its columns are the new ones
    let columns: Vec<ColumnMeta> = stmt
        .columns()
        .iter()
        .map(|c| ColumnMeta {
            name: c.name().to_owned(),
            decl_type: c.decl_type().map(str::to_owned),
        })
        .collect();
    let row_count = out_rows.len() as u64;
    let truncated = truncated && (total > row_count || !counted_all);
    Ok(QueryResult {
        columns,
        rows: out_rows,
        row_count,
        total_rows: counted_all.then_some(total),
        truncated,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_keyword_skips_comments() {
        assert_eq!(leading_keyword("  -- hi\n /* x */ SELECT 1"), "select");
        assert_eq!(leading_keyword("WITH x AS (select 1) select * from x"), "with");
        assert_eq!(leading_keyword("vacuum into 'x'"), "vacuum");
        assert_eq!(leading_keyword("/* unterminated"), "");
    }

    #[test]
    fn policy_as_data() {
        let cases: &[(AuthAction<'_>, Authorization)] = &[
            (AuthAction::Select, Authorization::Allow),
            (AuthAction::Read { table_name: "t", column_name: "c" }, Authorization::Allow),
            (AuthAction::Function { function_name: "count" }, Authorization::Allow),
            (AuthAction::Function { function_name: "LOAD_EXTENSION" }, Authorization::Deny),
            (
                AuthAction::Pragma { pragma_name: "table_info", pragma_value: Some("t") },
                Authorization::Allow,
            ),
            (
                AuthAction::Pragma { pragma_name: "user_version", pragma_value: None },
                Authorization::Allow,
            ),
            (
                AuthAction::Pragma { pragma_name: "user_version", pragma_value: Some("3") },
                Authorization::Deny,
            ),
            (
                AuthAction::Pragma { pragma_name: "writable_schema", pragma_value: None },
                Authorization::Deny,
            ),
            (AuthAction::Insert { table_name: "t" }, Authorization::Deny),
            (AuthAction::Insert { table_name: "boxes_node" }, Authorization::Allow),
            (AuthAction::Delete { table_name: "docs_data" }, Authorization::Allow),
            (AuthAction::Delete { table_name: "_data" }, Authorization::Deny),
            (AuthAction::Attach { filename: "x" }, Authorization::Deny),
        ];
        for (action, expected) in cases {
            assert_eq!(authorize(action), *expected, "{action:?}");
        }
    }
}
