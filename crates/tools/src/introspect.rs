//! Reads a target database's structure through a sandboxed connection. Blocking.
//!
//! Real files contain objects that no longer work: a view naming a dropped column, a virtual
//! table whose module this build lacks, a trigger that no longer compiles. Each is reported on
//! its own entry (`error`) and never fails the whole structure. Catalogue reads are batched: one
//! statement per kind of fact for all tables (`pragma_table_xinfo` & co. as table-valued
//! functions over a JSON list of names), falling back to one statement per object only when a
//! batch meets a broken one.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlmatic_models::{
    ColumnInfo, DatabaseMetadata, DatabaseSchema, ForeignKeyInfo, Generated, IndexInfo,
    ObjectError, TableInfo, TableKind, TriggerInfo,
};

use crate::sandbox::{Deadline, classify, to_json};
use crate::{QueryLimits, TargetSpec, ToolError, ToolErrorCode};

/// Tables whose cheap bound (`max(rowid)` or `sqlite_stat1`) is at most this are counted exactly
/// while the structure is built; bigger ones get an estimate and a count in the background.
const EXACT_INLINE_ROWS: u64 = 250_000;

/// Quotes an identifier for SQLite (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQLite's keywords: a name equal to one must be quoted.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "abort", "action", "add", "after", "all", "alter", "always", "analyze", "and",
    "as", "asc", "attach", "autoincrement", "before", "begin", "between", "by", "cascade", "case",
    "cast", "check", "collate", "column", "commit", "conflict", "constraint", "create", "cross",
    "current", "current_date", "current_time", "current_timestamp", "database", "default",
    "deferrable", "deferred", "delete", "desc", "detach", "distinct", "do", "drop", "each", "else",
    "end", "escape", "except", "exclude", "exclusive", "exists", "explain", "fail", "filter",
    "first", "following", "for", "foreign", "from", "full", "generated", "glob", "group", "groups",
    "having", "if", "ignore", "immediate", "in", "index", "indexed", "initially", "inner",
    "insert", "instead", "intersect", "into", "is", "isnull", "join", "key", "last", "left",
    "like", "limit", "match", "materialized", "natural", "no", "not", "nothing", "notnull", "null",
    "nulls", "of", "offset", "on", "or", "order", "others", "outer", "over", "partition", "plan",
    "pragma", "preceding", "primary", "query", "raise", "range", "recursive", "references",
    "regexp", "reindex", "release", "rename", "replace", "restrict", "returning", "right",
    "rollback", "row", "rows", "savepoint", "select", "set", "table", "temp", "temporary", "then",
    "ties", "to", "transaction", "trigger", "unbounded", "union", "unique", "update", "using",
    "vacuum", "values", "view", "virtual", "when", "where", "window", "with", "without",
];

/// A name as SQL should write it: bare when it is a plain identifier, quoted otherwise
/// (spaces, quotes, dots, non-ASCII, keywords).
pub fn sql_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name.to_ascii_lowercase().as_str());
    if plain { name.to_owned() } else { quote_ident(name) }
}

/// A relation's name as SQL writes it; with `qualified` (PostgreSQL), `schema.table` is two
/// identifiers.
pub fn relation_ident(name: &str, qualified: bool) -> String {
    match name.split_once('.') {
        Some((schema, table)) if qualified => format!("{}.{}", sql_ident(schema), sql_ident(table)),
        _ => sql_ident(name),
    }
}

/// `PRAGMA schema_version` of the connection's main database.
pub fn schema_version(conn: &Connection) -> Result<i64, ToolError> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0)).map_err(classify)
}

/// Tables and views, without SQLite's internal ones, sorted by name.
pub fn table_names(conn: &Connection) -> Result<Vec<String>, ToolError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type IN ('table','view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(classify)?;
    let names = stmt.query_map([], |r| r.get(0)).map_err(classify)?;
    names.collect::<Result<_, _>>().map_err(classify)
}

/// The column names of `table` (hidden ones included).
pub fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, ToolError> {
    let mut stmt =
        conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table))).map_err(classify)?;
    let names = stmt.query_map([], |r| r.get(1)).map_err(classify)?;
    names.collect::<Result<_, _>>().map_err(classify)
}

/// One object of `sqlite_schema`, with what `pragma_table_list` knows of it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    /// `table`, `view`, `virtual` or `shadow`.
    kind: String,
    sql: Option<String>,
    without_rowid: bool,
    strict: bool,
}

