//! What a target database looks like: tables, columns, keys, indexes, metadata.

use serde::{Deserialize, Serialize};

/// A table, a view, or a virtual table (FTS, R-Tree, …: its module is in `TableInfo::module`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    #[default]
    Table,
    View,
    Virtual,
}

/// How a generated column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Generated {
    /// Computed when read.
    Virtual,
    /// Computed when written and stored in the row.
    Stored,
}

/// Why one object of a database cannot be used (a view naming a dropped column, a virtual table
/// whose module is missing, a trigger that no longer compiles). The rest of the database works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectError {
    /// Stable reason: `sql_error`, `missing_module`, `unknown_collation`, `query_timeout`, …
    pub code: String,
    /// The database engine's own message.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type, as written in the DDL ("" when none).
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pub primary_key: u32,
    /// The column reads as NULL in every query (`database.targets[].masked_columns`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
    /// A generated column (`GENERATED ALWAYS AS …`): its value is computed, never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
    /// A hidden column of a virtual table (e.g. FTS5's `rank`): selectable only by name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForeignKeyInfo {
    pub columns: Vec<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
    /// The referenced table does not exist (SQLite allows such keys; joins on them find nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub references_missing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk` (primary key).
    pub origin: String,
    /// A partial index (`CREATE INDEX … WHERE …`): it covers only some rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerInfo {
    pub name: String,
    pub sql: String,
    /// Set when the trigger no longer compiles: writes that would fire it fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableInfo {
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnInfo>,
    pub foreign_keys: Vec<ForeignKeyInfo>,
    pub indexes: Vec<IndexInfo>,
    pub triggers: Vec<TriggerInfo>,
    /// Rows in a table; `None` for views and where no count is known yet.
    pub row_count: Option<u64>,
    /// `true` when `row_count` is an exact `count(*)`; `false` when it is an estimate
    /// (`sqlite_stat1`, or `max(rowid)` as an upper bound) while an exact count runs in the
    /// background.
    #[serde(default)]
    pub row_count_exact: bool,
    /// The module of a virtual table (`fts5`, `rtree`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Tables a virtual table keeps its data in (FTS `_content`, R-Tree `_node`, …), listed
    /// here instead of as tables of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow_tables: Vec<String>,
    /// `WITHOUT ROWID` table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_rowid: bool,
    /// `STRICT` table: values must match the declared column types.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
    /// Set when the object cannot be used (a stale view, a missing module): queries that touch it
    /// fail with this error; everything else works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The `CREATE` statement.
    pub sql: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Vec<Object>>>))]
    pub sample_rows: Option<Vec<Vec<serde_json::Value>>>,
}

/// The structure of one target database, as the schema tool and `/api/database/structure` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseSchema {
    pub database: String,
    pub schema_version: i64,
    pub tables: Vec<TableInfo>,
    /// A compact DDL-like rendering for prompts.
    pub ddl: String,
    /// Things a reader should know about the whole database (unknown collations compared as
    /// BINARY, a file opened immutable, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One entry of `list_tables`: cheap enough for very large schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableSummary {
    pub name: String,
    pub kind: TableKind,
    pub row_count: Option<u64>,
    #[serde(default)]
    pub row_count_exact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// File- and engine-level facts about a target database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseMetadata {
    pub database: String,
    pub sqlite_version: String,
    pub file_size_bytes: u64,
    pub page_size: u64,
    pub page_count: u64,
    pub journal_mode: String,
    pub encoding: String,
    pub schema_version: i64,
    pub table_count: u64,
    pub view_count: u64,
    pub total_rows: u64,
    /// RFC 3339 time of the file's last modification.
    pub last_modified: Option<String>,
}

/// A configured target database as `/api/databases` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseSummary {
    pub name: String,
    pub read_only: bool,
    pub is_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
