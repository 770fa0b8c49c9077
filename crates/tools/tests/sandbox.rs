//! The read-only sandbox against a corpus of hostile statements: every one is rejected or
//! stopped with a clear error, and the database file is byte-for-byte unchanged.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use sqlmatic_models::QueryParams;
use sqlmatic_tools::test_support::{assert_refused, block_on, fixture_target};
use sqlmatic_tools::{QueryAudit, QueryLimits, ToolErrorCode, ToolsConfig};

const FIXTURE: &str = "
    CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c');
    CREATE VIEW v AS SELECT name FROM t;
    CREATE INDEX t_name ON t(name);
";

fn hostile(dir: &Path) -> Vec<String> {
    let copy = dir.join("copy.db").display().to_string();
    let other = dir.join("other.db").display().to_string();
    let mut corpus: Vec<String> = [
        "INSERT INTO t VALUES (99,'x')",
        "INSERT OR IGNORE INTO t VALUES (1,'q')",
        "REPLACE INTO t VALUES (1,'q')",
        "UPDATE t SET name='x'",
        "DELETE FROM t",
        "DELETE FROM t WHERE 1=0",
        "DROP TABLE t",
        "DROP VIEW v",
        "DROP INDEX t_name",
        "CREATE TABLE evil(x)",
        "CREATE TEMP TABLE evil(x)",
        "CREATE INDEX i2 ON t(name)",
        "CREATE VIEW v2 AS SELECT 1",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE VIRTUAL TABLE f USING fts5(x)",
        "ALTER TABLE t ADD COLUMN z",
        "ALTER TABLE t RENAME TO t2",
        "ATTACH DATABASE ':memory:' AS x",
        "DETACH DATABASE main",
        "PRAGMA journal_mode=WAL",
        "PRAGMA user_version=5",
        "PRAGMA main.user_version = 7",
        "PRAGMA writable_schema=ON",
        "PRAGMA query_only=OFF",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA database_list",
        "PRAGMA mmap_size=1000000",
        "PRAGMA temp_store_directory='/tmp'",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT writefile('/tmp/evil', 'x')",
        "SELECT 1; DROP TABLE t",
        "SELECT 1; SELECT 2",
        "SELECT * FROM t; PRAGMA user_version=1",
        "SELECT 1 -- c\n; DELETE FROM t",
        "WITH x AS (SELECT 1) DELETE FROM t",
        "WITH x AS (SELECT 1) INSERT INTO t SELECT 100, 'y'",
        "WITH x AS (SELECT 1) UPDATE t SET name = 'z'",
        "EXPLAIN DELETE FROM t",
        "VACUUM",
        "REINDEX",
        "ANALYZE",
        "BEGIN",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "UPDATE sqlite_schema SET sql = ''",
        "INSERT INTO sqlite_master VALUES ('table','x','x',0,'')",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        "SELECT count(*) FROM t a, t b, t c, t d, (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT i FROM r)",
        "SELECT zeroblob(2000000000)",
        "SELECT randomblob(1000000000)",
        "SELECT length(zeroblob(100000000))",
        "SELECT replace(hex(zeroblob(10000000)), '0', '00')",
        "",
        "   ;  ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    corpus.push(format!("VACUUM INTO '{copy}'"));
    corpus.push(format!("ATTACH '{other}' AS o"));
    corpus.push(format!("ATTACH DATABASE 'file:{other}?mode=rwc' AS o2"));
    corpus
}

/// Writes aimed at what real files contain: virtual tables and their shadow tables, triggers,
/// views with INSTEAD OF triggers, odd names.
const TORTURE_HOSTILE: &[&str] = &[
    "INSERT INTO docs VALUES ('x', 'y')",
    "INSERT INTO docs(docs) VALUES ('rebuild')",
    "INSERT INTO docs(docs) VALUES ('optimize')",
    "DELETE FROM docs_data",
    "UPDATE docs_config SET v = 1",
    "INSERT INTO docs_content VALUES (9, 'a', 'b')",
    "INSERT INTO boxes VALUES (3, 0, 1, 0, 1)",
    "UPDATE boxes SET minx = 9",
    "DELETE FROM boxes_node",
    "INSERT INTO boxes_rowid VALUES (7, 1)",
    "DELETE FROM notes4_segdir",
    "INSERT INTO notes4(notes4) VALUES ('optimize')",
    "INSERT INTO top_customers VALUES ('Eve', 1)",
    "UPDATE orders SET total = 0",
    "INSERT INTO customers(name, email) VALUES ('Eve', 'e@x')",
    "DELETE FROM \"order details\"",
    "UPDATE \"select\" SET \"where\" = 'x'",
    "DROP VIEW stale_view",
    "DROP TABLE ghost_vt",
    "ALTER TABLE \"äpfel\" RENAME TO pears",
    "DELETE FROM sqlite_stat1",
    "UPDATE sqlite_sequence SET seq = 0",
    "WITH x AS (SELECT 1) DELETE FROM docs_data",
    "SELECT * FROM docs; DELETE FROM docs_data",
    "PRAGMA integrity_check",
    "PRAGMA wal_checkpoint",
];

fn assert_all_refused(target: &sqlmatic_tools::TargetDatabase, dir: &Path, corpus: &[String]) {
    let path = target.spec().path.clone().unwrap();
    let before = std::fs::read(&path).unwrap();
    let files_before = std::fs::read_dir(dir).unwrap().count();
    let limits =
        QueryLimits { timeout: Duration::from_millis(300), ..ToolsConfig::default().limits() };
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    assert!(corpus.len() >= 40, "corpus has {} statements", corpus.len());
    for sql in corpus {
        assert_refused(sql, block_on(target.query(sql, &QueryParams::None, &limits, &audit)));
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "database bytes changed");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), files_before, "a file was created");
}

