//! Real-world SQLite files: the torture database (every feature real files have, plus broken
//! objects), big tables whose counts are estimated then counted in the background, and files
//! that are not healthy databases.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlmatic_models::{DatabaseSchema, Generated, QueryParams, TableInfo, TableKind};
use sqlmatic_tools::test_support::{block_on, torture_db};
use sqlmatic_tools::{
    OpenMode, QueryAudit, TargetDatabase, TargetSpec, ToolContext, ToolErrorCode, ToolsConfig,
};

use super::call;

fn target(path: &Path, config: &ToolsConfig) -> Arc<TargetDatabase> {
    let spec: TargetSpec = serde_json::from_value(
        json!({"name": "real", "path": path, "masked_columns": ["customers.email"]}),
    )
    .unwrap();
    TargetDatabase::new(spec, config)
}

const AUDIT: QueryAudit<'static> =
    QueryAudit { user: "test", thread_id: None, source: "test", observer: None };

fn table<'a>(schema: &'a DatabaseSchema, name: &str) -> &'a TableInfo {
    schema
        .tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in structure"))
}

#[test]
fn the_torture_database_is_described_and_broken_objects_are_reported() {
    let (_dir, path) = torture_db();
    let config = ToolsConfig::default();
    let db = target(&path, &config);
    let s = block_on(db.schema(&config.limits())).unwrap();
    // broken objects carry their error, everything else has none
    let err = |name: &str| table(&s, name).error.clone().map(|e| (e.code, e.message));
    assert_eq!(
        err("stale_view"),
        Some(("sql_error".into(), "no such column: c.dropped_column".into()))
    );
    assert_eq!(err("gone_view").unwrap().1, "no such table: main.table_that_was_dropped");
    assert_eq!(err("ghost_vt").unwrap().0, "missing_module");
    let broken: Vec<&str> =
        s.tables.iter().filter(|t| t.error.is_some()).map(|t| t.name.as_str()).collect();
    assert_eq!(broken, ["ghost_vt", "gone_view", "stale_view"]);
    assert_eq!(table(&s, "stale_view").row_count, None);
    let trigger = |t: &str, name: &str| {
        table(&s, t).triggers.iter().find(|x| x.name == name).unwrap().error.clone()
    };
    assert!(trigger("orders", "broken_trigger").unwrap().message.contains("no_such_column"));
    assert_eq!(trigger("customers", "customers_audit"), None);
    assert_eq!(trigger("top_customers", "top_customers_insert"), None, "trigger on a view");
    // virtual tables listed once, shadow tables grouped under them
    let docs = table(&s, "docs");
    assert_eq!(
        (docs.kind, docs.module.as_deref(), docs.row_count),
        (TableKind::Virtual, Some("fts5"), Some(2))
    );
    assert!(docs.shadow_tables.contains(&"docs_data".to_owned()), "{:?}", docs.shadow_tables);
    assert!(docs.columns.iter().any(|c| c.name == "rank" && c.hidden), "FTS5's hidden rank");
    assert_eq!(table(&s, "notes4").module.as_deref(), Some("fts4"));
    let boxes = table(&s, "boxes");
    assert_eq!(
        (boxes.module.as_deref(), boxes.row_count, boxes.shadow_tables.len()),
        (Some("rtree"), Some(2), 3)
    );
    for hidden in [
        "docs_data",
        "docs_content",
        "boxes_node",
        "notes4_segdir",
        "sqlite_stat1",
        "sqlite_sequence",
    ] {
        assert!(s.tables.iter().all(|t| t.name != hidden), "{hidden} is listed as a table");
    }
    // columns and tables
    let generated_table = table(&s, "gen");
    let generated: Vec<Option<Generated>> =
        generated_table.columns.iter().map(|c| c.generated).collect();
    assert_eq!(generated, [None, Some(Generated::Virtual), Some(Generated::Stored)]);
    assert!(table(&s, "kv").without_rowid && table(&s, "strict_t").strict);
    let pk: Vec<u32> = table(&s, "enrolment").columns.iter().map(|c| c.primary_key).collect();
    assert_eq!(pk, [1, 2, 0]);
    let fk = &table(&s, "grade_notes").foreign_keys[0];
    assert_eq!(
        (fk.columns.clone(), fk.references_table.as_str()),
        (vec!["student".to_owned(), "course".to_owned()], "enrolment")
    );
    assert!(table(&s, "orphan").foreign_keys[0].references_missing);
    assert!(!fk.references_missing);
    let customers_sql = table(&s, "customers").sql.clone().unwrap();
    for part in ["AUTOINCREMENT", "CHECK (email LIKE '%@%')", "COLLATE NOCASE"] {
        assert!(customers_sql.contains(part), "{part} in {customers_sql}");
    }
    assert!(table(&s, "customers").columns[2].masked);
    let orders = table(&s, "orders");
    let big = orders.indexes.iter().find(|i| i.name == "orders_big").unwrap();
    let month = orders.indexes.iter().find(|i| i.name == "orders_month").unwrap();
    assert!(big.partial && !month.partial);
    assert_eq!(month.columns, ["<expression>"]);
    // odd names, case-distinct non-ASCII names, a wide table
    assert_eq!(table(&s, "Äpfel").row_count, Some(1));
    assert_eq!(table(&s, "äpfel").row_count, Some(2));
    let details: Vec<&str> =
        table(&s, "order details").columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(details, ["order id", "unit price", "qty\"quoted", "bracket col"]);
    assert_eq!(table(&s, "wide").columns.len(), 600);
    assert_eq!(table(&s, "日本語").columns[0].name, "名前");
    // what the model reads: names quoted where SQL needs it, broken objects marked
    for line in [
        "TABLE \"order details\"(\"order id\" INTEGER, \"unit price\" REAL, \"qty\"\"quoted\" INT, \"bracket col\" TEXT)",
        "VIEW stale_view -- BROKEN, do not query: no such column: c.dropped_column",
        "VIRTUAL TABLE docs(title, body) USING fts5",
        "TABLE \"select\"(\"from\" INTEGER, \"where\" TEXT)",
        "ghost_id INTEGER -> ghost_table.id (missing table)",
        "b INTEGER GENERATED, c INTEGER GENERATED STORED",
    ] {
        assert!(s.ddl.contains(line), "ddl lacks {line:?}:\n{}", s.ddl);
    }
    assert!(s.warnings.iter().any(|w| w.contains("`app_locale`")), "{:?}", s.warnings);
}

