//! What a target database looks like: tables, columns, keys, indexes, metadata.

use serde::{Deserialize, Serialize};

/// A table, a view, a virtual table (FTS, R-Tree, …: its module is in `TableInfo::module`), or
/// one of PostgreSQL's other relations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// A table (ordinary, `WITHOUT ROWID` or `STRICT`).
    #[default]
    Table,
    /// A view.
    View,
    /// A virtual table (FTS, R-Tree, …).
    Virtual,
    /// A PostgreSQL materialized view (data as of its last `REFRESH`).
    MaterializedView,
    /// A PostgreSQL foreign table (data read from another server).
    ForeignTable,
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

/// One column of a table or view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnInfo {
    /// The column's name.
    pub name: String,
    /// The declared type, as written in the DDL ("" when none).
    #[serde(rename = "type")]
    pub data_type: String,
    /// False for `NOT NULL` columns.
    pub nullable: bool,
    /// The `DEFAULT` expression, as SQL text.
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
    /// The configured description (`database.targets[].tables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A foreign key: these columns reference another table's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForeignKeyInfo {
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references_table: String,
    /// The referenced columns (empty: its primary key).
    pub references_columns: Vec<String>,
    /// `ON UPDATE` action.
    pub on_update: String,
    /// `ON DELETE` action.
    pub on_delete: String,
    /// The referenced table does not exist (SQLite allows such keys; joins on them find nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub references_missing: bool,
}

/// An index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexInfo {
    /// The index's name.
    pub name: String,
    /// Indexed columns (expressions as text).
    pub columns: Vec<String>,
    /// A `UNIQUE` index.
    pub unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk` (primary key).
    pub origin: String,
    /// A partial index (`CREATE INDEX … WHERE …`): it covers only some rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// A trigger on a table or view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerInfo {
    /// The trigger's name.
    pub name: String,
    /// Its `CREATE TRIGGER` statement.
    pub sql: String,
    /// Set when the trigger no longer compiles: writes that would fire it fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
}

/// A table or view with everything the model and the client need to use it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableInfo {
    /// The table's name as SQL names it (PostgreSQL: `schema.table` outside `public`).
    pub name: String,
    /// The PostgreSQL schema it is in (SQLite: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Partitions of a PostgreSQL partitioned table, listed here instead of as tables of their
    /// own (the parent's row count includes theirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// Table, view or virtual table.
    pub kind: TableKind,
    /// Its columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// Its foreign keys.
    pub foreign_keys: Vec<ForeignKeyInfo>,
    /// Its indexes.
    pub indexes: Vec<IndexInfo>,
    /// Its triggers.
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
    /// The configured description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The `CREATE` statement.
    pub sql: Option<String>,
    /// A few rows, when asked for (`get_schema` `sample_rows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Vec<Object>>>))]
    pub sample_rows: Option<Vec<Vec<serde_json::Value>>>,
}

/// The structure of one target database, as the schema tool and `/api/database/structure` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseSchema {
    /// The target database's name.
    pub database: String,
    /// A number that changes when the schema does (SQLite's `PRAGMA schema_version`; for
    /// PostgreSQL a fingerprint of the catalogue).
    pub schema_version: i64,
    /// Every table and view.
    pub tables: Vec<TableInfo>,
    /// A compact DDL-like rendering for prompts.
    pub ddl: String,
    /// Things a reader should know about the whole database (unknown collations compared as
    /// BINARY, a file opened immutable, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How a structure changed since another one: what a subscriber that holds the structure of
/// version `since` needs to hold the new one, without the tables that did not change.
///
/// `ddl` is not carried (it is a rendering of every table, for prompts); read
/// `GET /api/database/structure` when it is needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaPatch {
    /// The `schema_version` of the structure this patch applies to.
    pub since: i64,
    /// Every table's name, in the structure's order: tables not named here are gone.
    pub names: Vec<String>,
    /// The tables that are new or changed, in full.
    pub tables: Vec<TableInfo>,
    /// The structure's warnings now (replacing the previous ones).
    pub warnings: Vec<String>,
}

/// A patch that does not fit the structure it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchMismatch {
    /// The structure is not the version the patch was made from.
    #[error("the patch applies to schema version {expected}, not {found}")]
    Version {
        /// The patch's `since`.
        expected: i64,
        /// The structure's version.
        found: i64,
    },
    /// A table the patch keeps is neither in the structure nor in the patch.
    #[error("the patch keeps table `{0}`, which the structure does not have")]
    UnknownTable(String),
}

impl SchemaPatch {
    /// The patch from `old` to `new`; `None` when a patch cannot describe the change (names
    /// that are not unique, another database), so the whole structure must be sent.
    pub fn between(old: &DatabaseSchema, new: &DatabaseSchema) -> Option<Self> {
        if old.database != new.database {
            return None;
        }
        let before: std::collections::HashMap<&str, &TableInfo> =
            old.tables.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut names = std::collections::HashSet::with_capacity(new.tables.len());
        if before.len() != old.tables.len()
            || !new.tables.iter().all(|t| names.insert(t.name.as_str()))
        {
            return None;
        }
        Some(Self {
            since: old.schema_version,
            names: new.tables.iter().map(|t| t.name.clone()).collect(),
            tables: new
                .tables
                .iter()
                .filter(|t| before.get(t.name.as_str()) != Some(t))
                .cloned()
                .collect(),
            warnings: new.warnings.clone(),
        })
    }