#[test]
fn every_hostile_statement_is_refused_and_the_file_is_unchanged() {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (dir, target) = fixture_target(FIXTURE, &config);
    assert_all_refused(&target, dir.path(), &hostile(dir.path()));
}

#[test]
fn the_hostile_corpus_is_refused_on_the_torture_database_too() {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (dir, path) = sqlmatic_tools::test_support::torture_db();
    let spec: sqlmatic_tools::TargetSpec =
        serde_json::from_value(serde_json::json!({"name": "torture", "path": path})).unwrap();
    let target = sqlmatic_tools::TargetDatabase::new(spec, &config);
    // the structure (with its counts through the virtual tables) is read first, as a user would
    block_on(target.schema(&config.limits())).unwrap();
    let mut corpus = hostile(dir.path());
    corpus.extend(TORTURE_HOSTILE.iter().map(|s| s.to_string()));
    assert_all_refused(&target, dir.path(), &corpus);
    // and the read side still works afterwards
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let r = block_on(target.query(
        "SELECT count(*) FROM docs_data",
        &QueryParams::None,
        &config.limits(),
        &audit,
    ));
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn a_statement_run_again_comes_from_the_cache_under_the_same_rules() {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (dir, target) = fixture_target(FIXTURE, &config);
    // twice on the same connections: a statement prepared once (and refused after) is refused again
    let corpus = hostile(dir.path());
    assert_all_refused(&target, dir.path(), &corpus);
    assert_all_refused(&target, dir.path(), &corpus);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let limits = config.limits();
    let run = |sql: &str| block_on(target.query(sql, &QueryParams::None, &limits, &audit));
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";
    for _ in 0..2 {
        assert_eq!(run(endless).unwrap_err().code, ToolErrorCode::QueryTimeout);
    }
    let before = run("SELECT * FROM t ORDER BY id").unwrap();
    assert_eq!(before.columns.len(), 2);
    // the schema changes under a cached statement: SQLite prepares it again
    let path = target.spec().path.clone().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE t ADD COLUMN note TEXT DEFAULT 'x'")
        .unwrap();
    let after = run("SELECT * FROM t ORDER BY id").unwrap();
    assert_eq!(after.columns.len(), 3, "{after:?}");
    assert_eq!(after.rows[0][2], serde_json::json!("x"));
}

fn check(sql: &str, expected: ToolErrorCode) {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let err =
        block_on(target.query(sql, &QueryParams::None, &config.limits(), &audit)).unwrap_err();
    assert_eq!(err.code, expected, "`{sql}`: {err:?}");
}

#[test]
fn each_layer_names_its_reason() {
    check("DELETE FROM t", ToolErrorCode::ReadOnly);
    check("WITH x AS (SELECT 1) DELETE FROM t", ToolErrorCode::ReadOnly);
    check("SELECT 1; SELECT 2", ToolErrorCode::MultipleStatements);
    check("SELECT zeroblob(2000000000)", ToolErrorCode::ValueTooLarge);
    check(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        ToolErrorCode::QueryTimeout,
    );
    check("SELEC 1", ToolErrorCode::SqlError);
    check("VACUUM INTO '/tmp/sqlmatic-never.db'", ToolErrorCode::ReadOnly);
    check("SELECT load_extension('x')", ToolErrorCode::ReadOnly);
    // reads that cannot run are SQL errors, not write attempts
    check("PRAGMA journal_mode", ToolErrorCode::SqlError);
    check("-- just a comment", ToolErrorCode::SqlError);
    check("/* only */ -- comments", ToolErrorCode::SqlError);
    check("\u{200B}\u{FEFF}", ToolErrorCode::SqlError);
}

#[test]
fn read_only_pragmas_and_recursive_ctes_still_work() {
    let config = ToolsConfig::default();
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    for sql in [
        "PRAGMA table_info(t)",
        "PRAGMA user_version",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10) SELECT count(*) FROM c",
        "SELECT (SELECT count(*) FROM t) AS n, upper(name) FROM t",
        "EXPLAIN QUERY PLAN SELECT * FROM t WHERE name = 'a'",
    ] {
        block_on(target.query(sql, &QueryParams::None, &config.limits(), &audit))
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    }
}