fn catalogue(conn: &Connection) -> Result<Vec<Entry>, ToolError> {
    let mut stmt = conn
        .prepare(
            "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table','view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(classify)?;
    let mut entries: Vec<Entry> = stmt
        .query_map([], |r| {
            Ok(Entry {
                name: r.get(0)?,
                kind: r.get(1)?,
                sql: r.get(2)?,
                without_rowid: false,
                strict: false,
            })
        })
        .map_err(classify)?
        .collect::<Result<_, _>>()
        .map_err(classify)?;
    // Kinds (shadow, virtual) and flags from one pass over table_list, merged here: a join in
    // SQL would rescan the pragma per table (quadratic on 2,000 tables). Without it (it may meet
    // an object it cannot describe), kinds come from the DDL.
    let listed = (|| -> rusqlite::Result<HashMap<String, (String, bool, bool)>> {
        let mut stmt = conn.prepare(
            "SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get::<_, i64>(2)? != 0, r.get::<_, i64>(3)? != 0)))
        })?;
        rows.collect()
    })()
    .unwrap_or_else(|e| {
        log::debug!("pragma_table_list failed ({e}); reading kinds from the DDL");
        HashMap::new()
    });
    for e in &mut entries {
        if let Some((kind, wr, strict)) = listed.get(&e.name) {
            e.kind.clone_from(kind);
            e.without_rowid = *wr;
            e.strict = *strict;
        }
        if e.kind == "table" && module_of(e.sql.as_deref()).is_some() {
            e.kind = "virtual".into();
        }
    }
    Ok(entries)
}

/// `fts5` from `CREATE VIRTUAL TABLE x USING fts5(…)`.
fn module_of(sql: Option<&str>) -> Option<String> {
    let sql = sql?;
    let upper = sql.to_ascii_uppercase();
    if !upper.trim_start().starts_with("CREATE VIRTUAL TABLE") {
        return None;
    }
    let at = upper.find(" USING ")? + " USING ".len();
    let module: String =
        sql[at..].trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!module.is_empty()).then_some(module)
}

fn object_error(err: &ToolError) -> ObjectError {
    let code = if err.model_message.starts_with("no such module") {
        "missing_module"
    } else if err.model_message.starts_with("no such collation") {
        "unknown_collation"
    } else {
        err.code.as_str()
    };
    ObjectError { code: code.into(), message: err.model_message.clone() }
}

/// Runs `batch` (a statement over `json_each(?1)` whose first column is the object's name) for
/// all `names`; if it fails, runs `single` per name so one broken object fails alone.
fn facts<T>(
    conn: &Connection,
    names: &[&str],
    batch: &str,
    single: &str,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> HashMap<String, Result<Vec<T>, ToolError>> {
    let mut out: HashMap<String, Result<Vec<T>, ToolError>> = HashMap::new();
    if names.is_empty() {
        return out;
    }
    let json = serde_json::Value::from(names.to_vec()).to_string();
    let run = |sql: &str, arg: &str| -> rusqlite::Result<Vec<(String, T)>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([arg], |r| Ok((r.get::<_, String>(0)?, map(r)?)))?;
        rows.collect()
    };
    match run(batch, &json) {
        Ok(rows) => {
            for n in names {
                out.insert((*n).to_owned(), Ok(Vec::new()));
            }
            for (name, fact) in rows {
                if let Some(Ok(list)) = out.get_mut(&name) {
                    list.push(fact);
                }
            }
        }
        Err(_) => {
            for n in names {
                let one = run(single, n)
                    .map(|rows| rows.into_iter().map(|(_, f)| f).collect())
                    .map_err(classify);
                out.insert((*n).to_owned(), one);
            }
        }
    }
    out
}

/// (cid, name, type, notnull, default, pk, hidden)
type ColumnRow = (String, Option<String>, bool, Option<String>, u32, i64);

fn columns_of(
    conn: &Connection,
    names: &[&str],
) -> HashMap<String, Result<Vec<ColumnRow>, ToolError>> {
    facts(
        conn,
        names,
        "SELECT m.value, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk, p.hidden \
         FROM json_each(?1) m JOIN pragma_table_xinfo(m.value) p ORDER BY m.key, p.cid",
        "SELECT ?1, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk, p.hidden \
         FROM pragma_table_xinfo(?1) p ORDER BY p.cid",
        |r| {
            Ok((
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)? != 0,
                r.get(4)?,
                r.get::<_, i64>(5)?.try_into().unwrap_or(0),
                r.get(6)?,
            ))
        },
    )
}

