//! PostgreSQL's catalogue as sqlmatic's structure: relations, columns (enums with their labels,
//! domains, identity and generated columns), keys across schemas, indexes, triggers, comments,
//! row estimates from `pg_class.reltuples`; the catalogue fingerprint; the start-up role check.
//!
//! Each part is one query over every relation at once (never one query per table), pipelined
//! on one connection.

use std::collections::{HashMap, HashSet};

use sqlmatic_models::{
    ColumnInfo, DatabaseMetadata, DatabaseSchema, ForeignKeyInfo, Generated, IndexInfo, TableInfo,
    TableKind, TriggerInfo,
};

use super::PostgresDatabase;
use super::value::{self, TextParam};
use crate::{QueryLimits, ToolError, ToolErrorCode};

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// The schemas shown: those configured, or every schema the role may use but the system ones.
/// `$1` is the configured list (empty: all).
const SCHEMAS: &str = "(SELECT n.oid, n.nspname FROM pg_namespace n WHERE CASE WHEN cardinality($1::text[]) > 0 \
     THEN n.nspname = ANY($1::text[]) ELSE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
     AND has_schema_privilege(n.oid, 'USAGE') END)";

/// A relation's name as SQL writes it here: bare in `public`, `schema.name` elsewhere.
fn display_name(schema: &str, name: &str) -> String {
    if schema == "public" { name.to_owned() } else { format!("{schema}.{name}") }
}

/// A number that changes when rows of the shown schemas are inserted, updated or deleted (the
/// cumulative statistics, flushed by PostgreSQL within about a second of a commit), or when the
/// catalogue does.
pub async fn data_stamp(
    db: &PostgresDatabase,
    client: &deadpool_postgres::Object,
    schemas: &[String],
) -> Result<i64, ToolError> {
    let sql = format!(
        "WITH s AS {SCHEMAS} SELECT coalesce(sum(t.n_tup_ins + t.n_tup_upd + t.n_tup_del), 0)::int8 \
         FROM pg_stat_all_tables t JOIN s ON s.nspname = t.schemaname"
    );
    let changes = numbers_over_schemas::<1>(db, client, &sql, schemas).await?[0];
    Ok(fingerprint(db, client, schemas).await?.wrapping_mul(31) ^ changes)
}

/// The first `N` `int8` columns of the one row `sql` (over the shown schemas, `$1`) returns.
async fn numbers_over_schemas<const N: usize>(
    db: &PostgresDatabase,
    client: &deadpool_postgres::Object,
    sql: &str,
    schemas: &[String],
) -> Result<[i64; N], ToolError> {
    let stmt = client.prepare_cached(sql).await.map_err(|e| db.error(&e))?;
    let row = client.query_one(&stmt, &[&schemas]).await.map_err(|e| db.error(&e))?;
    let mut out = [0; N];
    for (i, value) in out.iter_mut().enumerate() {
        *value = row.try_get(i).map_err(|e| db.error(&e))?;
    }
    Ok(out)
}

/// A number that changes with any DDL, comment or privilege change in the shown schemas: the
/// count and the sum of the transaction ids (`xmin`) of their catalogue rows. DDL, `COMMENT` and
/// `GRANT` write new catalogue row versions; `ANALYZE` and `VACUUM` update statistics in place
/// and leave it alone. No text is built, so it stays cheap on big catalogues.
pub async fn fingerprint(
    db: &PostgresDatabase,
    client: &deadpool_postgres::Object,
    schemas: &[String],
) -> Result<i64, ToolError> {
    let sql = format!(
        "WITH s AS {SCHEMAS}, rels AS (SELECT c.oid, c.xmin FROM pg_class c JOIN s ON s.oid = c.relnamespace \
           WHERE c.relkind IN ('r','v','m','p','f','i')), \
         parts(n, x) AS ( \
           SELECT count(*), sum(xmin::text::int8) FROM rels \
           UNION ALL SELECT count(*), sum(a.xmin::text::int8) FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid WHERE a.attnum > 0 \
           UNION ALL SELECT count(*), sum(con.xmin::text::int8) FROM pg_constraint con JOIN s ON s.oid = con.connamespace \
           UNION ALL SELECT count(*), sum(d.xmin::text::int8) FROM pg_description d JOIN rels r ON r.oid = d.objoid \
           UNION ALL SELECT count(*), sum(hashtext(s.nspname)) FROM s) \
         SELECT coalesce(sum(n), 0)::int8, coalesce(sum(x), 0)::int8 FROM parts"
    );
    let [count, sum] = numbers_over_schemas::<2>(db, client, &sql, schemas).await?;
    Ok(count.wrapping_mul(1_000_003) ^ sum)
}