#[test]
fn every_working_object_answers_queries_and_broken_ones_say_why() {
    let (_dir, path) = torture_db();
    let config = ToolsConfig::default();
    let db = target(&path, &config);
    let q = |sql: &str| block_on(db.query(sql, &QueryParams::None, &config.limits(), &AUDIT));
    for (sql, expected) in [
        ("SELECT count(*) FROM orders", json!([[3]])),
        ("SELECT name FROM top_customers ORDER BY spent DESC LIMIT 1", json!([["Ann"]])),
        ("SELECT title FROM docs WHERE docs MATCH 'fox'", json!([["Hello"]])),
        ("SELECT content FROM notes4 WHERE notes4 MATCH 'milk'", json!([["remember the milk"]])),
        ("SELECT id FROM boxes WHERE minx >= 4", json!([[2]])),
        ("SELECT b, c FROM gen WHERE a = 2", json!([[4, 6]])),
        ("SELECT v FROM kv WHERE k = 'a'", json!([[{"$blob": "AP8="}]])),
        ("SELECT n FROM strict_t", json!([[2]])),
        ("SELECT \"qty\"\"quoted\" FROM \"order details\"", json!([[3]])),
        ("SELECT \"where\" FROM \"select\"", json!([["reserved"]])),
        ("SELECT count(*) FROM \"äpfel\"", json!([[2]])),
        ("SELECT name FROM collated ORDER BY name", json!([["A"], ["b"]])),
        ("SELECT c599 FROM wide", json!([[599]])),
        ("SELECT email FROM customers WHERE id = 1", json!([[null]])),
        ("SELECT 名前 FROM 日本語", json!([["テスト"]])),
    ] {
        let r = q(sql).unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        assert_eq!(json!(r.rows), expected, "{sql}");
    }
    let err = q("SELECT * FROM stale_view").unwrap_err();
    assert_eq!(err.code, ToolErrorCode::SqlError);
    assert!(
        err.model_message.contains("no such column: c.dropped_column"),
        "{}",
        err.model_message
    );
    assert!(err.model_message.contains("`stale_view` is broken"), "{}", err.model_message);
    let err = q("SELECT * FROM ghost_vt").unwrap_err();
    assert!(
        err.model_message.starts_with("no such module: no_such_module"),
        "{}",
        err.model_message
    );
}

