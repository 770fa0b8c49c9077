//! Helpers for tests in this and other crates: temp-file SQLite databases built from SQL.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{TargetDatabase, TargetSpec, ToolContext, ToolsConfig};

/// A temp directory holding `fixture.db`, created by running `sql` on a writable connection.
/// Keep the `TempDir` alive as long as the file is used.
pub fn fixture_db(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fixture.db");
    let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("open fixture: {e}"));
    conn.execute_batch(sql).unwrap_or_else(|e| panic!("fixture SQL failed: {e}"));
    (dir, path)
}

/// A target database over a fixture, named `fixture`.
pub fn fixture_target(sql: &str, config: &ToolsConfig) -> (tempfile::TempDir, Arc<TargetDatabase>) {
    let (dir, path) = fixture_db(sql);
    let spec = TargetSpec { default: true, ..TargetSpec::read_only("fixture", path) };
    (dir, TargetDatabase::new(spec, config))
}

/// A tool context over a fixture with default limits.
pub fn fixture_context(sql: &str) -> (tempfile::TempDir, ToolContext) {
    let config = ToolsConfig::default();
    let (dir, target) = fixture_target(sql, &config);
    (dir, ToolContext::new(target, config.limits()))
}

/// SQL for a "real-world torture" database: every SQLite feature real files contain, plus
/// broken objects (a stale view, a broken trigger, a virtual table whose module is missing,
/// a table declared with an unknown collation). Run with `torture_db`.
pub const TORTURE_SQL: &str = r#"
CREATE TABLE customers(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL COLLATE NOCASE,
  email TEXT UNIQUE CHECK (email LIKE '%@%'), city TEXT DEFAULT 'Paris');
INSERT INTO customers(name, email, city) VALUES ('Ann','ann@x.org','New York City'),
  ('Bob','bob@x.org','Paris'), ('Chloé','chloe@x.org','Zürich');
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
  total REAL, placed_at TEXT);
INSERT INTO orders VALUES (1,1,10.5,'2024-01-02'),(2,1,20,'2024-02-03'),(3,2,5,'2023-12-31');
CREATE INDEX orders_big ON orders(total) WHERE total > 10;
CREATE INDEX orders_month ON orders(substr(placed_at, 1, 7));
CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS spent FROM orders GROUP BY customer_id;
CREATE VIEW top_customers AS SELECT c.name, t.spent FROM customers c JOIN order_totals t ON t.customer_id = c.id;
CREATE VIEW stale_view AS SELECT c.id, c.dropped_column FROM customers c;
CREATE VIEW gone_view AS SELECT * FROM table_that_was_dropped;
CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
INSERT INTO kv VALUES ('a', x'00ff'), ('b', NULL);
CREATE TABLE strict_t(id INTEGER PRIMARY KEY, n INT NOT NULL, label TEXT, any_v ANY) STRICT;
INSERT INTO strict_t VALUES (1, 2, 'two', 2.5);
CREATE TABLE gen(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,
  c INTEGER GENERATED ALWAYS AS (a * 3) STORED);
INSERT INTO gen(a) VALUES (1), (2);
CREATE VIRTUAL TABLE docs USING fts5(title, body);
INSERT INTO docs VALUES ('Hello', 'the quick brown fox'), ('Bye', 'lazy dogs');
CREATE VIRTUAL TABLE notes4 USING fts4(content);
INSERT INTO notes4 VALUES ('remember the milk');
CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy);
INSERT INTO boxes VALUES (1, 0, 1, 0, 1), (2, 5, 6, 5, 6);
CREATE TABLE enrolment(student INTEGER, course INTEGER, grade TEXT, PRIMARY KEY (student, course));
INSERT INTO enrolment VALUES (1, 1, 'A'), (1, 2, 'B');
CREATE TABLE grade_notes(student INTEGER, course INTEGER, note TEXT,
  FOREIGN KEY (student, course) REFERENCES enrolment(student, course) ON DELETE CASCADE);
CREATE TABLE orphan(id INTEGER PRIMARY KEY, ghost_id INTEGER REFERENCES ghost_table(id));
CREATE TABLE "order details"("order id" INTEGER, "unit price" REAL, "qty""quoted" INT, [bracket col] TEXT);
INSERT INTO "order details" VALUES (1, 2.5, 3, 'x');
CREATE TABLE "select"("from" INTEGER, "where" TEXT);
INSERT INTO "select" VALUES (1, 'reserved');
CREATE TABLE "dot.ted"(x INTEGER);
CREATE TABLE "Äpfel"(n INTEGER);
CREATE TABLE "äpfel"(n INTEGER);
INSERT INTO "Äpfel" VALUES (1);
INSERT INTO "äpfel" VALUES (1), (2);
CREATE TABLE "日本語"("名前" TEXT);
INSERT INTO "日本語" VALUES ('テスト');
CREATE TABLE audit_log(id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER customers_audit AFTER INSERT ON customers BEGIN
  INSERT INTO audit_log(what) VALUES ('new customer ' || new.name); END;
CREATE TRIGGER broken_trigger AFTER UPDATE ON orders BEGIN
  INSERT INTO audit_log(what, no_such_column) VALUES ('x', new.total); END;
CREATE TRIGGER top_customers_insert INSTEAD OF INSERT ON top_customers BEGIN
  INSERT INTO customers(name) VALUES (new.name); END;
CREATE TABLE collated(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE);
CREATE INDEX collated_name ON collated(name COLLATE NOCASE);
INSERT INTO collated(name) VALUES ('b'), ('A');
ANALYZE;
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'NOCASE', 'app_locale') WHERE name IN ('collated', 'collated_name');
INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES
  ('table', 'ghost_vt', 'ghost_vt', 0, 'CREATE VIRTUAL TABLE ghost_vt USING no_such_module(a, b)');
PRAGMA writable_schema = OFF;
"#;

/// A temp directory holding `torture.db` built from [`TORTURE_SQL`] plus a 600-column table.
pub fn torture_db() -> (tempfile::TempDir, PathBuf) {
    let wide: Vec<String> = (0..600).map(|i| format!("c{i} INTEGER")).collect();
    let sql = format!(
        "{TORTURE_SQL}\nCREATE TABLE wide({});\nINSERT INTO wide(c0, c599) VALUES (1, 599);",
        wide.join(", ")
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("torture.db");
    let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("open torture: {e}"));
    // writable_schema edits need defensive mode off (rusqlite leaves it off)
    conn.execute_batch(&sql).unwrap_or_else(|e| panic!("torture SQL failed: {e}"));
    (dir, path)
}

/// Runs `future` to completion on a runtime of its own: for synchronous tests of the async
/// target API (the SQLite engine's blocking work needs a runtime for `spawn_blocking`).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(future)
}

/// The median of `n` timed runs of `f`, in milliseconds (benchmarks).
pub fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// Asserts that a hostile statement was refused or stopped with a clear reason (whatever the
/// engine): a refusal, a limit, or the engine's own SQL error, never an internal one.
pub fn assert_refused(sql: &str, result: Result<sqlmatic_models::QueryResult, crate::ToolError>) {
    use crate::ToolErrorCode as C;
    let err = match result {
        Ok(r) => panic!("`{sql}` was allowed and returned {r:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err.code,
            C::ReadOnly
                | C::MultipleStatements
                | C::QueryTimeout
                | C::QueryTooExpensive
                | C::ValueTooLarge
                | C::SqlError
        ),
        "`{sql}`: unexpected {err:?}"
    );
    assert!(!err.model_message.is_empty(), "`{sql}` gave an empty message");
}

pub mod postgres;
