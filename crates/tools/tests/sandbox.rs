//! The read-only sandbox against a corpus of hostile statements: every one is rejected or
//! stopped with a clear error, and the database file is byte-for-byte unchanged.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use sqlmatic_models::QueryParams;
use sqlmatic_tools::test_support::fixture_target;
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

#[test]
fn every_hostile_statement_is_refused_and_the_file_is_unchanged() {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (dir, target) = fixture_target(FIXTURE, &config);
    let path = target.spec().path.clone();
    let before = std::fs::read(&path).unwrap();
    let files_before = std::fs::read_dir(dir.path()).unwrap().count();
    let limits = QueryLimits { timeout: Duration::from_millis(300), ..config.limits() };
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let corpus = hostile(dir.path());
    assert!(corpus.len() >= 40, "corpus has {} statements", corpus.len());
    for sql in &corpus {
        let result = target.query(sql, &QueryParams::None, &limits, &audit);
        let err = match result {
            Ok(r) => panic!("`{sql}` was allowed and returned {r:?}"),
            Err(e) => e,
        };
        assert!(
            matches!(
                err.code,
                ToolErrorCode::ReadOnly
                    | ToolErrorCode::MultipleStatements
                    | ToolErrorCode::QueryTimeout
                    | ToolErrorCode::ValueTooLarge
                    | ToolErrorCode::SqlError
            ),
            "`{sql}`: unexpected {err:?}"
        );
        assert!(!err.model_message.is_empty(), "`{sql}` gave an empty message");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "database bytes changed");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), files_before, "a file was created");
}

fn check(sql: &str, expected: ToolErrorCode) {
    let config = ToolsConfig { query_timeout_ms: 300, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let err = target.query(sql, &QueryParams::None, &config.limits(), &audit).unwrap_err();
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
        target
            .query(sql, &QueryParams::None, &config.limits(), &audit)
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    }
}

#[test]
fn an_endless_result_is_capped_not_endless() {
    let config = ToolsConfig { query_timeout_ms: 300, max_rows: 50, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(FIXTURE, &config);
    let audit = QueryAudit { user: "test", thread_id: None, source: "test", observer: None };
    let r = target
        .query(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT i FROM r",
            &QueryParams::None,
            &config.limits(),
            &audit,
        )
        .unwrap();
    assert_eq!(r.row_count, 50);
    assert!(r.truncated);
    assert_eq!(r.total_rows, None, "an endless result cannot be counted");
}