/// `get_metadata` for PostgreSQL.
pub async fn metadata(
    db: &PostgresDatabase,
    tx: &Tx<'_>,
    schema: &DatabaseSchema,
) -> Result<DatabaseMetadata, ToolError> {
    let row = tx
        .query_one(
            "SELECT current_setting('server_version'), pg_database_size(current_database()), \
             current_setting('block_size')::int8, current_setting('server_encoding')",
            &[],
        )
        .await
        .map_err(|e| db.error(&e))?;
    let get_err = |e: tokio_postgres::Error| db.error(&e);
    let version: String = row.try_get(0).map_err(get_err)?;
    let size: i64 = row.try_get(1).map_err(get_err)?;
    let block: i64 = row.try_get(2).map_err(get_err)?;
    let encoding: String = row.try_get(3).map_err(get_err)?;
    let tables = schema
        .tables
        .iter()
        .filter(|t| matches!(t.kind, TableKind::Table | TableKind::ForeignTable))
        .count();
    Ok(DatabaseMetadata {
        database: db.spec.name.clone(),
        engine: "postgresql".into(),
        engine_version: version,
        file_size_bytes: size.max(0) as u64,
        page_size: block.max(0) as u64,
        page_count: (size.max(0) / block.max(1)) as u64,
        journal_mode: "wal".into(),
        encoding,
        schema_version: schema.schema_version,
        table_count: tables as u64,
        view_count: (schema.tables.len() - tables) as u64,
        total_rows: schema.tables.iter().filter_map(|t| t.row_count).sum(),
        last_modified: None,
    })
}

fn action(code: &str) -> String {
    match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
    .into()
}

/// Masked columns as configured, as (display table, column) in lower case: `t.c` means `t` in
/// `public` (or `schema.t` written out), `s.t.c` means `s.t`.
fn configured_masks(masked: &[String]) -> HashSet<(String, String)> {
    masked
        .iter()
        .filter_map(|m| {
            let (table, column) = m.rsplit_once('.')?;
            let table = table.strip_prefix("public.").unwrap_or(table);
            Some((table.trim().to_ascii_lowercase(), column.trim().to_ascii_lowercase()))
        })
        .collect()
}