/// (id, parent table, from, to, on update, on delete)
type ForeignKeyRow = (i64, String, String, Option<String>, String, String);

fn foreign_keys_of(
    conn: &Connection,
    names: &[&str],
) -> HashMap<String, Result<Vec<ForeignKeyRow>, ToolError>> {
    facts(
        conn,
        names,
        "SELECT m.value, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_update, f.on_delete \
         FROM json_each(?1) m JOIN pragma_foreign_key_list(m.value) f ORDER BY m.key, f.id, f.seq",
        "SELECT ?1, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_update, f.on_delete \
         FROM pragma_foreign_key_list(?1) f ORDER BY f.id, f.seq",
        |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
    )
}

/// (index name, unique, origin, partial, column name or None for an expression)
type IndexRow = (String, bool, String, bool, Option<Option<String>>);

fn indexes_of(
    conn: &Connection,
    names: &[&str],
) -> HashMap<String, Result<Vec<IndexRow>, ToolError>> {
    facts(
        conn,
        names,
        "SELECT m.value, i.name, i.\"unique\", i.origin, i.partial, c.cid, c.name \
         FROM json_each(?1) m JOIN pragma_index_list(m.value) i \
         LEFT JOIN pragma_index_info(i.name) c ORDER BY m.key, i.seq DESC, c.seqno",
        "SELECT ?1, i.name, i.\"unique\", i.origin, i.partial, c.cid, c.name \
         FROM pragma_index_list(?1) i LEFT JOIN pragma_index_info(i.name) c \
         ORDER BY i.seq DESC, c.seqno",
        |r| {
            let cid: Option<i64> = r.get(5)?;
            Ok((
                r.get(1)?,
                r.get::<_, i64>(2)? != 0,
                r.get(3)?,
                r.get::<_, i64>(4)? != 0,
                cid.map(|_| r.get::<_, Option<String>>(6)).transpose()?,
            ))
        },
    )
}

fn build_columns(rows: Vec<ColumnRow>, table: &str, spec: &TargetSpec) -> Vec<ColumnInfo> {
    let masked = spec.mask_set();
    let described = spec.tables.get(table);
    rows.into_iter()
        .map(|(name, data_type, notnull, default, primary_key, hidden)| ColumnInfo {
            description: described.and_then(|d| d.columns.get(&name).cloned()),
            masked: masked.contains(&(table.to_ascii_lowercase(), name.to_ascii_lowercase())),
            generated: match hidden {
                2 => Some(Generated::Virtual),
                3 => Some(Generated::Stored),
                _ => None,
            },
            hidden: hidden == 1,
            name,
            data_type: data_type.unwrap_or_default(),
            nullable: !notnull,
            default,
            primary_key,
        })
        .collect()
}

fn build_foreign_keys(rows: Vec<ForeignKeyRow>, known: &HashSet<String>) -> Vec<ForeignKeyInfo> {
    let mut out: Vec<(i64, ForeignKeyInfo)> = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in rows {
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, fk)) => {
                fk.columns.push(from);
                fk.references_columns.push(to.unwrap_or_default());
            }
            None => out.push((
                id,
                ForeignKeyInfo {
                    columns: vec![from],
                    references_missing: !known.contains(&parent.to_ascii_lowercase()),
                    references_table: parent,
                    references_columns: vec![to.unwrap_or_default()],
                    on_update,
                    on_delete,
                },
            )),
        }
    }
    out.into_iter().map(|(_, fk)| fk).collect()
}

fn build_indexes(rows: Vec<IndexRow>) -> Vec<IndexInfo> {
    let mut out: Vec<IndexInfo> = Vec::new();
    for (name, unique, origin, partial, column) in rows {
        let idx = match out.iter_mut().find(|i| i.name == name) {
            Some(i) => i,
            None => {
                out.push(IndexInfo { name, columns: Vec::new(), unique, origin, partial });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        if let Some(c) = column {
            idx.columns.push(c.unwrap_or_else(|| "<expression>".into()));
        }
    }
    out
}

fn triggers(conn: &Connection) -> Result<HashMap<String, Vec<TriggerInfo>>, ToolError> {
    let mut stmt = conn
        .prepare(
            "SELECT tbl_name, name, coalesce(sql,'') FROM sqlite_schema WHERE type='trigger' \
             ORDER BY name",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                TriggerInfo { name: r.get(1)?, sql: r.get(2)?, error: None },
            ))
        })
        .map_err(classify)?;
    let mut out: HashMap<String, Vec<TriggerInfo>> = HashMap::new();
    for row in rows {
        let (table, trigger) = row.map_err(classify)?;
        out.entry(table.to_ascii_lowercase()).or_default().push(trigger);
    }
    Ok(out)
}