#[test]
fn an_endless_result_is_capped_not_endless() {
    let config = ToolsConfig { query_timeout_ms: 300, max_rows: 50, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let r = block_on(target.query(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT i FROM r",
        &QueryParams::None,
        &config.limits(),
        &audit,
    ))
    .unwrap();
    assert_eq!(r.row_count, 50);
    assert!(r.truncated);
    assert_eq!(r.total_rows, None, "an endless result cannot be counted");
}

/// Functions whose cost grows with the product of their inputs run inside one virtual-machine
/// step, where the time limit cannot interrupt them. `instr` of a 1.2 MB and a 600 KB string
/// used to run 6.5 s past a 2 s limit; each statement here must end (with a result or an error)
/// within a few times the limit.
#[test]
fn slow_functions_cannot_outlive_the_time_limit() {
    let config = ToolsConfig { query_timeout_ms: 1000, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let big = "printf('%.*c', 1200000, 'a')";
    let half = "printf('%.*c', 600000, 'a')";
    let long = "printf('%.*c', 99, 'a')";
    let corpus = [
        format!("SELECT instr({big}, {half} || 'b')"),
        format!("SELECT instr(CAST({big} AS BLOB), CAST({half} || 'b' AS BLOB))"),
        format!("SELECT length(replace({big}, {half} || 'b', 'x'))"),
        format!("SELECT length(replace({big}, 'a', 'aaa'))"),
        format!("SELECT length(trim({big}, {big} || 'b'))"),
        format!("SELECT length(ltrim({big}, {half} || 'b')), length(rtrim({big}, {half} || 'b'))"),
        format!("SELECT {big} LIKE '%' || {long} || 'b'"),
        format!("SELECT {big} GLOB '*' || {long} || 'b'"),
        format!("SELECT {big} LIKE '%' || printf('%.*c', 5000, 'a') || 'b'"),
        format!("SELECT {big} LIKE '%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b'"),
        format!("SELECT count(*) FROM t WHERE instr({big}, {half} || name) > 0"),
        "SELECT length(printf('%.*c', 100000000, 'a'))".to_owned(),
        format!("SELECT length(replace(replace({big}, 'a', 'aa'), 'aa', 'aaaa'))"),
    ];
    for sql in &corpus {
        let started = std::time::Instant::now();
        let result = block_on(target.query(sql, &QueryParams::None, &config.limits(), &audit));
        let took = started.elapsed();
        if let Err(e) = &result {
            assert!(
                matches!(
                    e.code,
                    ToolErrorCode::QueryTimeout
                        | ToolErrorCode::ValueTooLarge
                        | ToolErrorCode::SqlError
                ),
                "`{sql}`: {e:?}"
            );
        }
        assert!(took < Duration::from_secs(4), "`{sql}` took {took:?} with a 1 s limit");
    }
}

/// One user cannot hold every connection of a target; a target whose connections are all busy
/// says so (`target_busy`), not that it is unavailable.
#[test]
fn a_user_cannot_hold_every_connection_and_busy_is_named() {
    let long =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let run = |target: &std::sync::Arc<sqlmatic_tools::TargetDatabase>,
               user: &'static str,
               config: &ToolsConfig| {
        let audit = QueryAudit { user, thread_id: None, source: "test", observer: None };
        block_on(target.query(long, &QueryParams::None, &config.limits(), &audit))
    };
    let config = ToolsConfig {
        query_timeout_ms: 800,
        pool_wait_ms: 100,
        max_queries_per_user: 1,
        ..ToolsConfig::default()
    };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let slow = {
        let (t, c) = (target.clone(), config.clone());
        std::thread::spawn(move || run(&t, "mallory", &c))
    };
    std::thread::sleep(Duration::from_millis(200));
    let err = run(&target, "mallory", &config).unwrap_err();
    assert_eq!(err.code, ToolErrorCode::TooManyQueries, "{err:?}");
    assert_eq!(err.kind(), sqlmatic_models::ErrorKind::RateLimited);
    let audit = QueryAudit { user: "alice", thread_id: None, source: "test", observer: None };
    block_on(target.query("SELECT count(*) FROM t", &QueryParams::None, &config.limits(), &audit))
        .unwrap();
    let slow_err = slow.join().unwrap().unwrap_err();
    assert_eq!(slow_err.code, ToolErrorCode::QueryTimeout, "{slow_err:?}");

    let config = ToolsConfig { pool_size: 1, max_queries_per_user: 5, ..config };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let slow = {
        let (t, c) = (target.clone(), config.clone());
        std::thread::spawn(move || run(&t, "mallory", &c))
    };
    std::thread::sleep(Duration::from_millis(200));
    let err = run(&target, "alice", &config).unwrap_err();
    assert_eq!(err.code, ToolErrorCode::TargetBusy, "{err:?}");
    assert!(err.model_message.contains("all 1 connections"), "{}", err.model_message);
    assert_eq!(slow.join().unwrap().unwrap_err().code, ToolErrorCode::QueryTimeout);
}