    /// Brings `schema` (of version `since`) to the patched structure of `version`. Its `ddl`
    /// is cleared: a patch does not carry it. On a mismatch `schema` is left as it was.
    pub fn apply(
        &self,
        schema: &mut DatabaseSchema,
        version: i64,
    ) -> std::result::Result<(), PatchMismatch> {
        if schema.schema_version != self.since {
            return Err(PatchMismatch::Version {
                expected: self.since,
                found: schema.schema_version,
            });
        }
        let changed: std::collections::HashMap<&str, &TableInfo> =
            self.tables.iter().map(|t| (t.name.as_str(), t)).collect();
        let held: std::collections::HashSet<&str> =
            schema.tables.iter().map(|t| t.name.as_str()).collect();
        if let Some(unknown) = self
            .names
            .iter()
            .find(|n| !changed.contains_key(n.as_str()) && !held.contains(n.as_str()))
        {
            return Err(PatchMismatch::UnknownTable(unknown.clone()));
        }
        // the unchanged tables are moved, not copied
        let mut kept: std::collections::HashMap<String, TableInfo> =
            std::mem::take(&mut schema.tables).into_iter().map(|t| (t.name.clone(), t)).collect();
        let tables = self
            .names
            .iter()
            .filter_map(|name| match changed.get(name.as_str()) {
                Some(table) => Some((*table).clone()),
                None => kept.remove(name),
            })
            .collect();
        schema.tables = tables;
        schema.schema_version = version;
        schema.warnings.clone_from(&self.warnings);
        schema.ddl.clear();
        Ok(())
    }
}

/// One entry of `list_tables`: cheap enough for very large schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableSummary {
    /// The table's name.
    pub name: String,
    /// Table, view or virtual table.
    pub kind: TableKind,
    /// Rows, when known (see `row_count_exact`).
    pub row_count: Option<u64>,
    /// False when `row_count` is an estimate.
    #[serde(default)]
    pub row_count_exact: bool,
    /// Why this object cannot be read, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
    /// The configured description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// File- and engine-level facts about a target database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseMetadata {
    /// The target database's name.
    pub database: String,
    /// The engine: `sqlite` or `postgresql`.
    pub engine: String,
    /// The engine's version (the SQLite library, or the PostgreSQL server).
    pub engine_version: String,
    /// The file's size (PostgreSQL: the database's size on disk).
    pub file_size_bytes: u64,
    /// `PRAGMA page_size` (PostgreSQL: the block size).
    pub page_size: u64,
    /// `PRAGMA page_count`.
    pub page_count: u64,
    /// `PRAGMA journal_mode` (PostgreSQL: `wal`).
    pub journal_mode: String,
    /// `PRAGMA encoding` (PostgreSQL: the server encoding).
    pub encoding: String,
    /// `PRAGMA schema_version` (PostgreSQL: the catalogue fingerprint).
    pub schema_version: i64,
    /// Tables (virtual ones included).
    pub table_count: u64,
    /// Views.
    pub view_count: u64,
    /// Rows in all tables (estimates included).
    pub total_rows: u64,
    /// RFC 3339 time of the file's last modification.
    pub last_modified: Option<String>,
}

/// A configured target database as `/api/databases` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseSummary {
    /// The target's name.
    pub name: String,
    /// Always true for queries; false only where approved writes may run.
    pub read_only: bool,
    /// The database used when none is named.
    pub is_default: bool,
    /// The configured description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its engine: `sqlite` or `postgresql`.
    pub engine: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: u64) -> TableInfo {
        TableInfo { name: name.into(), row_count: Some(rows), ..TableInfo::default() }
    }

    fn schema(version: i64, tables: Vec<TableInfo>) -> DatabaseSchema {
        DatabaseSchema {
            database: "demo".into(),
            schema_version: version,
            tables,
            ddl: "TABLE …".into(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_patch_carries_only_what_changed_and_rebuilds_the_new_structure() {
        let old = schema(1, vec![table("a", 1), table("b", 2), table("c", 3)]);
        let mut new = schema(2, vec![table("a", 1), table("aa", 0), table("c", 4)]);
        new.warnings.push("opened immutable".into());
        let patch = SchemaPatch::between(&old, &new).unwrap();
        assert_eq!(patch.since, 1);
        assert_eq!(patch.names, ["a", "aa", "c"]);
        assert_eq!(patch.tables, [table("aa", 0), table("c", 4)], "`a` did not change");
        let mut applied = old.clone();
        patch.apply(&mut applied, 2).unwrap();
        assert_eq!(applied, DatabaseSchema { ddl: String::new(), ..new.clone() });

        let unchanged = SchemaPatch::between(&new, &new).unwrap();
        assert!(unchanged.tables.is_empty());
    }

    #[test]
    fn a_patch_that_does_not_fit_changes_nothing() {
        let old = schema(1, vec![table("a", 1)]);
        let new = schema(2, vec![table("b", 1)]);
        let patch = SchemaPatch::between(&old, &new).unwrap();
        let mut other = schema(7, vec![table("a", 1)]);
        assert_eq!(
            patch.apply(&mut other, 2),
            Err(PatchMismatch::Version { expected: 1, found: 7 })
        );
        let keeps_unknown = SchemaPatch { tables: Vec::new(), ..patch };
        let mut held = old.clone();
        assert_eq!(keeps_unknown.apply(&mut held, 2), Err(PatchMismatch::UnknownTable("b".into())));
        assert_eq!(held, old);
    }

    #[test]
    fn duplicate_names_or_another_database_need_the_whole_structure() {
        let old = schema(1, vec![table("a", 1)]);
        assert_eq!(
            SchemaPatch::between(&old, &schema(2, vec![table("a", 1), table("a", 2)])),
            None
        );
        let other = DatabaseSchema { database: "shop".into(), ..old.clone() };
        assert_eq!(SchemaPatch::between(&old, &other), None);
    }
}