impl PostgresDatabase {
    /// Builds the structure from the catalogue (four pipelined queries).
    pub(super) async fn build_schema(
        &self,
        limits: &QueryLimits,
        _only: &[String],
        _sample_rows: usize,
        fingerprint: i64,
    ) -> Result<DatabaseSchema, ToolError> {
        let schemas = self.schemas();
        let masks = configured_masks(&self.spec.masked_columns);
        self.within(limits.timeout, async |client| {
            let tx = self.begin(client).await?;
            let e = |e: tokio_postgres::Error| self.error(&e);
            let relations = format!(
                "WITH s AS {SCHEMAS} SELECT c.oid, s.nspname::text, c.relname::text, c.relkind::text, \
                   CASE WHEN c.relkind = 'p' THEN (SELECT sum(greatest(pc.reltuples, 0))::float8 FROM pg_partition_tree(c.oid) t \
                        JOIN pg_class pc ON pc.oid = t.relid WHERE t.isleaf) ELSE c.reltuples::float8 END, \
                   obj_description(c.oid, 'pg_class'), \
                   ARRAY(SELECT ps.nspname || '.' || pc.relname FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhrelid \
                         JOIN pg_namespace ps ON ps.oid = pc.relnamespace WHERE i.inhparent = c.oid ORDER BY pc.relname), \
                   CASE WHEN c.relkind IN ('v','m') THEN pg_get_viewdef(c.oid) END, \
                   (SELECT srv.srvname::text FROM pg_foreign_table f JOIN pg_foreign_server srv ON srv.oid = f.ftserver WHERE f.ftrelid = c.oid) \
                 FROM pg_class c JOIN s ON s.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','v','m','p','f') AND NOT c.relispartition \
                   AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT')) \
                 ORDER BY s.nspname = 'public' DESC, s.nspname, c.relname"
            );
            let rel_rows = tx.query(&relations, &[&schemas]).await.map_err(e)?;
            let oids: Vec<u32> = rel_rows.iter().map(|r| r.get::<_, u32>(0)).collect();
            let columns = "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                   pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, col_description(a.attrelid, a.attnum), \
                   has_column_privilege(a.attrelid, a.attnum, 'SELECT'), \
                   CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END, \
                   CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum";
            let constraints = "SELECT con.conrelid, con.contype::text, \
                   ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), \
                   fs.nspname::text, fc.relname::text, \
                   ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i), \
                   con.confupdtype::text, con.confdeltype::text \
                 FROM pg_constraint con LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
                 LEFT JOIN pg_namespace fs ON fs.oid = fc.relnamespace \
                 WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p','f') ORDER BY con.conrelid, con.conname";
            let indexes = "SELECT i.indrelid, ic.relname::text, i.indisunique, i.indisprimary, i.indpred IS NOT NULL, \
                   EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'u'), \
                   ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                 WHERE i.indrelid = ANY($1::oid[]) ORDER BY i.indrelid, ic.relname";
            let triggers = "SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid, true) FROM pg_trigger t \
                 WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal ORDER BY t.tgrelid, t.tgname";
            let by_oids: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&oids];
            let (cols, cons, idx, trg) = tokio::join!(
                tx.query(columns, &by_oids),
                tx.query(constraints, &by_oids),
                tx.query(indexes, &by_oids),
                tx.query(triggers, &by_oids),
            );
            let (cols, cons, idx, trg) = (cols.map_err(e)?, cons.map_err(e)?, idx.map_err(e)?, trg.map_err(e)?);

            let mut tables: Vec<TableInfo> = Vec::with_capacity(rel_rows.len());
            let mut by_oid: HashMap<u32, usize> = HashMap::new();
            for r in &rel_rows {
                let schema: String = r.get(1);
                let relname: String = r.get(2);
                let kind = match r.get::<_, String>(3).as_str() {
                    "v" => TableKind::View,
                    "m" => TableKind::MaterializedView,
                    "f" => TableKind::ForeignTable,
                    _ => TableKind::Table,
                };
                let estimate: Option<f64> = r.get(4);
                let name = display_name(&schema, &relname);
                let configured = self.spec.tables.get(&name);
                let comment: Option<String> = r.get(5);
                let partitions: Vec<String> = r.get(6);
                let view_sql: Option<String> = r.get(7);
                let server: Option<String> = r.get(8);
                by_oid.insert(r.get(0), tables.len());
                tables.push(TableInfo {
                    schema: Some(schema.clone()),
                    kind,
                    row_count: match kind {
                        TableKind::View => None,
                        _ => estimate.filter(|n| *n >= 0.0).map(|n| n.round() as u64),
                    },
                    row_count_exact: false,
                    partitions: partitions
                        .into_iter()
                        .map(|p| p.strip_prefix("public.").map(str::to_owned).unwrap_or(p))
                        .collect(),
                    module: server.map(|s| format!("foreign server {s}")),
                    description: configured.and_then(|c| c.description.clone()).or(comment),
                    sql: view_sql.map(|body| format!("CREATE VIEW {name} AS{}", body.trim_end_matches(';'))),
                    name,
                    ..TableInfo::default()
                });
            }
            for r in &cols {
                let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else { continue };
                let table = &mut tables[i];
                let name: String = r.get(1);
                let mut data_type: String = r.get(2);
                if let Some(labels) = r.get::<_, Option<Vec<String>>>(9) {
                    let quoted: Vec<String> = labels.iter().map(|l| format!("'{}'", l.replace('\'', "''"))).collect();
                    data_type = format!("{data_type} ENUM({})", quoted.join(", "));
                }
                if let Some(base) = r.get::<_, Option<String>>(10) {
                    data_type = format!("{data_type} (DOMAIN over {base})");
                }
                let identity: String = r.get(5);
                let generated: String = r.get(6);
                let default: Option<String> = match identity.as_str() {
                    "a" => Some("GENERATED ALWAYS AS IDENTITY".into()),
                    "d" => Some("GENERATED BY DEFAULT AS IDENTITY".into()),
                    _ => r.get(4),
                };
                let readable: bool = r.get(8);
                let masked = !readable
                    || masks.contains(&(table.name.to_ascii_lowercase(), name.to_ascii_lowercase()));
                let configured = self
                    .spec
                    .tables
                    .get(&table.name)
                    .and_then(|t| t.columns.get(&name).cloned());
                table.columns.push(ColumnInfo {
                    data_type,
                    nullable: !r.get::<_, bool>(3),
                    default,
                    primary_key: 0,
                    masked,
                    generated: (generated == "s").then_some(Generated::Stored),
                    hidden: false,
                    description: configured.or(r.get(7)),
                    name,
                });
            }
            for r in &cons {
                let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else { continue };
                let table = &mut tables[i];
                let kind: String = r.get(1);
                let columns: Vec<String> = r.get(2);
                if kind == "p" {
                    for (pos, col) in columns.iter().enumerate() {
                        if let Some(c) = table.columns.iter_mut().find(|c| &c.name == col) {
                            c.primary_key = pos as u32 + 1;
                        }
                    }
                } else {
                    let schema: Option<String> = r.get(3);
                    let relname: Option<String> = r.get(4);
                    table.foreign_keys.push(ForeignKeyInfo {
                        columns,
                        references_table: display_name(
                            schema.as_deref().unwrap_or("public"),
                            relname.as_deref().unwrap_or(""),
                        ),
                        references_columns: r.get(5),
                        on_update: action(&r.get::<_, String>(6)),
                        on_delete: action(&r.get::<_, String>(7)),
                        references_missing: false,
                    });
                }
            }
            for r in &idx {
                let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else { continue };
                let primary: bool = r.get(3);
                let from_constraint: bool = r.get(5);
                tables[i].indexes.push(IndexInfo {
                    name: r.get(1),
                    unique: r.get(2),
                    origin: if primary { "pk" } else if from_constraint { "u" } else { "c" }.into(),
                    partial: r.get(4),
                    columns: r.get(6),
                });
            }
            for r in &trg {
                let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else { continue };
                tables[i].triggers.push(TriggerInfo { name: r.get(1), sql: r.get(2), error: None });
            }
            let mut warnings = Vec::new();
            let unknown: Vec<String> = masks
                .iter()
                .filter(|(t, c)| {
                    !tables.iter().any(|tab| {
                        tab.name.eq_ignore_ascii_case(t)
                            && tab.columns.iter().any(|col| col.name.eq_ignore_ascii_case(c))
                    })
                })
                .map(|(t, c)| format!("{t}.{c}"))
                .collect();
            if !unknown.is_empty() {
                warnings.push(format!("masked columns not found: {}", unknown.join(", ")));
            }
            if tables.iter().any(|t| t.kind == TableKind::MaterializedView) {
                warnings.push("materialized views hold data as of their last REFRESH".into());
            }
            Ok(DatabaseSchema {
                database: self.spec.name.clone(),
                schema_version: fingerprint,
                ddl: crate::introspect::render_ddl(&tables),
                tables,
                warnings,
            })
        })
        .await
    }

    /// Up to `n` rows of `table`, masked columns as NULL (the role could not read them anyway).
    pub(super) async fn sample(
        &self,
        table: &TableInfo,
        n: usize,
        limits: &QueryLimits,
    ) -> Result<Vec<Vec<serde_json::Value>>, ToolError> {
        if table.columns.is_empty() {
            return Ok(Vec::new());
        }
        let select: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let ident = crate::introspect::quote_ident(&c.name);
                if c.masked { format!("NULL AS {ident}") } else { ident }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} LIMIT {n}",
            select.join(", "),
            crate::introspect::relation_ident(&table.name, true)
        );
        let sql = sqlmatic_models::SqlQuery::parse(&sql)
            .map_err(|e| ToolError::new(ToolErrorCode::SqlError, e.to_string()))?;
        let limits = QueryLimits { max_rows: n, max_scan_rows: 0, max_plan_cost: 0.0, ..*limits };
        let started = std::time::Instant::now();
        let no_params: Vec<TextParam> = Vec::new();
        let result = self
            .within(limits.timeout, async |client| {
                let tx = self.begin(client).await?;
                value::run(self, &tx, sql.as_str(), &no_params, &limits, started).await
            })
            .await?;
        Ok(result.rows)
    }

    /// The start-up check: a read-only target's role must not be able to write or escape, and
    /// masked columns must be unreadable to it.
    pub(super) async fn check_role(&self) -> Result<(), ToolError> {
        let timeout = std::time::Duration::from_millis(self.config.query_timeout_ms.max(1000));
        let schemas = self.schemas();
        let masks = configured_masks(&self.spec.masked_columns);
        let (problems, user, readable_masks) = self
            .within(timeout, async |client| {
                let tx = self.begin(client).await?;
                let e = |e: tokio_postgres::Error| self.error(&e);
                let role = "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
                       ARRAY(SELECT g.rolname::text FROM pg_roles g WHERE g.rolname IN \
                             ('pg_read_server_files','pg_write_server_files','pg_execute_server_program','pg_signal_backend','pg_write_all_data') \
                             AND pg_has_role(current_user, g.oid, 'MEMBER') ORDER BY 1) \
                     FROM pg_roles r WHERE r.rolname = current_user";
                let writable = format!(
                    "WITH s AS {SCHEMAS} SELECT s.nspname || '.' || c.relname FROM pg_class c JOIN s ON s.oid = c.relnamespace \
                     WHERE c.relkind IN ('r','p','v','m','f') AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') \
                     UNION ALL SELECT 'schema ' || s.nspname FROM s WHERE has_schema_privilege(s.oid, 'CREATE') \
                     UNION ALL SELECT 'sequence ' || s.nspname || '.' || c.relname FROM pg_class c JOIN s ON s.oid = c.relnamespace \
                     WHERE CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE') ELSE false END \
                     ORDER BY 1 LIMIT 6"
                );
                let columns = "WITH s AS (SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace) \
                     SELECT CASE WHEN s.nspname = 'public' THEN s.relname ELSE s.nspname || '.' || s.relname END, a.attname::text \
                     FROM s JOIN pg_attribute a ON a.attrelid = s.oid \
                     WHERE a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege(s.oid, a.attnum, 'SELECT') \
                       AND lower(CASE WHEN s.nspname = 'public' THEN s.relname ELSE s.nspname || '.' || s.relname END || '.' || a.attname) = ANY($1::text[])";
                let wanted: Vec<String> = masks.iter().map(|(t, c)| format!("{t}.{c}")).collect();
                let in_schemas: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&schemas];
                let masked: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&wanted];
                let (role, writable, readable) = tokio::join!(
                    tx.query_one(role, &[]),
                    tx.query(&writable, &in_schemas),
                    async {
                        if wanted.is_empty() { Ok(Vec::new()) } else { tx.query(columns, &masked).await }
                    },
                );
                let role = role.map_err(e)?;
                let mut problems = Vec::new();
                let user: String = role.get(0);
                if role.get::<_, bool>(1) {
                    problems.push("is a superuser".to_owned());
                }
                if role.get::<_, bool>(2) {
                    problems.push("bypasses row-level security".to_owned());
                }
                for member in role.get::<_, Vec<String>>(3) {
                    problems.push(format!("is a member of {member}"));
                }
                let writable: Vec<String> = writable.map_err(e)?.iter().map(|r| r.get(0)).collect();
                if !writable.is_empty() {
                    problems.push(format!("may write to {}", writable.join(", ")));
                }
                let readable: Vec<String> = readable
                    .map_err(e)?
                    .iter()
                    .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
                    .collect();
                Ok((problems, user, readable))
            })
            .await?;
        let name = &self.spec.name;
        if !readable_masks.is_empty() {
            return Err(ToolError::new(
                ToolErrorCode::UnsafeRole,
                format!(
                    "database `{name}`: masked columns {} are readable by role `{user}`; PostgreSQL \
                     must refuse them. Grant the role only the other columns, e.g. \
                     REVOKE SELECT ON <table> FROM {user}; GRANT SELECT (<other columns>) ON <table> TO {user};",
                    readable_masks.join(", ")
                ),
            ));
        }
        if problems.is_empty() || !self.spec.read_only {
            return Ok(());
        }
        let summary = format!("role `{user}` {}", problems.join("; "));
        if self.spec.allow_privileged_role {
            log::warn!(
                "!!! database `{name}`: {summary}. allow_privileged_role is set, so sqlmatic starts \
                 anyway: PostgreSQL's read-only transaction and sqlmatic's SQL parser are all that \
                 stand between the model and this role's privileges. Use a read-only role \
                 (docs/security.md)."
            );
            return Ok(());
        }
        Err(ToolError::new(
            ToolErrorCode::UnsafeRole,
            format!(
                "database `{name}` is read-only but {summary}. Connect with a read-only role \
                 (CREATE ROLE sqlmatic_ro LOGIN PASSWORD '…'; GRANT USAGE ON SCHEMA public TO sqlmatic_ro; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO sqlmatic_ro;), or set \
                 allow_privileged_role: true to accept the risk"
            ),
        ))
    }
}