#[tokio::test]
async fn the_tools_work_on_the_torture_database() {
    let (_dir, path) = torture_db();
    let config = ToolsConfig::default();
    let ctx = ToolContext::new(target(&path, &config), config.limits());
    let out = call(&ctx, "list_tables", json!({})).await.unwrap();
    let tables = out["tables"].as_array().unwrap();
    let stale = tables.iter().find(|t| t["name"] == "stale_view").unwrap();
    assert_eq!(stale["error"]["code"], "sql_error");
    assert!(tables.iter().all(|t| t["name"] != "docs_data"));
    let out =
        call(&ctx, "get_schema", json!({"tables": ["stale_view", "orders"], "sample_rows": 2}))
            .await
            .unwrap();
    assert_eq!(out["tables"][0]["name"], "orders");
    assert_eq!(out["tables"][0]["sample_rows"].as_array().unwrap().len(), 2);
    assert_eq!(out["tables"][1]["error"]["message"], "no such column: c.dropped_column");
    let out = call(&ctx, "get_metadata", json!({})).await.unwrap();
    assert_eq!(out["view_count"], 4);
    let out = call(&ctx, "execute_query", json!({"sql": "SELECT count(*) AS n FROM boxes"}))
        .await
        .unwrap();
    assert_eq!(out["rows"], json!([[2]]));
}

fn write_big(path: &Path, rows: u64, without_rowid: bool) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let suffix = if without_rowid { " WITHOUT ROWID" } else { "" };
    conn.execute_batch(&format!(
        "CREATE TABLE small(x INTEGER PRIMARY KEY); INSERT INTO small VALUES (1), (2);
         CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT){suffix};
         WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {rows})
         INSERT INTO big SELECT i * 2, 'v' FROM r;"
    ))
    .unwrap();
}

fn wait_for_exact(db: &TargetDatabase, config: &ToolsConfig, name: &str) -> TableInfo {
    for _ in 0..400 {
        let s = block_on(db.schema(&config.limits())).unwrap();
        let t = table(&s, name).clone();
        if t.row_count_exact {
            return t;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("`{name}` was never counted exactly");
}

#[test]
fn big_tables_get_an_estimate_first_and_an_exact_count_from_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    write_big(&path, 100_000, false);
    // the estimate itself, with no time for inline counts (deterministic: through a target, the
    // background count may finish and be merged before the structure is cached)
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (big, ddl) = estimated(&conn, "big");
    assert_eq!((big.row_count, big.row_count_exact), (Some(200_000), false), "max(rowid) bound");
    assert!(ddl.contains("~200000 rows (estimate)"), "{ddl}");
    // through a target: an estimate (or the exact count, if the background won), then exact
    let config = ToolsConfig { count_budget_ms: 0, ..ToolsConfig::default() };
    let db = target(&path, &config);
    let first = block_on(db.schema(&config.limits())).unwrap();
    let big = table(&first, "big");
    let expected = if big.row_count_exact { 100_000 } else { 200_000 };
    assert_eq!(big.row_count, Some(expected));
    let big = wait_for_exact(&db, &config, "big");
    assert_eq!(big.row_count, Some(100_000));
    let s = block_on(db.schema(&config.limits())).unwrap();
    assert!(s.ddl.contains("-- 100000 rows"), "{}", s.ddl);
    // a write from another process: the count is stale, so it is estimated (or already
    // counted again) and counted again
    conn.execute("DELETE FROM big WHERE id <= 1000", []).unwrap();
    let after = block_on(db.schema(&config.limits())).unwrap();
    let big = table(&after, "big");
    assert_ne!((big.row_count, big.row_count_exact), (Some(100_000), true), "not the stale count");
    assert_eq!(wait_for_exact(&db, &config, "big").row_count, Some(99_500));
}

/// `table` as the introspection describes it with no time for exact counts, and the DDL.
fn estimated(conn: &rusqlite::Connection, table_name: &str) -> (TableInfo, String) {
    let known = std::collections::HashMap::new();
    let mut counts = sqlmatic_tools::introspect::RowCounts {
        known: &known,
        budget: Duration::ZERO,
        pending: Vec::new(),
    };
    let spec = sqlmatic_tools::TargetSpec::read_only("t", "unused.db");
    let s = sqlmatic_tools::introspect::schema(
        conn,
        &spec,
        &ToolsConfig::default().limits(),
        &[],
        0,
        &mut counts,
    )
    .unwrap();
    assert!(counts.pending.iter().any(|t| t == table_name), "{:?}", counts.pending);
    (table(&s, table_name).clone(), s.ddl)
}

/// Negative rowids: `max(rowid)` is no bound, and a non-empty table is never "exactly 0 rows".
#[test]
fn negative_rowids_are_not_mistaken_for_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("neg.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (-5, 'a'), (-3, 'b');",
        )
        .unwrap();
    let config = ToolsConfig { count_budget_ms: 0, ..ToolsConfig::default() };
    let db = target(&path, &config);
    let s = block_on(db.schema(&config.limits())).unwrap();
    let t = table(&s, "t");
    assert_ne!((t.row_count, t.row_count_exact), (Some(0), true));
    assert_eq!(wait_for_exact(&db, &config, "t").row_count, Some(2));
}