/// Finds triggers that no longer compile. A trigger is compiled only when a write would fire
/// it, and the sandbox never writes, so the schema (tables and views, no data) is replayed in a
/// private in-memory database, and each trigger's firing statement is prepared there (prepared,
/// never run). The target is not touched.
fn broken_triggers(
    entries: &[Entry],
    triggers: &HashMap<String, Vec<TriggerInfo>>,
) -> HashMap<String, ObjectError> {
    let mut out = HashMap::new();
    if triggers.is_empty() {
        return out;
    }
    let Ok(mem) = Connection::open_in_memory() else { return out };
    if mem.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0).is_err() {
        return out;
    }
    let _ = mem.collation_needed(|c, name| c.create_collation(name, |a: &str, b: &str| a.cmp(b)));
    for e in entries.iter().filter(|e| e.kind != "shadow") {
        let Some(sql) = &e.sql else { continue };
        // `execute` refuses anything but exactly one statement; only CREATEs are replayed.
        if crate::sandbox::leading_keyword(sql) == "create" {
            let _ = mem.execute(sql, []);
        }
    }
    for trigger in triggers.values().flatten() {
        if crate::sandbox::leading_keyword(&trigger.sql) != "create"
            || mem.execute(&trigger.sql, []).is_err()
        {
            continue;
        }
        let Some((event, table)) = trigger_target(&trigger.sql) else { continue };
        let table_q = quote_ident(&table);
        let firing = match event.as_str() {
            "insert" => format!("INSERT INTO {table_q} DEFAULT VALUES"),
            "delete" => format!("DELETE FROM {table_q}"),
            _ => {
                let cols: Vec<String> = mem
                    .prepare(&format!(
                        "SELECT name FROM pragma_table_xinfo({}) WHERE hidden = 0",
                        crate::sandbox::quote_literal(&table)
                    ))
                    .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
                    .unwrap_or_default();
                let sets: Vec<String> =
                    cols.iter().map(|c| format!("{0} = {0}", quote_ident(c))).collect();
                if sets.is_empty() {
                    let _ =
                        mem.execute(&format!("DROP TRIGGER {}", quote_ident(&trigger.name)), []);
                    continue;
                }
                format!("UPDATE {table_q} SET {}", sets.join(", "))
            }
        };
        if let Err(e) = mem.prepare(&firing) {
            out.insert(trigger.name.clone(), object_error(&classify(e)));
        }
        let _ = mem.execute(&format!("DROP TRIGGER {}", quote_ident(&trigger.name)), []);
    }
    out
}

/// The event (`insert`, `update`, `delete`) and table of a `CREATE TRIGGER` statement.
fn trigger_target(sql: &str) -> Option<(String, String)> {
    let tokens = sql_tokens(sql);
    let on = tokens.iter().position(|t| t.eq_ignore_ascii_case("on"))?;
    let event = tokens[..on]
        .iter()
        .rev()
        .map(|t| t.to_ascii_lowercase())
        .find(|t| matches!(t.as_str(), "insert" | "update" | "delete"))?;
    let table = tokens.get(on + 1)?;
    Some((event, unquote(table)))
}

/// Words and quoted names of a statement, enough to find a trigger's event and table.
pub(crate) fn sql_tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '[' | '\'' => {
                let close = if c == '[' { ']' } else { c };
                let mut tok = String::from(c);
                while let Some(n) = chars.next() {
                    tok.push(n);
                    if n == close {
                        if close != ']' && chars.peek() == Some(&close) {
                            tok.push(close);
                            chars.next();
                            continue;
                        }
                        break;
                    }
                }
                out.push(tok);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut tok = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        tok.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(tok);
            }
            _ => {}
        }
    }
    out
}

pub(crate) fn unquote(token: &str) -> String {
    let mut chars = token.chars();
    match chars.next() {
        Some(q @ ('"' | '`')) => {
            let inner = chars.as_str();
            let inner = inner.strip_suffix(q).unwrap_or(inner);
            inner.replace(&format!("{q}{q}"), &q.to_string())
        }
        Some('[') => {
            let inner = chars.as_str();
            inner.strip_suffix(']').unwrap_or(inner).to_owned()
        }
        _ => token.strip_prefix("main.").unwrap_or(token).to_owned(),
    }
}

