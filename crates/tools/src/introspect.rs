//! Reads a target database's structure through a sandboxed connection. Blocking.

use std::fmt::Write as _;

use rusqlite::Connection;
use sqlmatic_models::{
    ColumnInfo, DatabaseMetadata, DatabaseSchema, ForeignKeyInfo, IndexInfo, TableInfo, TableKind,
    TriggerInfo,
};

use crate::sandbox::{Deadline, classify, to_json};
use crate::{QueryLimits, TargetSpec, ToolError, ToolErrorCode};

/// Quotes an identifier for SQLite (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

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

pub fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, ToolError> {
    let mut stmt =
        conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table))).map_err(classify)?;
    let names = stmt.query_map([], |r| r.get(1)).map_err(classify)?;
    names.collect::<Result<_, _>>().map_err(classify)
}

fn columns(
    conn: &Connection,
    table: &str,
    spec: &TargetSpec,
) -> Result<Vec<ColumnInfo>, ToolError> {
    let masked = spec.mask_set();
    let described = spec.tables.get(table);
    let mut stmt =
        conn.prepare(&format!("PRAGMA table_xinfo({})", quote_ident(table))).map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            let name: String = r.get(1)?;
            let hidden: i64 = r.get(6)?;
            Ok((
                hidden,
                ColumnInfo {
                    description: described.and_then(|d| d.columns.get(&name).cloned()),
                    name,
                    data_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    nullable: r.get::<_, i64>(3)? == 0,
                    default: r.get(4)?,
                    primary_key: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
                    masked: false,
                },
            ))
        })
        .map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        let (hidden, mut col) = row.map_err(classify)?;
        col.masked = masked.contains(&(table.to_lowercase(), col.name.to_lowercase()));
        // hidden = 1: a virtual table's hidden column; 2/3 are generated columns, which are real.
        if hidden != 1 {
            out.push(col);
        }
    }
    Ok(out)
}

fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKeyInfo>, ToolError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA foreign_key_list({})", quote_ident(table)))
        .map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(classify)?;
    let mut out: Vec<(i64, ForeignKeyInfo)> = Vec::new();
    for row in rows {
        let (id, parent, from, to, on_update, on_delete) = row.map_err(classify)?;
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, fk)) => {
                fk.columns.push(from);
                fk.references_columns.push(to.unwrap_or_default());
            }
            None => out.push((
                id,
                ForeignKeyInfo {
                    columns: vec![from],
                    references_table: parent,
                    references_columns: vec![to.unwrap_or_default()],
                    on_update,
                    on_delete,
                },
            )),
        }
    }
    Ok(out.into_iter().map(|(_, fk)| fk).collect())
}

fn indexes(conn: &Connection, table: &str) -> Result<Vec<IndexInfo>, ToolError> {
    let mut stmt =
        conn.prepare(&format!("PRAGMA index_list({})", quote_ident(table))).map_err(classify)?;
    let list: Vec<(String, bool, String)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?)))
        .map_err(classify)?
        .collect::<Result<_, _>>()
        .map_err(classify)?;
    let mut out = Vec::with_capacity(list.len());
    for (name, unique, origin) in list {
        let mut info = conn
            .prepare(&format!("PRAGMA index_info({})", quote_ident(&name)))
            .map_err(classify)?;
        let columns = info
            .query_map([], |r| r.get::<_, Option<String>>(2))
            .map_err(classify)?
            .map(|c| c.map(|c| c.unwrap_or_else(|| "<expression>".into())))
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        out.push(IndexInfo { name, columns, unique, origin });
    }
    Ok(out)
}

fn triggers(conn: &Connection, table: &str) -> Result<Vec<TriggerInfo>, ToolError> {
    let mut stmt = conn
        .prepare("SELECT name, coalesce(sql,'') FROM sqlite_schema WHERE type='trigger' AND tbl_name=?1 ORDER BY name")
        .map_err(classify)?;
    let rows = stmt
        .query_map([table], |r| Ok(TriggerInfo { name: r.get(0)?, sql: r.get(1)? }))
        .map_err(classify)?;
    rows.collect::<Result<_, _>>().map_err(classify)
}