/// The estimate itself, read by the introspection with no time for exact counts: through a
/// target, the background count of 20,000 rows may finish (and be merged) before the structure
/// is cached, whatever its time limit (SQLite's `count(*)` is one opcode, not interrupted).
#[test]
fn without_rowid_tables_are_estimated_from_sqlite_stat1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stat.db");
    write_big(&path, 20_000, true);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    let (big, _) = estimated(&conn, "big");
    assert_eq!(
        (big.row_count, big.row_count_exact, big.without_rowid),
        (Some(20_000), false, true)
    );
    // and a target counts it exactly later
    let config = ToolsConfig { count_budget_ms: 0, ..ToolsConfig::default() };
    let db = target(&path, &config);
    assert_eq!(wait_for_exact(&db, &config, "big").row_count, Some(20_000));
}

/// A file of `bytes`, and what its target answers.
fn unhealthy(bytes: &[u8]) -> (tempfile::TempDir, Arc<TargetDatabase>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    std::fs::write(&path, bytes).unwrap();
    (dir, target(&path, &ToolsConfig::default()))
}

fn real_db_bytes() -> Vec<u8> {
    let (dir, path) = torture_db();
    let bytes = std::fs::read(&path).unwrap();
    drop(dir);
    bytes
}

#[test]
fn files_that_are_not_healthy_databases_get_a_clear_error() {
    let real = real_db_bytes();
    let mut corrupt = real.clone();
    // keep the header, overwrite the schema page's b-tree
    corrupt[100..4096].iter_mut().for_each(|b| *b = 0xA5);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zero bytes", Vec::new(), "its file is empty (0 bytes)"),
        ("a CSV file", b"id,name\n1,ann\n".to_vec(), "looks like a text file"),
        (
            "an encrypted file",
            (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "encrypted database (SQLCipher, SEE) must be decrypted",
        ),
        ("a truncated copy", real[..real.len() / 2].to_vec(), "its file is truncated"),
        ("a corrupt schema page", corrupt, "its file is corrupt"),
    ];
    let config = ToolsConfig::default();
    for (what, bytes, expected) in cases {
        let (_dir, db) = unhealthy(&bytes);
        let err = block_on(db.health()).unwrap_err();
        assert_eq!(err.code, ToolErrorCode::DatabaseUnavailable, "{what}");
        assert!(
            err.model_message.starts_with("database `real` is unavailable: "),
            "{what}: {}",
            err.model_message
        );
        assert!(err.model_message.contains(expected), "{what}: {}", err.model_message);
        // every entry point answers with the same cause, not a pool time-out
        let q = block_on(db.query("SELECT 1", &QueryParams::None, &config.limits(), &AUDIT))
            .unwrap_err();
        assert_eq!(q.model_message, err.model_message, "{what}");
        assert_eq!(
            block_on(db.schema(&config.limits())).unwrap_err().model_message,
            err.model_message
        );
    }
}