/// Row-count estimates from `sqlite_stat1` (the first number of each row is the rows the
/// table or index had when `ANALYZE` ran), by lower-case table name.
fn stat1(conn: &Connection) -> HashMap<String, u64> {
    let read = || -> rusqlite::Result<HashMap<String, u64>> {
        let mut stmt = conn.prepare("SELECT tbl, stat FROM sqlite_stat1")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: HashMap<String, u64> = HashMap::new();
        for row in rows {
            let (table, stat) = row?;
            if let Some(n) = stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
                let e = out.entry(table.to_ascii_lowercase()).or_insert(0);
                *e = (*e).max(n);
            }
        }
        Ok(out)
    };
    let has_stat1 = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'", [], |_| Ok(()))
        .is_ok();
    if has_stat1 { read().unwrap_or_default() } else { HashMap::new() }
}

/// Row counts while the structure is built: known exact counts, a time budget for new exact
/// counts, and the tables that still need one (counted later, in the background).
#[derive(Debug)]
pub struct RowCounts<'a> {
    /// Exact counts known to be current, by table name.
    pub known: &'a HashMap<String, u64>,
    /// Time all new exact counts of this build may take together.
    pub budget: Duration,
    /// Filled with the tables left with an estimate or no count.
    pub pending: Vec<String>,
}

/// The cheapest honest count: a known exact one, an exact one if it is small enough to count
/// within the budget, else an estimate (`max(rowid)` or `sqlite_stat1`).
fn count_rows(
    conn: &Connection,
    entry: &Entry,
    stat1: &HashMap<String, u64>,
    counts: &mut RowCounts<'_>,
    until: Instant,
) -> Result<(Option<u64>, bool), ToolError> {
    if let Some(n) = counts.known.get(&entry.name) {
        return Ok((Some(*n), true));
    }
    let name = quote_ident(&entry.name);
    // max(rowid) is one b-tree descent: NULL for an empty table, else an upper bound on the
    // rows when rowids are positive (negative rowids give no bound)
    let mut rowid_bound = None;
    if entry.kind == "table" && !entry.without_rowid {
        let max: Option<i64> = conn
            .query_row(&format!("SELECT max(rowid) FROM {name}"), [], |r| r.get(0))
            .map_err(classify)?;
        match max {
            None => return Ok((Some(0), true)),
            Some(m) if m > 0 => rowid_bound = Some(m.unsigned_abs()),
            Some(_) => {}
        }
    }
    let stat = stat1.get(&entry.name.to_ascii_lowercase()).copied();
    let estimate = match (stat, rowid_bound) {
        (Some(s), Some(b)) => Some(s.min(b)),
        (s, b) => s.or(b),
    };
    let now = Instant::now();
    if now < until && estimate.is_none_or(|e| e <= EXACT_INLINE_ROWS) {
        let _deadline = Deadline::set(conn, until - now).map_err(ToolError::internal)?;
        match conn.query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get::<_, i64>(0)) {
            Ok(n) => return Ok((Some(n.max(0).unsigned_abs()), true)),
            Err(e) => {
                let err = classify(e);
                if err.code != ToolErrorCode::QueryTimeout {
                    return Err(err);
                }
            }
        }
    }
    counts.pending.push(entry.name.clone());
    Ok((estimate, false))
}

/// An exact `count(*)` of one table within `timeout` (for the background counter). Blocking.
pub fn exact_count(conn: &Connection, table: &str, timeout: Duration) -> Result<u64, ToolError> {
    let _deadline = Deadline::set(conn, timeout).map_err(ToolError::internal)?;
    conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(table)), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0).unsigned_abs())
    .map_err(classify)
}

fn sample(
    conn: &Connection,
    table: &str,
    n: usize,
    limits: &QueryLimits,
) -> Result<Vec<Vec<serde_json::Value>>, ToolError> {
    let _deadline = Deadline::set(conn, limits.timeout).map_err(ToolError::internal)?;
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {} LIMIT {n}", quote_ident(table)))
        .map_err(classify)?;
    let width = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(classify)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(to_json(row.get_ref(i).map_err(classify)?, limits.inline_blob_bytes));
        }
        out.push(values);
    }
    Ok(out)
}