/// Rows in a table within the query time limit; `None` when counting takes longer.
fn row_count(
    conn: &Connection,
    table: &str,
    limits: &QueryLimits,
) -> Result<Option<u64>, ToolError> {
    let _deadline = Deadline::set(conn, limits.timeout).map_err(ToolError::internal)?;
    match conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(table)), [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(n) => Ok(Some(n.try_into().unwrap_or(0))),
        Err(e) => {
            let err = classify(e);
            if err.code == ToolErrorCode::QueryTimeout { Ok(None) } else { Err(err) }
        }
    }
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

/// Reads the schema. `only` filters tables by name (case-insensitive; empty = all); unknown
/// names are an error listing the valid ones.
pub fn schema(
    conn: &Connection,
    spec: &TargetSpec,
    limits: &QueryLimits,
    only: &[String],
    sample_rows: usize,
) -> Result<DatabaseSchema, ToolError> {
    let schema_version = schema_version(conn)?;
    let mut stmt = conn
        .prepare(
            "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table','view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(classify)?;
    let entries: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(classify)?
        .collect::<Result<_, _>>()
        .map_err(classify)?;
    check_known(only, entries.iter().map(|e| e.0.as_str()))?;
    let mut tables = Vec::new();
    for (name, kind, sql) in entries {
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let kind = if kind == "view" { TableKind::View } else { TableKind::Table };
        let is_table = kind == TableKind::Table;
        tables.push(TableInfo {
            columns: columns(conn, &name, spec)?,
            foreign_keys: if is_table { foreign_keys(conn, &name)? } else { Vec::new() },
            indexes: if is_table { indexes(conn, &name)? } else { Vec::new() },
            triggers: triggers(conn, &name)?,
            row_count: if is_table { row_count(conn, &name, limits)? } else { None },
            description: spec.tables.get(&name).and_then(|d| d.description.clone()),
            sample_rows: if sample_rows > 0 {
                Some(sample(conn, &name, sample_rows, limits)?)
            } else {
                None
            },
            name,
            kind,
            sql,
        });
    }
    let ddl = render_ddl(&tables);
    Ok(DatabaseSchema { database: spec.name.clone(), schema_version, tables, ddl })
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
    })
}

/// A compact DDL-like text for prompts, one line per table:
/// `TABLE orders(id INTEGER PK, customer_id INTEGER NOT NULL -> customers.id, …) -- 5000 rows; …`
pub fn render_ddl(tables: &[TableInfo]) -> String {
    let mut out = String::new();
    for t in tables {
        let kind = if t.kind == TableKind::View { "VIEW" } else { "TABLE" };
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let mut s = c.name.clone();
                if !c.data_type.is_empty() {
                    s.push(' ');
                    s.push_str(&c.data_type);
                }
                if c.masked {
                    s.push_str(" MASKED");
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
                            " -> {}.{}",
                            fk.references_table,
                            if to.is_empty() { "rowid" } else { to }
                        );
                    }
                }
                if let Some(d) = &c.description {
                    let _ = write!(s, " /* {d} */");
                }
                s
            })
            .collect();
        let _ = write!(out, "{kind} {}({})", t.name, cols.join(", "));
        let mut notes = Vec::new();
        if let Some(n) = t.row_count {
            notes.push(format!("{n} rows"));
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
    let file = std::fs::metadata(&spec.path).ok();
    let last_modified = file
        .as_ref()
        .and_then(|m| m.modified().ok())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
    Ok(DatabaseMetadata {
        database: spec.name.clone(),
        sqlite_version: rusqlite::version().to_owned(),
        file_size_bytes: file.as_ref().map_or(0, std::fs::Metadata::len),
        page_size: pragma_i64("page_size")?.try_into().unwrap_or(0),
        page_count: pragma_i64("page_count")?.try_into().unwrap_or(0),
        journal_mode: pragma_text("journal_mode")?,
        encoding: pragma_text("encoding")?,
        schema_version: schema.schema_version,
        table_count: schema.tables.iter().filter(|t| t.kind == TableKind::Table).count() as u64,
        view_count: schema.tables.iter().filter(|t| t.kind == TableKind::View).count() as u64,
        total_rows: schema.tables.iter().filter_map(|t| t.row_count).sum(),
        last_modified,
    })
}