#[test]
fn a_broken_file_replaced_by_a_good_one_recovers() {
    let (dir, db) = unhealthy(b"not a database at all, just text");
    assert!(block_on(db.health()).is_err());
    std::fs::write(dir.path().join("bad.db"), real_db_bytes()).unwrap();
    assert_eq!(block_on(db.health()).unwrap(), OpenMode::ReadOnly);
    let r = block_on(db.query(
        "SELECT count(*) FROM orders",
        &QueryParams::None,
        &ToolsConfig::default().limits(),
        &AUDIT,
    ));
    assert_eq!(json!(r.unwrap().rows), json!([[3]]));
}

/// A WAL database whose `-shm` cannot be created (as on a read-only directory or file system;
/// a dangling symlink makes SQLite fail the same way without privileges) opens immutable.
#[cfg(unix)]
#[test]
fn a_wal_database_whose_shm_cannot_be_created_opens_immutable_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (42);",
        )
        .unwrap();
    }
    assert!(!dir.path().join("wal.db-shm").exists(), "closing checkpoints and removes the -shm");
    std::os::unix::fs::symlink("/nonexistent/sqlmatic/shm", dir.path().join("wal.db-shm")).unwrap();
    let config = ToolsConfig::default();
    let db = target(&path, &config);
    assert_eq!(block_on(db.health()).unwrap(), OpenMode::Immutable);
    let r = block_on(db.query("SELECT x FROM t", &QueryParams::None, &config.limits(), &AUDIT))
        .unwrap();
    assert_eq!(json!(r.rows), json!([[42]]));
    let s = block_on(db.schema(&config.limits())).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("opened immutable")), "{:?}", s.warnings);
}

#[test]
fn reads_succeed_while_another_process_writes() {
    // (journal mode, how long each write holds its lock, reads): an application committing
    // often, and one whose rollback-journal transactions lock readers out for 20 ms at a time,
    // with 1 ms gaps between them that a read has to find
    for (journal, hold_ms, reads) in [("DELETE", 0, 100), ("WAL", 0, 100), ("DELETE", 20, 20)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode={journal}; CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT);"
        ))
        .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if hold_ms == 0 {
                        conn.execute("INSERT INTO log(v) VALUES (hex(randomblob(64)))", [])
                            .unwrap();
                    } else {
                        // EXCLUSIVE: readers are locked out until the commit
                        conn.execute_batch(
                            "BEGIN EXCLUSIVE; INSERT INTO log(v) VALUES (hex(randomblob(64)));",
                        )
                        .unwrap();
                        std::thread::sleep(Duration::from_millis(hold_ms));
                        conn.execute_batch("COMMIT").unwrap();
                    }
                    n += 1;
                    // an application writing often, not a tight loop that starves every reader
                    // of a rollback-journal database (there, busy readers get a retryable error)
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            })
        };
        let config = ToolsConfig::default();
        let db = target(&path, &config);
        for _ in 0..reads {
            block_on(db.query(
                "SELECT count(*), max(id) FROM log",
                &QueryParams::None,
                &config.limits(),
                &AUDIT,
            ))
            .unwrap_or_else(|e| panic!("{journal}/{hold_ms}: read failed while writing: {e}"));
            block_on(db.schema(&config.limits()))
                .unwrap_or_else(|e| panic!("{journal}/{hold_ms}: structure failed: {e}"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().unwrap() > 0, "{journal}: the writer wrote");
    }
}

#[test]
fn an_empty_database_and_a_views_only_database_work() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty).unwrap().execute_batch("PRAGMA user_version = 1").unwrap();
    let config = ToolsConfig::default();
    let s = block_on(target(&empty, &config).schema(&config.limits())).unwrap();
    assert!(s.tables.is_empty() && s.ddl.is_empty() && s.warnings.is_empty());
    let views = dir.path().join("views.db");
    rusqlite::Connection::open(&views)
        .unwrap()
        .execute_batch(
            "CREATE VIEW one AS SELECT 1 AS x; CREATE VIEW two AS SELECT x + 1 AS y FROM one;",
        )
        .unwrap();
    let db = target(&views, &config);
    let s = block_on(db.schema(&config.limits())).unwrap();
    assert_eq!(s.tables.len(), 2);
    let r = block_on(db.query("SELECT y FROM two", &QueryParams::None, &config.limits(), &AUDIT))
        .unwrap();
    assert_eq!(json!(r.rows), json!([[2]]));
}