/// Collation names a DDL uses that SQLite does not build in.
fn unknown_collations(entries: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for sql in entries.iter().filter_map(|e| e.sql.as_deref()) {
        let tokens = sql_tokens(sql);
        for pair in tokens.windows(2) {
            if pair[0].eq_ignore_ascii_case("collate") {
                let name = unquote(&pair[1]);
                let builtin =
                    ["binary", "nocase", "rtrim"].contains(&name.to_ascii_lowercase().as_str());
                if !builtin && !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Reads the schema. `only` filters tables by name (case-insensitive; empty = all); unknown
/// names are an error listing the valid ones. A broken object carries its `error`; only a
/// database whose catalogue cannot be read at all is an error.
pub fn schema(
    conn: &Connection,
    spec: &TargetSpec,
    limits: &QueryLimits,
    only: &[String],
    sample_rows: usize,
    counts: &mut RowCounts<'_>,
) -> Result<DatabaseSchema, ToolError> {
    let schema_version = schema_version(conn)?;
    let all = catalogue(conn)?;
    let listed: Vec<&Entry> = all.iter().filter(|e| e.kind != "shadow").collect();
    check_known(only, listed.iter().map(|e| e.name.as_str()))?;
    let known_names: HashSet<String> = all.iter().map(|e| e.name.to_ascii_lowercase()).collect();
    let wanted: Vec<&Entry> = listed
        .into_iter()
        .filter(|e| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&e.name)))
        .collect();
    let names: Vec<&str> = wanted.iter().map(|e| e.name.as_str()).collect();
    let tables_only: Vec<&str> =
        wanted.iter().filter(|e| e.kind == "table").map(|e| e.name.as_str()).collect();
    let mut columns = columns_of(conn, &names);
    let mut fks = foreign_keys_of(conn, &tables_only);
    let mut idx = indexes_of(conn, &tables_only);
    let mut trigs = triggers(conn)?;
    let broken = broken_triggers(&all, &trigs);
    let stat = stat1(conn);
    let until = Instant::now() + counts.budget;
    let mut tables = Vec::with_capacity(wanted.len());
    for e in wanted {
        let kind = match e.kind.as_str() {
            "view" => TableKind::View,
            "virtual" => TableKind::Virtual,
            _ => TableKind::Table,
        };
        let mut error = None;
        let cols = match columns.remove(&e.name).unwrap_or(Ok(Vec::new())) {
            Ok(rows) => build_columns(rows, &e.name, spec),
            Err(err) => {
                error = Some(object_error(&err));
                Vec::new()
            }
        };
        let foreign_keys = match fks.remove(&e.name) {
            Some(Ok(rows)) => build_foreign_keys(rows, &known_names),
            _ => Vec::new(),
        };
        let indexes = match idx.remove(&e.name) {
            Some(Ok(rows)) => build_indexes(rows),
            _ => Vec::new(),
        };
        let (row_count, row_count_exact) = if kind == TableKind::View || error.is_some() {
            (None, false)
        } else {
            match count_rows(conn, e, &stat, counts, until) {
                Ok(c) => c,
                Err(err) => {
                    error = Some(object_error(&err));
                    (None, false)
                }
            }
        };
        let sample_rows = if sample_rows > 0 && error.is_none() {
            match sample(conn, &e.name, sample_rows, limits) {
                Ok(rows) => Some(rows),
                Err(err) => {
                    error = Some(object_error(&err));
                    None
                }
            }
        } else {
            None
        };
        let mut triggers = trigs.remove(&e.name.to_ascii_lowercase()).unwrap_or_default();
        for t in &mut triggers {
            t.error = broken.get(&t.name).cloned();
        }
        let shadow_tables = if kind == TableKind::Virtual {
            let prefix = format!("{}_", e.name.to_ascii_lowercase());
            all.iter()
                .filter(|s| s.kind == "shadow" && s.name.to_ascii_lowercase().starts_with(&prefix))
                .map(|s| s.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        tables.push(TableInfo {
            columns: cols,
            foreign_keys,
            indexes,
            triggers,
            row_count,
            row_count_exact,
            module: module_of(e.sql.as_deref()),
            shadow_tables,
            without_rowid: e.without_rowid,
            strict: e.strict,
            error,
            description: spec.tables.get(&e.name).and_then(|d| d.description.clone()),
            sample_rows,
            name: e.name.clone(),
            kind,
            sql: e.sql.clone(),
            schema: None,
            partitions: Vec::new(),
        });
    }
    let mut warnings: Vec<String> = unknown_collations(&all)
        .into_iter()
        .map(|c| {
            format!(
                "collation `{c}` is not known here: it compares as BINARY, so ORDER BY and \
                 comparisons on its columns may differ from the application that defined it"
            )
        })
        .collect();
    let broken_count = tables.iter().filter(|t| t.error.is_some()).count();
    if broken_count > 0 {
        warnings.push(format!(
            "{broken_count} object(s) cannot be used (see their `error`); everything else works"
        ));
    }
    let ddl = render_ddl(&tables);
    Ok(DatabaseSchema { database: spec.name.clone(), schema_version, tables, ddl, warnings })
}

fn check_known<'a>(
    only: &[String],
    names: impl Iterator<Item = &'a str> + Clone,
) -> Result<(), ToolError> {
    let unknown: Vec<&str> = only
        .iter()
        .filter(|o| !names.clone().any(|n| n.eq_ignore_ascii_case(o)))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ToolError::new(
        ToolErrorCode::TableNotFound,
        format!(
            "no table or view named {}; tables are: {}",
            unknown.join(", "),
            names.collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// The cached full schema narrowed to some tables.
pub fn filter_schema(full: &DatabaseSchema, only: &[String]) -> Result<DatabaseSchema, ToolError> {
    if only.is_empty() {
        return Ok(full.clone());
    }
    check_known(only, full.tables.iter().map(|t| t.name.as_str()))?;
    let tables: Vec<TableInfo> = full
        .tables
        .iter()
        .filter(|t| only.iter().any(|o| o.eq_ignore_ascii_case(&t.name)))
        .cloned()
        .collect();
    Ok(DatabaseSchema {
        database: full.database.clone(),
        schema_version: full.schema_version,
        ddl: render_ddl(&tables),
        tables,
        warnings: full.warnings.clone(),
    })
}

/// A compact DDL-like text for prompts, one line per table, names quoted where SQL needs it:
/// `TABLE orders(id INTEGER PK, customer_id INTEGER NOT NULL -> customers.id, …) -- 5000 rows; …`
/// A broken object says so, so the model does not build on it.
pub fn render_ddl(tables: &[TableInfo]) -> String {
    let mut out = String::new();
    for t in tables {
        let kind = match t.kind {
            TableKind::View => "VIEW",
            TableKind::Virtual => "VIRTUAL TABLE",
            TableKind::Table => "TABLE",
            TableKind::MaterializedView => "MATERIALIZED VIEW",
            TableKind::ForeignTable => "FOREIGN TABLE",
        };
        if let Some(err) = &t.error {
            let _ = writeln!(
                out,
                "{kind} {} -- BROKEN, do not query: {}",
                relation_ident(&t.name, t.schema.is_some()),
                err.message
            );
            continue;
        }
        let cols: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| {
                let mut s = sql_ident(&c.name);
                if !c.data_type.is_empty() {
                    s.push(' ');
                    s.push_str(&c.data_type);
                }
                if c.masked {
                    s.push_str(" MASKED");
                }
                match c.generated {
                    Some(Generated::Virtual) => s.push_str(" GENERATED"),
                    Some(Generated::Stored) => s.push_str(" GENERATED STORED"),
                    None => {}
                }
                if c.primary_key > 0 {
                    s.push_str(" PK");
                } else if !c.nullable {
                    s.push_str(" NOT NULL");
                }
                for fk in &t.foreign_keys {
                    if let Some(i) = fk.columns.iter().position(|fc| fc == &c.name) {
                        let to = fk
                            .references_columns
                            .get(i)
                            .filter(|s| !s.is_empty())
                            .map_or("", String::as_str);
                        let _ = write!(
                            s,
                            " -> {}.{}{}",
                            relation_ident(&fk.references_table, t.schema.is_some()),
                            if to.is_empty() { "rowid".to_owned() } else { sql_ident(to) },
                            if fk.references_missing { " (missing table)" } else { "" }
                        );
                    }
                }
                if let Some(d) = &c.description {
                    let _ = write!(s, " /* {d} */");
                }
                s
            })
            .collect();
        let _ = write!(
            out,
            "{kind} {}({})",
            relation_ident(&t.name, t.schema.is_some()),
            cols.join(", ")
        );
        if let Some(m) = &t.module {
            let _ = write!(out, " USING {m}");
        }
        let mut notes = Vec::new();
        if t.without_rowid {
            notes.push("WITHOUT ROWID".to_owned());
        }
        if !t.partitions.is_empty() {
            notes.push(format!("partitioned into {}", t.partitions.join(", ")));
        }
        match (t.row_count, t.row_count_exact) {
            (Some(n), true) => notes.push(format!("{n} rows")),
            (Some(n), false) => notes.push(format!("~{n} rows (estimate)")),
            (None, _) => {}
        }
        if let Some(d) = &t.description {
            notes.push(d.clone());
        }
        if !notes.is_empty() {
            let _ = write!(out, " -- {}", notes.join("; "));
        }
        out.push('\n');
    }
    out
}

/// Facts about the database file (`get_metadata`).
pub fn metadata(
    conn: &Connection,
    spec: &TargetSpec,
    schema: &DatabaseSchema,
) -> Result<DatabaseMetadata, ToolError> {
    let pragma_i64 = |name: &str| -> Result<i64, ToolError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).map_err(classify)
    };
    let pragma_text = |name: &str| -> Result<String, ToolError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).map_err(classify)
    };
    let file = spec.path.as_ref().and_then(|p| std::fs::metadata(p).ok());
    let last_modified = file
        .as_ref()
        .and_then(|m| m.modified().ok())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
    Ok(DatabaseMetadata {
        database: spec.name.clone(),
        engine: "sqlite".into(),
        engine_version: rusqlite::version().to_owned(),
        file_size_bytes: file.as_ref().map_or(0, std::fs::Metadata::len),
        page_size: pragma_i64("page_size")?.try_into().unwrap_or(0),
        page_count: pragma_i64("page_count")?.try_into().unwrap_or(0),
        journal_mode: pragma_text("journal_mode")?,
        encoding: pragma_text("encoding")?,
        schema_version: schema.schema_version,
        table_count: schema.tables.iter().filter(|t| t.kind != TableKind::View).count() as u64,
        view_count: schema.tables.iter().filter(|t| t.kind == TableKind::View).count() as u64,
        total_rows: schema.tables.iter().filter_map(|t| t.row_count).sum(),
        last_modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_sql_needs_it() {
        for (name, expected) in [
            ("orders", "orders"),
            ("order details", "\"order details\""),
            ("select", "\"select\""),
            ("qty\"q", "\"qty\"\"q\""),
            ("dot.ted", "\"dot.ted\""),
            ("Äpfel", "\"Äpfel\""),
            ("_x1", "_x1"),
            ("1abc", "\"1abc\""),
        ] {
            assert_eq!(sql_ident(name), expected, "{name}");
        }
    }

    #[test]
    fn trigger_targets_as_data() {
        for (sql, expected) in [
            ("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END", Some(("insert", "a"))),
            (
                "create trigger \"on update\" before update of x, y on \"my t\" begin select 1; end",
                Some(("update", "my t")),
            ),
            (
                "CREATE TRIGGER IF NOT EXISTS delete_log INSTEAD OF DELETE ON main.v BEGIN SELECT 1; END",
                Some(("delete", "v")),
            ),
            ("CREATE TRIGGER x BEGIN END", None),
        ] {
            let got = trigger_target(sql);
            assert_eq!(got.as_ref().map(|(e, t)| (e.as_str(), t.as_str())), expected, "{sql}");
        }
    }

    #[test]
    fn unquote_never_splits_a_character() {
        for (token, expected) in [
            ("\"a\"\"b\"", "a\"b"),
            ("[x y]", "x y"),
            ("\"ünterminated ü", "ünterminated ü"),
            ("\"", ""),
            ("main.t", "t"),
        ] {
            assert_eq!(unquote(token), expected, "{token}");
        }
    }

    #[test]
    fn modules_and_collations_from_ddl() {
        assert_eq!(
            module_of(Some("CREATE VIRTUAL TABLE d USING fts5(a, b)")).as_deref(),
            Some("fts5")
        );
        assert_eq!(
            module_of(Some("create virtual table r using rtree(id,a,b)")).as_deref(),
            Some("rtree")
        );
        assert_eq!(module_of(Some("CREATE TABLE using_x(a)")), None);
        let entries = vec![Entry {
            name: "t".into(),
            kind: "table".into(),
            sql: Some(
                "CREATE TABLE t(a TEXT COLLATE nocase, b TEXT COLLATE \"app_locale\")".into(),
            ),
            without_rowid: false,
            strict: false,
        }];
        assert_eq!(unknown_collations(&entries), vec!["app_locale".to_owned()]);
    }
}
